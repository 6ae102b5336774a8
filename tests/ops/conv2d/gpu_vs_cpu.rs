//! Convolution (direct kernels of every family, and Winograd) against its CPU twin.

use crate::common::{self, assert_close, gpu, gpu_tiled, gpu_wg, rng, to_f64, uniform};
use crate::shared::{bits_differ, guarded, inner, read, read_guarded, ATOL, RTOL};
use rand::Rng;
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::avgpool::gpu as avgpool;
use wgpu_cnn::ops::conv2d::gpu as conv2d;
use wgpu_cnn::ops::conv2d::sg_shader;
use wgpu_cnn::ops::*;

/// (n, h, w, c, o, k, padding): odd sizes, K = 1, 3, 5, both paddings, several split-K splits.
const CONV_SHAPES: &[(u32, u32, u32, u32, u32, u32, Padding)] = &[
    (1, 5, 5, 1, 1, 1, Padding::Same),
    (3, 7, 7, 5, 6, 3, Padding::Same),
    (2, 9, 6, 3, 7, 3, Padding::Valid),
    (3, 7, 8, 4, 5, 5, Padding::Same),
    (2, 11, 9, 2, 3, 5, Padding::Valid),
    (5, 13, 11, 3, 9, 3, Padding::Same),
    (1, 6, 6, 6, 2, 1, Padding::Valid),
    // O % 4 == 0: the vec4 variants (C odd or not a multiple of 8, partial 8-wide tiles).
    (3, 7, 7, 5, 8, 3, Padding::Same),
    (2, 9, 6, 3, 12, 3, Padding::Valid),
    (1, 6, 5, 4, 4, 5, Padding::Same),
    (2, 5, 7, 6, 20, 1, Padding::Valid),
    (3, 9, 7, 12, 16, 3, Padding::Same),
    (2, 5, 6, 4, 8, 3, Padding::Valid),
    // More than one 32-channel tile of the subgroup kernels, partial ones included.
    (2, 5, 4, 36, 40, 3, Padding::Same),
    (3, 4, 5, 7, 68, 1, Padding::Valid),
    // 16-channel tiles of the subgroup kernels (O <= 16, C <= 16): ResNet-20's first stage at
    // odd sizes, K = 1, and with the other side wider than 16 (32-channel tiles there).
    (3, 9, 7, 16, 16, 3, Padding::Same),
    (5, 7, 5, 16, 16, 1, Padding::Valid),
    (3, 5, 7, 16, 32, 3, Padding::Same),
    (1, 5, 9, 32, 16, 3, Padding::Valid),
];

/// The default kernels: on a device with 8-wide subgroups (lavapipe) the subgroup kernels
/// (conv2d_sg_*.wgsl).
#[test]
fn conv2d_all_directions() {
    let Some(gpu) = gpu() else { return };
    if gpu.info.name.contains("llvmpipe")
        && gpu.info.name.contains("256 bits")
        && gpu.info.backend == wgpu::Backend::Vulkan
    {
        // lavapipe on AVX2: subgroups of 8 that pass the layout probe, so the subgroup kernels
        // are the ones under test here.
        assert_eq!(gpu.subgroup_size, Some(8));
        assert!(gpu.subgroup_layout_ok());
    }
    conv2d_all_directions_on(gpu);
}

/// The register-tiled kernels of conv2d.wgsl, which devices without 8-wide subgroups run.
#[test]
fn conv2d_all_directions_tiled() {
    let Some(gpu) = gpu_tiled() else { return };
    conv2d_all_directions_on(gpu);
}

/// The workgroup-tiled kernels of conv2d_wg.wgsl, which GPUs run.
#[test]
fn conv2d_all_directions_wg() {
    let Some(gpu) = gpu_wg() else { return };
    conv2d_all_directions_on(gpu);
}

/// Any kernel, stride and padding, with and without bias: (n, h, w, c, o, kernel, stride,
/// padding, bias). Even and rectangular kernels, strides 2 and 3 (input pixels no tap reaches,
/// taps that skip output pixels), asymmetric explicit padding, SAME with a stride.
type ConvCase = (u32, u32, u32, u32, u32, [u32; 2], [u32; 2], Padding, bool);

const CONV_GENERAL: &[ConvCase] = &[
    (2, 7, 8, 3, 5, [2, 2], [1, 1], Padding::Same, true),
    (1, 9, 7, 4, 8, [4, 3], [2, 2], Padding::Same, false),
    (
        3,
        8,
        8,
        5,
        12,
        [3, 3],
        [2, 1],
        Padding::Explicit([[2, 0], [1, 3]]),
        true,
    ),
    (2, 11, 10, 8, 8, [5, 2], [3, 2], Padding::Valid, true),
    (1, 6, 9, 4, 4, [1, 1], [2, 3], Padding::Valid, false),
    (2, 7, 7, 12, 36, [6, 6], [1, 1], Padding::Same, true),
    (
        3,
        5,
        6,
        2,
        3,
        [7, 4],
        [1, 2],
        Padding::Explicit([[3, 3], [0, 1]]),
        false,
    ),
    (2, 10, 10, 8, 16, [3, 3], [2, 2], Padding::Same, true),
    // 16-channel tiles with stride 2 (ResNet-20's downsampling conv reads 16 channels).
    (3, 9, 7, 16, 16, [3, 3], [2, 2], Padding::Same, true),
    (
        1,
        7,
        9,
        16,
        12,
        [3, 3],
        [2, 2],
        Padding::Explicit([[1, 1], [0, 2]]),
        false,
    ),
    (3, 7, 7, 16, 32, [1, 1], [2, 2], Padding::Valid, false),
];

fn conv2d_all_directions_on(gpu: &Gpu) {
    let general = CONV_GENERAL
        .iter()
        .map(|&(n, h, w, c, o, k, s, pad, bias)| {
            let p = Conv2dParams::general(n, h, w, c, o, k, s, pad).unwrap();
            (p, if bias { p } else { p.without_bias() }, pad)
        });
    let square = CONV_SHAPES.iter().map(|&(n, h, w, c, o, k, pad)| {
        let p = Conv2dParams::new(n, h, w, c, o, k, pad);
        (p, p, pad)
    });
    for (si, (_, p, pad)) in square.chain(general).enumerate() {
        let (n, h, w, c, o) = (p.n, p.h, p.w, p.c, p.o);
        let has_bias = p.bias != 0;
        let what = format!(
            "conv2d n{n} h{h} w{w} c{c} o{o} k{}x{} s{}x{} {pad:?} bias {has_bias}",
            p.kh, p.kw, p.sh, p.sw
        );
        let mut r = rng(100 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let wt = uniform(&mut r, p.weight_len(), 1.0);
        let b = uniform(&mut r, o as usize, 1.0);
        let dy = uniform(&mut r, p.output_len(), 1.0);

        let (xb, wb, bb, dyb) = (
            gpu.storage_from("x", &x),
            gpu.storage_from("w", &wt),
            gpu.storage_from("b", &b),
            gpu.storage_from("dy", &dy),
        );
        let yb = gpu.storage("y", p.output_len());
        // Every input-gradient element must be written (=), zeros included (the stride phases
        // no tap reaches): a sentinel shows one that is not.
        let dxb = gpu.storage_from("dx", &vec![7.0f32; p.input_len()]);
        let partb = gpu.storage("partials", p.partials_len());
        let dwb = gpu.storage("dw", p.weight_len());
        // Without a bias the db buffer must come back untouched.
        let dbb = gpu.storage_from("db", &vec![7.0f32; o as usize]);
        let bias = has_bias.then(|| (&bb).into());
        let fwd = conv2d::forward(gpu, &p, (&xb).into(), (&wb).into(), bias, (&yb).into());
        let bwi = conv2d::backward_input(gpu, &p, (&dyb).into(), (&wb).into(), (&dxb).into());
        let [bww, red] = conv2d::backward_weight(
            gpu,
            &p,
            (&xb).into(),
            (&dyb).into(),
            (&partb).into(),
            (&dwb).into(),
            has_bias.then(|| (&dbb).into()),
        );
        let yrb = gpu.storage("y_relu", p.output_len());
        let pr = p.with_relu();
        let fwd_relu = conv2d::forward(gpu, &pr, (&xb).into(), (&wb).into(), bias, (&yrb).into());
        if gpu.caps().workgroup_tiled() {
            for e in [fwd.entry, bwi.entry, bww.entry] {
                assert!(e.contains("_wg"), "{what}: {e}");
            }
            let vec4 = c % 4 == 0 && o % 4 == 0;
            assert_eq!(fwd.entry.ends_with("_vec4"), vec4, "{what}");
            assert_eq!(bww.entry.ends_with("_vec4"), vec4, "{what}");
            assert_eq!(bwi.entry.ends_with("_vec4"), o % 4 == 0, "{what}");
        } else if gpu.subgroup_size == Some(8) && o % 4 == 0 {
            // 16-channel tiles exactly where the channels they span number at most 16.
            let tile16 = |e: &str| e.contains("_o16") || e.ends_with("_c16");
            assert!(fwd.entry.contains("_sg") && bww.entry.contains("_sg"));
            assert_eq!(fwd_relu.entry, fwd.entry);
            assert_eq!(tile16(fwd.entry), c % 4 == 0 && o <= 16, "{what}");
            assert_eq!(tile16(bww.entry), o <= 16, "{what}");
            assert_eq!(bwi.entry.contains("_sg"), c % 4 == 0);
            assert_eq!(tile16(bwi.entry), c % 4 == 0 && c <= 16, "{what}");
        } else {
            assert!(!fwd.entry.contains("_sg") && !bww.entry.contains("_sg"));
        }
        gpu.run(&[&fwd, &fwd_relu, &bwi, &bww, &red]).unwrap();

        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&wt), to_f64(&b), to_f64(&dy));
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x64, &w64, &b64, &mut y);
        assert_close(&format!("{what} forward"), &read(gpu, &yb), &y, ATOL, RTOL);
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&pr, &x64, &w64, &b64, &mut y);
        assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
        assert_close(
            &format!("{what} forward+relu"),
            &read(gpu, &yrb),
            &y,
            ATOL,
            RTOL,
        );
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_input(&p, &dy64, &w64, &mut dx);
        assert_close(
            &format!("{what} backward_input"),
            &read(gpu, &dxb),
            &dx,
            ATOL,
            RTOL,
        );
        let (mut dw, mut db) = (vec![0.0; p.weight_len()], vec![0.0; o as usize]);
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_weight(&p, &x64, &dy64, &mut dw, &mut db);
        // Weight gradients sum over N·OH·OW products (up to 715 here): scale atol with it.
        let terms = p.pixels() as f64;
        assert_close(
            &format!("{what} backward_weight"),
            &read(gpu, &dwb),
            &dw,
            ATOL * terms.sqrt(),
            RTOL,
        );
        if has_bias {
            assert_close(
                &format!("{what} backward_bias"),
                &read(gpu, &dbb),
                &db,
                ATOL * terms.sqrt(),
                RTOL,
            );
        } else {
            assert!(
                read(gpu, &dbb).iter().all(|&v| v == 7.0),
                "{what}: db written"
            );
        }
    }
}

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

/// The pooled forward of `p` again with the ReLU mask: the pooled output bitwise as without it
/// (`pb`), the mask exactly the signs of the output the kernel computed (`yb`, word
/// m·ceil(O/32) + c/32, bit c % 32), and the pool backward from the mask bitwise the one from
/// the output, on a random output gradient.
#[allow(clippy::too_many_arguments)]
fn relu_mask_matches_output(
    gpu: &Gpu,
    what: &str,
    p: &Conv2dParams,
    xb: &wgpu::Buffer,
    wb: &wgpu::Buffer,
    bb: &wgpu::Buffer,
    yb: &wgpu::Buffer,
    pb: &wgpu::Buffer,
    r: &mut impl Rng,
) {
    let pm = p.with_relu_mask();
    let mb = gpu.storage("mask", pm.relu_mask_len());
    let pb2 = gpu.storage("pooled", p.pooled_len());
    let d = conv2d::forward_pool2(
        gpu,
        &pm,
        xb.into(),
        wb.into(),
        Some(bb.into()),
        (&mb).into(),
        (&pb2).into(),
    )
    .expect("the fused kernel ran without the mask");
    gpu.run(&[&d]).unwrap();
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(
        bits(read(gpu, &pb2)),
        bits(read(gpu, pb)),
        "{what}: pooled output with the mask"
    );
    let y = read(gpu, yb);
    let words = p.o.div_ceil(32) as usize;
    let mut want = vec![0u32; pm.relu_mask_len()];
    for (i, v) in y.iter().enumerate() {
        let (m, c) = (i / p.o as usize, i % p.o as usize);
        if *v > 0.0 {
            want[m * words + c / 32] |= 1 << (c % 32);
        }
    }
    assert_eq!(bits(read(gpu, &mb)), want, "{what}: relu mask");
    // The pool backward (2×2, stride 2) over that output, from the output and from the mask.
    let pp = AvgPoolParams::new(p.n, p.out_h, p.out_w, p.o, 2);
    if !wgpu_cnn::ops::avgpool::mask_fits(&pp) {
        return;
    }
    let dy = uniform(r, pp.output_len(), 1.0);
    let dyb = gpu.storage_from("dy", &dy);
    let (d1, d2) = (
        gpu.storage("dx", pp.input_len()),
        gpu.storage("dx", pp.input_len()),
    );
    let from_out = avgpool::backward_relu(gpu, &pp, (&dyb).into(), yb.into(), (&d1).into());
    let from_mask =
        avgpool::backward_relu_mask(gpu, &pp, (&dyb).into(), (&mb).into(), (&d2).into());
    assert_eq!(from_mask.entry, "avgpool_backward_relu_k2_mask");
    gpu.run(&[&from_out, &from_mask]).unwrap();
    assert_eq!(
        bits(read(gpu, &d2)),
        bits(read(gpu, &d1)),
        "{what}: pool backward from the mask"
    );
}

/// Conv → ReLU → 2×2 average pool in one kernel (devices with 8-wide subgroups), against the
/// CPU conv with ReLU and the CPU pool; elsewhere the launcher declines and nothing runs.
/// With the ReLU mask (`p.mask`, for a ReLU output that only the pool backward reads) the
/// forward stores the signs of the output it computed as bits, and the pool backward that
/// reads them gives the same bits as the one reading the output.
#[test]
fn conv2d_forward_pool2() {
    let Some(gpu) = gpu() else { return };
    for (si, &(n, h, w, c, o, k, pad)) in [
        (2, 8, 8, 3, 32, 3, Padding::Same),
        (3, 4, 12, 8, 36, 3, Padding::Same),
        (1, 6, 4, 5, 8, 5, Padding::Same),
        (2, 6, 10, 4, 12, 3, Padding::Valid),
        // An odd number of 2×4 tiles (3): the fourth tile of the last subgroup is past the end.
        (1, 6, 4, 4, 8, 3, Padding::Same),
    ]
    .iter()
    .enumerate()
    {
        let p = Conv2dParams::new(n, h, w, c, o, k, pad).with_relu();
        assert!(p.can_pool2());
        let what = format!("conv2d+relu+pool2 n{n} h{h} w{w} c{c} o{o} k{k} {pad:?}");
        let mut r = rng(700 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let wt = uniform(&mut r, p.weight_len(), 1.0);
        let b = uniform(&mut r, o as usize, 1.0);
        let (xb, wb, bb) = (
            gpu.storage_from("x", &x),
            gpu.storage_from("w", &wt),
            gpu.storage_from("b", &b),
        );
        let yb = gpu.storage("y", p.output_len());
        let pb = gpu.storage("pooled", p.pooled_len());
        let d = conv2d::forward_pool2(
            gpu,
            &p,
            (&xb).into(),
            (&wb).into(),
            Some((&bb).into()),
            (&yb).into(),
            (&pb).into(),
        );
        let Some(d) = d else {
            assert_ne!(
                gpu.subgroup_size,
                Some(8),
                "{what}: the fused kernel was declined"
            );
            continue;
        };
        gpu.run(&[&d]).unwrap();
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(
            &p,
            &to_f64(&x),
            &to_f64(&wt),
            &to_f64(&b),
            &mut y,
        );
        assert_close(&format!("{what} output"), &read(gpu, &yb), &y, ATOL, RTOL);
        let pp = AvgPoolParams::new(n, p.out_h, p.out_w, o, 2);
        let mut pooled = vec![0.0; p.pooled_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_forward(&pp, &y, &mut pooled);
        assert_close(
            &format!("{what} pooled"),
            &read(gpu, &pb),
            &pooled,
            ATOL,
            RTOL,
        );
        relu_mask_matches_output(gpu, &what, &p, &xb, &wb, &bb, &yb, &pb, &mut r);
    }
    // Shapes the 2×4-pixel tiles do not cover are declined.
    let odd = Conv2dParams::new(1, 6, 6, 4, 8, 3, Padding::Same);
    assert!(!odd.can_pool2());
    let (xb, yb) = (
        gpu.storage("x", odd.input_len()),
        gpu.storage("y", odd.output_len()),
    );
    let (wb, bb) = (gpu.storage("w", odd.weight_len()), gpu.storage("b", 8));
    let pb = gpu.storage("pooled", odd.pooled_len());
    let d = conv2d::forward_pool2(
        gpu,
        &odd,
        (&xb).into(),
        (&wb).into(),
        Some((&bb).into()),
        (&yb).into(),
        (&pb).into(),
    );
    assert!(d.is_none());
}

/// The workgroup-tiled kernels: split-K chunks that are not a multiple of the 16-pixel K-slice
/// (the last slice of each split is partial) against the CPU, and the vec4 variants bitwise equal
/// to the scalar ones (same sums in the same order), run twice with bitwise equal results.
#[test]
fn conv2d_wg_odd_splits_and_vec4_variants_bitwise() {
    let Some(gpu) = gpu_wg() else { return };
    for (si, (p, chunk)) in [
        (Conv2dParams::new(3, 7, 7, 8, 12, 3, Padding::Same), 23),
        (
            Conv2dParams::general(2, 9, 6, 4, 8, [4, 3], [2, 2], Padding::Same).unwrap(),
            9,
        ),
        (Conv2dParams::new(2, 6, 5, 68, 72, 1, Padding::Valid), 60),
    ]
    .into_iter()
    .enumerate()
    {
        // Chunks below `with_splits`' minimum of 64, set directly.
        let mut p = p.with_relu();
        p.chunk = chunk;
        p.splits = p.pixels().div_ceil(chunk);
        let what = format!("conv2d_wg #{si} splits {} chunk {}", p.splits, p.chunk);
        let mut r = rng(900 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let wt = uniform(&mut r, p.weight_len(), 1.0);
        let b = uniform(&mut r, p.o as usize, 1.0);
        let dy = uniform(&mut r, p.output_len(), 1.0);
        let (xb, wb, bb, dyb) = (
            gpu.storage_from("x", &x),
            gpu.storage_from("w", &wt),
            gpu.storage_from("b", &b),
            gpu.storage_from("dy", &dy),
        );
        let (x_, w_, b_, dy_) = ((&xb).into(), (&wb).into(), (&bb).into(), (&dyb).into());
        let out = |len: usize| gpu.storage("out", len);
        let (y4, dx4, pt4) = (
            out(p.output_len()),
            out(p.input_len()),
            out(p.partials_len()),
        );
        let (y1, dx1, pt1) = (
            out(p.output_len()),
            out(p.input_len()),
            out(p.partials_len()),
        );
        let (dwb, dbb) = (out(p.weight_len()), out(p.o as usize));
        let fwd = conv2d::forward(gpu, &p, x_, w_, Some(b_), (&y4).into());
        let bwi = conv2d::backward_input(gpu, &p, dy_, w_, (&dx4).into());
        let bww = conv2d::backward_weight_split(gpu, &p, x_, dy_, (&pt4).into());
        let [_, red] = conv2d::backward_weight(
            gpu,
            &p,
            x_,
            dy_,
            (&pt4).into(),
            (&dwb).into(),
            Some((&dbb).into()),
        );
        for e in [fwd.entry, bwi.entry, bww.entry] {
            assert!(e.ends_with("_wg_vec4"), "{what}: {e}");
        }
        // The scalar entry points on the same inputs, with the launchers' grids.
        let scalar = |entry, binds: &[(u32, BufSlice<'_>)], grid| {
            let u = gpu.uniform("p", &p);
            wgpu_cnn::gpu::Dispatch::new(gpu, "conv2d_wg", entry, &u, binds, grid, 0, 0)
        };
        let ds = [
            scalar(
                "conv2d_forward_wg",
                &[(1, x_), (2, w_), (3, b_), (4, (&y1).into())],
                fwd.workgroups,
            ),
            scalar(
                "conv2d_backward_input_wg",
                &[(5, dy_), (2, w_), (6, (&dx1).into())],
                bwi.workgroups,
            ),
            scalar(
                "conv2d_backward_weight_wg",
                &[(1, x_), (5, dy_), (7, (&pt1).into())],
                bww.workgroups,
            ),
        ];
        gpu.run(&[&fwd, &bwi, &bww, &ds[0], &ds[1], &ds[2]])
            .unwrap();
        let bits =
            |b: &wgpu::Buffer| -> Vec<u32> { read(gpu, b).iter().map(|v| v.to_bits()).collect() };
        assert_eq!(bits(&y4), bits(&y1), "{what}: forward vec4 vs scalar");
        assert_eq!(
            bits(&dx4),
            bits(&dx1),
            "{what}: backward_input vec4 vs scalar"
        );
        assert_eq!(
            bits(&pt4),
            bits(&pt1),
            "{what}: backward_weight vec4 vs scalar"
        );
        // Again: the same bits.
        let first = (bits(&y4), bits(&dx4), bits(&pt4));
        gpu.run(&[&fwd, &bwi, &bww]).unwrap();
        assert_eq!(first, (bits(&y4), bits(&dx4), bits(&pt4)), "{what}: rerun");
        // The weight gradient through the reduction against the CPU.
        gpu.run(&[&bww, &red]).unwrap();
        let (x64, dy64) = (to_f64(&x), to_f64(&dy));
        let (mut dw, mut db) = (vec![0.0; p.weight_len()], vec![0.0; p.o as usize]);
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_weight(&p, &x64, &dy64, &mut dw, &mut db);
        let atol = ATOL * (p.pixels() as f64).sqrt();
        assert_close(
            &format!("{what} dweight"),
            &read(gpu, &dwb),
            &dw,
            atol,
            RTOL,
        );
        assert_close(&format!("{what} dbias"), &read(gpu, &dbb), &db, atol, RTOL);
    }
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

#[test]
fn conv2d_weight_gradient_is_deterministic() {
    let Some(gpu) = gpu() else { return };
    let p = Conv2dParams::new(4, 15, 13, 5, 7, 3, Padding::Same);
    assert!(p.splits > 1);
    let mut r = rng(7);
    let xb = gpu.storage_from("x", &uniform(&mut r, p.input_len(), 1.0));
    let dyb = gpu.storage_from("dy", &uniform(&mut r, p.output_len(), 1.0));
    let partb = gpu.storage("partials", p.partials_len());
    let mut results = Vec::new();
    for _ in 0..3 {
        let dwb = gpu.storage("dw", p.weight_len());
        let dbb = gpu.storage("db", p.o as usize);
        let [a, b] = conv2d::backward_weight(
            gpu,
            &p,
            (&xb).into(),
            (&dyb).into(),
            (&partb).into(),
            (&dwb).into(),
            Some((&dbb).into()),
        );
        gpu.run(&[&a, &b]).unwrap();
        let bits: Vec<u32> = read(gpu, &dwb)
            .iter()
            .chain(read(gpu, &dbb).iter())
            .map(|v| v.to_bits())
            .collect();
        results.push(bits);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[1], results[2]);
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

/// `conv2d_backward_weight_reduce_vec4` (O % 4 == 0) sums the split-K partials into the same
/// bits as the scalar reduction, with and without a bias row, on every kernel family's split.
#[test]
fn conv2d_weight_reduce_vec4_matches_the_scalar_reduce_bitwise() {
    let Some(gpu) = gpu() else { return };
    for (i, (n, h, w, c, o, k, bias)) in [
        (2u32, 7u32, 6u32, 3u32, 8u32, 3u32, true),
        (3, 9, 7, 12, 36, 3, false),
        (1, 5, 5, 5, 4, 1, true),
        (2, 8, 8, 16, 16, 3, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Conv2dParams::general(n, h, w, c, o, [k, k], [1, 1], Padding::Same).unwrap();
        if !bias {
            p = p.without_bias();
        }
        for splits in [1, 3, 7] {
            let p = p.with_splits(splits);
            let mut r = rng(2400 + i as u64);
            let xb = gpu.storage_from("x", &uniform(&mut r, p.input_len(), 1.0));
            let dyb = gpu.storage_from("dy", &uniform(&mut r, p.output_len(), 1.0));
            let partb = gpu.storage("partials", p.partials_len());
            let rows = p.weight_rows() as usize;
            let ol = o as usize;
            let outs: Vec<wgpu::Buffer> = (0..4).map(|_| gpu.storage("out", rows * ol)).collect();
            let biases: Vec<wgpu::Buffer> = (0..2).map(|_| gpu.storage("db", ol)).collect();
            let [split, red] = conv2d::backward_weight(
                gpu,
                &p,
                (&xb).into(),
                (&dyb).into(),
                (&partb).into(),
                (&outs[0]).into(),
                bias.then(|| (&biases[0]).into()),
            );
            assert_eq!(red.entry, "conv2d_backward_weight_reduce_vec4");
            let u = gpu.uniform("p", &p);
            let scalar = wgpu_cnn::gpu::Dispatch::new(
                gpu,
                "conv2d",
                "conv2d_backward_weight_reduce",
                &u,
                &[
                    (7, (&partb).into()),
                    (8, (&outs[1]).into()),
                    (
                        9,
                        if bias {
                            (&biases[1]).into()
                        } else {
                            (&outs[2]).into()
                        },
                    ),
                ],
                wgpu_cnn::gpu::dispatch::grid((p.weight_rows() + 1) * o),
                0,
                0,
            );
            gpu.run(&[&split, &red, &scalar]).unwrap();
            let mut pairs = vec![(read(gpu, &outs[0]), read(gpu, &outs[1]))];
            if bias {
                pairs.push((read(gpu, &biases[0]), read(gpu, &biases[1])));
            }
            for (a, b) in pairs {
                assert!(a.iter().any(|&v| v != 0.0));
                assert!(
                    bits_differ(&a, &b) == 0,
                    "C {c} O {o} bias {bias} splits {splits}: vec4 and scalar reductions differ"
                );
            }
        }
    }
}

/// The Winograd F(4×4, 3×3) kernels (`winograd.wgsl` and the GEMMs of `winograd_gemm_sg.wgsl`;
/// devices with 8-wide subgroups) in every direction against the direct CPU convolution, at
/// shapes with partial tiles at both edges, more than one 32-channel or 32-tile block, with and
/// without bias; the fused ReLU, 2×2 pool and ReLU mask against the CPU conv, ReLU and pool.
/// Outputs sit inside guarded buffers: nothing is written outside them.
#[test]
fn winograd_all_directions() {
    use wgpu_cnn::ops::conv2d::winograd::gpu as winograd;
    let Some(gpu) = gpu() else { return };
    let shapes: &[(u32, u32, u32, u32, u32, bool)] = &[
        (2, 5, 7, 4, 8, true),
        (3, 9, 6, 12, 36, false),
        (1, 4, 4, 32, 64, true),
        (2, 8, 6, 8, 32, true),
        (5, 10, 10, 36, 4, true),
        // More than 128 input channels: the forward's GEMM into M, then the output transform.
        (1, 6, 10, 132, 40, true),
    ];
    for (si, &(n, h, w, c, o, has_bias)) in shapes.iter().enumerate() {
        let p0 = Conv2dParams::new(n, h, w, c, o, 3, Padding::Same);
        let p = if has_bias { p0 } else { p0.without_bias() };
        let what = format!("winograd n{n} h{h} w{w} c{c} o{o} bias {has_bias}");
        assert_eq!(
            wgpu_cnn::ops::conv2d::winograd::applies(&gpu.caps(), &p),
            gpu.caps().conv_sg(&p),
            "{what}"
        );
        if !wgpu_cnn::ops::conv2d::winograd::applies(&gpu.caps(), &p) {
            continue;
        }
        let mut r = rng(900 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let wt = uniform(&mut r, p.weight_len(), 1.0);
        let b = uniform(&mut r, o as usize, 1.0);
        let dy = uniform(&mut r, p.output_len(), 1.0);
        let (xb, wb, bb, dyb) = (
            gpu.storage_from("x", &x),
            gpu.storage_from("w", &wt),
            gpu.storage_from("b", &b),
            gpu.storage_from("dy", &dy),
        );
        let (fl, il, wl) = wgpu_cnn::ops::conv2d::winograd::scratch_lens(&p);
        let scratch = |l: [usize; 3]| l.map(|len| gpu.storage("scratch", len));
        let (fs, is, ws) = (scratch(fl), scratch(il), scratch(wl));
        let sl = winograd::Scratch::of;
        let yb = guarded(gpu, "y", &vec![0.0; p.output_len()]);
        let dxb = guarded(gpu, "dx", &vec![7.0; p.input_len()]);
        let dwb = guarded(gpu, "dw", &vec![7.0; p.weight_len()]);
        let dbb = guarded(gpu, "db", &vec![7.0; o as usize]);
        let bias = has_bias.then(|| (&bb).into());
        let mut ds = winograd::forward(
            gpu,
            &p,
            (&xb).into(),
            (&wb).into(),
            bias,
            inner(&yb, p.output_len()),
            None,
            sl(&fs),
        );
        // The products fused into the output transform up to 128 input channels (16-channel
        // tiles for at most 16 output channels).
        let fused = ds
            .iter()
            .any(|d| d.entry.starts_with("winograd_gemm_out_sg"));
        assert_eq!(
            fused,
            wgpu_cnn::ops::conv2d::winograd::fuses_output(&p),
            "{what}"
        );
        assert!(
            ds.iter()
                .any(|d| d.entry == wgpu_cnn::ops::conv2d::winograd::forward_gemm(&p)),
            "{what}"
        );
        assert_eq!(
            fused,
            !ds.iter().any(|d| d.entry == "winograd_output"),
            "{what}"
        );
        ds.extend(winograd::backward_input(
            gpu,
            &p,
            Some((&dyb).into()),
            (&wb).into(),
            winograd::Dinput::Full(inner(&dxb, p.input_len())),
            sl(&is),
        ));
        ds.extend(winograd::backward_weight(
            gpu,
            &p,
            Some((&xb).into()),
            winograd::Dout::Full((&dyb).into()),
            inner(&dwb, p.weight_len()),
            has_bias.then(|| inner(&dbb, o as usize)),
            sl(&ws),
        ));
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        // F(4×4, 3×3) rounds more than a direct sum (its transforms scale values by up to 100
        // before the products and cancel after them): about 4e-7 per product of O(1) values
        // here (1.2e-4 at 288 products per output). An indexing error is O(1).
        let atol_fwd = 1e-6 * (9 * c) as f64;
        let atol_bwd = 1e-6 * (9 * o) as f64;
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&wt), to_f64(&b), to_f64(&dy));
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x64, &w64, &b64, &mut y);
        let got = read_guarded(gpu, &what, &yb, p.output_len());
        assert_close(&format!("{what} forward"), &got, &y, atol_fwd, RTOL);
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_input(&p, &dy64, &w64, &mut dx);
        let got = read_guarded(gpu, &what, &dxb, p.input_len());
        assert_close(&format!("{what} backward_input"), &got, &dx, atol_bwd, RTOL);
        // The input gradient as the fused forward of the transposed convolution (rotated,
        // transposed weights), the form ResNet-20's 16-channel layers take.
        let q = p.winograd_transposed();
        let dxf = guarded(gpu, "dx", &vec![7.0; p.input_len()]);
        let (qu, qv) = (
            gpu.storage(
                "u",
                wgpu_cnn::ops::conv2d::winograd::POINTS * (c * o) as usize,
            ),
            gpu.storage("v", wgpu_cnn::ops::conv2d::winograd::scratch_lens(&q).0[1]),
        );
        let d = winograd::backward_input_as_forward(
            gpu,
            &p,
            (&dyb).into(),
            (&wb).into(),
            inner(&dxf, p.input_len()),
            winograd::Scratch {
                a: (&qu).into(),
                b: (&qv).into(),
                c: (&qv).into(),
            },
        );
        assert!(
            d.iter()
                .any(|d| d.entry == wgpu_cnn::ops::conv2d::winograd::forward_gemm(&q)),
            "{what}"
        );
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        let got = read_guarded(gpu, &what, &dxf, p.input_len());
        assert_close(
            &format!("{what} backward_input as forward"),
            &got,
            &dx,
            atol_bwd,
            RTOL,
        );
        let (mut dw, mut db) = (vec![0.0; p.weight_len()], vec![0.0; o as usize]);
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_weight(&p, &x64, &dy64, &mut dw, &mut db);
        let terms = (p.pixels() as f64).sqrt();
        let got = read_guarded(gpu, &what, &dwb, p.weight_len());
        assert_close(
            &format!("{what} backward_weight"),
            &got,
            &dw,
            ATOL * terms,
            RTOL,
        );
        let got = read_guarded(gpu, &what, &dbb, o as usize);
        if has_bias {
            assert_close(
                &format!("{what} backward_bias"),
                &got,
                &db,
                ATOL * terms,
                RTOL,
            );
        } else {
            assert!(got.iter().all(|&v| v == 7.0), "{what}: db written");
        }

        // The weight gradient from the forward's transformed inputs (V, which a planned
        // Winograd forward leaves for it): the same bits without the input transform.
        let dw2 = gpu.storage("dw", p.weight_len());
        let db2 = gpu.storage("db", o as usize);
        let d = winograd::backward_weight(
            gpu,
            &p,
            None,
            winograd::Dout::Full((&dyb).into()),
            (&dw2).into(),
            has_bias.then(|| (&db2).into()),
            winograd::Scratch {
                a: (&fs[1]).into(),
                b: (&ws[1]).into(),
                c: (&ws[2]).into(),
            },
        );
        assert!(d.iter().all(|d| d.entry != "winograd_input"));
        // And the input gradient from the weight gradient's D: the same bits without the
        // output-gradient transform.
        let dx2 = gpu.storage("dx", p.input_len());
        let d2 = winograd::backward_input(
            gpu,
            &p,
            None,
            (&wb).into(),
            winograd::Dinput::Full((&dx2).into()),
            winograd::Scratch {
                a: (&is[0]).into(),
                b: (&ws[1]).into(),
                c: (&is[2]).into(),
            },
        );
        assert!(d2.iter().all(|d| d.entry != "winograd_dout"));
        gpu.run(&d.iter().chain(&d2).collect::<Vec<_>>()).unwrap();
        let dx_bits = read_guarded(gpu, &what, &dxb, p.input_len());
        assert_eq!(
            bits_differ(&read(gpu, &dx2), &dx_bits),
            0,
            "{what}: dx from the weight's D"
        );
        // The input gradient through a ReLU → 2×2 average pool before the layer (random ReLU
        // mask), fused into the last stage: bitwise the pool backward of the input gradient.
        let pp = AvgPoolParams::new(n, 2 * h, 2 * w, c, 2);
        assert!(wgpu_cnn::ops::avgpool::mask_fits(&pp));
        let words = pp.input_len() / c as usize * c.div_ceil(32) as usize;
        let bitsv: Vec<u32> = (0..words).map(|_| r.random::<u32>()).collect();
        let maskb = gpu.storage_from("mask", &bitsv);
        let (pre1, pre2) = (
            gpu.storage("dpre", pp.input_len()),
            gpu.storage("dpre", pp.input_len()),
        );
        let mut dp = vec![avgpool::backward_relu_mask(
            gpu,
            &pp,
            inner(&dxb, p.input_len()),
            (&maskb).into(),
            (&pre1).into(),
        )];
        dp.extend(winograd::backward_input(
            gpu,
            &p,
            Some((&dyb).into()),
            (&wb).into(),
            winograd::Dinput::Pooled {
                dpre: (&pre2).into(),
                mask: (&maskb).into(),
            },
            sl(&is),
        ));
        assert!(dp.iter().any(|d| d.entry == "winograd_gather_pool"));
        gpu.run(&dp.iter().collect::<Vec<_>>()).unwrap();
        let want = read(gpu, &pre1);
        assert!(want.contains(&0.0) && want.iter().any(|&v| v != 0.0));
        assert_eq!(
            bits_differ(&read(gpu, &pre2), &want),
            0,
            "{what}: dx through the pool"
        );
        let dw_bits = read_guarded(gpu, &what, &dwb, p.weight_len());
        assert_eq!(
            bits_differ(&read(gpu, &dw2), &dw_bits),
            0,
            "{what}: dw from the forward's V"
        );
        if has_bias {
            let db_bits = read_guarded(gpu, &what, &dbb, o as usize);
            assert_eq!(
                bits_differ(&read(gpu, &db2), &db_bits),
                0,
                "{what}: db from the forward's V"
            );
        }

        // The forward's epilogues where they fit: ReLU + 2×2 pool, then with the ReLU mask.
        if !wgpu_cnn::ops::conv2d::winograd::can_pool2(&p) {
            continue;
        }
        let pr = p.with_relu().with_pool2();
        let pp = AvgPoolParams::new(n, h, w, o, 2);
        let yrb = gpu.storage("y", p.output_len());
        let pb = guarded(gpu, "pooled", &vec![7.0; pp.output_len()]);
        let d = winograd::forward(
            gpu,
            &pr,
            (&xb).into(),
            (&wb).into(),
            bias,
            (&yrb).into(),
            Some(inner(&pb, pp.output_len())),
            sl(&fs),
        );
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&pr, &x64, &w64, &b64, &mut y);
        let yr = read(gpu, &yrb);
        assert_close(&format!("{what} forward+relu"), &yr, &y, atol_fwd, RTOL);
        let mut pooled = vec![0.0; pp.output_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_forward(&pp, &y, &mut pooled);
        let got = read_guarded(gpu, &what, &pb, pp.output_len());
        assert_close(&format!("{what} pooled"), &got, &pooled, atol_fwd, RTOL);
        if !wgpu_cnn::ops::conv2d::winograd::can_mask(&p) {
            continue;
        }
        let pm = pr.with_relu_mask();
        let mb = gpu.storage("mask", pm.relu_mask_len());
        let pb2 = gpu.storage("pooled", pp.output_len());
        let d = winograd::forward(
            gpu,
            &pm,
            (&xb).into(),
            (&wb).into(),
            bias,
            (&mb).into(),
            Some((&pb2).into()),
            sl(&fs),
        );
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            bits_differ(&read(gpu, &pb2), &got),
            0,
            "{what}: pooled with the mask"
        );
        let words = o.div_ceil(32) as usize;
        let mut want = vec![0u32; pm.relu_mask_len()];
        for (i, v) in yr.iter().enumerate() {
            let (m, ch) = (i / o as usize, i % o as usize);
            if *v > 0.0 {
                want[m * words + ch / 32] |= 1 << (ch % 32);
            }
        }
        let mask: Vec<u32> = read(gpu, &mb).iter().map(|v| v.to_bits()).collect();
        assert_eq!(mask, want, "{what}: relu mask");
        // The weight gradient from the pooled gradient and this mask (the pool backward fused
        // into its output-gradient transform): bitwise the one from the pool backward's output.
        let dpool = uniform(&mut r, pp.output_len(), 1.0);
        let dpb = gpu.storage_from("dpool", &dpool);
        let dyb2 = gpu.storage("dy", p.output_len());
        let (dw1, dw2) = (
            gpu.storage("dw", p.weight_len()),
            gpu.storage("dw", p.weight_len()),
        );
        let (db1, db2) = (gpu.storage("db", o as usize), gpu.storage("db", o as usize));
        let mut ds = vec![avgpool::backward_relu_mask(
            gpu,
            &pp,
            (&dpb).into(),
            (&mb).into(),
            (&dyb2).into(),
        )];
        for (dout, dw, db) in [
            (winograd::Dout::Full((&dyb2).into()), &dw1, &db1),
            (
                winograd::Dout::Pooled {
                    dpool: (&dpb).into(),
                    mask: (&mb).into(),
                },
                &dw2,
                &db2,
            ),
        ] {
            ds.extend(winograd::backward_weight(
                gpu,
                &p,
                Some((&xb).into()),
                dout,
                dw.into(),
                has_bias.then(|| db.into()),
                sl(&ws),
            ));
        }
        assert!(ds.iter().any(|d| d.entry == "winograd_dout_pool"));
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            bits_differ(&read(gpu, &dw1), &read(gpu, &dw2)),
            0,
            "{what}: dw from the pool"
        );
        if has_bias {
            assert_eq!(
                bits_differ(&read(gpu, &db1), &read(gpu, &db2)),
                0,
                "{what}: db from the pool"
            );
        }
    }
}
