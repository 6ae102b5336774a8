//! ReLU.

pub mod cpu;
pub mod gpu;
