//! Winograd F(4x4, 3x3) for 3x3 stride-1 SAME convolutions: launchers (`gpu`) and CPU twin (`cpu`).

pub mod cpu;
pub mod gpu;
