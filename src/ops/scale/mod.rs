//! Multiplication by a constant, `y = factor · x` (a Flax model's `x * c`, e.g. airbench's
//! `× 1/9` on the logits): no parameters; its backward is the same multiplication of the
//! gradient.

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// `y = factor · x` over `count` values (`scale.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct ScaleParams {
    pub count: u32,
    pub factor: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

impl ScaleParams {
    pub fn new(count: u32, factor: f32) -> Self {
        ScaleParams {
            count,
            factor,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// The entry points (forward, backward): one multiplication each, any length.
pub fn select(_p: &ScaleParams) -> [&'static str; 2] {
    ["scale_forward", "scale_backward"]
}
