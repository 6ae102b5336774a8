//! GELU (Flax `nn.gelu`, tanh approximation).

pub mod cpu;
pub mod gpu;

/// The entry points (forward, backward): one each, any length.
pub const ENTRIES: [&str; 2] = ["gelu_forward", "gelu_backward"];
