//! Launcher for `shaders/adam.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::AdamParams;

/// One Adam step over flat `param`, `grad`, `mu`, `nu` buffers of `p.count` elements. The
/// returned dispatch's `uniform` is rewritten before each step with the step's [`AdamParams`].
pub fn update(
    gpu: &Gpu,
    p: &AdamParams,
    param: BufSlice<'_>,
    grad: BufSlice<'_>,
    mu: BufSlice<'_>,
    nu: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("adam.params", p);
    Dispatch::new(
        gpu,
        "adam",
        "adam_update",
        &u,
        &[(1, param), (2, grad), (3, mu), (4, nu)],
        grid(p.count),
        10 * p.count as u64,
        4 * 7 * p.count as u64,
    )
}
