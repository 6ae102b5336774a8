//! Launcher for `avgpool.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::AvgPoolParams;

use super::{backward_entry, mask_fits};

const SHADER: &str = "avgpool";

/// Invocations: one per pixel (output pixels forward, input pixels backward) and 4 channels
/// (also maxpool.wgsl's layout).
pub(crate) fn threads(p: &AvgPoolParams, backward: bool) -> u32 {
    let (h, w) = if backward {
        (p.h, p.w)
    } else {
        (p.out_h, p.out_w)
    };
    p.n * h * w * p.c.div_ceil(4)
}

/// `output = avgpool(input)` (=).
pub fn forward(
    gpu: &Gpu,
    p: &AvgPoolParams,
    input: BufSlice<'_>,
    output: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("avgpool.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        "avgpool_forward",
        &u,
        &[(1, input), (2, output)],
        grid(threads(p, false)),
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
    let entry = backward_entry(p, false, false);
    let (bindings, threads) = if entry == "avgpool_backward_disjoint" {
        ([(6, dout), (8, dinput)], p.input_len() as u32 / 4)
    } else {
        ([(3, dout), (4, dinput)], threads(p, true))
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        p.input_len() as u64,
        4 * (p.input_len() + p.output_len()) as u64,
    )
}

/// [`backward_relu`] with the ReLU's output given as its sign bits (`relu_mask`: `ceil(C/32)`
/// u32 words per input pixel, as a pooled subgroup conv forward (`conv2d_sg_*.wgsl`) with
/// `p.mask = 1` stores them). 2×2 windows of stride 2 without padding, C % 4 == 0
/// ([`mask_fits`]).
pub fn backward_relu_mask(
    gpu: &Gpu,
    p: &AvgPoolParams,
    dout: BufSlice<'_>,
    relu_mask: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    assert!(
        mask_fits(p),
        "avgpool::backward_relu_mask: 2x2 windows, C % 4 == 0"
    );
    let u = gpu.uniform("avgpool.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        backward_entry(p, true, true),
        &u,
        &[(6, dout), (9, relu_mask), (8, dinput)],
        grid(p.output_len() as u32 / 4),
        2 * p.input_len() as u64,
        4 * (p.input_len() + p.output_len()) as u64 + 4 * p.input_len() as u64 / 32,
    )
}

/// `dinput = avgpool_backward(dout) · [relu_output > 0]` (=): the pool's backward fused with
/// the backward of the ReLU whose output `relu_output` the pool read.
pub fn backward_relu(
    gpu: &Gpu,
    p: &AvgPoolParams,
    dout: BufSlice<'_>,
    relu_output: BufSlice<'_>,
    dinput: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("avgpool.params", p);
    let entry = backward_entry(p, true, false);
    let (bindings, threads) = if entry == "avgpool_backward_relu_k2" {
        (
            [(6, dout), (7, relu_output), (8, dinput)],
            p.output_len() as u32 / 4,
        )
    } else if entry == "avgpool_backward_disjoint_relu" {
        (
            [(6, dout), (7, relu_output), (8, dinput)],
            p.input_len() as u32 / 4,
        )
    } else {
        ([(3, dout), (5, relu_output), (4, dinput)], threads(p, true))
    };
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        2 * p.input_len() as u64,
        4 * (2 * p.input_len() + p.output_len()) as u64,
    )
}
