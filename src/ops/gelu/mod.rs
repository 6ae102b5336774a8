//! GELU (Flax `nn.gelu`): the tanh approximation (`approximate=True`, Flax's default) or the
//! exact form `x·Φ(x)` (`approximate=False`, PyTorch's default; airbench's).

use bytemuck::{Pod, Zeroable};

pub mod cpu;
pub mod gpu;

/// The entry points (forward, backward): one each, any length.
pub const ENTRIES: [&str; 2] = ["gelu_forward", "gelu_backward"];

/// `gelu.wgsl`'s uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct GeluParams {
    pub count: u32,
    /// 1: the exact GELU `x·Φ(x)`; 0: the tanh approximation.
    pub exact: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

impl GeluParams {
    pub fn new(count: u32, approximate: bool) -> Self {
        GeluParams {
            count,
            exact: (!approximate) as u32,
            _pad0: 0,
            _pad1: 0,
        }
    }

    pub fn approximate(&self) -> bool {
        self.exact == 0
    }
}
