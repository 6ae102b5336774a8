//! Launcher for `shaders/dense.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::DenseParams;

const SHADER: &str = "dense";

/// The vec4 variants need the outputs (N) in whole vec4s.
fn vec4(p: &DenseParams) -> bool {
    p.n.is_multiple_of(4)
}

/// Devices with 8-wide subgroups run dense layers as 1×1 convolutions through
/// `conv2d_sg.wgsl` (2× faster on lavapipe than the register tiles below).
fn subgroup8(gpu: &Gpu, p: &DenseParams) -> bool {
    gpu.subgroup_size == Some(8) && vec4(p)
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
    if subgroup8(gpu, p) {
        return super::conv2d::forward(gpu, &p.as_conv(), x, w, b, y);
    }
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
    if subgroup8(gpu, p) && p.k.is_multiple_of(4) {
        return super::conv2d::backward_input(gpu, &p.as_conv(), dy, w, dx);
    }
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
) -> Vec<Dispatch> {
    // With db right after dw (as in a model's flat gradient buffer) both come out of one
    // subgroup kernel: its bias row of ones lands on db.
    let contiguous = dw.buffer == db.buffer && db.offset == dw.offset + 4 * (p.k * p.n) as u64;
    if subgroup8(gpu, p) && contiguous {
        let both = BufSlice {
            buffer: dw.buffer,
            offset: dw.offset,
            size: 4 * ((p.k + 1) * p.n) as u64,
        };
        let c = p.as_conv();
        return vec![super::conv2d::backward_weight_split(gpu, &c, x, dy, both)];
    }
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
    vec![weight, bias]
}
