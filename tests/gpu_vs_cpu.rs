//! Every shader entry point against its CPU reference (computed in f64 from the same f32
//! inputs), on random inputs from fixed seeds, at shapes that are not multiples of the tile or
//! workgroup sizes, both paddings. Tolerances are `|gpu − cpu| ≤ atol + rtol·|cpu|`.
//!
//! The tests live by op in `tests/ops/<op>/gpu_vs_cpu.rs` (their finite-difference checks sit
//! beside them in `gradcheck.rs`, run by `tests/gradcheck.rs`); helpers several ops use are in
//! `tests/ops/shared/gpu_vs_cpu.rs`.

mod common;
#[path = "ops/shared/gpu_vs_cpu.rs"]
mod shared;

#[path = "ops/add/gpu_vs_cpu.rs"]
mod add;
#[path = "ops/avgpool/gpu_vs_cpu.rs"]
mod avgpool;
#[path = "ops/batchnorm/gpu_vs_cpu.rs"]
mod batchnorm;
#[path = "ops/clip/gpu_vs_cpu.rs"]
mod clip;
#[path = "ops/conv2d/gpu_vs_cpu.rs"]
mod conv2d;
#[path = "ops/conv2d/subgroup.rs"]
mod conv2d_subgroup;
#[path = "ops/conv2d/winograd.rs"]
mod conv2d_winograd;
#[path = "ops/dense/gpu_vs_cpu.rs"]
mod dense;
#[path = "ops/device/gpu_vs_cpu.rs"]
mod device;
#[path = "ops/dropout/gpu_vs_cpu.rs"]
mod dropout;
#[path = "ops/gelu/gpu_vs_cpu.rs"]
mod gelu;
#[path = "ops/maxpool/gpu_vs_cpu.rs"]
mod maxpool;
#[path = "ops/optimizer/gpu_vs_cpu.rs"]
mod optimizer;
#[path = "ops/relu/gpu_vs_cpu.rs"]
mod relu;
#[path = "ops/scale/gpu_vs_cpu.rs"]
mod scale;
#[path = "ops/softmax_ce/gpu_vs_cpu.rs"]
mod softmax_ce;
