//! Launcher for `add.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::AddParams;

use super::select;

const SHADER: &str = "add";

/// `y = a + b`, then `max(y, 0)` with `p.relu` (=). `y` must not alias `a` or `b`.
pub fn forward(
    gpu: &Gpu,
    p: &AddParams,
    a: BufSlice<'_>,
    b: BufSlice<'_>,
    y: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("add.params", p);
    let entry = select(p);
    let (bindings, threads) = if entry == "add_forward_vec4" {
        ([(4, a), (5, b), (6, y)], p.count / 4)
    } else {
        ([(1, a), (2, b), (3, y)], p.count)
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        (1 + p.relu) as u64 * p.count as u64,
        12 * p.count as u64,
    )
}

/// `y = (a + b)·[out > 0]` (=): the sum of a tensor's two gradients through the backward of the
/// ReLU whose output `out` the tensor is. `y` must not alias `a`, `b` or `out`.
pub fn relu_backward(
    gpu: &Gpu,
    p: &AddParams,
    a: BufSlice<'_>,
    b: BufSlice<'_>,
    out: BufSlice<'_>,
    y: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("add.params", p);
    let entry = super::relu_backward_entry(p);
    let (bindings, threads) = if entry == "add_relu_backward_vec4" {
        ([(4, a), (5, b), (8, out), (6, y)], p.count / 4)
    } else {
        ([(1, a), (2, b), (7, out), (3, y)], p.count)
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        2 * p.count as u64,
        16 * p.count as u64,
    )
}
