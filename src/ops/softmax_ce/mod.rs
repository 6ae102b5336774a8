//! Softmax cross-entropy with integer labels and label smoothing (the loss).

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// Softmax cross-entropy over `n` rows of `classes` logits with integer labels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct SoftmaxCeParams {
    pub n: u32,
    pub classes: u32,
    /// `1 / n`, the scale of the mean loss and of its gradient.
    pub inv_n: f32,
    /// Label smoothing α (optax.smooth_labels): targets `(1 − α)·onehot + α/classes`.
    pub smoothing: f32,
}

impl SoftmaxCeParams {
    pub fn new(n: u32, classes: u32) -> Self {
        assert!(n > 0 && classes > 0);
        Self {
            n,
            classes,
            inv_n: 1.0 / n as f32,
            smoothing: 0.0,
        }
    }
    /// The same loss against smoothed targets (training with `--label-smoothing`).
    pub fn with_smoothing(mut self, alpha: f32) -> Self {
        self.smoothing = alpha;
        self
    }
}

/// The entry points: the forward (eval: loss and correct count per row), the forward with the
/// gradient (train), and the fixed-order reduction of the per-row results after either.
pub const FORWARD: &str = "softmax_ce_forward";
pub const BACKWARD: &str = "softmax_ce_backward";
pub const REDUCE: &str = "softmax_ce_reduce";
