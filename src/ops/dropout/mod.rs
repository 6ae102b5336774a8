//! Inverted dropout (Flax `nn.Dropout`).

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// Inverted dropout over `count` values (`dropout.wgsl`): the mask of element `i` is a hash of
/// (seed, layer, step, i).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct DropoutParams {
    pub count: u32,
    pub rate: f32,
    /// `1 / (1 − rate)`.
    pub scale: f32,
    pub seed: u32,
    /// The train step (Adam's 1-based count): a new mask every step.
    pub step: u32,
    /// The layer's index in the description: a different mask per layer.
    pub layer: u32,
    /// 1: training (mask and scale); 0: evaluation (identity).
    pub train: u32,
    pub _pad0: u32,
}

impl DropoutParams {
    pub fn new(count: u32, rate: f32, layer: u32) -> Self {
        assert!((0.0..1.0).contains(&rate), "dropout rate in [0, 1)");
        DropoutParams {
            count,
            rate,
            scale: 1.0 / (1.0 - rate),
            seed: 0,
            step: 1,
            layer,
            train: 1,
            _pad0: 0,
        }
    }
    /// The same layer at train step `step` of a run seeded `seed`.
    pub fn at(mut self, seed: u32, step: u32) -> Self {
        self.seed = seed;
        self.step = step;
        self
    }
    /// The same layer in evaluation mode (identity).
    pub fn eval(mut self) -> Self {
        self.train = 0;
        self
    }
}

/// The entry points (forward, backward); the eval schedule's forward is the same entry point
/// with `p.eval()` (a copy).
pub const ENTRIES: [&str; 2] = ["dropout_forward", "dropout_backward"];
