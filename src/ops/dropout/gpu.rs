//! Launcher for `dropout.wgsl`. Each train step rewrites the dispatches' uniforms with
//! its step number (`GpuModel::begin_train_step`).

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::DropoutParams;

/// Elements per invocation (`PER` in the shader).
const PER: u32 = 8;

const SHADER: &str = "dropout";

/// Training: `output = input · mask`; evaluation (`p.train = 0`): a copy (=).
pub fn forward(
    gpu: &Gpu,
    p: &DropoutParams,
    input: BufSlice<'_>,
    output: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("dropout.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        super::ENTRIES[0],
        &u,
        &[(1, input), (2, output)],
        grid(p.count.div_ceil(PER)),
        p.count as u64,
        8 * p.count as u64,
    )
}

/// `dinput = dout · mask` (=), the mask drawn again from the same counters.
pub fn backward(
    gpu: &Gpu,
    p: &DropoutParams,
    dout: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("dropout.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        super::ENTRIES[1],
        &u,
        &[(3, dout), (4, dinput)],
        grid(p.count.div_ceil(PER)),
        p.count as u64,
        8 * p.count as u64,
    )
}
