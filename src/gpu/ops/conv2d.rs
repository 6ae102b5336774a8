//! Launcher for `shaders/conv2d.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::Conv2dParams;

const SHADER: &str = "conv2d";

/// `output = conv(input, weight) + bias` (=).
pub fn forward(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    weight: BufSlice<'_>,
    bias: BufSlice<'_>,
    output: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("conv2d.params", p);
    let tiles = p.o.div_ceil(4) * p.pixels().div_ceil(4);
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len()) as u64;
    Dispatch::new(
        gpu,
        SHADER,
        "conv2d_forward",
        &u,
        &[(1, input), (2, weight), (3, bias), (4, output)],
        grid(tiles),
        p.flops_forward(),
        bytes,
    )
}

/// `dinput = conv_transpose(dout, weight)` (=).
pub fn backward_input(
    gpu: &Gpu,
    p: &Conv2dParams,
    dout: BufSlice<'_>,
    weight: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("conv2d.params", p);
    let tiles = p.c.div_ceil(4) * (p.n * p.h * p.w).div_ceil(4);
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len()) as u64;
    Dispatch::new(
        gpu,
        SHADER,
        "conv2d_backward_input",
        &u,
        &[(5, dout), (2, weight), (6, dinput)],
        grid(tiles),
        p.flops_forward(),
        bytes,
    )
}

/// `dweight`, `dbias` (=) by a deterministic split-K: partial sums into `partials`
/// (`p.partials_len()` elements), then a fixed-order reduction.
pub fn backward_weight(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    dout: BufSlice<'_>,
    partials: BufSlice<'_>,
    dweight: BufSlice<'_>,
    dbias: BufSlice<'_>,
) -> [Dispatch; 2] {
    let u = gpu.uniform("conv2d.params", p);
    let rows = p.k * p.k * p.c + 1;
    let tiles = p.o.div_ceil(4) * rows.div_ceil(4) * p.splits;
    let partial_bytes = 4 * p.partials_len() as u64;
    let split = Dispatch::new(
        gpu,
        SHADER,
        "conv2d_backward_weight",
        &u,
        &[(1, input), (5, dout), (7, partials)],
        grid(tiles),
        p.flops_forward() + 2 * (p.pixels() * p.o) as u64,
        4 * (p.input_len() + p.output_len()) as u64 + partial_bytes,
    );
    let reduce = Dispatch::new(
        gpu,
        SHADER,
        "conv2d_backward_weight_reduce",
        &u,
        &[(7, partials), (8, dweight), (9, dbias)],
        grid(rows * p.o),
        p.partials_len() as u64,
        partial_bytes + 4 * (rows * p.o) as u64,
    );
    [split, reduce]
}
