//! Launcher for `scale.wgsl`.

use super::{select, ScaleParams};
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};

const SHADER: &str = "scale";

/// `output = factor · input` (=).
pub fn forward(gpu: &Gpu, p: &ScaleParams, input: BufSlice<'_>, output: BufSlice<'_>) -> Dispatch {
    let u = gpu.uniform("scale.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        select(p)[0],
        &u,
        &[(1, input), (2, output)],
        grid(p.count),
        p.count as u64,
        8 * p.count as u64,
    )
}

/// `dinput = factor · dout` (=).
pub fn backward(gpu: &Gpu, p: &ScaleParams, dout: BufSlice<'_>, dinput: BufSlice<'_>) -> Dispatch {
    let u = gpu.uniform("scale.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        select(p)[1],
        &u,
        &[(3, dout), (4, dinput)],
        grid(p.count),
        p.count as u64,
        8 * p.count as u64,
    )
}
