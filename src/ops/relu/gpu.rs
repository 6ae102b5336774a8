//! Launcher for `relu.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::ElementwiseParams;

use super::select;

const SHADER: &str = "relu";

/// `output = max(input, 0)` (=).
pub fn forward(
    gpu: &Gpu,
    p: &ElementwiseParams,
    input: BufSlice<'_>,
    output: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("relu.params", p);
    let entry = select(p)[0];
    let (bindings, threads) = if entry == "relu_forward_vec4" {
        ([(11, input), (12, output)], p.count / 4)
    } else {
        ([(1, input), (2, output)], p.count)
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        p.count as u64,
        8 * p.count as u64,
    )
}

/// `dinput = dout · [output > 0]` (=), from the forward output.
pub fn backward(
    gpu: &Gpu,
    p: &ElementwiseParams,
    dout: BufSlice<'_>,
    output: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("relu.params", p);
    let entry = select(p)[1];
    let (bindings, threads) = if entry == "relu_backward_vec4" {
        ([(13, dout), (15, output), (14, dinput)], p.count / 4)
    } else {
        ([(3, dout), (5, output), (4, dinput)], p.count)
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        p.count as u64,
        12 * p.count as u64,
    )
}
