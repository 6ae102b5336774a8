//! ReLU.

pub mod cpu;
pub mod gpu;

use super::ElementwiseParams;

/// The entry points for `p` (forward, backward): four values per invocation when the count
/// allows.
pub fn select(p: &ElementwiseParams) -> [&'static str; 2] {
    if p.count.is_multiple_of(4) {
        ["relu_forward_vec4", "relu_backward_vec4"]
    } else {
        ["relu_forward", "relu_backward"]
    }
}
