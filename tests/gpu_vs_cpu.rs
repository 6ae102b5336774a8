//! Every shader entry point against its CPU reference (computed in f64 from the same f32
//! inputs), on random inputs from fixed seeds, at shapes that are not multiples of the tile or
//! workgroup sizes, both paddings. Tolerances are `|gpu − cpu| ≤ atol + rtol·|cpu|`.

mod common;

use common::{assert_close, gpu, gpu_tiled, gpu_wg, rng, to_f64, uniform};
use rand::Rng;
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::add::gpu as add;
use wgpu_cnn::ops::avgpool::gpu as avgpool;
use wgpu_cnn::ops::batchnorm::gpu as batchnorm;
use wgpu_cnn::ops::batchnorm::gpu::{BatchNormBackwardBuffers, BatchNormBuffers};
use wgpu_cnn::ops::conv2d::gpu as conv2d;
use wgpu_cnn::ops::dense::gpu as dense;
use wgpu_cnn::ops::dropout::gpu as dropout;
use wgpu_cnn::ops::gelu::gpu as gelu;
use wgpu_cnn::ops::maxpool::gpu as maxpool;
use wgpu_cnn::ops::optimizer::gpu as adam;
use wgpu_cnn::ops::relu::gpu as relu;
use wgpu_cnn::ops::softmax_ce::gpu as softmax_ce;
use wgpu_cnn::ops::softmax_ce::gpu::SoftmaxCeBuffers;
use wgpu_cnn::ops::*;

/// f32 sums of up to a few hundred products of O(1) values against exact f64 sums.
const ATOL: f64 = 2e-5;
const RTOL: f64 = 1e-4;

fn read(gpu: &Gpu, b: &wgpu::Buffer) -> Vec<f32> {
    gpu.read_f32(b).expect("readback")
}

/// How many values of `a` and `b` differ in their bits.
fn bits_differ(a: &[f32], b: &[f32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(u, v)| u.to_bits() != v.to_bits())
        .count()
}

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

/// The default kernels: on a device with 8-wide subgroups (lavapipe) those of conv2d_sg.wgsl.
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
    // Every tile-computing entry point of the shader (all but the layout probe), read from
    // the shader itself so that a new one is covered or this fails.
    let source = wgpu_cnn::gpu::shaders::source("conv2d_sg").expect("conv2d_sg");
    let module = naga::front::wgsl::parse_str(source).expect("conv2d_sg parses");
    let all: Vec<String> = module
        .entry_points
        .iter()
        .map(|e| e.name.clone())
        .filter(|n| n != "subgroup_layout_probe")
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
            "conv2d_sg",
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
                "conv2d_sg",
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
            "conv2d_sg",
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

#[test]
fn avgpool_both_directions() {
    let Some(gpu) = gpu() else { return };
    // (n, h, w, c, k): odd sizes drop the last row/column, as Flax's VALID pooling.
    let square = [
        (3, 7, 7, 5, 2),
        (2, 8, 6, 3, 2),
        (1, 9, 10, 4, 3),
        (2, 4, 4, 1, 1),
        // k = 2, even sizes, C % 4 == 0: the straight-line vec4 backward.
        (3, 6, 4, 8, 2),
        (1, 2, 10, 4, 2),
    ]
    .map(|(n, h, w, c, k)| AvgPoolParams::new(n, h, w, c, k));
    // Overlapping (stride < window), gapped (stride > window), padded (SAME and asymmetric
    // explicit: padding counts as zeros, the divisor is the full window), rectangular.
    let general = [
        (2, 7, 7, 3, [3, 3], [2, 2], Padding::Same),
        (1, 8, 9, 4, [3, 2], [1, 1], Padding::Valid),
        (2, 6, 7, 5, [2, 2], [3, 3], Padding::Valid),
        (
            3,
            5,
            6,
            8,
            [2, 3],
            [2, 1],
            Padding::Explicit([[1, 0], [0, 2]]),
        ),
        (1, 9, 5, 2, [1, 1], [2, 2], Padding::Same),
        // global_avg_pool: the window is the whole (odd, rectangular) image, as the planner
        // lowers it; C % 4 == 0 and not.
        (3, 7, 5, 6, [7, 5], [7, 5], Padding::Valid),
        (2, 8, 8, 12, [8, 8], [8, 8], Padding::Valid),
        (3, 5, 9, 4, [5, 9], [5, 9], Padding::Valid),
        // Windows that tile the input (the straight-line vec4 backward), rectangular.
        (2, 6, 9, 8, [3, 3], [3, 3], Padding::Valid),
        (1, 4, 6, 4, [2, 3], [2, 3], Padding::Valid),
        // Stride = window but SAME pads bottom and right: the general kernel.
        (1, 5, 6, 4, [2, 3], [2, 3], Padding::Same),
    ]
    .map(|(n, h, w, c, k, s, pad)| AvgPoolParams::general(n, h, w, c, k, s, pad).unwrap());
    for (si, p) in square.into_iter().chain(general).enumerate() {
        let (n, h, w, c, k) = (p.n, p.h, p.w, p.c, p.kh);
        let what = format!(
            "avgpool n{n} h{h} w{w} c{c} k{}x{} s{}x{} pad t{} l{}",
            p.kh, p.kw, p.sh, p.sw, p.pad_t, p.pad_l
        );
        let mut r = rng(200 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let dy = uniform(&mut r, p.output_len(), 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (
            gpu.storage("y", p.output_len()),
            gpu.storage("dx", p.input_len()),
        );
        let f = avgpool::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = avgpool::backward(gpu, &p, (&dyb).into(), (&dxb).into());
        // x plays the ReLU output whose sign masks the fused backward.
        let dxrb = gpu.storage("dx_relu", p.input_len());
        let br = avgpool::backward_relu(gpu, &p, (&dyb).into(), (&xb).into(), (&dxrb).into());
        let k2 = p.is_k2() && k == 2 && h % 2 == 0 && w % 2 == 0 && c % 4 == 0;
        assert_eq!(br.entry == "avgpool_backward_relu_k2", k2, "{what}");
        // Windows that tile the input exactly, whole vec4s of channels (and not the k2 case).
        let tiles = p.sh == p.kh
            && p.sw == p.kw
            && p.pad_t == 0
            && p.pad_l == 0
            && h == p.out_h * p.kh
            && w == p.out_w * p.kw
            && c % 4 == 0;
        assert_eq!(b.entry == "avgpool_backward_disjoint", tiles, "{what}");
        assert_eq!(
            br.entry == "avgpool_backward_disjoint_relu",
            tiles && !k2,
            "{what}"
        );
        gpu.run(&[&f, &b, &br]).unwrap();
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_forward(&p, &to_f64(&x), &mut y);
        assert_close(&format!("{what} forward"), &read(gpu, &yb), &y, 1e-6, 1e-6);
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_backward(&p, &to_f64(&dy), &mut dx);
        assert_close(
            &format!("{what} backward"),
            &read(gpu, &dxb),
            &dx,
            1e-6,
            1e-6,
        );
        wgpu_cnn::ops::avgpool::cpu::avgpool_backward_relu(&p, &to_f64(&dy), &to_f64(&x), &mut dx);
        assert_close(
            &format!("{what} backward+relu"),
            &read(gpu, &dxrb),
            &dx,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn maxpool_both_directions() {
    let Some(gpu) = gpu() else { return };
    // Square and rectangular windows, overlapping (stride < window), gapped, SAME (−inf
    // padding), asymmetric explicit padding; odd sizes and channel counts.
    let cases = [
        (3, 7, 7, 5, [2, 2], [2, 2], Padding::Valid),
        (2, 8, 6, 3, [3, 3], [2, 2], Padding::Same),
        (1, 9, 10, 4, [3, 2], [1, 1], Padding::Valid),
        (2, 6, 7, 8, [2, 2], [3, 3], Padding::Valid),
        (
            3,
            5,
            6,
            2,
            [2, 3],
            [2, 1],
            Padding::Explicit([[1, 0], [0, 2]]),
        ),
        (1, 4, 4, 1, [1, 1], [1, 1], Padding::Valid),
    ];
    for (si, &(n, h, w, c, k, s, pad)) in cases.iter().enumerate() {
        let p = MaxPoolParams::general(n, h, w, c, k, s, pad).unwrap();
        let what = format!("maxpool n{n} h{h} w{w} c{c} k{k:?} s{s:?} {pad:?}");
        let mut r = rng(250 + si as u64);
        // Values from a small set: many ties, where the gradient rule (first maximum in
        // row-major window order) decides.
        let x: Vec<f32> = (0..p.input_len())
            .map(|_| r.random_range(-2i32..=2) as f32 * 0.5)
            .collect();
        let dy = uniform(&mut r, p.output_len(), 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, ab, dxb) = (
            gpu.storage("y", p.output_len()),
            gpu.storage("argmax", p.output_len()),
            gpu.storage("dx", p.input_len()),
        );
        let f = maxpool::forward(gpu, &p, (&xb).into(), (&yb).into(), (&ab).into());
        let b = maxpool::backward(gpu, &p, (&dyb).into(), (&ab).into(), (&dxb).into());
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::maxpool::cpu::maxpool_forward(&p, &to_f64(&x), &mut y);
        assert_close(&format!("{what} forward"), &read(gpu, &yb), &y, 0.0, 0.0);
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::maxpool::cpu::maxpool_backward(&p, &to_f64(&x), &to_f64(&dy), &mut dx);
        assert_close(
            &format!("{what} backward"),
            &read(gpu, &dxb),
            &dx,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn dropout_both_directions_draw_the_cpu_mask() {
    let Some(gpu) = gpu() else { return };
    for (si, &(len, rate, layer, seed, step)) in [
        (1usize, 0.5f32, 0u32, 0u32, 1u32),
        (1000, 0.25, 3, 42, 7),
        (4099, 0.9, 1, 7, 123_456),
        (777, 0.0, 2, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let p = DropoutParams::new(len as u32, rate, layer).at(seed, step);
        let mut r = rng(470 + si as u64);
        let x = uniform(&mut r, len, 2.0);
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, eb, dxb) = (
            gpu.storage("y", len),
            gpu.storage("y_eval", len),
            gpu.storage("dx", len),
        );
        let f = dropout::forward(gpu, &p, (&xb).into(), (&yb).into());
        let e = dropout::forward(gpu, &p.eval(), (&xb).into(), (&eb).into());
        let b = dropout::backward(gpu, &p, (&dyb).into(), (&dxb).into());
        gpu.run(&[&f, &e, &b]).unwrap();
        let what = format!("dropout {len} rate {rate}");
        // The same mask bit for bit: the products are exact in f32 and f64 alike.
        let mut y = vec![0.0f32; len];
        wgpu_cnn::ops::dropout::cpu::dropout_forward(&p, &x, &mut y);
        assert_eq!(read(gpu, &yb), y, "{what} forward");
        let mut dx = vec![0.0f32; len];
        wgpu_cnn::ops::dropout::cpu::dropout_backward(&p, &dy, &mut dx);
        assert_eq!(read(gpu, &dxb), dx, "{what} backward");
        assert_eq!(read(gpu, &eb), x, "{what} eval is the identity");
    }
}

#[test]
fn dropout_masks_have_the_rate_and_change_with_step_and_layer() {
    let n = 1_000_000u32;
    for rate in [0.1f32, 0.5, 0.9] {
        let p = DropoutParams::new(n, rate, 0).at(3, 1);
        let dropped = (0..n)
            .filter(|&i| !wgpu_cnn::ops::dropout::cpu::keep(&p, i))
            .count();
        let got = dropped as f64 / n as f64;
        assert!(
            (got - rate as f64).abs() < 0.01 * rate as f64,
            "rate {rate}: dropped {got}"
        );
        // Another step, layer or seed: an independent mask (agreement rate² + (1-rate)²).
        for q in [
            p.at(3, 2),
            DropoutParams::new(n, rate, 1).at(3, 1),
            p.at(4, 1),
        ] {
            let same = (0..n)
                .filter(|&i| {
                    wgpu_cnn::ops::dropout::cpu::keep(&p, i)
                        == wgpu_cnn::ops::dropout::cpu::keep(&q, i)
                })
                .count() as f64
                / n as f64;
            let want = (rate * rate + (1.0 - rate) * (1.0 - rate)) as f64;
            assert!(
                (same - want).abs() < 0.005,
                "rate {rate}: agreement {same} vs {want}"
            );
        }
    }
}

#[test]
fn gelu_both_directions() {
    let Some(gpu) = gpu() else { return };
    for (si, &len) in [1usize, 63, 1000, 4099].iter().enumerate() {
        let p = ElementwiseParams::new(len as u32);
        let mut r = rng(450 + si as u64);
        // Wide inputs: the tails (tanh saturating, large |x|) as well as the middle.
        let mut x = uniform(&mut r, len, 6.0);
        if len > 10 {
            x[0] = 60.0;
            x[1] = -60.0;
            x[2] = 0.0;
        }
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (gpu.storage("y", len), gpu.storage("dx", len));
        let f = gelu::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = gelu::backward(gpu, &p, (&dyb).into(), (&xb).into(), (&dxb).into());
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; len];
        wgpu_cnn::ops::gelu::cpu::gelu_forward(&to_f64(&x), &mut y);
        assert_close(
            &format!("gelu {len} forward"),
            &read(gpu, &yb),
            &y,
            1e-6,
            1e-5,
        );
        let mut dx = vec![0.0; len];
        wgpu_cnn::ops::gelu::cpu::gelu_backward(&to_f64(&dy), &to_f64(&x), &mut dx);
        assert_close(
            &format!("gelu {len} backward"),
            &read(gpu, &dxb),
            &dx,
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn dense_all_directions() {
    let Some(gpu) = gpu() else { return };
    dense_all_directions_on(gpu);
}

#[test]
fn dense_all_directions_tiled() {
    let Some(gpu) = gpu_tiled() else { return };
    dense_all_directions_on(gpu);
}

/// Dense layers as 1×1 convolutions through the workgroup-tiled kernels, any shape.
#[test]
fn dense_all_directions_wg() {
    let Some(gpu) = gpu_wg() else { return };
    dense_all_directions_on(gpu);
}

fn dense_all_directions_on(gpu: &Gpu) {
    for (si, &(m, k, n)) in [
        (1, 1, 1),
        (3, 7, 5),
        (5, 33, 17),
        (2, 130, 10),
        (9, 64, 31),
        // N % 4 == 0: the vec4 variants, partial 8-wide tiles included.
        (3, 7, 8),
        (5, 33, 12),
        (2, 130, 20),
        (9, 61, 4),
        // K·N % 64 == 0: dw and db share a buffer, as in the model (one subgroup kernel).
        (3, 64, 8),
        (5, 36, 16),
        (2, 32, 40),
    ]
    .iter()
    .enumerate()
    {
        // Every third shape without a bias.
        let has_bias = si % 3 != 1;
        let p = if has_bias {
            DenseParams::new(m, k, n)
        } else {
            DenseParams::new(m, k, n).without_bias()
        };
        let what = format!("dense m{m} k{k} n{n} bias {has_bias}");
        let mut r = rng(300 + si as u64);
        let (mu, ku, nu) = (m as usize, k as usize, n as usize);
        let x = uniform(&mut r, mu * ku, 1.0);
        let w = uniform(&mut r, ku * nu, 1.0);
        let b = uniform(&mut r, nu, 1.0);
        let dy = uniform(&mut r, mu * nu, 1.0);
        let (xb, wb, bb, dyb) = (
            gpu.storage_from("x", &x),
            gpu.storage_from("w", &w),
            gpu.storage_from("b", &b),
            gpu.storage_from("dy", &dy),
        );
        let (yb, dxb) = (gpu.storage("y", mu * nu), gpu.storage("dx", mu * ku));
        // db right after dw in one buffer where the 256-byte binding alignment allows.
        let shared = (ku * nu) % 64 == 0;
        let gb = gpu.storage("dw+db", ku * nu + if shared { nu } else { 0 });
        let dbb = gpu.storage_from("db", &vec![7.0f32; nu]);
        let partb = gpu.storage("partials", p.as_conv().partials_len());
        let (dw_s, db_s) = if shared {
            (
                BufSlice::elems(&gb, 0, ku * nu),
                BufSlice::elems(&gb, ku * nu, nu),
            )
        } else {
            (BufSlice::elems(&gb, 0, ku * nu), (&dbb).into())
        };
        let bias = has_bias.then(|| (&bb).into());
        let f = dense::forward(gpu, &p, (&xb).into(), (&wb).into(), bias, (&yb).into());
        let bi = dense::backward_input(gpu, &p, (&dyb).into(), (&wb).into(), (&dxb).into());
        let bw = dense::backward_weight(
            gpu,
            &p,
            (&xb).into(),
            (&dyb).into(),
            dw_s,
            has_bias.then_some(db_s),
            Some((&partb).into()),
        );
        if gpu.caps().workgroup_tiled() {
            assert!(
                f.entry.contains("_wg") && bi.entry.contains("_wg"),
                "{what}"
            );
            assert!(bw[0].entry.contains("_wg"), "{what}");
            assert_eq!(bw.len(), if shared || !has_bias { 1 } else { 2 });
        } else if gpu.subgroup_size == Some(8) && n % 4 == 0 {
            assert!(f.entry.contains("_sg"));
            // db after dw (or no db): one kernel; else split-K into scratch and a reduction.
            assert_eq!(bw.len(), if shared || !has_bias { 1 } else { 2 });
        }
        let yrb = gpu.storage("y_relu", mu * nu);
        let pr = p.with_relu();
        let fr = dense::forward(gpu, &pr, (&xb).into(), (&wb).into(), bias, (&yrb).into());
        let mut all = vec![&f, &fr, &bi];
        all.extend(bw.iter());
        gpu.run(&all).unwrap();
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
        let mut y = vec![0.0; mu * nu];
        wgpu_cnn::ops::dense::cpu::dense_forward(&p, &x64, &w64, &b64, &mut y);
        assert_close(&format!("{what} forward"), &read(gpu, &yb), &y, ATOL, RTOL);
        wgpu_cnn::ops::dense::cpu::dense_forward(&pr, &x64, &w64, &b64, &mut y);
        assert_close(
            &format!("{what} forward+relu"),
            &read(gpu, &yrb),
            &y,
            ATOL,
            RTOL,
        );
        let mut dx = vec![0.0; mu * ku];
        wgpu_cnn::ops::dense::cpu::dense_backward_input(&p, &dy64, &w64, &mut dx);
        assert_close(
            &format!("{what} backward_input"),
            &read(gpu, &dxb),
            &dx,
            ATOL,
            RTOL,
        );
        let (mut dw, mut db) = (vec![0.0; ku * nu], vec![0.0; nu]);
        wgpu_cnn::ops::dense::cpu::dense_backward_weight(&p, &x64, &dy64, &mut dw, &mut db);
        let g = read(gpu, &gb);
        assert_close(
            &format!("{what} backward_weight"),
            &g[..ku * nu],
            &dw,
            ATOL,
            RTOL,
        );
        let gdb = if shared {
            g[ku * nu..].to_vec()
        } else {
            read(gpu, &dbb)
        };
        if has_bias {
            assert_close(&format!("{what} backward_bias"), &gdb, &db, ATOL, RTOL);
        } else {
            let untouched = if shared { 0.0 } else { 7.0 };
            assert!(gdb.iter().all(|&v| v == untouched), "{what}: db written");
        }
    }
}

#[test]
fn relu_both_directions() {
    let Some(gpu) = gpu() else { return };
    // The last size needs more than 65,535 workgroups: the grid folds into y. Counts that are
    // a multiple of 4 (1000, 4096) take the vec4 entry points.
    for (si, &len) in [1usize, 63, 65, 1000, 4096, 65_535 * 64 + 7]
        .iter()
        .enumerate()
    {
        let p = ElementwiseParams::new(len as u32);
        let mut r = rng(400 + si as u64);
        let mut x = uniform(&mut r, len, 1.0);
        x[0] = 0.0; // the kink: gradient 0, as JAX
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (gpu.storage("y", len), gpu.storage("dx", len));
        let f = relu::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = relu::backward(gpu, &p, (&dyb).into(), (&yb).into(), (&dxb).into());
        for d in [&f, &b] {
            assert_eq!(d.entry.ends_with("_vec4"), len % 4 == 0, "{}", d.entry);
        }
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; len];
        wgpu_cnn::ops::relu::cpu::relu_forward(&to_f64(&x), &mut y);
        assert_close(
            &format!("relu n{len} forward"),
            &read(gpu, &yb),
            &y,
            0.0,
            0.0,
        );
        let mut dx = vec![0.0; len];
        wgpu_cnn::ops::relu::cpu::relu_backward(&to_f64(&dy), &y, &mut dx);
        assert_close(
            &format!("relu n{len} backward"),
            &read(gpu, &dxb),
            &dx,
            0.0,
            0.0,
        );
    }
}

#[test]
fn softmax_ce_forward_backward_reduce() {
    let Some(gpu) = gpu() else { return };
    // n > 256 exercises the strided part of the one-workgroup reduction.
    // Label smoothing (optax.smooth_labels) 0, 0.1 and 0.3.
    for (si, &(n, classes, alpha)) in [
        (1u32, 10u32, 0.0f32),
        (3, 10, 0.0),
        (300, 7, 0.0),
        (37, 1, 0.0),
        (3, 10, 0.1),
        (300, 7, 0.3),
        (37, 1, 0.1),
    ]
    .iter()
    .enumerate()
    {
        let p = SoftmaxCeParams::new(n, classes).with_smoothing(alpha);
        let what = format!("softmax_ce n{n} classes{classes} smoothing {alpha}");
        let mut r = rng(500 + si as u64);
        let logits = uniform(&mut r, (n * classes) as usize, 4.0);
        let labels: Vec<u32> = (0..n).map(|i| (i * 7 + si as u32) % classes).collect();
        let lb = gpu.storage_from("logits", &logits);
        let lab = gpu.storage_from("labels", &labels);
        let rows = gpu.storage("rows", 2 * n as usize);
        let stats = gpu.storage("stats", 3);
        let totals = gpu.storage("totals", 4);
        let dl = gpu.storage("dlogits", logits.len());
        let bufs = SoftmaxCeBuffers {
            logits: (&lb).into(),
            labels: (&lab).into(),
            row_stats: (&rows).into(),
            stats: (&stats).into(),
            totals: (&totals).into(),
        };
        let [fr, fred] = softmax_ce::forward(gpu, &p, &bufs);
        let [br, bred] = softmax_ce::backward(gpu, &p, &bufs, (&dl).into());
        // forward then backward: totals accumulate both batches.
        gpu.run(&[&fr, &fred]).unwrap();
        let fwd_stats = read(gpu, &stats);
        gpu.run(&[&br, &bred]).unwrap();
        let mut dlogits = vec![0.0; logits.len()];
        let (loss, correct) = wgpu_cnn::ops::softmax_ce::cpu::softmax_ce_backward(
            &p,
            &to_f64(&logits),
            &labels,
            &mut dlogits,
        );
        assert_close(
            &format!("{what} backward dlogits"),
            &read(gpu, &dl),
            &dlogits,
            1e-7,
            1e-5,
        );
        let s = read(gpu, &stats);
        assert_close(
            &format!("{what} forward loss"),
            &fwd_stats[..1],
            &[loss],
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{what} backward loss"),
            &s[..1],
            &[loss],
            1e-6,
            1e-5,
        );
        assert_eq!(
            fwd_stats[1], correct as f32,
            "{what}: forward correct count"
        );
        assert_eq!(s[1], correct as f32, "{what}: backward correct count");
        let t = read(gpu, &totals);
        assert_close(
            &format!("{what} totals"),
            &t,
            &[
                2.0 * loss * n as f64,
                2.0 * correct as f64,
                2.0 * n as f64,
                0.0,
            ],
            1e-4,
            1e-5,
        );
    }
}

#[test]
fn optimizers_match_their_cpu_twins() {
    let Some(gpu) = gpu() else { return };
    use wgpu_cnn::optim::{DecayMask, Kind, Optimizer};
    let adamw = Optimizer {
        kind: Kind::AdamW,
        b1: 0.8,
        b2: 0.99,
        eps: 1e-6,
        weight_decay: 0.05,
        decay_mask: DecayMask::Kernels,
        ..Optimizer::default()
    };
    let sgd = |momentum: f64, nesterov: bool, wd: f64| Optimizer {
        kind: Kind::Sgd,
        momentum,
        nesterov,
        weight_decay: wd,
        decay_mask: if wd > 0.0 {
            DecayMask::Kernels
        } else {
            DecayMask::All
        },
        ..Optimizer::default()
    };
    let cases = [
        ("adam", Optimizer::default()),
        ("adamw", adamw),
        ("sgd", sgd(0.0, false, 0.0)),
        ("sgd momentum", sgd(0.9, false, 0.0)),
        ("sgd nesterov", sgd(0.9, true, 0.0)),
        ("sgd nesterov decay", sgd(0.9, true, 0.01)),
    ];
    for (name, opt) in cases {
        // Unpadded buffers take the scalar entry points unless len % 4 == 0; buffers padded to
        // whole vec4s (as the model allocates them) take the vec4 ones, tails included.
        for (si, &len, padded) in [1usize, 7, 1000, 4099]
            .iter()
            .enumerate()
            .flat_map(|(si, len)| [(si, len, false), (si, len, true)])
        {
            let what = format!("{name} n{len}{}", if padded { " padded" } else { "" });
            let alen = if padded { adam::padded_len(len) } else { len };
            let mut r = rng(600 + si as u64);
            let param = uniform(&mut r, len, 1.0);
            // A mask of whole runs of 0 and 1, as kernels and biases alternate in the layout.
            let mask: Vec<f32> = (0..len).map(|i| ((i / 3) % 2) as f32).collect();
            let pad = |v: &[f32]| {
                let mut v = v.to_vec();
                v.resize(alen, 0.0);
                v
            };
            let (pb, gb) = (
                gpu.storage_from("param", &pad(&param)),
                gpu.storage("grad", alen),
            );
            let (mb, vb) = (gpu.storage("mu", alen), gpu.storage("nu", alen));
            let kb = gpu.storage_from("mask", &pad(&mask));
            let (mut p64, mut m64, mut v64) = (to_f64(&param), vec![0.0; len], vec![0.0; len]);
            let k64 = to_f64(&mask);
            for t in 1..=3 {
                // Gradients over many magnitudes, zero included.
                let mut g = uniform(&mut r, len, 1.0);
                for (i, v) in g.iter_mut().enumerate() {
                    *v *= 10f32.powi(i as i32 % 7 - 4);
                }
                g[0] = 0.0;
                gpu.queue.write_buffer(&gb, 0, bytemuck::cast_slice(&g));
                let ap = opt.params(len as u32, 1e-3, t);
                let d = adam::update(
                    gpu,
                    &ap,
                    &adam::OptimizerBuffers {
                        param: (&pb).into(),
                        grad: (&gb).into(),
                        mu: (&mb).into(),
                        nu: (&vb).into(),
                        mask: (&kb).into(),
                    },
                    opt.is_sgd(),
                );
                let vec4 = padded || len % 4 == 0;
                assert_eq!(d.entry.ends_with("_vec4"), vec4, "{what}: {}", d.entry);
                gpu.run(&[&d]).unwrap();
                if opt.is_sgd() {
                    wgpu_cnn::ops::optimizer::cpu::sgd_update(
                        &ap,
                        &mut p64,
                        &to_f64(&g),
                        &mut m64,
                        &k64,
                    );
                } else {
                    wgpu_cnn::ops::optimizer::cpu::adam_update(
                        &ap,
                        &mut p64,
                        &to_f64(&g),
                        &mut m64,
                        &mut v64,
                        &k64,
                    );
                }
            }
            assert_close(
                &format!("{what} param"),
                &read(gpu, &pb)[..len],
                &p64,
                1e-6,
                1e-6,
            );
            // mu and nu mix gradients of both signs (cancellation), so their error scales with
            // the gradient magnitude of each element, not with the result: compare them
            // normalised.
            let scale = |i: usize| 10f64.powi(i as i32 % 7 - 4);
            let norm = |v: &[f32], pow: i32| -> Vec<f32> {
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| (x as f64 / scale(i).powi(pow)) as f32)
                    .collect()
            };
            let norm64 = |v: &[f64], pow: i32| -> Vec<f64> {
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| x / scale(i).powi(pow))
                    .collect()
            };
            let pow = 1;
            assert_close(
                &format!("{what} mu"),
                &norm(&read(gpu, &mb)[..len], pow),
                &norm64(&m64, pow),
                1e-6,
                1e-5,
            );
            for (slot, b) in [("param", &pb), ("mu", &mb), ("nu", &vb)] {
                assert!(
                    read(gpu, b)[len..].iter().all(|&v| v == 0.0),
                    "{what}: the {slot} pads stay zero"
                );
            }
            if !opt.is_sgd() {
                assert_close(
                    &format!("{what} nu"),
                    &norm(&read(gpu, &vb)[..len], 2),
                    &norm64(&v64, 2),
                    1e-6,
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn slices_bind_tensors_inside_a_bigger_buffer() {
    // The model binds parameters at 256-byte offsets of one flat buffer; check an op reads and
    // writes exactly its slice.
    let Some(gpu) = gpu() else { return };
    let p = DenseParams::new(3, 5, 4);
    let mut r = rng(700);
    let x = uniform(&mut r, 15, 1.0);
    let w = uniform(&mut r, 20, 1.0);
    let mut flat = vec![9.0f32; 64 + 20 + 44 + 4];
    flat[64..84].copy_from_slice(&w);
    flat[128..132].fill(0.5);
    let fb = gpu.storage_from("flat", &flat);
    let xb = gpu.storage_from("x", &x);
    let out = gpu.storage_from("out", &[7.0f32; 64 + 12 + 4]);
    let f = dense::forward(
        gpu,
        &p,
        (&xb).into(),
        BufSlice::elems(&fb, 64, 20),
        Some(BufSlice::elems(&fb, 128, 4)),
        BufSlice::elems(&out, 64, 12),
    );
    gpu.run(&[&f]).unwrap();
    let got = read(gpu, &out);
    let mut y = vec![0.0; 12];
    wgpu_cnn::ops::dense::cpu::dense_forward(&p, &to_f64(&x), &to_f64(&w), &[0.5; 4], &mut y);
    assert_close("dense on slices", &got[64..76], &y, ATOL, RTOL);
    assert!(
        got[..64].iter().chain(&got[76..]).all(|&v| v == 7.0),
        "wrote outside its slice"
    );
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

#[test]
fn softmax_ce_reports_the_first_non_finite_batch() {
    let Some(gpu) = gpu() else { return };
    let p = SoftmaxCeParams::new(3, 10);
    let mut r = rng(510);
    let good = uniform(&mut r, 30, 2.0);
    let mut bad = good.clone();
    bad[17] = f32::NAN;
    let lb = gpu.storage_from("logits", &good);
    let lab = gpu.storage_from("labels", &[1u32, 2, 3]);
    let rows = gpu.storage("rows", 6);
    let stats = gpu.storage("stats", 3);
    let totals = gpu.storage("totals", 4);
    let dl = gpu.storage("dlogits", 30);
    let bufs = SoftmaxCeBuffers {
        logits: (&lb).into(),
        labels: (&lab).into(),
        row_stats: (&rows).into(),
        stats: (&stats).into(),
        totals: (&totals).into(),
    };
    let [a, b] = softmax_ce::backward(gpu, &p, &bufs, (&dl).into());
    for batch in [&good, &good, &bad, &good, &bad] {
        gpu.queue.write_buffer(&lb, 0, bytemuck::cast_slice(batch));
        gpu.run(&[&a, &b]).unwrap();
    }
    let t = read(gpu, &totals);
    assert_eq!(t[2], 15.0);
    assert_eq!(t[3], 3.0, "first bad batch is the third");
    assert!(t[0].is_nan());
}

#[test]
fn wgpu_validation_errors_surface_as_errors() {
    if gpu().is_none() {
        return;
    }
    // A device of its own: its errors must not reach the other tests' shared device.
    let own = Gpu::new(&wgpu_cnn::gpu::GpuOptions {
        adapter: std::env::var("WGPU_CNN_ADAPTER").ok(),
        ..Default::default()
    })
    .unwrap();
    let gpu = &own;
    let p = ElementwiseParams::new(8);
    let (x, y) = (gpu.storage("x", 8), gpu.storage("y", 8));
    let mut d = relu::forward(gpu, &p, (&x).into(), (&y).into());
    // More workgroups than WebGPU allows in one dimension: rejected by validation.
    d.workgroups = [70_000, 1, 1];
    let err = gpu
        .run(&[&d])
        .expect_err("an invalid dispatch must be an error");
    assert!(err.to_string().starts_with("GPU error"), "{err}");
    // The device stays usable afterwards.
    let ok = relu::forward(gpu, &p, (&x).into(), (&y).into());
    gpu.run(&[&ok]).unwrap();
}

/// Elements per 256-byte binding-offset step: per-channel tensors of one layer sit at multiples
/// of it inside shared buffers, as a model lays out its parameters.
const SLOT: usize = 64;

fn slot(n: usize) -> usize {
    n.div_ceil(SLOT) * SLOT
}

/// Two per-channel tensors of `c` values at offsets 0 and `slot(c)` of one buffer.
fn pair_buffer(gpu: &Gpu, label: &str, a: &[f32], b: &[f32]) -> wgpu::Buffer {
    let c = a.len();
    let mut flat = vec![7.0f32; 2 * slot(c)];
    flat[..c].copy_from_slice(a);
    flat[slot(c)..slot(c) + c].copy_from_slice(b);
    gpu.storage_from(label, &flat)
}

fn pair_slices(b: &wgpu::Buffer, c: usize) -> (BufSlice<'_>, BufSlice<'_>) {
    (BufSlice::elems(b, 0, c), BufSlice::elems(b, slot(c), c))
}

/// `data` at offset SLOT of a buffer whose other elements are 7.0.
fn guarded(gpu: &Gpu, label: &str, data: &[f32]) -> wgpu::Buffer {
    let mut flat = vec![7.0f32; SLOT + data.len() + SLOT];
    flat[SLOT..SLOT + data.len()].copy_from_slice(data);
    gpu.storage_from(label, &flat)
}

fn inner(b: &wgpu::Buffer, len: usize) -> BufSlice<'_> {
    BufSlice::elems(b, SLOT, len)
}

/// Reads `len` values at offset SLOT and checks the guard elements around them are untouched.
fn read_guarded(gpu: &Gpu, what: &str, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let all = read(gpu, b);
    assert!(
        all[..SLOT]
            .iter()
            .chain(&all[SLOT + len..])
            .all(|&v| v == 7.0),
        "{what}: wrote outside its slice"
    );
    all[SLOT..SLOT + len].to_vec()
}

/// Reads the two per-channel tensors of a `pair_buffer`, checking the padding is untouched.
fn read_pair(gpu: &Gpu, what: &str, b: &wgpu::Buffer, c: usize) -> (Vec<f32>, Vec<f32>) {
    let all = read(gpu, b);
    assert!(
        all[c..slot(c)]
            .iter()
            .chain(&all[slot(c) + c..])
            .all(|&v| v == 7.0),
        "{what}: wrote outside its slices"
    );
    (all[..c].to_vec(), all[slot(c)..slot(c) + c].to_vec())
}

/// Random batch-norm inputs: per-channel offsets and spreads (so means and variances differ by
/// channel), scale of both signs away from 0, bias, running statistics, dout.
struct BnInputs {
    x: Vec<f32>,
    scale: Vec<f32>,
    bias: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dout: Vec<f32>,
}

fn bn_inputs(p: &BatchNormParams, seed: u64) -> BnInputs {
    let mut r = rng(seed);
    let c = p.c as usize;
    let offset = uniform(&mut r, c, 2.0);
    let spread: Vec<f32> = (0..c).map(|_| r.random_range(0.5..2.0)).collect();
    let x = (0..p.count())
        .map(|i| offset[i % c] + spread[i % c] * r.random_range(-1.0f32..1.0))
        .collect();
    let scale = (0..c)
        .map(|_| {
            let v: f32 = r.random_range(0.5..1.5);
            if r.random_bool(0.3) {
                -v
            } else {
                v
            }
        })
        .collect();
    BnInputs {
        x,
        scale,
        bias: uniform(&mut r, c, 0.5),
        running_mean: uniform(&mut r, c, 1.0),
        running_var: (0..c).map(|_| r.random_range(0.5..1.5)).collect(),
        dout: uniform(&mut r, p.count(), 1.0),
    }
}

/// (rows, c): rows = N·H·W of NHWC activations and a flat [N, F] input; c = 1, odd, and
/// multiples of 4 (the vec4 kernels); several chunks with a short last one (969 rows), channels
/// enough that the chunk count is capped by the invocation target (300), and row counts that
/// are not multiples of the 8 rows each element-wise invocation covers.
const BN_SHAPES: &[(u32, u32)] = &[
    (2 * 5 * 7, 3),
    (2 * 5 * 7, 13),
    (2 * 5 * 7, 16),
    (2 * 5 * 7, 1),
    (9, 37),
    (3 * 17 * 19, 5),
    (2 * 8 * 8, 64),
    (4 * 3 * 3, 20),
    (2000, 300),
    // Fewer rows than an element-wise invocation covers (8).
    (3, 8),
    (5, 7),
];

#[test]
fn batchnorm_train_eval_backward() {
    let Some(gpu) = gpu() else { return };
    for (si, &(rows, c)) in BN_SHAPES.iter().enumerate() {
        for relu in [false, true] {
            let base = BatchNormParams::new(rows, c, 0.9, 1e-5);
            let p = if relu { base.with_relu() } else { base };
            let what = format!(
                "batchnorm rows{rows} c{c} relu {relu} (chunks {}x{})",
                p.chunks, p.chunk
            );
            let (n, cu) = (p.count(), c as usize);
            let inp = bn_inputs(&p, 800 + si as u64);
            let xb = guarded(gpu, "x", &inp.x);
            let dyb = gpu.storage_from("dout", &inp.dout);
            let yb = guarded(gpu, "y", &vec![0.0; n]);
            let yeb = guarded(gpu, "y_eval", &vec![0.0; n]);
            let dxb = guarded(gpu, "dx", &vec![0.0; n]);
            let savedb = guarded(gpu, "saved", &vec![0.0; 2 * cu]);
            let params = pair_buffer(gpu, "scale+bias", &inp.scale, &inp.bias);
            let stats = pair_buffer(gpu, "batch_stats", &inp.running_mean, &inp.running_var);
            let stats_eval = pair_buffer(gpu, "batch_stats", &inp.running_mean, &inp.running_var);
            let grads = pair_buffer(gpu, "dscale+dbias", &vec![0.0; cu], &vec![0.0; cu]);
            let partb = gpu.storage("partials", p.partials_len());
            let (scale, bias) = pair_slices(&params, cu);
            let (rm, rv) = pair_slices(&stats, cu);
            let (rme, rve) = pair_slices(&stats_eval, cu);
            let (dscale, dbias) = pair_slices(&grads, cu);
            let train = BatchNormBuffers {
                x: inner(&xb, n),
                residual: None,
                scale,
                bias,
                running_mean: rm,
                running_var: rv,
                y: inner(&yb, n),
            };
            let eval = BatchNormBuffers {
                running_mean: rme,
                running_var: rve,
                y: inner(&yeb, n),
                ..train
            };
            let fwd =
                batchnorm::forward_train(gpu, &p, &train, (&partb).into(), inner(&savedb, 2 * cu));
            let fe = batchnorm::forward_eval(gpu, &p, &eval);
            let bwd = batchnorm::backward(
                gpu,
                &p,
                &BatchNormBackwardBuffers {
                    dout: (&dyb).into(),
                    x: inner(&xb, n),
                    scale,
                    bias,
                    saved: inner(&savedb, 2 * cu),
                    dscale,
                    dbias,
                    dx: Some(inner(&dxb, n)),
                },
                (&partb).into(),
            );
            assert_eq!((fwd.len(), bwd.len()), (3, 3));
            assert_eq!(fwd[2].entry.ends_with("_vec4"), c % 4 == 0);
            assert_eq!(fe.entry.ends_with("_vec4"), c % 4 == 0);
            assert_eq!(bwd[2].entry.ends_with("_vec4"), c % 4 == 0);
            let all: Vec<&_> = fwd.iter().chain([&fe]).chain(&bwd).collect();
            gpu.run(&all).unwrap();

            let x64 = to_f64(&inp.x);
            let (scale64, bias64) = (to_f64(&inp.scale), to_f64(&inp.bias));
            let (mut rm64, mut rv64) = (to_f64(&inp.running_mean), to_f64(&inp.running_var));
            let mut saved = vec![0.0; 2 * cu];
            let mut y = vec![0.0; n];
            let mut ye = vec![0.0; n];
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                &p, &x64, &scale64, &bias64, &rm64, &rv64, &mut ye,
            );
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_train(
                &p, &x64, &scale64, &bias64, &mut rm64, &mut rv64, &mut saved, &mut y,
            );
            if relu {
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            }
            let got_saved = read_guarded(gpu, &what, &savedb, 2 * cu);
            assert_close(
                &format!("{what} mean"),
                &got_saved[..cu],
                &saved[..cu],
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("{what} invstd"),
                &got_saved[cu..],
                &saved[cu..],
                ATOL,
                RTOL,
            );
            let (grm, grv) = read_pair(gpu, &what, &stats, cu);
            assert_close(&format!("{what} running_mean"), &grm, &rm64, ATOL, RTOL);
            assert_close(&format!("{what} running_var"), &grv, &rv64, ATOL, RTOL);
            assert_close(
                &format!("{what} forward"),
                &read_guarded(gpu, &what, &yb, n),
                &y,
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("{what} forward_eval"),
                &read_guarded(gpu, &what, &yeb, n),
                &ye,
                ATOL,
                RTOL,
            );
            // Evaluation leaves the running statistics alone.
            let (erm, erv) = read_pair(gpu, &what, &stats_eval, cu);
            assert_eq!(
                (erm, erv),
                (inp.running_mean.clone(), inp.running_var.clone())
            );

            let (mut ds, mut db, mut dx) = (vec![0.0; cu], vec![0.0; cu], vec![0.0; n]);
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_backward(
                &p,
                &to_f64(&inp.dout),
                relu.then_some(&y[..]),
                &x64,
                &scale64,
                &saved,
                &mut ds,
                &mut db,
                Some(&mut dx),
            );
            // dscale and dbias sum `rows` terms: atol grows with √rows as for conv weights.
            let terms = (rows as f64).sqrt();
            let (gds, gdb) = read_pair(gpu, &what, &grads, cu);
            assert_close(&format!("{what} dscale"), &gds, &ds, ATOL * terms, RTOL);
            assert_close(&format!("{what} dbias"), &gdb, &db, ATOL * terms, RTOL);
            assert_close(
                &format!("{what} dx"),
                &read_guarded(gpu, &what, &dxb, n),
                &dx,
                ATOL,
                RTOL,
            );
        }
    }
}

/// Every output of a training step, bit for bit, over two runs on fresh buffers (no atomics,
/// fixed reduction order); and the backward without dx computes the same parameter gradients.
#[test]
fn batchnorm_is_deterministic() {
    let Some(gpu) = gpu() else { return };
    for (rows, c, relu) in [(5000u32, 13u32, false), (4096, 16, true)] {
        let base = BatchNormParams::new(rows, c, 0.99, 1e-5);
        let p = if relu { base.with_relu() } else { base };
        assert!(p.chunks > 100, "{p:?}");
        let (n, cu) = (p.count(), c as usize);
        let inp = bn_inputs(&p, 900 + c as u64);
        let run = |with_dx: bool| -> Vec<u32> {
            let xb = gpu.storage_from("x", &inp.x);
            let dyb = gpu.storage_from("dout", &inp.dout);
            let (scb, bib) = (
                gpu.storage_from("scale", &inp.scale),
                gpu.storage_from("bias", &inp.bias),
            );
            let rmb = gpu.storage_from("running_mean", &inp.running_mean);
            let rvb = gpu.storage_from("running_var", &inp.running_var);
            let (yb, dxb) = (gpu.storage("y", n), gpu.storage("dx", n));
            let savedb = gpu.storage("saved", 2 * cu);
            let grads = gpu.storage("grads", 2 * slot(cu));
            let partb = gpu.storage("partials", p.partials_len());
            let (dscale, dbias) = pair_slices(&grads, cu);
            let b = BatchNormBuffers {
                x: (&xb).into(),
                residual: None,
                scale: (&scb).into(),
                bias: (&bib).into(),
                running_mean: (&rmb).into(),
                running_var: (&rvb).into(),
                y: (&yb).into(),
            };
            let mut d = batchnorm::forward_train(gpu, &p, &b, (&partb).into(), (&savedb).into());
            let bwd = batchnorm::backward(
                gpu,
                &p,
                &BatchNormBackwardBuffers {
                    dout: (&dyb).into(),
                    x: (&xb).into(),
                    scale: (&scb).into(),
                    bias: (&bib).into(),
                    saved: (&savedb).into(),
                    dscale,
                    dbias,
                    dx: with_dx.then(|| (&dxb).into()),
                },
                (&partb).into(),
            );
            assert_eq!(bwd.len(), if with_dx { 3 } else { 2 });
            d.extend(bwd);
            gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
            let mut out = Vec::new();
            for b in [&savedb, &rmb, &rvb, &grads] {
                out.extend(read(gpu, b));
            }
            if with_dx {
                out.extend(read(gpu, &yb));
                out.extend(read(gpu, &dxb));
            }
            out.iter().map(|v| v.to_bits()).collect()
        };
        let (a, b) = (run(true), run(true));
        assert!(a == b, "batchnorm rows{rows} c{c}: two runs differ");
        let without_dx = run(false);
        assert_eq!(without_dx[..], a[..without_dx.len()]);
    }
}

/// Inputs with mean 100 and std 0.1: E[x²] − E[x]² in f32 loses every digit of the variance
/// (ulp(E[x²]) = ulp(10⁴) ≈ 1e-3 against var = 1e-2); the chunked two-pass + Chan combination
/// keeps it to ~1e-4 relative of the f64 variance of the same f32 inputs.
#[test]
fn batchnorm_variance_is_robust_to_a_large_mean() {
    let Some(gpu) = gpu() else { return };
    let (rows, c) = (4 * 32 * 32u32, 3u32);
    // momentum 0: the running statistics become exactly the batch mean and variance.
    let p = BatchNormParams::new(rows, c, 0.0, 1e-5);
    let (n, cu) = (p.count(), c as usize);
    let mut r = rng(950);
    // Uniform of half-width 0.1·√3: std 0.1.
    let x: Vec<f32> = (0..n)
        .map(|_| 100.0 + r.random_range(-0.173_205_08f32..0.173_205_08))
        .collect();
    let xb = gpu.storage_from("x", &x);
    let (scb, bib) = (
        gpu.storage_from("scale", &vec![1.0f32; cu]),
        gpu.storage("bias", cu),
    );
    let (rmb, rvb) = (
        gpu.storage("running_mean", cu),
        gpu.storage("running_var", cu),
    );
    let (yb, savedb) = (gpu.storage("y", n), gpu.storage("saved", 2 * cu));
    let partb = gpu.storage("partials", p.partials_len());
    let b = BatchNormBuffers {
        x: (&xb).into(),
        residual: None,
        scale: (&scb).into(),
        bias: (&bib).into(),
        running_mean: (&rmb).into(),
        running_var: (&rvb).into(),
        y: (&yb).into(),
    };
    let d = batchnorm::forward_train(gpu, &p, &b, (&partb).into(), (&savedb).into());
    gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();

    let x64 = to_f64(&x);
    let (mut rm, mut rv, mut saved, mut y) = (
        vec![0.0; cu],
        vec![0.0; cu],
        vec![0.0; 2 * cu],
        vec![0.0; n],
    );
    wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_train(
        &p, &x64, &[1.0; 3], &[0.0; 3], &mut rm, &mut rv, &mut saved, &mut y,
    );
    assert!(rv.iter().all(|&v| (v - 0.01).abs() < 1e-3), "{rv:?}");
    assert_close("mean-100 batch mean", &read(gpu, &rmb), &rm, 0.0, 1e-6);
    assert_close("mean-100 batch variance", &read(gpu, &rvb), &rv, 0.0, 1e-4);
    assert_close(
        "mean-100 invstd",
        &read(gpu, &savedb)[cu..],
        &saved[cu..],
        0.0,
        1e-4,
    );
    // The tolerance has teeth: the textbook one-pass formula in f32 misses by far more.
    for ch in 0..cu {
        let (mut s, mut s2) = (0.0f32, 0.0f32);
        for row in 0..rows as usize {
            let v = x[row * cu + ch];
            s += v;
            s2 += v * v;
        }
        let mean = s / rows as f32;
        let naive = s2 / rows as f32 - mean * mean;
        assert!(
            ((naive as f64 - rv[ch]) / rv[ch]).abs() > 1e-2,
            "E[x²] − E[x]² happened to be accurate ({naive} vs {})",
            rv[ch]
        );
    }
}

#[test]
fn add_with_and_without_relu() {
    let Some(gpu) = gpu() else { return };
    for (si, &len) in [1usize, 3, 63, 64, 1001, 4096, 4099].iter().enumerate() {
        for relu in [false, true] {
            let p = if relu {
                AddParams::new(len as u32).with_relu()
            } else {
                AddParams::new(len as u32)
            };
            let mut r = rng(980 + si as u64);
            let (a, b) = (uniform(&mut r, len, 1.0), uniform(&mut r, len, 1.0));
            let (ab, bb) = (guarded(gpu, "a", &a), gpu.storage_from("b", &b));
            let yb = guarded(gpu, "y", &vec![0.0; len]);
            let f = add::forward(gpu, &p, inner(&ab, len), (&bb).into(), inner(&yb, len));
            assert_eq!(f.entry.ends_with("_vec4"), len % 4 == 0);
            gpu.run(&[&f]).unwrap();
            let mut y = vec![0.0; len];
            wgpu_cnn::ops::add::cpu::add_forward(&p, &to_f64(&a), &to_f64(&b), &mut y);
            if relu && len > 10 {
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            }
            // One f32 rounding of the exact sum: half an ulp.
            let what = format!("add n{len} relu {relu}");
            assert_close(&what, &read_guarded(gpu, &what, &yb, len), &y, 0.0, 6e-8);
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

/// The vec4 statistics kernels (`batchnorm_stats_vec4`, `batchnorm_backward_stats_vec4`, with
/// and without the ReLU mask) write the scalar kernels' partial sums bit for bit: the same sums
/// in the same order, four channels per invocation.
#[test]
fn batchnorm_vec4_statistics_match_the_scalar_kernels_bitwise() {
    let Some(gpu) = gpu() else { return };
    for (si, &(rows, c)) in BN_SHAPES.iter().enumerate().filter(|(_, s)| s.1 % 4 == 0) {
        for relu in [false, true] {
            let bn = BatchNormParams::new(rows, c, 0.9, 1e-5);
            let p = if relu { bn.with_relu() } else { bn };
            let (n, cu) = (p.count(), c as usize);
            let inp = bn_inputs(&p, 2200 + si as u64);
            let xb = gpu.storage_from("x", &inp.x);
            let dyb = gpu.storage_from("dout", &inp.dout);
            let yb = gpu.storage("y", n);
            let params = pair_buffer(gpu, "scale+bias", &inp.scale, &inp.bias);
            let stats = pair_buffer(gpu, "stats", &inp.running_mean, &inp.running_var);
            let grads = pair_buffer(gpu, "grads", &vec![0.0; cu], &vec![0.0; cu]);
            let (scale, bias) = pair_slices(&params, cu);
            let (running_mean, running_var) = pair_slices(&stats, cu);
            let (dscale, dbias) = pair_slices(&grads, cu);
            let saved = gpu.storage("saved", 2 * cu);
            let parts: Vec<wgpu::Buffer> = (0..4)
                .map(|_| gpu.storage("partials", p.partials_len()))
                .collect();
            let fwd = batchnorm::forward_train(
                gpu,
                &p,
                &BatchNormBuffers {
                    x: (&xb).into(),
                    residual: None,
                    scale,
                    bias,
                    running_mean,
                    running_var,
                    y: (&yb).into(),
                },
                (&parts[0]).into(),
                (&saved).into(),
            );
            let bwd = batchnorm::backward(
                gpu,
                &p,
                &BatchNormBackwardBuffers {
                    dout: (&dyb).into(),
                    x: (&xb).into(),
                    scale,
                    bias,
                    saved: (&saved).into(),
                    dscale,
                    dbias,
                    dx: None,
                },
                (&parts[2]).into(),
            );
            assert_eq!(fwd[0].entry, "batchnorm_stats_vec4");
            assert_eq!(bwd[0].entry, "batchnorm_backward_stats_vec4");
            let u = gpu.uniform("p", &p);
            let threads = wgpu_cnn::gpu::dispatch::grid(p.chunks * p.c);
            let scalar_fwd = wgpu_cnn::gpu::Dispatch::new(
                gpu,
                "batchnorm",
                "batchnorm_stats",
                &u,
                &[(1, (&xb).into()), (4, (&parts[1]).into())],
                threads,
                0,
                0,
            );
            let scalar_bwd = wgpu_cnn::gpu::Dispatch::new(
                gpu,
                "batchnorm",
                "batchnorm_backward_stats",
                &u,
                &[
                    (10, (&dyb).into()),
                    (1, (&xb).into()),
                    (2, scale),
                    (3, bias),
                    (6, (&saved).into()),
                    (4, (&parts[3]).into()),
                ],
                threads,
                0,
                0,
            );
            // The forward's statistics, then both backward statistics from its outputs.
            let all: Vec<&_> = fwd
                .iter()
                .chain([&scalar_fwd, &bwd[0], &scalar_bwd])
                .collect();
            gpu.run(&all).unwrap();
            for (what, k) in [("forward", 0), ("backward", 2)] {
                let (a, b) = (read(gpu, &parts[k]), read(gpu, &parts[k + 1]));
                assert!(a.iter().any(|&v| v != 0.0));
                let differ = bits_differ(&a, &b);
                assert_eq!(
                    differ, 0,
                    "rows {rows} c {c} relu {relu} {what}: {differ} partials differ"
                );
            }
        }
    }
}

/// With the ReLU fused, the backward recomputes the ReLU's input from x instead of reading the
/// forward's output: its gradients equal, bit for bit, those of the plain backward fed the
/// gradient masked by the GPU forward's output (`relu_backward`), on every shape.
#[test]
fn batchnorm_backward_recomputes_the_forward_relu_mask_exactly() {
    let Some(gpu) = gpu() else { return };
    for (si, &(rows, c)) in BN_SHAPES.iter().enumerate() {
        let bn = BatchNormParams::new(rows, c, 0.9, 1e-5);
        let p = bn.with_relu();
        let (n, cu) = (p.count(), c as usize);
        let inp = bn_inputs(&p, 2300 + si as u64);
        let xb = gpu.storage_from("x", &inp.x);
        let dyb = gpu.storage_from("dout", &inp.dout);
        let (yb, masked) = (gpu.storage("y", n), gpu.storage("masked", n));
        let params = pair_buffer(gpu, "scale+bias", &inp.scale, &inp.bias);
        let stats = pair_buffer(gpu, "stats", &inp.running_mean, &inp.running_var);
        let (scale, bias) = pair_slices(&params, cu);
        let (running_mean, running_var) = pair_slices(&stats, cu);
        let saved = gpu.storage("saved", 2 * cu);
        let partb = gpu.storage("partials", p.partials_len().max(1));
        let grads: Vec<wgpu::Buffer> = (0..2).map(|_| gpu.storage("grads", 2 * slot(cu))).collect();
        let dxs: Vec<wgpu::Buffer> = (0..2).map(|_| gpu.storage("dx", n)).collect();
        let mut all = batchnorm::forward_train(
            gpu,
            &p,
            &BatchNormBuffers {
                x: (&xb).into(),
                residual: None,
                scale,
                bias,
                running_mean,
                running_var,
                y: (&yb).into(),
            },
            (&partb).into(),
            (&saved).into(),
        );
        all.push(relu::backward(
            gpu,
            &ElementwiseParams::new(n as u32),
            (&dyb).into(),
            (&yb).into(),
            (&masked).into(),
        ));
        for (k, (q, dout)) in [(p, &dyb), (bn, &masked)].into_iter().enumerate() {
            let (dscale, dbias) = pair_slices(&grads[k], cu);
            all.extend(batchnorm::backward(
                gpu,
                &q,
                &BatchNormBackwardBuffers {
                    dout: dout.into(),
                    x: (&xb).into(),
                    scale,
                    bias,
                    saved: (&saved).into(),
                    dscale,
                    dbias,
                    dx: Some((&dxs[k]).into()),
                },
                (&partb).into(),
            ));
        }
        gpu.run(&all.iter().collect::<Vec<_>>()).unwrap();
        let y = read(gpu, &yb);
        assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
        for (what, a, b) in [
            ("dscale, dbias", read(gpu, &grads[0]), read(gpu, &grads[1])),
            ("dx", read(gpu, &dxs[0]), read(gpu, &dxs[1])),
        ] {
            let differ = bits_differ(&a, &b);
            assert_eq!(
                differ, 0,
                "rows {rows} c {c} {what}: {differ} values differ"
            );
        }
    }
}

/// A residual's add fused into the batch norm that produces one operand
/// (`batchnorm_forward[_eval]_add[_vec4]`): against the CPU twin (batch norm, then the add with
/// its ReLU) and bit for bit against the unfused GPU pair (batch norm, then `add_forward`), in
/// training and evaluation, with and without the ReLU, on every batch-norm shape.
#[test]
fn batchnorm_with_fused_residual_add() {
    let Some(gpu) = gpu() else { return };
    for (si, &(rows, c)) in BN_SHAPES.iter().enumerate() {
        for relu in [false, true] {
            let bn = BatchNormParams::new(rows, c, 0.9, 1e-5);
            let p = if relu { bn.with_relu() } else { bn };
            let (n, cu) = (p.count(), c as usize);
            let addp = AddParams::new(n as u32);
            let addp = if relu { addp.with_relu() } else { addp };
            let what = format!("batchnorm + residual rows{rows} c{c} relu {relu}");
            let inp = bn_inputs(&p, 1900 + si as u64);
            let res = uniform(&mut rng(1950 + si as u64), n, 2.0);
            let xb = guarded(gpu, "x", &inp.x);
            let rb = guarded(gpu, "residual", &res);
            let params = pair_buffer(gpu, "scale+bias", &inp.scale, &inp.bias);
            let (scale, bias) = pair_slices(&params, cu);
            // [fused train, fused eval, unfused train, unfused eval]: each its own running
            // statistics (a training forward updates them).
            // Then the unfused batch norms' own outputs (train, eval).
            let outs: Vec<wgpu::Buffer> =
                (0..6).map(|_| guarded(gpu, "y", &vec![0.0; n])).collect();
            let stats: Vec<wgpu::Buffer> = (0..4)
                .map(|_| pair_buffer(gpu, "stats", &inp.running_mean, &inp.running_var))
                .collect();
            let saved: Vec<wgpu::Buffer> = (0..2).map(|_| gpu.storage("saved", 2 * cu)).collect();
            let partb = gpu.storage("partials", p.partials_len());
            let bufs = |k: usize, y: usize, residual: bool| {
                let (running_mean, running_var) = pair_slices(&stats[k], cu);
                BatchNormBuffers {
                    x: inner(&xb, n),
                    residual: residual.then(|| inner(&rb, n)),
                    scale,
                    bias,
                    running_mean,
                    running_var,
                    y: inner(&outs[y], n),
                }
            };
            let mut all = batchnorm::forward_train(
                gpu,
                &p,
                &bufs(0, 0, true),
                (&partb).into(),
                (&saved[0]).into(),
            );
            all.push(batchnorm::forward_eval(gpu, &p, &bufs(1, 1, true)));
            assert!(all[2].entry.contains("_add") && all[3].entry.contains("_eval_add"));
            assert_eq!(all[3].entry.ends_with("_vec4"), c % 4 == 0, "{what}");
            all.extend(batchnorm::forward_train(
                gpu,
                &bn,
                &bufs(2, 4, false),
                (&partb).into(),
                (&saved[1]).into(),
            ));
            all.push(batchnorm::forward_eval(gpu, &bn, &bufs(3, 5, false)));
            for k in 0..2 {
                all.push(add::forward(
                    gpu,
                    &addp,
                    inner(&outs[4 + k], n),
                    inner(&rb, n),
                    inner(&outs[2 + k], n),
                ));
            }
            gpu.run(&all.iter().collect::<Vec<_>>()).unwrap();

            let x64 = to_f64(&inp.x);
            let (scale64, bias64) = (to_f64(&inp.scale), to_f64(&inp.bias));
            let (mut rm, mut rv) = (to_f64(&inp.running_mean), to_f64(&inp.running_var));
            let (mut y, mut ye) = (vec![0.0; n], vec![0.0; n]);
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                &bn, &x64, &scale64, &bias64, &rm, &rv, &mut ye,
            );
            let mut sv = vec![0.0; 2 * cu];
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_train(
                &bn, &x64, &scale64, &bias64, &mut rm, &mut rv, &mut sv, &mut y,
            );
            let res64 = to_f64(&res);
            for (k, (mode, bn64)) in [("train", &y), ("eval", &ye)].into_iter().enumerate() {
                let mut want = vec![0.0; n];
                wgpu_cnn::ops::add::cpu::add_forward(&addp, bn64, &res64, &mut want);
                if relu {
                    assert!(want.contains(&0.0) && want.iter().any(|&v| v > 0.0));
                }
                let got = read_guarded(gpu, &what, &outs[k], n);
                assert_close(&format!("{what} {mode}"), &got, &want, ATOL, RTOL);
                let unfused = read_guarded(gpu, &what, &outs[2 + k], n);
                assert!(
                    bits_differ(&got, &unfused) == 0,
                    "{what} {mode}: fused and unfused differ in bits"
                );
            }
            // The fused forward updates the running statistics as the plain one does.
            assert_eq!(
                read_pair(gpu, &what, &stats[0], cu),
                read_pair(gpu, &what, &stats[2], cu)
            );
        }
    }
}

/// `add_relu_backward[_vec4]`: the sum of two gradients through a ReLU's backward, against the
/// CPU twin (add, then relu_backward) and bit for bit against the two GPU passes it replaces.
#[test]
fn add_relu_backward_matches_add_then_relu_backward() {
    let Some(gpu) = gpu() else { return };
    for (si, &len) in [1usize, 3, 63, 64, 1001, 4096, 4099].iter().enumerate() {
        let p = AddParams::new(len as u32);
        let mut r = rng(2000 + si as u64);
        let (a, b) = (uniform(&mut r, len, 1.0), uniform(&mut r, len, 1.0));
        // A ReLU's output: zeros and positive values.
        let out: Vec<f32> = uniform(&mut r, len, 1.0)
            .iter()
            .map(|v| v.max(0.0))
            .collect();
        let (ab, bb, ob) = (
            guarded(gpu, "a", &a),
            gpu.storage_from("b", &b),
            gpu.storage_from("out", &out),
        );
        let yb = guarded(gpu, "y", &vec![0.0; len]);
        let (sum, y2) = (gpu.storage("sum", len), gpu.storage("y2", len));
        let fused = add::relu_backward(
            gpu,
            &p,
            inner(&ab, len),
            (&bb).into(),
            (&ob).into(),
            inner(&yb, len),
        );
        assert_eq!(fused.entry.ends_with("_vec4"), len % 4 == 0);
        let plain = add::forward(gpu, &p, inner(&ab, len), (&bb).into(), (&sum).into());
        let mask = relu::backward(
            gpu,
            &ElementwiseParams::new(len as u32),
            (&sum).into(),
            (&ob).into(),
            (&y2).into(),
        );
        gpu.run(&[&fused, &plain, &mask]).unwrap();
        let mut s = vec![0.0; len];
        wgpu_cnn::ops::add::cpu::add_forward(&p, &to_f64(&a), &to_f64(&b), &mut s);
        let mut want = vec![0.0; len];
        wgpu_cnn::ops::relu::cpu::relu_backward(&s, &to_f64(&out), &mut want);
        let what = format!("add_relu_backward n{len}");
        let got = read_guarded(gpu, &what, &yb, len);
        if len > 10 {
            assert!(want.contains(&0.0) && want.iter().any(|&v| v != 0.0));
        }
        assert_close(&what, &got, &want, 0.0, 6e-8);
        let two = read(gpu, &y2);
        assert!(
            bits_differ(&got, &two) == 0,
            "{what}: fused and two-pass differ in bits"
        );
    }
}

/// optax.clip_by_global_norm on the flat gradient buffer vs the CPU twin: a norm above the
/// bound (scaled), one below (untouched, bit for bit); 300,000 values make 293 partial sums (the
/// strided part of the one-workgroup reduction).
#[test]
fn clip_by_global_norm_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    for (i, &(count, scale)) in [(5000u32, 0.5f64), (300_000, 0.5), (777, 2.0)]
        .iter()
        .enumerate()
    {
        let mut r = rng(2100 + i as u64);
        let g = uniform(&mut r, count as usize, 1.0);
        let norm64 = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let max = (norm64 * scale) as f32;
        let p = ClipParams::new(count, max);
        let gb = gpu.storage_from("grad", &g);
        let partials = gpu.storage("partials", p.chunks as usize);
        let norm = gpu.storage("norm", 1);
        let d = wgpu_cnn::ops::clip::gpu::clip_by_global_norm(
            gpu,
            &p,
            (&gb).into(),
            (&partials).into(),
            (&norm).into(),
        );
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        let mut want = vec![to_f64(&g)];
        let n = wgpu_cnn::ops::clip::cpu::clip_by_global_norm(&mut want, max as f64);
        let what = format!("clip count {count} max {scale}·norm");
        assert_close(&format!("{what} norm"), &read(gpu, &norm), &[n], 1e-6, 1e-6);
        let got = read(gpu, &gb);
        assert_close(&what, &got, &want[0], 1e-7, 1e-5);
        if scale > 1.0 {
            assert_eq!(
                got, g,
                "{what}: below the bound the gradients stay as they are"
            );
        }
    }
}

/// The Winograd F(4×4, 3×3) kernels (`winograd.wgsl` and the GEMMs of `conv2d_sg.wgsl`; devices
/// with 8-wide subgroups) in every direction against the direct CPU convolution, at shapes with
/// partial tiles at both edges, more than one 32-channel or 32-tile block, with and without
/// bias; the fused ReLU, 2×2 pool and ReLU mask against the CPU conv, ReLU and pool. Outputs
/// sit inside guarded buffers: nothing is written outside them.
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
