//! Batch norm (with its fused ReLU and residual add) against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::{bits_differ, guarded, inner, read, read_guarded, slot, ATOL, RTOL};
use rand::Rng;
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::add::gpu as add;
use wgpu_cnn::ops::batchnorm::gpu as batchnorm;
use wgpu_cnn::ops::batchnorm::gpu::{BatchNormBackwardBuffers, BatchNormBuffers};
use wgpu_cnn::ops::relu::gpu as relu;
use wgpu_cnn::ops::*;

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

/// The reductions of batch norm at a realistic length (131,072 rows: ResNet-20's first stage at
/// batch 128) on hard inputs, against float64 of the same f32 inputs: the batch mean and
/// variance of x = 100 ± 0.1 (|mean| ≫ std), and the backward's Σ g and Σ g·(x − mean) for a g
/// of mixed signs that cancel (|Σ g| ≪ Σ |g|). The bounds are a few units of rounding of the
/// result's natural scale; a serial f32 sum over the rows (the CPU twin before the blocked
/// sums) misses each by far more, so they have teeth. Scalar (c = 3) and vec4 (c = 4) kernels.
#[test]
fn batchnorm_reductions_over_131k_rows_stay_near_float64() {
    let Some(gpu) = gpu() else { return };
    let rows = 128 * 32 * 32u32;
    for c in [3u32, 4] {
        let p = BatchNormParams::new(rows, c, 0.0, 1e-5);
        let (n, cu) = (p.count(), c as usize);
        let mut r = rng(131 + c as u64);
        let x: Vec<f32> = (0..n)
            .map(|_| 100.0 + r.random_range(-0.173_205_08f32..0.173_205_08))
            .collect();
        // g = 10·(x − 100) + noise: mixed signs that cancel in Σ g (~1e-2 of Σ |g|), and
        // g·(x − mean) mostly positive, whose serial sum drifts with its growing partials.
        let g: Vec<f32> = x
            .iter()
            .map(|&v| 10.0 * (v - 100.0) + r.random_range(-1.0f32..1.01))
            .collect();
        let ones = vec![1.0f32; cu];
        let (xb, gb) = (gpu.storage_from("x", &x), gpu.storage_from("g", &g));
        let (scb, bib) = (gpu.storage_from("scale", &ones), gpu.storage("bias", cu));
        let (rmb, rvb) = (gpu.storage("rm", cu), gpu.storage("rv", cu));
        let (yb, savedb) = (gpu.storage("y", n), gpu.storage("saved", 2 * cu));
        let (dsb, dbb) = (gpu.storage("dscale", cu), gpu.storage("dbias", cu));
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
        let mut d = batchnorm::forward_train(gpu, &p, &b, (&partb).into(), (&savedb).into());
        let bb = BatchNormBackwardBuffers {
            dout: (&gb).into(),
            x: (&xb).into(),
            scale: (&scb).into(),
            bias: (&bib).into(),
            saved: (&savedb).into(),
            dscale: (&dsb).into(),
            dbias: (&dbb).into(),
            dx: None,
        };
        d.extend(batchnorm::backward(gpu, &p, &bb, (&partb).into()));
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        let (mean, var) = (read(gpu, &rmb), read(gpu, &rvb));
        let saved = read(gpu, &savedb);
        let (ds, db) = (read(gpu, &dsb), read(gpu, &dbb));
        let col = |v: &[f32], ch: usize| -> Vec<f64> {
            (0..rows as usize).map(|i| v[i * cu + ch] as f64).collect()
        };
        let serial = |v: &[f32], ch: usize, f: &dyn Fn(usize, f32) -> f32| -> f64 {
            let mut s = 0.0f32;
            for i in 0..rows as usize {
                s += f(i, v[i * cu + ch]);
            }
            s as f64
        };
        let m = rows as f64;
        // Per quantity: the worst channel's error of the kernels and of a serial f32 sum.
        let (mut worst, mut worst_serial) = ([0.0f64; 3], [0.0f64; 3]);
        for ch in 0..cu {
            let (xc, gc) = (col(&x, ch), col(&g, ch));
            let mean64 = xc.iter().sum::<f64>() / m;
            let var64 = xc.iter().map(|v| (v - mean64).powi(2)).sum::<f64>() / m;
            // Variance (centred): 1e-6 relative.
            let e_var = ((var[ch] as f64 - var64) / var64).abs();
            assert!(
                e_var <= 1e-6,
                "c{c} ch{ch}: variance {} vs {var64}",
                var[ch]
            );
            let sg64: f64 = gc.iter().sum();
            let abs_g: f64 = gc.iter().map(|v| v.abs()).sum();
            // The backward centres on the f32 mean it saved: the reference does too.
            let sm = saved[ch];
            let xm: Vec<f64> = xc.iter().map(|x| x - sm as f64).collect();
            let sgx64: f64 = gc.iter().zip(&xm).map(|(g, x)| g * x).sum();
            let abs_gx: f64 = gc.iter().zip(&xm).map(|(g, x)| (g * x).abs()).sum();
            let errs = [
                (mean[ch] as f64 - mean64).abs() / mean64,
                (db[ch] as f64 - sg64).abs() / abs_g,
                (ds[ch] as f64 / saved[cu + ch] as f64 - sgx64).abs() / abs_gx,
            ];
            let serials = [
                (serial(&x, ch, &|_, v| v) / m - mean64).abs() / mean64,
                (serial(&g, ch, &|_, v| v) - sg64).abs() / abs_g,
                (serial(&g, ch, &|i, v| v * (x[i * cu + ch] - sm)) - sgx64).abs() / abs_gx,
            ];
            for k in 0..3 {
                worst[k] = worst[k].max(errs[k]);
                worst_serial[k] = worst_serial[k].max(serials[k]);
            }
        }
        // Bounds (measured: 1.6e-7, 5e-10, 2e-7; a serial sum 2e-6, 5e-8, 1.4e-5): the mean
        // of x = 100 ± 0.1 relative to itself; Σ g (cancelling) and Σ g·(x − mean) (drifting)
        // relative to the sum of their terms' magnitudes.
        let names = ["batch mean", "Σ g", "Σ g·(x − mean)"];
        for (k, bound) in [2.5e-7, 2e-9, 1e-6].into_iter().enumerate() {
            assert!(
                worst[k] <= bound,
                "c{c}: {} off by {:.2e} (bound {bound:.0e})",
                names[k],
                worst[k]
            );
            assert!(
                worst_serial[k] > 4.0 * bound,
                "c{c}: a serial f32 {} was within 4× the bound ({:.2e}): the bound has no teeth",
                names[k],
                worst_serial[k]
            );
        }
    }
}
