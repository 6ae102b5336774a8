//! Launcher for `conv2d.wgsl` (register tiles, any device), the subgroup kernels
//! (`conv2d_sg_*.wgsl`, devices with 8-wide subgroups; [`sg_shader`] names the module of each
//! entry point) and `conv2d_wg.wgsl` (workgroup-memory tiles, GPUs); the family is
//! [`Caps::kernels`](crate::caps::Caps::kernels).

use super::{select_backward_input, select_backward_weight, select_forward, sg_shader};
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::Conv2dParams;

const SHADER: &str = "conv2d";
const WG_SHADER: &str = "conv2d_wg";
/// Output tile of the `conv2d_wg.wgsl` kernels (rows × columns of the GEMM).
const WG_TILE: u32 = 64;

/// The subgroup kernels: devices with 8-wide subgroups (lavapipe on AVX2), where they load
/// fewer elements per multiply-add than the register-tiled kernels and run faster
/// (`examples/variants.rs`, docs/notes/subgroup-kernels.md).
fn subgroup8(gpu: &Gpu, p: &Conv2dParams) -> bool {
    gpu.caps().conv_sg(p)
}

fn workgroup_tiled(gpu: &Gpu) -> bool {
    gpu.caps().workgroup_tiled()
}

/// Grid for `groups` workgroups of the `conv2d_wg.wgsl` kernels (one output tile each), folded
/// into y past 65,535 as [`grid`] does.
fn wg_grid(groups: u32) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= 65_535 {
        [groups, 1, 1]
    } else {
        [65_535, groups.div_ceil(65_535), 1]
    }
}

/// Workgroups of a `conv2d_wg.wgsl` GEMM of `m` × `n` outputs.
fn wg_tiles(m: u32, n: u32) -> u32 {
    m.div_ceil(WG_TILE) * n.div_ceil(WG_TILE)
}

/// Grid for `tiles` subgroup tiles of 8 invocations.
fn sg_grid(tiles: u32) -> [u32; 3] {
    grid(tiles * 8)
}

/// The params uniform and grid of a subgroup-kernel dispatch of `tiles` subgroup tiles: with
/// the device's tile queue ([`Gpu::queue_groups`], CPU-type adapters) a few workgroups whose
/// subgroups take tiles until none is left, otherwise one subgroup per tile.
pub(crate) fn sg_launch(gpu: &Gpu, p: &Conv2dParams, tiles: u32) -> (wgpu::Buffer, [u32; 3]) {
    match gpu.queue_groups {
        Some(groups) => (
            gpu.uniform("conv2d.params", &Conv2dParams { queue: 1, ..*p }),
            [tiles.div_ceil(8).clamp(1, groups), 1, 1],
        ),
        None => (gpu.uniform("conv2d.params", p), sg_grid(tiles)),
    }
}

/// The bias binding: the bias, or (without one, `p.bias = 0`, never read) the weight.
fn bias_or<'a>(
    p: &Conv2dParams,
    bias: Option<BufSlice<'a>>,
    fallback: BufSlice<'a>,
) -> BufSlice<'a> {
    assert_eq!(
        bias.is_some(),
        p.bias != 0,
        "conv2d: a bias buffer exactly when p.bias = 1"
    );
    bias.unwrap_or(fallback)
}

/// `output = conv(input, weight) + bias` (=).
pub fn forward(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    weight: BufSlice<'_>,
    bias: Option<BufSlice<'_>>,
    output: BufSlice<'_>,
) -> Dispatch {
    let bias = bias_or(p, bias, weight);
    if workgroup_tiled(gpu) {
        let u = gpu.uniform("conv2d.params", p);
        let entry = select_forward(&gpu.caps(), p);
        let views = if entry == "conv2d_forward_wg_vec4" {
            [(12, input), (10, weight)]
        } else {
            [(1, input), (2, weight)]
        };
        return Dispatch::new(
            gpu,
            WG_SHADER,
            entry,
            &u,
            &[views[0], views[1], (3, bias), (4, output)],
            wg_grid(wg_tiles(p.pixels(), p.o)),
            p.flops_forward(),
            4 * (p.input_len() + p.weight_len() + p.output_len()) as u64,
        );
    }
    if subgroup8(gpu, p) {
        // The entry point declares the pooled output, which p.pool = 0 never writes: bind the
        // output there too (no hidden buffer).
        assert_eq!(
            p.pool, 0,
            "conv2d::forward: a pooled output goes through forward_pool2"
        );
        return forward_sg(gpu, p, input, weight, bias, output, output);
    }
    let u = gpu.uniform("conv2d.params", p);
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len()) as u64;
    let entry = select_forward(&gpu.caps(), p);
    let (weight_binding, tile_o) = if entry == "conv2d_forward_vec4" {
        (10, 8)
    } else {
        (2, 4)
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

/// `output = conv(input, weight) + bias` (ReLU when `p.relu`) and `pooled = avgpool2×2(output)`
/// in one kernel, on devices where the subgroup kernels run and the shape tiles exactly
/// ([`Conv2dParams::can_pool2`]); `None` elsewhere (then run [`forward`] and a pool).
pub fn forward_pool2(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    weight: BufSlice<'_>,
    bias: Option<BufSlice<'_>>,
    output: BufSlice<'_>,
    pooled: BufSlice<'_>,
) -> Option<Dispatch> {
    let bias = bias_or(p, bias, weight);
    if !subgroup8(gpu, p) || !p.can_pool2() {
        return None;
    }
    Some(forward_sg(
        gpu,
        &p.with_pool2(),
        input,
        weight,
        bias,
        output,
        pooled,
    ))
}

fn forward_sg(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    weight: BufSlice<'_>,
    bias: BufSlice<'_>,
    output: BufSlice<'_>,
    pooled: BufSlice<'_>,
) -> Dispatch {
    let pooled_len = if p.pool != 0 { p.pooled_len() } else { 0 };
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len() + pooled_len) as u64;
    let entry = select_forward(&gpu.caps(), p);
    if entry == "conv2d_forward_sg_c4_o16" {
        // 32 pixels × 16 channels per subgroup, vec2 views of weight and output; no pooled output.
        let (u, groups) = sg_launch(gpu, p, p.o.div_ceil(16) * p.pixels().div_ceil(32));
        return Dispatch::with_textures(
            gpu,
            sg_shader(entry),
            entry,
            &u,
            &[(12, input), (3, bias), (21, output)],
            &[(32, weight)],
            groups,
            p.flops_forward(),
            bytes,
        );
    }
    // The vec4 input view for C % 4 == 0; 32 pixels (four 8-pixel tiles) per subgroup.
    let input_binding = if entry == "conv2d_forward_sg_c4" {
        12
    } else {
        1
    };
    let (u, groups) = sg_launch(gpu, p, p.o.div_ceil(32) * p.pixels().div_ceil(32));
    Dispatch::with_weight_texture(
        gpu,
        sg_shader(entry),
        entry,
        &u,
        // With p.mask = 1 the output tensor holds the ReLU mask (binding 19, u32 words) and
        // the vec4 output is never written; otherwise the mask is never written. Either way
        // both name the output tensor (no hidden buffer).
        &[
            (input_binding, input),
            (3, bias),
            (14, output),
            (18, pooled),
            (19, output),
        ],
        weight,
        groups,
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
    let entry = select_backward_input(&gpu.caps(), p);
    if workgroup_tiled(gpu) {
        let views = if entry == "conv2d_backward_input_wg_vec4" {
            [(11, dout), (10, weight)]
        } else {
            [(5, dout), (2, weight)]
        };
        return Dispatch::new(
            gpu,
            WG_SHADER,
            entry,
            &u,
            &[views[0], views[1], (6, dinput)],
            wg_grid(p.input_phase_tiles(WG_TILE) * p.c.div_ceil(WG_TILE)),
            p.flops_forward(),
            bytes,
        );
    }
    if entry == "conv2d_backward_input_sg" || entry == "conv2d_backward_input_sg_c16" {
        // (dinput binding, channels per tile); 32 input pixels of one stride phase per subgroup
        let (dinput_binding, tile_c) = if entry == "conv2d_backward_input_sg_c16" {
            (22, 16)
        } else {
            (16, 32)
        };
        let tile_px = 32;
        let (u, groups) = sg_launch(gpu, p, p.c.div_ceil(tile_c) * p.input_phase_tiles(tile_px));
        return Dispatch::with_textures(
            gpu,
            sg_shader(entry),
            entry,
            &u,
            &[(11, dout), (dinput_binding, dinput)],
            &[(30, weight)],
            groups,
            p.flops_forward(),
            bytes,
        );
    }
    let (dout_binding, weight_binding, tile_c) = if entry == "conv2d_backward_input_vec4" {
        (11, 10, 8)
    } else {
        (5, 2, 4)
    };
    let tiles = p.c.div_ceil(tile_c) * p.input_phase_tiles(4);
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

/// `dweight`, `dbias` (=; `dbias` only with a bias) by a deterministic split-K: partial sums
/// into `partials` (`p.partials_len()` elements), then a fixed-order reduction.
pub fn backward_weight(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    dout: BufSlice<'_>,
    partials: BufSlice<'_>,
    dweight: BufSlice<'_>,
    dbias: Option<BufSlice<'_>>,
) -> [Dispatch; 2] {
    let dbias = bias_or(p, dbias, dweight);
    let u = gpu.uniform("conv2d.params", p);
    let rows = p.weight_rows() + 1;
    let partial_bytes = 4 * p.partials_len() as u64;
    let flops = p.flops_forward() + 2 * (p.pixels() * p.o) as u64;
    let bytes = 4 * (p.input_len() + p.output_len()) as u64 + partial_bytes;
    let split = if subgroup8(gpu, p) || workgroup_tiled(gpu) {
        backward_weight_split(gpu, p, input, dout, partials)
    } else {
        split_k(gpu, p, &u, input, dout, partials, flops, bytes)
    };
    let (entry, bindings, threads) = if p.o.is_multiple_of(4) {
        (
            "conv2d_backward_weight_reduce_vec4",
            [(26, partials), (27, dweight), (28, dbias)],
            rows * p.o / 4,
        )
    } else {
        (
            "conv2d_backward_weight_reduce",
            [(7, partials), (8, dweight), (9, dbias)],
            rows * p.o,
        )
    };
    let reduce = Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        p.partials_len() as u64,
        partial_bytes + 4 * (rows * p.o) as u64,
    );
    [split, reduce]
}

/// The split-K step alone on a subgroup-8 or workgroup-tiled device (`partials`, `p.partials_len()` elements: with
/// one split, the weight gradient followed by the bias gradient when `p.bias = 1`, nothing
/// after the weight gradient otherwise).
pub fn backward_weight_split(
    gpu: &Gpu,
    p: &Conv2dParams,
    input: BufSlice<'_>,
    dout: BufSlice<'_>,
    partials: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("conv2d.params", p);
    let rows = p.weight_rows() + 1;
    let entry = select_backward_weight(&gpu.caps(), p);
    if workgroup_tiled(gpu) {
        let views = if entry == "conv2d_backward_weight_wg_vec4" {
            [(12, input), (11, dout)]
        } else {
            [(1, input), (5, dout)]
        };
        return Dispatch::new(
            gpu,
            WG_SHADER,
            entry,
            &u,
            &[views[0], views[1], (7, partials)],
            wg_grid(wg_tiles(rows, p.o) * p.splits),
            p.flops_forward() + 2 * (p.pixels() * p.o) as u64,
            4 * (p.input_len() + p.output_len() + p.partials_len()) as u64,
        );
    }
    assert!(
        subgroup8(gpu, p),
        "backward_weight_split needs 8-wide subgroups and O % 4 == 0, or workgroup tiles"
    );
    // (partials binding, output channels per tile, dout texture); dout through a texture
    // (rg32float for the 16-channel tiles).
    let (partials_binding, tile_o, texture) = if entry.starts_with("conv2d_backward_weight_sg_o16")
    {
        (24, 16, 33)
    } else {
        (17, 32, 31)
    };
    // 32 weight rows per subgroup.
    let (u, groups) = sg_launch(gpu, p, p.o.div_ceil(tile_o) * rows.div_ceil(32) * p.splits);
    Dispatch::with_textures(
        gpu,
        sg_shader(entry),
        entry,
        &u,
        // The `_c4` kernel reads the input as vec4s (C % 4 == 0 makes it whole vec4s).
        &[
            (if entry.ends_with("_c4") { 12 } else { 1 }, input),
            (partials_binding, partials),
        ],
        &[(texture, dout)],
        groups,
        p.flops_forward() + 2 * (p.pixels() * p.o) as u64,
        4 * (p.input_len() + p.output_len() + p.partials_len()) as u64,
    )
}

/// The register-tiled split-K kernels of `conv2d.wgsl`.
#[allow(clippy::too_many_arguments)]
fn split_k(
    gpu: &Gpu,
    p: &Conv2dParams,
    u: &wgpu::Buffer,
    input: BufSlice<'_>,
    dout: BufSlice<'_>,
    partials: BufSlice<'_>,
    flops: u64,
    bytes: u64,
) -> Dispatch {
    let rows = p.weight_rows() + 1;
    let entry = select_backward_weight(
        &crate::caps::Caps {
            force: Some(crate::caps::Kernels::Registers),
            ..gpu.caps()
        },
        p,
    );
    let (input_binding, dout_binding, tile_o) = match entry {
        "conv2d_backward_weight_c4" => (12, 11, 8),
        "conv2d_backward_weight_vec4" => (1, 11, 8),
        _ => (1, 5, 4),
    };
    let tiles = p.o.div_ceil(tile_o) * rows.div_ceil(4) * p.splits;
    Dispatch::new(
        gpu,
        SHADER,
        entry,
        u,
        &[(input_binding, input), (dout_binding, dout), (7, partials)],
        grid(tiles),
        flops,
        bytes,
    )
}
