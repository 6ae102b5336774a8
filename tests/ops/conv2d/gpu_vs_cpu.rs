//! Convolution (the direct kernels of every family) against its CPU twin. The subgroup
//! kernels' tile queue, variants and texture mirrors are tested in `subgroup.rs`, Winograd in
//! `winograd.rs`.

use crate::common::{assert_close, gpu, gpu_tiled, gpu_wg, rng, to_f64, uniform};
use crate::shared::{bits_differ, read, ATOL, RTOL};
use rand::Rng;
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::avgpool::gpu as avgpool;
use wgpu_cnn::ops::conv2d::gpu as conv2d;
use wgpu_cnn::ops::*;

/// (n, h, w, c, o, k, padding): odd sizes, K = 1, 3, 5, both paddings, several split-K splits.
pub const CONV_SHAPES: &[(u32, u32, u32, u32, u32, u32, Padding)] = &[
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
pub type ConvCase = (u32, u32, u32, u32, u32, [u32; 2], [u32; 2], Padding, bool);

pub const CONV_GENERAL: &[ConvCase] = &[
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
