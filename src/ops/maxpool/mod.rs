//! Max pooling (Flax `max_pool`).

pub mod cpu;
pub mod gpu;

/// Max pooling (Flax `max_pool`) has the same window geometry as average pooling; its shader
/// reads the same uniform (`PoolParams` in `maxpool.wgsl`).
pub type MaxPoolParams = super::AvgPoolParams;

/// The entry points (forward with argmax, backward by gather).
pub const ENTRIES: [&str; 2] = ["maxpool_forward", "maxpool_backward"];
