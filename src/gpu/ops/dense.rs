//! Launcher for `shaders/dense.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::DenseParams;

const SHADER: &str = "dense";

fn bytes(p: &DenseParams) -> u64 {
    4 * (p.m * p.k + p.k * p.n + p.m * p.n) as u64
}

/// `y = x · w + b` (=).
pub fn forward(
    gpu: &Gpu,
    p: &DenseParams,
    x: BufSlice<'_>,
    w: BufSlice<'_>,
    b: BufSlice<'_>,
    y: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("dense.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        "dense_forward",
        &u,
        &[(1, x), (2, w), (3, b), (4, y)],
        grid(p.n.div_ceil(4) * p.m.div_ceil(4)),
        p.flops_forward(),
        bytes(p),
    )
}

/// `dx = dy · wᵀ` (=).
pub fn backward_input(
    gpu: &Gpu,
    p: &DenseParams,
    dy: BufSlice<'_>,
    w: BufSlice<'_>,
    dx: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("dense.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        "dense_backward_input",
        &u,
        &[(5, dy), (2, w), (6, dx)],
        grid(p.k.div_ceil(4) * p.m.div_ceil(4)),
        p.flops_forward(),
        bytes(p),
    )
}

/// `dw = xᵀ · dy` and `db = Σ_m dy` (=).
pub fn backward_weight(
    gpu: &Gpu,
    p: &DenseParams,
    x: BufSlice<'_>,
    dy: BufSlice<'_>,
    dw: BufSlice<'_>,
    db: BufSlice<'_>,
) -> [Dispatch; 2] {
    let u = gpu.uniform("dense.params", p);
    let weight = Dispatch::new(
        gpu,
        SHADER,
        "dense_backward_weight",
        &u,
        &[(1, x), (5, dy), (7, dw)],
        grid(p.n.div_ceil(4) * p.k.div_ceil(4)),
        p.flops_forward(),
        bytes(p),
    );
    let bias = Dispatch::new(
        gpu,
        SHADER,
        "dense_backward_bias",
        &u,
        &[(5, dy), (8, db)],
        grid(p.n),
        (p.m * p.n) as u64,
        4 * (p.m * p.n + p.n) as u64,
    );
    [weight, bias]
}
