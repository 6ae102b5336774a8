//! Launcher for `maxpool.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::avgpool::gpu::threads;
use crate::ops::MaxPoolParams;

const SHADER: &str = "maxpool";

/// `output = maxpool(input)`, `argmax` = each window's maximal input pixel (=).
pub fn forward(
    gpu: &Gpu,
    p: &MaxPoolParams,
    input: BufSlice<'_>,
    output: BufSlice<'_>,
    argmax: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("maxpool.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        super::ENTRIES[0],
        &u,
        &[(1, input), (2, output), (3, argmax)],
        grid(threads(p, false)),
        (p.output_len() * (p.kh * p.kw) as usize) as u64,
        4 * (p.input_len() + 2 * p.output_len()) as u64,
    )
}

/// `dinput` = `dout` gathered at each window's argmax (=).
pub fn backward(
    gpu: &Gpu,
    p: &MaxPoolParams,
    dout: BufSlice<'_>,
    argmax: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("maxpool.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        super::ENTRIES[1],
        &u,
        &[(4, dout), (5, argmax), (6, dinput)],
        grid(threads(p, true)),
        p.input_len() as u64,
        4 * (p.input_len() + 2 * p.output_len()) as u64,
    )
}
