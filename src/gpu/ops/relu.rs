//! Launcher for `shaders/relu.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::ElementwiseParams;

const SHADER: &str = "relu";

/// `output = max(input, 0)` (=).
pub fn forward(
    gpu: &Gpu,
    p: &ElementwiseParams,
    input: BufSlice<'_>,
    output: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("relu.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        "relu_forward",
        &u,
        &[(1, input), (2, output)],
        grid(p.count),
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
    Dispatch::new(
        gpu,
        SHADER,
        "relu_backward",
        &u,
        &[(3, dout), (5, output), (4, dinput)],
        grid(p.count),
        p.count as u64,
        12 * p.count as u64,
    )
}
