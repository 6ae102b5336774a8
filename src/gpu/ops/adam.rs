//! Launcher for `shaders/adam.wgsl`: the optimizers' update (Adam, AdamW, SGD).

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::AdamParams;

/// The optimizer state and decay mask of an update: `mu` (SGD: the momentum trace), `nu`
/// (Adam's second moment), `mask` (per element 0 or 1, read when `p.masked = 1`; any buffer
/// otherwise).
#[derive(Clone, Copy, Debug)]
pub struct OptimizerBuffers<'a> {
    pub param: BufSlice<'a>,
    pub grad: BufSlice<'a>,
    pub mu: BufSlice<'a>,
    pub nu: BufSlice<'a>,
    pub mask: BufSlice<'a>,
}

/// One step of Adam/AdamW (`adam_update`) or SGD (`sgd_update`, `sgd = true`) over flat buffers
/// of `p.count` elements. The returned dispatch's `uniform` is rewritten before each step.
pub fn update(gpu: &Gpu, p: &AdamParams, b: &OptimizerBuffers<'_>, sgd: bool) -> Dispatch {
    let u = gpu.uniform("adam.params", p);
    let entry = if sgd { "sgd_update" } else { "adam_update" };
    // SGD has one state slot: nu is not bound.
    let all = [(1, b.param), (2, b.grad), (3, b.mu), (5, b.mask), (4, b.nu)];
    Dispatch::new(
        gpu,
        "adam",
        entry,
        &u,
        &all[..if sgd { 4 } else { 5 }],
        grid(p.count),
        10 * p.count as u64,
        4 * 7 * p.count as u64,
    )
}
