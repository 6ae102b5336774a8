//! Launcher for `shaders/avgpool.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::AvgPoolParams;

const SHADER: &str = "avgpool";

/// `output = avgpool(input)` (=).
pub fn forward(
    gpu: &Gpu,
    p: &AvgPoolParams,
    input: BufSlice<'_>,
    output: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("avgpool.params", p);
    let n = p.output_len() as u32;
    Dispatch::new(
        gpu,
        SHADER,
        "avgpool_forward",
        &u,
        &[(1, input), (2, output)],
        grid(n),
        p.input_len() as u64,
        4 * (p.input_len() + p.output_len()) as u64,
    )
}

/// `dinput = avgpool_backward(dout)` (=).
pub fn backward(
    gpu: &Gpu,
    p: &AvgPoolParams,
    dout: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("avgpool.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        "avgpool_backward",
        &u,
        &[(3, dout), (4, dinput)],
        grid(p.input_len() as u32),
        p.input_len() as u64,
        4 * (p.input_len() + p.output_len()) as u64,
    )
}
