//! wgpu-cnn: train convolutional networks on any GPU through wgpu, every kernel hand-written
//! in WGSL (`shaders/`), with a CPU reference (`cpu/`) that checks each of them.

pub mod bench;
pub mod caps;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod io;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod plan;
pub mod profile;
pub mod recipe;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod tensorboard;
pub mod train;
