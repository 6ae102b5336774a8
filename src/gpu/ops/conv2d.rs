//! Launcher for `shaders/conv2d.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::Conv2dParams;

const SHADER: &str = "conv2d";

/// The vec4 variants need the output channels in whole vec4s.
fn vec4(p: &Conv2dParams) -> bool {
    p.o.is_multiple_of(4)
}

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
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len()) as u64;
    let (entry, weight_binding, tile_o) = if vec4(p) {
        ("conv2d_forward_vec4", 10, 8)
    } else {
        ("conv2d_forward", 2, 4)
    };
    let tiles = p.o.div_ceil(tile_o) * p.pixels().div_ceil(4);
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[(1, input), (weight_binding, weight), (3, bias), (4, output)],
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
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len()) as u64;
    // With few input channels the 8-wide channel tiles are mostly idle: keep 4×4 there.
    let (entry, dout_binding, weight_binding, tile_c) = if vec4(p) && p.c >= 8 {
        ("conv2d_backward_input_vec4", 11, 10, 8)
    } else {
        ("conv2d_backward_input", 5, 2, 4)
    };
    let tiles = p.c.div_ceil(tile_c) * (p.n * p.h * p.w).div_ceil(4);
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[(dout_binding, dout), (weight_binding, weight), (6, dinput)],
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
    let (entry, input_binding, dout_binding, tile_o) = if vec4(p) && p.c.is_multiple_of(4) {
        ("conv2d_backward_weight_c4", 12, 11, 8)
    } else if vec4(p) {
        ("conv2d_backward_weight_vec4", 1, 11, 8)
    } else {
        ("conv2d_backward_weight", 1, 5, 4)
    };
    let tiles = p.o.div_ceil(tile_o) * rows.div_ceil(4) * p.splits;
    let partial_bytes = 4 * p.partials_len() as u64;
    let split = Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[(input_binding, input), (dout_binding, dout), (7, partials)],
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
