//! The GPU side: adapter and device ([`context`]), the shader registry and pipeline cache,
//! buffer helpers and recorded dispatches. The launchers live with their ops
//! (`crate::ops::<op>::gpu`).

pub mod context;
pub mod dispatch;
pub mod shaders;

pub use context::{Backend, Gpu, GpuError, GpuOptions};
pub use dispatch::{BufSlice, Dispatch};
