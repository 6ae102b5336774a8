//! optax.clip_by_global_norm.

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// optax.clip_by_global_norm over `count` gradient values (`clip.wgsl`): the sum of squares in
/// `chunks` chunks of `chunk` values, then a fixed-order reduction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct ClipParams {
    pub count: u32,
    pub chunk: u32,
    pub chunks: u32,
    pub max_norm: f32,
}

impl ClipParams {
    /// Values per partial sum.
    pub const CHUNK: u32 = 1024;

    pub fn new(count: u32, max_norm: f32) -> Self {
        Self {
            count,
            chunk: Self::CHUNK,
            chunks: count.div_ceil(Self::CHUNK).max(1),
            max_norm,
        }
    }
}
