//! Launcher for `gelu.wgsl`.

use super::GeluParams;
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};

const SHADER: &str = "gelu";
/// Elements per invocation (`PER` in the shader).
const PER: u32 = 8;

/// `output = gelu(input)` (=).
pub fn forward(gpu: &Gpu, p: &GeluParams, input: BufSlice<'_>, output: BufSlice<'_>) -> Dispatch {
    let u = gpu.uniform("gelu.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        super::ENTRIES[0],
        &u,
        &[(1, input), (2, output)],
        grid(p.count.div_ceil(PER)),
        12 * p.count as u64,
        8 * p.count as u64,
    )
}

/// `dinput = dout · gelu'(input)` (=), from the forward input.
pub fn backward(
    gpu: &Gpu,
    p: &GeluParams,
    dout: BufSlice<'_>,
    input: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("gelu.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        super::ENTRIES[1],
        &u,
        &[(3, dout), (1, input), (4, dinput)],
        grid(p.count.div_ceil(PER)),
        20 * p.count as u64,
        12 * p.count as u64,
    )
}
