//! The GPU side: adapter and device ([`context`]), the shader registry and pipeline cache,
//! buffer helpers, recorded dispatches, and one launcher per shader in [`ops`].

pub mod context;
pub mod dispatch;
pub mod shaders;

pub use context::{Backend, Gpu, GpuError, GpuOptions};
pub use dispatch::{BufSlice, Dispatch};
