//! Launcher for `dense.wgsl`.

use super::vec4;
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::DenseParams;

const SHADER: &str = "dense";

/// Devices with 8-wide subgroups run dense layers as 1×1 convolutions through the subgroup
/// kernels (`conv2d_sg_*.wgsl`: faster on lavapipe than the register tiles below,
/// docs/notes/subgroup-kernels.md), workgroup-tiled devices through `conv2d_wg.wgsl` (any shape).
fn as_conv(gpu: &Gpu, p: &DenseParams) -> bool {
    gpu.caps().dense_as_conv(p)
}

fn bytes(p: &DenseParams) -> u64 {
    4 * (p.m * p.k + p.k * p.n + p.m * p.n) as u64
}

/// `y = x · w + b` (=; `b` exactly when `p.bias = 1`).
pub fn forward(
    gpu: &Gpu,
    p: &DenseParams,
    x: BufSlice<'_>,
    w: BufSlice<'_>,
    b: Option<BufSlice<'_>>,
    y: BufSlice<'_>,
) -> Dispatch {
    assert_eq!(
        b.is_some(),
        p.bias != 0,
        "dense: a bias buffer exactly when p.bias = 1"
    );
    if as_conv(gpu, p) {
        return crate::ops::conv2d::gpu::forward(gpu, &p.as_conv(), x, w, b, y);
    }
    // Without a bias the binding is never read.
    let b = b.unwrap_or(w);
    let u = gpu.uniform("dense.params", p);
    let entry = super::forward_entry(p);
    let (wb, tile) = if entry == "dense_forward_vec4" {
        (10, 8)
    } else {
        (2, 4)
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
    if as_conv(gpu, p) && (p.k.is_multiple_of(4) || gpu.caps().workgroup_tiled()) {
        return crate::ops::conv2d::gpu::backward_input(gpu, &p.as_conv(), dy, w, dx);
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

/// `dw = xᵀ · dy` and `db = Σ_m dy` (=; `db` exactly when `p.bias = 1`). On devices where dense
/// layers run as 1×1 convolutions and `db` does not start right after `dw`, the conv kernel
/// writes into `partials` (`p.as_conv().partials_len()` elements) and a reduction copies out.
pub fn backward_weight(
    gpu: &Gpu,
    p: &DenseParams,
    x: BufSlice<'_>,
    dy: BufSlice<'_>,
    dw: BufSlice<'_>,
    db: Option<BufSlice<'_>>,
    partials: Option<BufSlice<'_>>,
) -> Vec<Dispatch> {
    assert_eq!(
        db.is_some(),
        p.bias != 0,
        "dense: a bias buffer exactly when p.bias = 1"
    );
    // With db right after dw (as the planner lays out a dense layer's gradients) both come out
    // of one conv kernel: its bias row of ones lands on db. Without a bias, dw alone.
    let contiguous = db
        .is_none_or(|db| dw.buffer == db.buffer && db.offset == dw.offset + 4 * (p.k * p.n) as u64);
    if as_conv(gpu, p) && contiguous {
        let both = BufSlice {
            buffer: dw.buffer,
            offset: dw.offset,
            size: 4 * ((p.k + p.bias) * p.n) as u64,
        };
        let c = p.as_conv();
        return vec![crate::ops::conv2d::gpu::backward_weight_split(
            gpu, &c, x, dy, both,
        )];
    }
    if as_conv(gpu, p) {
        let partials =
            partials.expect("dense weight gradient: split-K scratch where db does not follow dw");
        return crate::ops::conv2d::gpu::backward_weight(
            gpu,
            &p.as_conv(),
            x,
            dy,
            partials,
            dw,
            db,
        )
        .into_iter()
        .collect();
    }
    let u = gpu.uniform("dense.params", p);
    let entry = super::backward_weight_entry(p);
    let (dyb, tile) = if entry == "dense_backward_weight_vec4" {
        (11, 8)
    } else {
        (5, 4)
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
    let Some(db) = db else {
        return vec![weight];
    };
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
