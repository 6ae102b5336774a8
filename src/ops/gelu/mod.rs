//! GELU (Flax `nn.gelu`, tanh approximation).

pub mod cpu;
pub mod gpu;
