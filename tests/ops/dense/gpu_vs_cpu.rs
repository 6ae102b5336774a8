//! Dense layers against their CPU twin.

use crate::common::{assert_close, gpu, gpu_tiled, gpu_wg, rng, to_f64, uniform};
use crate::shared::{read, ATOL, RTOL};
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::dense::gpu as dense;
use wgpu_cnn::ops::*;

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
