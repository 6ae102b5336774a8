//! Element-wise add (+ ReLU): residual connections and gradient accumulation.

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// Element-wise `y = a + b` over `count` values, optionally followed by ReLU (residual
/// connections, gradient accumulation).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AddParams {
    pub count: u32,
    /// 1: `y = max(a + b, 0)`.
    pub relu: u32,
    pub _pad: [u32; 2],
}

impl AddParams {
    pub fn new(count: u32) -> Self {
        Self {
            count,
            relu: 0,
            _pad: [0; 2],
        }
    }
    /// The same sum followed by ReLU.
    pub fn with_relu(mut self) -> Self {
        self.relu = 1;
        self
    }
}

/// The entry point for `p`: four values per invocation when the count allows.
pub fn select(p: &AddParams) -> &'static str {
    if p.count.is_multiple_of(4) {
        "add_forward_vec4"
    } else {
        "add_forward"
    }
}

/// The entry point of the sum of two gradients through a ReLU's backward: four elements per
/// invocation where the count is a whole number of vec4s.
pub fn relu_backward_entry(p: &AddParams) -> &'static str {
    if p.count.is_multiple_of(4) {
        "add_relu_backward_vec4"
    } else {
        "add_relu_backward"
    }
}
