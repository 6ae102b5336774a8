//! The Winograd F(4×4, 3×3) convolution against the direct CPU one.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::{bits_differ, guarded, inner, read, read_guarded, ATOL, RTOL};
use rand::Rng;
use wgpu_cnn::ops::avgpool::gpu as avgpool;
use wgpu_cnn::ops::*;

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
