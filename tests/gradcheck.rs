//! Finite differences in f64 (central, step 1e-6) against every backward of the CPU reference,
//! then against the whole model's loss gradient at sampled entries of every parameter tensor.
//! Each op is checked through the scalar L = Σ out · r for a fixed random r, whose gradient
//! w.r.t. out is r.
//!
//! The checks live by op in `tests/ops/<op>/gradcheck.rs` (beside the op's GPU-against-CPU
//! tests, run by `tests/gpu_vs_cpu.rs`), the whole model's in `tests/ops/model/gradcheck.rs`;
//! helpers several ops use are in `tests/ops/shared/gradcheck.rs`.

mod common;
#[path = "ops/shared/gradcheck.rs"]
mod shared;

#[path = "ops/add/gradcheck.rs"]
mod add;
#[path = "ops/avgpool/gradcheck.rs"]
mod avgpool;
#[path = "ops/batchnorm/gradcheck.rs"]
mod batchnorm;
#[path = "ops/conv2d/gradcheck.rs"]
mod conv2d;
#[path = "ops/dense/gradcheck.rs"]
mod dense;
#[path = "ops/dropout/gradcheck.rs"]
mod dropout;
#[path = "ops/gelu/gradcheck.rs"]
mod gelu;
#[path = "ops/maxpool/gradcheck.rs"]
mod maxpool;
#[path = "ops/model/gradcheck.rs"]
mod model;
#[path = "ops/relu/gradcheck.rs"]
mod relu;
#[path = "ops/scale/gradcheck.rs"]
mod scale;
#[path = "ops/softmax_ce/gradcheck.rs"]
mod softmax_ce;
