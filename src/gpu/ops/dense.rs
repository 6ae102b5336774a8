//! Launcher for `shaders/dense.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::DenseParams;

const SHADER: &str = "dense";

/// The vec4 variants need the outputs (N) in whole vec4s.
fn vec4(p: &DenseParams) -> bool {
    p.n.is_multiple_of(4)
}

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
    let (entry, wb, tile) = if vec4(p) {
        ("dense_forward_vec4", 10, 8)
    } else {
        ("dense_forward", 2, 4)
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[(1, x), (wb, w), (3, b), (4, y)],
        grid(p.n.div_ceil(tile) * p.m.div_ceil(4)),
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
    let (entry, dyb, wb, tile) = if vec4(p) {
        ("dense_backward_input_vec4", 11, 10, 8)
    } else {
        ("dense_backward_input", 5, 2, 4)
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[(dyb, dy), (wb, w), (6, dx)],
        grid(p.k.div_ceil(tile) * p.m.div_ceil(4)),
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
    let (entry, dyb, tile) = if vec4(p) {
        ("dense_backward_weight_vec4", 11, 8)
    } else {
        ("dense_backward_weight", 5, 4)
    };
    let weight = Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[(1, x), (dyb, dy), (7, dw)],
        grid(p.n.div_ceil(tile) * p.k.div_ceil(4)),
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
