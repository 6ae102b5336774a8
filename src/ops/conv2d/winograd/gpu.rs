//! Launcher for `winograd.wgsl` (the transforms) and the Winograd GEMMs of
//! `winograd_gemm_sg.wgsl`: a 3×3, stride-1, pad-1 convolution by Winograd's F(4×4, 3×3),
//! 36 multiply-adds per 4×4 outputs and channel pair instead of 144, on devices whose subgroups
//! run the subgroup convolution kernels ([`applies`](super::applies); the planner's rule is
//! [`Caps::winograd_conv`](crate::caps::Caps::winograd_conv)). Each direction is three to five
//! dispatches (transforms around one GEMM dispatch) into scratch tensors the planner owns
//! ([`Scratch`], lengths [`scratch_lens`](super::scratch_lens)). Lab notes:
//! docs/notes/winograd.md.

use super::{can_mask, can_pool2, forward_gemm, fuses_output, POINTS};
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::conv2d::gpu::sg_launch;
use crate::ops::conv2d::sg_shader;
use crate::ops::Conv2dParams;

const SHADER: &str = "winograd";

/// The three scratch tensors of one direction (see [`scratch_lens`]).
#[derive(Clone, Copy)]
pub struct Scratch<'a> {
    pub a: BufSlice<'a>,
    pub b: BufSlice<'a>,
    pub c: BufSlice<'a>,
}

impl<'a> Scratch<'a> {
    /// Three whole buffers.
    pub fn of(buffers: &'a [wgpu::Buffer; 3]) -> Self {
        Scratch {
            a: (&buffers[0]).into(),
            b: (&buffers[1]).into(),
            c: (&buffers[2]).into(),
        }
    }
}

fn transform(
    gpu: &Gpu,
    p: &Conv2dParams,
    entry: &'static str,
    bindings: &[(u32, BufSlice<'_>)],
    threads: u32,
    bytes: usize,
) -> Dispatch {
    let u = gpu.uniform("winograd.params", p);
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        bindings,
        grid(threads),
        0,
        4 * bytes as u64,
    )
}

/// `M = V · U` for every point (forward when `p` is the layer's, input gradient when it is
/// [`Conv2dParams::winograd_transposed`]).
fn gemm(
    gpu: &Gpu,
    p: &Conv2dParams,
    v: BufSlice<'_>,
    u: BufSlice<'_>,
    m: BufSlice<'_>,
) -> Dispatch {
    let t = p.winograd_tiles();
    let tiles = POINTS as u32 * p.o.div_ceil(32) * t.div_ceil(32);
    let (uniform, groups) = sg_launch(gpu, p, tiles);
    let (tc, to) = (t as u64 * p.c as u64, t as u64 * p.o as u64);
    Dispatch::with_weight_texture(
        gpu,
        sg_shader("winograd_gemm_sg"),
        "winograd_gemm_sg",
        &uniform,
        &[(12, v), (14, m)],
        u,
        groups,
        2 * POINTS as u64 * tc * p.o as u64,
        4 * POINTS as u64 * (tc + to + (p.c * p.o) as u64),
    )
}

/// The forward's GEMM with the output transform and epilogue fused ([`fuses_output`]): 24 tiles
/// × 32 output channels per subgroup tile (`winograd_gemm_out_sg`), or 16 channels for at most
/// 16 output channels without a pool (`winograd_gemm_out_sg_o16`: lanes own 2 output channels,
/// U through the rg32float mirror; [`forward_gemm`]).
fn gemm_out(
    gpu: &Gpu,
    p: &Conv2dParams,
    v: BufSlice<'_>,
    u: BufSlice<'_>,
    bias: BufSlice<'_>,
    output: BufSlice<'_>,
    pooled: BufSlice<'_>,
) -> Dispatch {
    let entry = forward_gemm(p);
    let t = p.winograd_tiles();
    let tc = t as u64 * p.c as u64;
    let (flops, bytes) = (
        2 * POINTS as u64 * tc * p.o as u64,
        4 * (POINTS as u64 * (tc + (p.c * p.o) as u64) + p.output_len() as u64),
    );
    let channels = if entry == "winograd_gemm_out_sg_o16" {
        16
    } else {
        32
    };
    let (uniform, groups) = sg_launch(gpu, p, p.o.div_ceil(channels) * t.div_ceil(24));
    if channels == 16 {
        Dispatch::with_textures(
            gpu,
            sg_shader(entry),
            entry,
            &uniform,
            &[(12, v), (3, bias), (21, output)],
            &[(32, u)],
            groups,
            flops,
            bytes,
        )
    } else {
        Dispatch::with_weight_texture(
            gpu,
            sg_shader(entry),
            entry,
            &uniform,
            &[(12, v), (3, bias), (14, output), (18, pooled), (19, output)],
            u,
            groups,
            flops,
            bytes,
        )
    }
}

/// `output = conv(input, weight) + bias` with the forward's epilogues (`p.relu`, and with
/// `p.pool` the pooled output, with `p.mask` the ReLU mask instead of the output, as
/// `conv2d_sg_forward.wgsl`): weight transform, input transform, then the GEMM with the
/// output transform fused ([`fuses_output`]) or the GEMM into M and the output transform.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    weight: BufSlice<'_>,
    bias: Option<BufSlice<'_>>,
    output: BufSlice<'_>,
    pooled: Option<BufSlice<'_>>,
    s: Scratch<'_>,
) -> Vec<Dispatch> {
    assert!(
        p.winograd_shape(),
        "winograd::forward: not a Winograd shape"
    );
    assert_eq!(
        bias.is_some(),
        p.bias != 0,
        "a bias buffer exactly when p.bias = 1"
    );
    assert_eq!(
        pooled.is_some(),
        p.pool != 0,
        "a pooled buffer exactly when p.pool = 1"
    );
    assert!(
        p.pool == 0 || can_pool2(p),
        "winograd::forward: pool needs H, W even"
    );
    assert!(
        p.mask == 0 || can_mask(p),
        "winograd::forward: mask needs O % 32 == 0"
    );
    let t = p.winograd_tiles();
    let [u, v, m] = [s.a, s.b, s.c];
    let o4 = p.o / 4;
    let bias = bias.unwrap_or(weight);
    let pooled = pooled.unwrap_or(output);
    let mut ds = vec![
        transform(
            gpu,
            p,
            "winograd_weight",
            &[(2, weight), (50, u), (57, u)],
            p.c * o4,
            p.weight_len() + POINTS * (p.c * p.o) as usize,
        ),
        transform(
            gpu,
            p,
            "winograd_input",
            &[(12, input), (52, v)],
            t * p.c / 4,
            p.input_len() + POINTS * (t * p.c) as usize,
        ),
    ];
    if fuses_output(p) {
        ds.push(gemm_out(gpu, p, v, u, bias, output, pooled));
    } else {
        ds.push(gemm(gpu, p, v, u, m));
        ds.push(transform(
            gpu,
            p,
            "winograd_output",
            &[(53, m), (3, bias), (14, output), (18, pooled), (19, output)],
            t * o4,
            POINTS * (t * p.o) as usize + p.output_len(),
        ));
    }
    ds
}

/// Where an input gradient goes: the tensor, or (the ReLU → 2×2 average pool before the layer
/// fused in) that pool's and ReLU's backward: `dpre` the gradient before the ReLU at twice the
/// layer's input size, `mask` that ReLU's mask (`avgpool_backward_relu_k2_mask`'s output and
/// operand; C % 4 == 0).
#[derive(Clone, Copy)]
pub enum Dinput<'a> {
    Full(BufSlice<'a>),
    Pooled {
        dpre: BufSlice<'a>,
        mask: BufSlice<'a>,
    },
}

/// `dinput = conv_transpose(dout, weight)` by the forward's adjoint: D = A dY Aᵀ (the weight
/// gradient's; `dout: None` when the scratch `b` already holds it), E = D · Uᵀ per point (the
/// GEMM over output channels, U stored transposed), P = B E Bᵀ per tile in place, and the
/// overlapping 6×6 blocks added up into `dinput`. Scratch: `a` Uᵀ, `b` D, `c` E
/// ([`scratch_lens`]).
pub fn backward_input(
    gpu: &Gpu,
    p: &Conv2dParams,
    dout: Option<BufSlice<'_>>,
    weight: BufSlice<'_>,
    dinput: Dinput<'_>,
    s: Scratch<'_>,
) -> Vec<Dispatch> {
    assert!(
        p.winograd_shape(),
        "winograd::backward_input: not a Winograd shape"
    );
    let q = p.winograd_transposed();
    let t = p.winograd_tiles();
    let [ut, d, e] = [s.a, s.b, s.c];
    let d_transform = dout.map(|dout| dout_transform(gpu, p, Dout::Full(dout), d));
    let te = POINTS * (t * p.c) as usize;
    d_transform
        .into_iter()
        .chain([
            transform(
                gpu,
                p,
                "winograd_weight_t",
                &[(2, weight), (50, ut), (57, ut)],
                p.c * p.o / 4,
                p.weight_len() + POINTS * (p.c * p.o) as usize,
            ),
            gemm(gpu, &q, d, ut, e),
            transform(gpu, &q, "winograd_adjoint", &[(58, e)], t * p.c / 4, 2 * te),
            match dinput {
                Dinput::Full(dinput) => transform(
                    gpu,
                    &q,
                    "winograd_gather",
                    &[(53, e), (14, dinput), (19, dinput)],
                    p.n * p.h * p.w * p.c / 4,
                    p.input_len() * 3,
                ),
                Dinput::Pooled { dpre, mask } => transform(
                    gpu,
                    &q,
                    "winograd_gather_pool",
                    &[(53, e), (14, dpre), (19, mask)],
                    p.n * p.h * p.w * p.c / 4,
                    p.input_len() * 6,
                ),
            },
        ])
        .collect()
}

/// `dinput = conv_transpose(dout, weight)` as the forward convolution of `dout` (O channels in,
/// C out) with the weights rotated by 180° and transposed (a 3×3 stride-1 SAME convolution's
/// transpose is one), by the fused forward (`winograd_weight_flip_t`, `winograd_input`, then
/// [`forward_gemm`] of the transposed problem): for layers whose gradients are not on
/// Winograd but whose transposed forward is (`Caps::winograd_input_as_forward`: ResNet-20's
/// 16-channel layers). Scratch: `a` the transformed weights (as Uᵀ), `b` dout's V.
pub fn backward_input_as_forward(
    gpu: &Gpu,
    p: &Conv2dParams,
    dout: BufSlice<'_>,
    weight: BufSlice<'_>,
    dinput: BufSlice<'_>,
    s: Scratch<'_>,
) -> Vec<Dispatch> {
    assert!(
        p.winograd_shape(),
        "winograd::backward_input_as_forward: not a Winograd shape"
    );
    let q = p.winograd_transposed();
    assert!(
        fuses_output(&q),
        "winograd::backward_input_as_forward: the transposed forward is not fused"
    );
    let t = p.winograd_tiles();
    let [u, v] = [s.a, s.b];
    vec![
        transform(
            gpu,
            p,
            "winograd_weight_flip_t",
            &[(2, weight), (50, u), (57, u)],
            p.c * p.o / 4,
            p.weight_len() + POINTS * (p.c * p.o) as usize,
        ),
        transform(
            gpu,
            &q,
            "winograd_input",
            &[(12, dout), (52, v)],
            t * q.c / 4,
            p.output_len() + POINTS * (t * q.c) as usize,
        ),
        gemm_out(gpu, &q, v, u, weight, dinput, dinput),
    ]
}

/// D = A dY Aᵀ per tile into `d`, from the output gradient or the pooled one ([`Dout`]).
fn dout_transform(gpu: &Gpu, p: &Conv2dParams, dout: Dout<'_>, d: BufSlice<'_>) -> Dispatch {
    let t = p.winograd_tiles();
    let to = POINTS * (t * p.o) as usize;
    match dout {
        Dout::Full(dout) => transform(
            gpu,
            p,
            "winograd_dout",
            &[(11, dout), (54, d), (19, d)],
            t * p.o / 4,
            p.output_len() + to,
        ),
        Dout::Pooled { dpool, mask } => {
            assert!(
                can_mask(p),
                "winograd: the pooled gradient needs H, W even, O % 32 == 0"
            );
            transform(
                gpu,
                p,
                "winograd_dout_pool",
                &[(11, dpool), (54, d), (19, mask)],
                t * p.o / 4,
                p.output_len() / 4 + p.relu_mask_len() + to,
            )
        }
    }
}

/// The output gradient a weight gradient transforms: the tensor itself, or (the layer's ReLU
/// → 2×2 average pool backward fused in) the pooled gradient and the ReLU mask
/// (`avgpool_backward_relu_k2_mask`'s operands; H and W even, O % 32 == 0).
#[derive(Clone, Copy)]
pub enum Dout<'a> {
    Full(BufSlice<'a>),
    Pooled {
        dpool: BufSlice<'a>,
        mask: BufSlice<'a>,
    },
}

/// `dweight` (and `dbias` with `p.bias`): input transform, output-gradient transform, the
/// transformed-domain GEMM over tiles, the transform back to 3×3 taps (written with =).
/// `input: None`: the scratch V already holds the input's transform (the forward's, which
/// computes the same V), and the input transform is skipped.
pub fn backward_weight(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: Option<BufSlice<'_>>,
    dout: Dout<'_>,
    dweight: BufSlice<'_>,
    dbias: Option<BufSlice<'_>>,
    s: Scratch<'_>,
) -> Vec<Dispatch> {
    assert!(
        p.winograd_shape(),
        "winograd::backward_weight: not a Winograd shape"
    );
    assert_eq!(
        dbias.is_some(),
        p.bias != 0,
        "a bias gradient exactly when p.bias = 1"
    );
    let t = p.winograd_tiles();
    let [v, d, sg] = [s.a, s.b, s.c];
    let o4 = p.o / 4;
    let tiles = POINTS as u32 * p.o.div_ceil(32) * p.c.div_ceil(32);
    let (uniform, groups) = sg_launch(gpu, p, tiles);
    let (tc, to) = (t as u64 * p.c as u64, t as u64 * p.o as u64);
    let gemm = Dispatch::with_textures(
        gpu,
        sg_shader("winograd_gemm_weight_sg"),
        "winograd_gemm_weight_sg",
        &uniform,
        &[(12, v), (17, sg)],
        &[(31, d)],
        groups,
        2 * POINTS as u64 * tc * p.o as u64,
        4 * POINTS as u64 * (tc + to + (p.c * p.o) as u64),
    );
    let input = input.map(|x| {
        transform(
            gpu,
            p,
            "winograd_input",
            &[(12, x), (52, v)],
            t * p.c / 4,
            p.input_len() + POINTS * tc as usize,
        )
    });
    input
        .into_iter()
        .chain([
            dout_transform(gpu, p, dout, d),
            gemm,
            transform(
                gpu,
                p,
                "winograd_weight_grad",
                &[
                    (55, sg),
                    (27, dweight),
                    (28, dbias.unwrap_or(dweight)),
                    (56, d),
                ],
                p.c * o4,
                POINTS * (p.c * p.o) as usize + p.weight_len(),
            ),
        ])
        .collect()
}
