//! The subgroup conv kernels (conv2d_sg_*.wgsl) beyond their results: the tile queue gives
//! the grid's bits, the C == 3, 16-channel-tile and vec4-tap variants sum in the order of
//! the general ones, and the texture mirrors of the weights read any slice.

use crate::common::{self, assert_close, gpu, rng, to_f64, uniform};
use crate::conv2d::{CONV_GENERAL, CONV_SHAPES};
use crate::shared::{bits_differ, read, ATOL, RTOL};
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::conv2d::gpu as conv2d;
use wgpu_cnn::ops::conv2d::sg_shader;
use wgpu_cnn::ops::*;

/// Every output of the subgroup conv kernels for `p` on `gpu` as bits: forward, forward with
/// ReLU, forward with the 2×2 pool when the shape allows it, input gradient, split-K partials
/// and reduced weight gradient. Each dispatch runs twice in one submission (the second run
/// starts from the queue the first one left).
fn conv_sg_outputs(gpu: &Gpu, p: &Conv2dParams, seed: u64) -> (Vec<&'static str>, Vec<Vec<u32>>) {
    let mut r = rng(seed);
    let x = gpu.storage_from("x", &uniform(&mut r, p.input_len(), 1.0));
    let w = gpu.storage_from("w", &uniform(&mut r, p.weight_len(), 1.0));
    let b = gpu.storage_from("b", &uniform(&mut r, p.o as usize, 1.0));
    let dy = gpu.storage_from("dy", &uniform(&mut r, p.output_len(), 1.0));
    let outs: Vec<wgpu::Buffer> = [
        p.output_len(),
        p.output_len(),
        p.output_len(),
        p.pooled_len(),
        p.input_len(),
        p.partials_len(),
        p.weight_len(),
        p.o as usize,
    ]
    .iter()
    .map(|&n| gpu.storage_from("out", &vec![7.0f32; n.max(1)]))
    .collect();
    let bias = (p.bias != 0).then(|| (&b).into());
    let mut ds = vec![
        conv2d::forward(gpu, p, (&x).into(), (&w).into(), bias, (&outs[0]).into()),
        conv2d::forward(
            gpu,
            &p.with_relu(),
            (&x).into(),
            (&w).into(),
            bias,
            (&outs[1]).into(),
        ),
        conv2d::backward_input(gpu, p, (&dy).into(), (&w).into(), (&outs[4]).into()),
    ];
    ds.extend(conv2d::backward_weight(
        gpu,
        p,
        (&x).into(),
        (&dy).into(),
        (&outs[5]).into(),
        (&outs[6]).into(),
        bias.map(|_| (&outs[7]).into()),
    ));
    if let Some(d) = conv2d::forward_pool2(
        gpu,
        &p.with_relu(),
        (&x).into(),
        (&w).into(),
        bias,
        (&outs[2]).into(),
        (&outs[3]).into(),
    ) {
        ds.push(d);
    }
    // The Winograd kernels where they apply: forward, input gradient, weight and bias gradient.
    let mut outs = outs;
    let scratch: Vec<[wgpu::Buffer; 3]>;
    if wgpu_cnn::ops::conv2d::winograd::applies(&gpu.caps(), p) {
        use wgpu_cnn::ops::conv2d::winograd::gpu as winograd;
        let (fl, il, wl) = wgpu_cnn::ops::conv2d::winograd::scratch_lens(p);
        scratch = [fl, il, wl]
            .iter()
            .map(|l| l.map(|n| gpu.storage("scratch", n)))
            .collect();
        let first = outs.len();
        for n in [p.output_len(), p.input_len(), p.weight_len(), p.o as usize] {
            outs.push(gpu.storage_from("out", &vec![7.0f32; n]));
        }
        let o = |k: usize| (&outs[first + k]).into();
        ds.extend(winograd::forward(
            gpu,
            p,
            (&x).into(),
            (&w).into(),
            bias,
            o(0),
            None,
            winograd::Scratch::of(&scratch[0]),
        ));
        ds.extend(winograd::backward_input(
            gpu,
            p,
            Some((&dy).into()),
            (&w).into(),
            winograd::Dinput::Full(o(1)),
            winograd::Scratch::of(&scratch[1]),
        ));
        ds.extend(winograd::backward_weight(
            gpu,
            p,
            Some((&x).into()),
            winograd::Dout::Full((&dy).into()),
            o(2),
            bias.map(|_| o(3)),
            winograd::Scratch::of(&scratch[2]),
        ));
    }
    let twice: Vec<&wgpu_cnn::gpu::Dispatch> = ds.iter().chain(&ds).collect();
    gpu.run(&twice).unwrap();
    let entries = ds.iter().map(|d| d.entry).collect();
    let bits = outs
        .iter()
        .map(|o| read(gpu, o).iter().map(|v| v.to_bits()).collect())
        .collect();
    (entries, bits)
}

/// The tile queue of the subgroup kernels (on CPU-type adapters every subgroup takes the next
/// free tile from a counter until none is left, instead of the tile at its place in the grid)
/// gives bitwise the grid's results for every entry point, with the launcher's few workgroups
/// per CPU and with one workgroup (its 8 subgroups then take every tile between them), and
/// leaves the queue empty for the next dispatch.
#[test]
fn conv2d_sg_tile_queue_matches_the_grid_bitwise() {
    let Some(gpu) = gpu() else { return };
    if gpu.subgroup_size != Some(8) {
        return;
    }
    if gpu.info.device_type == wgpu::DeviceType::Cpu
        && std::env::var("WGPU_CNN_TILE_QUEUE").is_err()
    {
        assert!(
            gpu.queue_groups.is_some(),
            "a CPU adapter takes tiles from the queue"
        );
    }
    let open = |groups: Option<u32>| {
        let mut g = Gpu::new(&common::test_options()).expect("the adapter opened once already");
        g.queue_groups = groups;
        g
    };
    let (grid, one) = (open(None), open(Some(1)));
    let queued = open(Some(4));
    let general = CONV_GENERAL
        .iter()
        .map(|&(n, h, w, c, o, k, s, pad, bias)| {
            let p = Conv2dParams::general(n, h, w, c, o, k, s, pad).unwrap();
            if bias {
                p
            } else {
                p.without_bias()
            }
        });
    let square = CONV_SHAPES
        .iter()
        .map(|&(n, h, w, c, o, k, pad)| Conv2dParams::new(n, h, w, c, o, k, pad));
    let pooled = [
        (2, 8, 8, 3, 32, 3),
        (3, 4, 12, 8, 36, 3),
        (1, 6, 4, 4, 8, 3),
    ]
    .iter()
    .map(|&(n, h, w, c, o, k)| Conv2dParams::new(n, h, w, c, o, k, Padding::Same));
    let mut seen = std::collections::BTreeSet::new();
    for (si, p) in square.chain(general).chain(pooled).enumerate() {
        if !gpu.caps().conv_sg(&p) {
            continue;
        }
        let what = format!(
            "n{} h{} w{} c{} o{} k{}x{} s{}x{}",
            p.n, p.h, p.w, p.c, p.o, p.kh, p.kw, p.sh, p.sw
        );
        let (entries, want) = conv_sg_outputs(&grid, &p, 900 + si as u64);
        for g in [&queued, &one] {
            let (e, got) = conv_sg_outputs(g, &p, 900 + si as u64);
            assert_eq!(e, entries, "{what}");
            for (k, (a, b)) in want.iter().zip(&got).enumerate() {
                let differ = a.iter().zip(b).filter(|(u, v)| u != v).count();
                assert_eq!(
                    differ,
                    0,
                    "{what}: output {k} differs in {differ} of {}",
                    a.len()
                );
            }
            let queue = g.read::<u32>((&g.tile_queue).into()).unwrap();
            assert_eq!(queue, [0, 0], "{what}: the queue is left empty");
        }
        seen.extend(entries.into_iter().filter(|e| e.contains("_sg")));
    }
    // Every entry point of the shaders that take tiles from the queue, read from the shaders
    // themselves so that a new one is covered or this fails.
    let all: Vec<String> = wgpu_cnn::gpu::shaders::SHADERS
        .iter()
        .filter(|s| wgpu_cnn::gpu::shaders::binds_tile_queue(s.name))
        .flat_map(|s| {
            let module = naga::front::wgsl::parse_str(s.source)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", s.name));
            module.entry_points.into_iter().map(|e| e.name)
        })
        .collect();
    assert_eq!(all.len(), 14, "{all:?}");
    let missing: Vec<_> = all.iter().filter(|e| !seen.contains(e.as_str())).collect();
    assert!(missing.is_empty(), "entries not covered: {missing:?}");
}

/// The C == 3 forward kernel sums in the order of the any-C one: bitwise equal outputs (and
/// pooled outputs), also with a stride and with ReLU + 2×2 pooling fused.
#[test]
fn conv2d_sg_c3_matches_any_c_bitwise() {
    let Some(gpu) = gpu() else { return };
    if gpu.subgroup_size != Some(8) {
        return;
    }
    for (si, p) in [
        Conv2dParams::new(3, 9, 7, 3, 36, 3, Padding::Same),
        Conv2dParams::general(2, 11, 10, 3, 8, [5, 3], [2, 1], Padding::Valid).unwrap(),
        Conv2dParams::new(2, 8, 12, 3, 32, 3, Padding::Same)
            .with_relu()
            .with_pool2(),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rng(40 + si as u64);
        let buf = |r: &mut _, len| gpu.storage_from("t", &uniform(r, len, 1.0));
        let (xb, wb, bb) = (
            buf(&mut r, p.input_len()),
            buf(&mut r, p.weight_len()),
            buf(&mut r, p.o as usize),
        );
        let pooled_len = if p.pool != 0 { p.pooled_len() } else { 4 };
        let outs: Vec<_> = (0..4)
            .map(|i| {
                gpu.storage(
                    "y",
                    if i % 2 == 0 {
                        p.output_len()
                    } else {
                        pooled_len
                    },
                )
            })
            .collect();
        let (x, w, b) = ((&xb).into(), (&wb).into(), (&bb).into());
        let c3 = if p.pool != 0 {
            conv2d::forward_pool2(gpu, &p, x, w, Some(b), (&outs[0]).into(), (&outs[1]).into())
                .unwrap()
        } else {
            conv2d::forward(gpu, &p, x, w, Some(b), (&outs[0]).into())
        };
        assert_eq!(c3.entry, "conv2d_forward_sg_c3");
        let u = gpu.uniform("p", &p);
        let any_c = wgpu_cnn::gpu::Dispatch::with_textures(
            gpu,
            sg_shader("conv2d_forward_sg"),
            "conv2d_forward_sg",
            &u,
            &[
                (1, x),
                (3, b),
                (14, (&outs[2]).into()),
                (18, (&outs[3]).into()),
                (19, (&outs[2]).into()),
            ],
            &[(30, w)],
            // The grid: one subgroup per 32 pixels (four 8-pixel tiles; p.queue = 0).
            wgpu_cnn::gpu::dispatch::grid(p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8),
            0,
            0,
        );
        gpu.run(&[&c3, &any_c]).unwrap();
        let bits =
            |b: &wgpu::Buffer| -> Vec<u32> { read(gpu, b).iter().map(|v| v.to_bits()).collect() };
        let y = read(gpu, &outs[0]);
        assert!(y.iter().any(|&v| v != 0.0), "case {si}");
        assert!(
            bits(&outs[0]) == bits(&outs[2]),
            "case {si}: outputs differ"
        );
        if p.pool != 0 {
            assert!(
                bits(&outs[1]) == bits(&outs[3]),
                "case {si}: pooled outputs differ"
            );
        }
    }
}

/// The 16-channel-tile kernels sum in the order of the 32-channel ones: bitwise equal results.
#[test]
fn conv2d_sg_16_channel_tiles_match_32_bitwise() {
    let Some(gpu) = gpu() else { return };
    if gpu.subgroup_size != Some(8) {
        return;
    }
    // Unstrided, and strided (input-gradient tiles by stride phase, each running its taps).
    for stride in [[1, 1], [2, 2], [3, 2]] {
        let p = Conv2dParams::general(3, 9, 7, 16, 16, [3, 3], stride, Padding::Same)
            .unwrap()
            .with_relu();
        sixteen_vs_32_channel_tiles(gpu, p);
    }
}

fn sixteen_vs_32_channel_tiles(gpu: &Gpu, p: Conv2dParams) {
    let mut r = rng(17);
    let buf = |r: &mut _, len| gpu.storage_from("t", &uniform(r, len, 1.0));
    let (xb, wb, bb, dyb) = (
        buf(&mut r, p.input_len()),
        buf(&mut r, p.weight_len()),
        buf(&mut r, p.o as usize),
        buf(&mut r, p.output_len()),
    );
    let rows = p.weight_rows() + 1;
    // The tensors the kernel reads through textures (weights: 30, dout of the weight
    // gradient: 31) as the launchers bind them.
    let sg =
        |entry, binds: &[(u32, BufSlice<'_>)], textures: &[(u32, BufSlice<'_>)], tiles: u32| {
            let u = gpu.uniform("p", &p);
            let grid = wgpu_cnn::gpu::dispatch::grid(tiles * 8);
            wgpu_cnn::gpu::Dispatch::with_textures(
                gpu,
                sg_shader(entry),
                entry,
                &u,
                binds,
                textures,
                grid,
                0,
                0,
            )
        };
    // (16-channel entry, 32-channel entry, output length) in the launchers' bindings.
    let (y16, y32) = (
        gpu.storage("y", p.output_len()),
        gpu.storage("y", p.output_len()),
    );
    let (dx16, dx32) = (
        gpu.storage("dx", p.input_len()),
        gpu.storage("dx", p.input_len()),
    );
    let (pt16, pt32) = (
        gpu.storage("pt", p.partials_len()),
        gpu.storage("pt", p.partials_len()),
    );
    let pixels = p.pixels().div_ceil(32);
    let inputs = p.input_phase_tiles(32);
    let (x, w, b, dy) = ((&xb).into(), (&wb).into(), (&bb).into(), (&dyb).into());
    let ds = [
        conv2d::forward(gpu, &p, x, w, Some(b), (&y16).into()),
        sg(
            "conv2d_forward_sg_c4",
            &[
                (12, x),
                (3, b),
                (14, (&y32).into()),
                (18, (&y32).into()),
                (19, (&y32).into()),
            ],
            &[(30, w)],
            pixels,
        ),
        conv2d::backward_input(gpu, &p, dy, w, (&dx16).into()),
        sg(
            "conv2d_backward_input_sg",
            &[(11, dy), (16, (&dx32).into())],
            &[(30, w)],
            inputs,
        ),
        conv2d::backward_weight_split(gpu, &p, x, dy, (&pt16).into()),
        sg(
            "conv2d_backward_weight_sg",
            &[(1, x), (17, (&pt32).into())],
            &[(31, dy)],
            rows.div_ceil(32) * p.splits,
        ),
    ];
    assert_eq!(ds[0].entry, "conv2d_forward_sg_c4_o16");
    assert_eq!(ds[2].entry, "conv2d_backward_input_sg_c16");
    assert_eq!(ds[4].entry, "conv2d_backward_weight_sg_o16_c4");
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
    for (what, a, b) in [
        ("forward", &y16, &y32),
        ("backward_input", &dx16, &dx32),
        ("backward_weight partials", &pt16, &pt32),
    ] {
        let (a, b) = (read(gpu, a), read(gpu, b));
        assert!(a.iter().any(|&v| v != 0.0), "{what}");
        let same = bits_differ(&a, &b) == 0;
        assert!(
            same,
            "{what}: 16- and 32-channel tiles differ ({}x{} stride)",
            p.sh, p.sw
        );
    }
}

/// `conv2d_backward_weight_sg_c4` and `_o16_c4` (input taps as vec4s, C % 4 == 0) sum what
/// `conv2d_backward_weight_sg` sums in the same order: bitwise equal partials, including tiles
/// whose two row halves lie in different taps (C = 4, 12), strides, the bias row, several
/// splits and a pixel count per split that is no multiple of 4.
#[test]
fn conv2d_sg_weight_gradient_c4_matches_scalar_taps_bitwise() {
    let Some(gpu) = gpu() else { return };
    if gpu.subgroup_size != Some(8) {
        return;
    }
    for (n, h, w, c, o, k, stride, pad) in [
        (3, 9, 7, 12, 36, [3, 3], [1, 1], Padding::Same),
        (2, 11, 10, 8, 32, [3, 3], [2, 2], Padding::Same),
        (2, 6, 5, 4, 20, [1, 1], [2, 1], Padding::Valid),
        (1, 5, 5, 32, 64, [3, 3], [1, 1], Padding::Same),
        // 16-channel tiles (`conv2d_backward_weight_sg_o16_c4`), against the 32-channel kernel.
        (2, 7, 9, 12, 16, [3, 3], [1, 1], Padding::Same),
        (2, 8, 8, 4, 8, [3, 3], [2, 2], Padding::Same),
    ] {
        let p = Conv2dParams::general(n, h, w, c, o, k, stride, pad).unwrap();
        let mut r = rng(23);
        let xb = gpu.storage_from("x", &uniform(&mut r, p.input_len(), 1.0));
        let dyb = gpu.storage_from("dy", &uniform(&mut r, p.output_len(), 1.0));
        let (pa, pb) = (
            gpu.storage("pt", p.partials_len()),
            gpu.storage("pt", p.partials_len()),
        );
        let (x, dy) = ((&xb).into(), (&dyb).into());
        let c4 = conv2d::backward_weight_split(gpu, &p, x, dy, (&pa).into());
        let want = if o <= 16 {
            "conv2d_backward_weight_sg_o16_c4"
        } else {
            "conv2d_backward_weight_sg_c4"
        };
        assert_eq!(c4.entry, want);
        let u = gpu.uniform("p", &p);
        let rows = p.weight_rows() + 1;
        let scalar = wgpu_cnn::gpu::Dispatch::with_textures(
            gpu,
            sg_shader("conv2d_backward_weight_sg"),
            "conv2d_backward_weight_sg",
            &u,
            &[(1, x), (17, (&pb).into())],
            &[(31, dy)],
            wgpu_cnn::gpu::dispatch::grid(p.o.div_ceil(32) * rows.div_ceil(32) * p.splits * 8),
            0,
            0,
        );
        gpu.run(&[&c4, &scalar]).unwrap();
        let (a, b) = (read(gpu, &pa), read(gpu, &pb));
        assert!(a.iter().any(|&v| v != 0.0));
        let differ = bits_differ(&a, &b);
        assert_eq!(
            differ,
            0,
            "C = {c}, O = {o}, stride {stride:?}, {} splits: {differ} of {} partials differ",
            p.splits,
            a.len()
        );
    }
}

/// The subgroup kernels read the weights (and the weight gradient its dout) through texture
/// mirrors: slices at offsets that are not whole 16-byte texels (the staging copy), tensors
/// over one 4096-texel row with a partial last row, and mirrors shared by dispatches of the
/// same size with different contents, all against the CPU twin. Elsewhere (storage bindings need
/// 256-byte offsets) only the aligned slices run.
#[test]
fn texture_mirrors_read_unaligned_multi_row_and_shared_slices() {
    let Some(gpu) = gpu() else { return };
    let sg = gpu.caps().subgroup8();
    // (N, H, W, C, O, K): 16-channel tiles with a weight of 432 floats; 32-channel tiles with
    // a weight of 18,432 floats = 4,608 texels (two rows, the second partial); 16-channel tiles
    // with a dout of 9,248 floats = 4,624 rg32float texels (the vec2 mirrors of the
    // 16-output-channel kernels: two rows, the second partial).
    for (si, &(n, h, w, c, o, k)) in [
        (2, 5, 5, 4, 12, 3),
        (1, 4, 4, 64, 32, 3),
        (2, 17, 17, 4, 16, 3),
    ]
    .iter()
    .enumerate()
    {
        let p = Conv2dParams::new(n, h, w, c, o, k, Padding::Same);
        let mut r = rng(900 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let b = uniform(&mut r, o as usize, 1.0);
        let (x64, b64) = (to_f64(&x), to_f64(&b));
        let (xb, bb) = (gpu.storage_from("x", &x), gpu.storage_from("b", &b));
        // Elements before the tensor: 1 (4 bytes: not a whole texel), 2 (8 bytes: a whole
        // rg32float texel, half an rgba32float one) or 64 (256 bytes).
        let offsets: &[usize] = if sg { &[1, 2, 64] } else { &[64] };
        for &off in offsets {
            // Two weights and two douts of the same size in one buffer each: their mirrors
            // share a texture, refreshed before each dispatch.
            let ws = [
                uniform(&mut r, p.weight_len(), 1.0),
                uniform(&mut r, p.weight_len(), 1.0),
            ];
            let dys = [
                uniform(&mut r, p.output_len(), 1.0),
                uniform(&mut r, p.output_len(), 1.0),
            ];
            let pack = |a: &[f32], b: &[f32]| {
                let mut flat = vec![7.0f32; off + a.len() + 256 + b.len()];
                flat[off..off + a.len()].copy_from_slice(a);
                let second = off + a.len() + 256 - (off + a.len()) % 64;
                flat[second..second + b.len()].copy_from_slice(b);
                (flat, [off, second])
            };
            let (wflat, wat) = pack(&ws[0], &ws[1]);
            let (dflat, dat) = pack(&dys[0], &dys[1]);
            let (wb, db) = (
                gpu.storage_from("w", &wflat),
                gpu.storage_from("dy", &dflat),
            );
            let outs: Vec<_> = (0..2)
                .map(|_| {
                    (
                        gpu.storage("y", p.output_len()),
                        gpu.storage("dx", p.input_len()),
                        gpu.storage("partials", p.partials_len()),
                        gpu.storage("dw", p.weight_len()),
                        gpu.storage("db", o as usize),
                    )
                })
                .collect();
            let mut ds = Vec::new();
            for (i, (yb, dxb, pb, dwb, dbb)) in outs.iter().enumerate() {
                let wsl = BufSlice::elems(&wb, wat[i], p.weight_len());
                // dout is a storage binding of the input gradient: aligned there.
                let dy_aligned = gpu.storage_from("dy", &dys[i]);
                let dsl = BufSlice::elems(&db, dat[i], p.output_len());
                let dsl = if sg { dsl } else { (&dy_aligned).into() };
                ds.push(conv2d::forward(
                    gpu,
                    &p,
                    (&xb).into(),
                    wsl,
                    Some((&bb).into()),
                    yb.into(),
                ));
                ds.push(conv2d::backward_input(
                    gpu,
                    &p,
                    (&dy_aligned).into(),
                    wsl,
                    dxb.into(),
                ));
                ds.extend(conv2d::backward_weight(
                    gpu,
                    &p,
                    (&xb).into(),
                    dsl,
                    pb.into(),
                    dwb.into(),
                    Some(dbb.into()),
                ));
                if sg {
                    assert!(ds
                        .iter()
                        .all(|d| d.entry.contains("_sg") || d.entry.contains("reduce")));
                    // O <= 16: the forward and weight-gradient kernels read rg32float mirrors.
                    let o16 = ds.iter().filter(|d| d.entry.contains("_o16")).count();
                    assert_eq!(
                        o16 > 0,
                        o <= 16,
                        "{:?}",
                        ds.iter().map(|d| d.entry).collect::<Vec<_>>()
                    );
                }
            }
            gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
            for (i, (yb, dxb, _, dwb, dbb)) in outs.iter().enumerate() {
                let what = format!("shape {si} offset {off} tensor {i}");
                let (w64, dy64) = (to_f64(&ws[i]), to_f64(&dys[i]));
                let mut y = vec![0.0; p.output_len()];
                wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x64, &w64, &b64, &mut y);
                assert_close(&format!("{what} forward"), &read(gpu, yb), &y, ATOL, RTOL);
                let mut dx = vec![0.0; p.input_len()];
                wgpu_cnn::ops::conv2d::cpu::conv2d_backward_input(&p, &dy64, &w64, &mut dx);
                assert_close(
                    &format!("{what} backward_input"),
                    &read(gpu, dxb),
                    &dx,
                    ATOL,
                    RTOL,
                );
                let (mut dw, mut dbias) = (vec![0.0; p.weight_len()], vec![0.0; o as usize]);
                wgpu_cnn::ops::conv2d::cpu::conv2d_backward_weight(
                    &p, &x64, &dy64, &mut dw, &mut dbias,
                );
                let atol = ATOL * (p.pixels() as f64).sqrt();
                assert_close(
                    &format!("{what} backward_weight"),
                    &read(gpu, dwb),
                    &dw,
                    atol,
                    RTOL,
                );
                assert_close(
                    &format!("{what} backward_bias"),
                    &read(gpu, dbb),
                    &dbias,
                    atol,
                    RTOL,
                );
            }
        }
    }
}
