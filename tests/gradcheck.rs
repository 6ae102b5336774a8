//! Finite differences in f64 (central, step 1e-6) against every backward of the CPU reference,
//! then against the whole model's loss gradient at sampled entries of every parameter tensor.
//! Each op is checked through the scalar L = Σ out · r for a fixed random r, whose gradient
//! w.r.t. out is r.

mod common;

use common::{check_grad, rng};
use rand::Rng;
use wgpu_cnn::cpu;
use wgpu_cnn::cpu::reference;
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::ops::*;
use wgpu_cnn::plan::{Caps, Mode, Plan};

fn randn(r: &mut impl Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| r.random_range(-1.0..1.0)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let shapes = [
        (2, 5, 6, 3, 4, 3, Padding::Same),
        (1, 7, 5, 2, 3, 3, Padding::Valid),
        (2, 6, 6, 2, 2, 5, Padding::Same),
        (1, 8, 7, 3, 2, 5, Padding::Valid),
        (3, 4, 5, 3, 5, 1, Padding::Same),
    ];
    // Even and rectangular kernels, strides, asymmetric padding, no bias.
    let general = [
        (2, 7, 8, 3, 4, [2, 2], [1, 1], Padding::Same, true),
        (1, 9, 7, 2, 3, [4, 3], [2, 2], Padding::Same, false),
        (
            2,
            8,
            8,
            3,
            2,
            [3, 3],
            [2, 1],
            Padding::Explicit([[2, 0], [1, 3]]),
            true,
        ),
        (1, 11, 10, 2, 3, [5, 2], [3, 2], Padding::Valid, true),
    ]
    .map(|(n, h, w, c, o, k, s, pad, bias)| {
        let p = Conv2dParams::general(n, h, w, c, o, k, s, pad).unwrap();
        (if bias { p } else { p.without_bias() }, pad)
    });
    let all = shapes
        .map(|(n, h, w, c, o, k, pad)| (Conv2dParams::new(n, h, w, c, o, k, pad), pad))
        .into_iter()
        .chain(general);
    for (si, (p, pad)) in all.enumerate() {
        let (n, h, w, c, o) = (p.n, p.h, p.w, p.c, p.o);
        let what = format!(
            "conv2d n{n} h{h} w{w} c{c} o{o} k{}x{} s{}x{} {pad:?} bias {}",
            p.kh, p.kw, p.sh, p.sw, p.bias
        );
        let mut r = rng(1000 + si as u64);
        let mut x = randn(&mut r, p.input_len());
        let mut wt = randn(&mut r, p.weight_len());
        let mut b = randn(&mut r, o as usize);
        let dy = randn(&mut r, p.output_len());
        let mut y = vec![0.0; p.output_len()];
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_input(&p, &dy, &wt, &mut dx);
        let (mut dw, mut db) = (vec![0.0; p.weight_len()], vec![0.0; o as usize]);
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_weight(&p, &x, &dy, &mut dw, &mut db);

        let (w0, b0) = (wt.clone(), b.clone());
        check_grad(
            &format!("{what} dinput"),
            &mut x,
            &dx,
            40,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, x, &w0, &b0, &mut y);
                dot(&y, &dy)
            },
        );
        let x0 = x.clone();
        check_grad(
            &format!("{what} dweight"),
            &mut wt,
            &dw,
            40,
            &mut r,
            &mut |w| {
                wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x0, w, &b0, &mut y);
                dot(&y, &dy)
            },
        );
        if p.bias != 0 {
            check_grad(
                &format!("{what} dbias"),
                &mut b,
                &db,
                40,
                &mut r,
                &mut |b| {
                    wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x0, &w0, b, &mut y);
                    dot(&y, &dy)
                },
            );
        }
    }
}

#[test]
fn avgpool_backward_matches_finite_differences() {
    let general = [
        (2, 7, 7, 3, [3, 3], [2, 2], Padding::Same),
        (1, 8, 9, 2, [3, 2], [1, 1], Padding::Valid),
        (
            2,
            5,
            6,
            2,
            [2, 3],
            [2, 1],
            Padding::Explicit([[1, 0], [0, 2]]),
        ),
    ]
    .map(|(n, h, w, c, k, s, pad)| AvgPoolParams::general(n, h, w, c, k, s, pad).unwrap());
    let all = [(2, 7, 6, 3, 2), (1, 9, 9, 2, 3)]
        .map(|(n, h, w, c, k)| AvgPoolParams::new(n, h, w, c, k))
        .into_iter()
        .chain(general);
    for (si, p) in all.enumerate() {
        let (n, h, w, c, k) = (p.n, p.h, p.w, p.c, p.kh);
        let mut r = rng(1100 + si as u64);
        let mut x = randn(&mut r, p.input_len());
        let dy = randn(&mut r, p.output_len());
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_backward(&p, &dy, &mut dx);
        let mut y = vec![0.0; p.output_len()];
        check_grad(
            &format!("avgpool n{n} h{h} w{w} c{c} k{k} dinput"),
            &mut x,
            &dx,
            1000,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::avgpool::cpu::avgpool_forward(&p, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}

#[test]
fn maxpool_backward_matches_finite_differences() {
    // Continuous random inputs: no ties, so every window's maximum is unique and the gradient
    // is well defined (the tie rule is tested against the shader in gpu_vs_cpu).
    let cases = [
        (2, 7, 6, 3, [2, 2], [2, 2], Padding::Valid),
        (1, 8, 8, 2, [3, 3], [2, 2], Padding::Same),
        (
            2,
            5,
            6,
            2,
            [2, 3],
            [1, 2],
            Padding::Explicit([[1, 0], [0, 1]]),
        ),
    ];
    for (si, &(n, h, w, c, k, s, pad)) in cases.iter().enumerate() {
        let p = MaxPoolParams::general(n, h, w, c, k, s, pad).unwrap();
        let mut r = rng(1150 + si as u64);
        let mut x = randn(&mut r, p.input_len());
        let dy = randn(&mut r, p.output_len());
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::maxpool::cpu::maxpool_backward(&p, &x, &dy, &mut dx);
        let mut y = vec![0.0; p.output_len()];
        check_grad(
            &format!("maxpool n{n} h{h} w{w} c{c} k{k:?} s{s:?} {pad:?} dinput"),
            &mut x,
            &dx,
            1000,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::maxpool::cpu::maxpool_forward(&p, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}

#[test]
fn dropout_backward_matches_finite_differences() {
    let mut r = rng(1180);
    for (rate, step) in [(0.3f32, 1u32), (0.7, 9)] {
        let p = DropoutParams::new(300, rate, 2).at(5, step);
        let mut x = randn(&mut r, 300);
        let dy = randn(&mut r, 300);
        let mut dx = vec![0.0; 300];
        wgpu_cnn::ops::dropout::cpu::dropout_backward(&p, &dy, &mut dx);
        let mut y = vec![0.0; 300];
        check_grad(
            &format!("dropout {rate} dinput"),
            &mut x,
            &dx,
            300,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::dropout::cpu::dropout_forward(&p, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}

#[test]
fn gelu_backward_matches_finite_differences() {
    let mut r = rng(1170);
    let mut x: Vec<f64> = (0..200).map(|_| r.random_range(-5.0..5.0)).collect();
    let dy = randn(&mut r, x.len());
    let mut dx = vec![0.0; x.len()];
    wgpu_cnn::ops::gelu::cpu::gelu_backward(&dy, &x, &mut dx);
    let mut y = vec![0.0; x.len()];
    check_grad("gelu dinput", &mut x, &dx, 200, &mut r, &mut |x| {
        wgpu_cnn::ops::gelu::cpu::gelu_forward(x, &mut y);
        dot(&y, &dy)
    });
}

#[test]
fn dense_backward_matches_finite_differences() {
    for (si, &(m, k, n)) in [(3, 7, 5), (1, 13, 2), (4, 9, 11)].iter().enumerate() {
        let p = DenseParams::new(m, k, n);
        let what = format!("dense m{m} k{k} n{n}");
        let mut r = rng(1200 + si as u64);
        let (mu, ku, nu) = (m as usize, k as usize, n as usize);
        let mut x = randn(&mut r, mu * ku);
        let mut w = randn(&mut r, ku * nu);
        let mut b = randn(&mut r, nu);
        let dy = randn(&mut r, mu * nu);
        let mut dx = vec![0.0; mu * ku];
        wgpu_cnn::ops::dense::cpu::dense_backward_input(&p, &dy, &w, &mut dx);
        let (mut dw, mut db) = (vec![0.0; ku * nu], vec![0.0; nu]);
        wgpu_cnn::ops::dense::cpu::dense_backward_weight(&p, &x, &dy, &mut dw, &mut db);
        let mut y = vec![0.0; mu * nu];
        let (w0, b0) = (w.clone(), b.clone());
        check_grad(&format!("{what} dx"), &mut x, &dx, 200, &mut r, &mut |x| {
            wgpu_cnn::ops::dense::cpu::dense_forward(&p, x, &w0, &b0, &mut y);
            dot(&y, &dy)
        });
        let x0 = x.clone();
        check_grad(&format!("{what} dw"), &mut w, &dw, 200, &mut r, &mut |w| {
            wgpu_cnn::ops::dense::cpu::dense_forward(&p, &x0, w, &b0, &mut y);
            dot(&y, &dy)
        });
        check_grad(&format!("{what} db"), &mut b, &db, 200, &mut r, &mut |b| {
            wgpu_cnn::ops::dense::cpu::dense_forward(&p, &x0, &w0, b, &mut y);
            dot(&y, &dy)
        });
    }
}

#[test]
fn relu_backward_matches_finite_differences() {
    let mut r = rng(1300);
    // Away from the kink: |x| ≥ 0.1 ≫ the finite-difference step.
    let mut x: Vec<f64> = (0..101)
        .map(|_| {
            let v: f64 = r.random_range(0.1..1.0);
            if r.random_bool(0.5) {
                v
            } else {
                -v
            }
        })
        .collect();
    let dy = randn(&mut r, x.len());
    let mut y = vec![0.0; x.len()];
    wgpu_cnn::ops::relu::cpu::relu_forward(&x, &mut y);
    let mut dx = vec![0.0; x.len()];
    wgpu_cnn::ops::relu::cpu::relu_backward(&dy, &y, &mut dx);
    check_grad("relu dinput", &mut x, &dx, 1000, &mut r, &mut |x| {
        wgpu_cnn::ops::relu::cpu::relu_forward(x, &mut y);
        dot(&y, &dy)
    });
}

#[test]
fn softmax_ce_backward_matches_finite_differences() {
    for (si, &(n, classes, alpha)) in [
        (1u32, 10u32, 0.0f32),
        (5, 10, 0.0),
        (4, 3, 0.0),
        (5, 10, 0.1),
        (4, 3, 0.4),
    ]
    .iter()
    .enumerate()
    {
        let p = SoftmaxCeParams::new(n, classes).with_smoothing(alpha);
        let mut r = rng(1400 + si as u64);
        let mut logits: Vec<f64> = (0..n * classes)
            .map(|_| r.random_range(-3.0..3.0))
            .collect();
        let labels: Vec<u32> = (0..n).map(|_| r.random_range(0..classes)).collect();
        let mut dl = vec![0.0; logits.len()];
        wgpu_cnn::ops::softmax_ce::cpu::softmax_ce_backward(&p, &logits, &labels, &mut dl);
        check_grad(
            &format!("softmax_ce n{n} classes{classes} smoothing {alpha} dlogits"),
            &mut logits,
            &dl,
            1000,
            &mut r,
            &mut |l| wgpu_cnn::ops::softmax_ce::cpu::softmax_ce_forward(&p, l, &labels).0,
        );
    }
}

/// The whole model's loss gradient (the CPU reference of a plan, f64) against central
/// differences at sampled entries of every parameter tensor, and at each tensor's largest entry.
fn whole_model_fd(desc: &Description, n: u32, seed: u64) {
    let plan = Plan::new(desc, n, &Caps::gpu32(), Mode::Train).unwrap();
    let mut r = rng(seed);
    let mut params: Vec<Vec<f64>> = plan
        .layout
        .init(seed)
        .iter()
        .map(|t| cpu::cast(t))
        .collect();
    // Non-zero biases so their gradients are exercised away from the init.
    for (t, s) in params.iter_mut().zip(&plan.layout.specs) {
        if s.is_bias() {
            t.iter_mut().for_each(|v| *v = r.random_range(-0.1..0.1));
        }
    }
    let len = desc.input.iter().product::<u32>() as usize;
    let x = randn(&mut r, n as usize * len);
    let labels: Vec<u32> = (0..n).map(|i| (3 + 5 * i) % desc.classes).collect();
    let step = reference::loss_and_grads(&plan, &params, &x, &labels);
    assert!(step.loss.is_finite());
    let summary = desc.summary();
    for (i, spec) in plan.layout.specs.iter().enumerate() {
        let mut t = params[i].clone();
        let analytic = step.grads[i].clone();
        check_grad(
            &format!("{summary}: d{}", spec.name),
            &mut t,
            &analytic,
            6,
            &mut r,
            &mut |t| {
                let mut p = params.clone();
                p[i] = t.to_vec();
                reference::loss_in(&plan, &p, &x, &labels, reference::FIRST_STEP)
            },
        );
        // And the entry with the largest gradient, where a wrong factor shows most.
        let (imax, _) = analytic
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let fd = common::central_diff(&mut t, imax, 1e-6, &mut |t| {
            let mut p = params.clone();
            p[i] = t.to_vec();
            reference::loss_in(&plan, &p, &x, &labels, reference::FIRST_STEP)
        });
        let err = (fd - analytic[imax]).abs();
        assert!(
            err <= 1e-7 + 1e-5 * fd.abs(),
            "{summary}: d{}[{imax}]: fd {fd:e} vs {:e}",
            spec.name,
            analytic[imax]
        );
        params[i] = t;
    }
}

/// ResNet-20's structure in miniature (8x8 inputs, 4/8 channels, one block per stage): the
/// same kinds of layers and joins at a size finite differences afford.
const MINI_RESNET: &str = r#"
input = [8, 8, 3]
classes = 5
[[layer]]
type = "conv"
features = 4
kernel = 3
bias = false
[[layer]]
type = "batch_norm"
[[layer]]
type = "relu"
[[layer]]
type = "residual"
body = [ { type = "conv", features = 4, kernel = 3, bias = false }, { type = "batch_norm" }, { type = "relu" }, { type = "conv", features = 4, kernel = 3, bias = false }, { type = "batch_norm" } ]
[[layer]]
type = "relu"
[[layer]]
type = "residual"
body = [ { type = "conv", features = 8, kernel = 3, stride = 2, bias = false }, { type = "batch_norm", momentum = 0.5 }, { type = "relu" }, { type = "conv", features = 8, kernel = 3, bias = false }, { type = "batch_norm" } ]
shortcut = [ { type = "conv", features = 8, kernel = 1, stride = 2, bias = false }, { type = "batch_norm", epsilon = 1e-3 } ]
[[layer]]
type = "relu"
[[layer]]
type = "max_pool"
window = 2
[[layer]]
type = "global_avg_pool"
[[layer]]
type = "dense"
features = 5
"#;

#[test]
fn whole_model_loss_gradient_matches_finite_differences() {
    // The small presets whole; resnet20 and vgg11-bn (0.3 and 9 M parameters at 32x32) through
    // their miniature: the GPU-vs-CPU tests run the presets themselves.
    for name in ["flax-cifar10", "lenet5"] {
        whole_model_fd(&zoo::preset(name).unwrap(), 2, 1500);
    }
    whole_model_fd(&Description::parse(MINI_RESNET).unwrap(), 3, 1550);
    // Random descriptions: strides, even kernels, every padding, pools, no-bias layers.
    let mut r = rng(77);
    for i in 0..4 {
        whole_model_fd(&common::random_description(&mut r), 2, 1600 + i);
    }
}

/// Batch-norm inputs for the gradient check: per-channel offsets and spreads, scales of both
/// signs away from 0.
fn bn_inputs(r: &mut impl Rng, p: &BatchNormParams) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let c = p.c as usize;
    let offset = randn(r, c);
    let x = (0..p.count())
        .map(|i| 2.0 * offset[i % c] + r.random_range(-1.0..1.0) * (1.0 + (i % c) as f64 * 0.3))
        .collect();
    let scale = (0..c)
        .map(|ch| r.random_range(0.5..1.5) * if ch % 3 == 1 { -1.0 } else { 1.0 })
        .collect();
    (x, scale, randn(r, c))
}

/// Smallest |pre-activation| of a forward with the ReLU fused: the check stays away from the
/// kink when this is ≫ the step's effect on it (1e-6 · invstd · |scale|).
fn min_pre_relu(p: &BatchNormParams, y_plain: &[f64]) -> f64 {
    assert_eq!(p.relu, 0);
    y_plain
        .iter()
        .map(|v| v.abs())
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn batchnorm_train_backward_matches_finite_differences() {
    // (rows, c): NHWC rows 2·3·3 with 3 channels, a flat [N, F] input, one channel.
    for (si, &(rows, c)) in [(18u32, 3u32), (7, 5), (12, 1)].iter().enumerate() {
        for relu in [false, true] {
            let plain = BatchNormParams::new(rows, c, 0.9, 1e-5);
            let p = if relu { plain.with_relu() } else { plain };
            let what = format!("batchnorm train rows{rows} c{c} relu {relu}");
            let mut r = rng(1500 + si as u64);
            let (mut x, mut scale, mut bias) = bn_inputs(&mut r, &p);
            let w = randn(&mut r, p.count());
            let cu = c as usize;
            let forward = |p: &BatchNormParams, x: &[f64], s: &[f64], b: &[f64], y: &mut [f64]| {
                let (mut rm, mut rv, mut saved) = (vec![0.0; cu], vec![1.0; cu], vec![0.0; 2 * cu]);
                wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_train(
                    p, x, s, b, &mut rm, &mut rv, &mut saved, y,
                );
                saved
            };
            let mut y = vec![0.0; p.count()];
            let saved = forward(&p, &x, &scale, &bias, &mut y);
            if relu {
                let mut y_plain = vec![0.0; p.count()];
                forward(&plain, &x, &scale, &bias, &mut y_plain);
                let gap = min_pre_relu(&plain, &y_plain);
                assert!(
                    gap > 1e-3,
                    "{what}: a pre-activation at {gap:e}, too near the kink"
                );
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            }
            let (mut ds, mut db, mut dx) = (vec![0.0; cu], vec![0.0; cu], vec![0.0; p.count()]);
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_backward(
                &p,
                &w,
                relu.then_some(&y[..]),
                &x,
                &scale,
                &saved,
                &mut ds,
                &mut db,
                Some(&mut dx),
            );
            let mut yf = vec![0.0; p.count()];
            let (s0, b0) = (scale.clone(), bias.clone());
            check_grad(&format!("{what} dx"), &mut x, &dx, 1000, &mut r, &mut |x| {
                forward(&p, x, &s0, &b0, &mut yf);
                dot(&yf, &w)
            });
            let x0 = x.clone();
            check_grad(
                &format!("{what} dscale"),
                &mut scale,
                &ds,
                100,
                &mut r,
                &mut |s| {
                    forward(&p, &x0, s, &b0, &mut yf);
                    dot(&yf, &w)
                },
            );
            check_grad(
                &format!("{what} dbias"),
                &mut bias,
                &db,
                100,
                &mut r,
                &mut |b| {
                    forward(&p, &x0, &s0, b, &mut yf);
                    dot(&yf, &w)
                },
            );
        }
    }
}

#[test]
fn batchnorm_eval_backward_matches_finite_differences() {
    for (si, &(rows, c)) in [(18u32, 3u32), (7, 5)].iter().enumerate() {
        for relu in [false, true] {
            let plain = BatchNormParams::new(rows, c, 0.9, 1e-5);
            let p = if relu { plain.with_relu() } else { plain };
            let what = format!("batchnorm eval rows{rows} c{c} relu {relu}");
            let mut r = rng(1600 + si as u64);
            let (mut x, mut scale, mut bias) = bn_inputs(&mut r, &p);
            let cu = c as usize;
            let mean = randn(&mut r, cu);
            let var: Vec<f64> = (0..cu).map(|_| r.random_range(0.5..3.0)).collect();
            let w = randn(&mut r, p.count());
            let mut y = vec![0.0; p.count()];
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                &p, &x, &scale, &bias, &mean, &var, &mut y,
            );
            if relu {
                let mut y_plain = vec![0.0; p.count()];
                wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                    &plain,
                    &x,
                    &scale,
                    &bias,
                    &mean,
                    &var,
                    &mut y_plain,
                );
                let gap = min_pre_relu(&plain, &y_plain);
                assert!(
                    gap > 1e-3,
                    "{what}: a pre-activation at {gap:e}, too near the kink"
                );
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            }
            let (mut ds, mut db, mut dx) = (vec![0.0; cu], vec![0.0; cu], vec![0.0; p.count()]);
            wgpu_cnn::ops::batchnorm::cpu::batchnorm_backward_eval(
                &p,
                &w,
                relu.then_some(&y[..]),
                &x,
                &scale,
                &mean,
                &var,
                &mut ds,
                &mut db,
                &mut dx,
            );
            let mut yf = vec![0.0; p.count()];
            let (s0, b0) = (scale.clone(), bias.clone());
            check_grad(&format!("{what} dx"), &mut x, &dx, 1000, &mut r, &mut |x| {
                wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                    &p, x, &s0, &b0, &mean, &var, &mut yf,
                );
                dot(&yf, &w)
            });
            let x0 = x.clone();
            check_grad(
                &format!("{what} dscale"),
                &mut scale,
                &ds,
                100,
                &mut r,
                &mut |s| {
                    wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                        &p, &x0, s, &b0, &mean, &var, &mut yf,
                    );
                    dot(&yf, &w)
                },
            );
            check_grad(
                &format!("{what} dbias"),
                &mut bias,
                &db,
                100,
                &mut r,
                &mut |b| {
                    wgpu_cnn::ops::batchnorm::cpu::batchnorm_forward_eval(
                        &p, &x0, &s0, b, &mean, &var, &mut yf,
                    );
                    dot(&yf, &w)
                },
            );
        }
    }
}

#[test]
fn add_backward_is_dout_to_both_inputs() {
    // y = relu(a + b): dL/da = dL/db = dout·[y > 0]. Away from the kink.
    let p = AddParams::new(50).with_relu();
    let mut r = rng(1700);
    let mut a = randn(&mut r, 50);
    let b: Vec<f64> = a
        .iter()
        .map(|&v| {
            let t: f64 = r.random_range(0.1..1.0);
            (if r.random_bool(0.5) { t } else { -t }) - v
        })
        .collect();
    let w = randn(&mut r, 50);
    let mut y = vec![0.0; 50];
    wgpu_cnn::ops::add::cpu::add_forward(&p, &a, &b, &mut y);
    let mut da = vec![0.0; 50];
    wgpu_cnn::ops::relu::cpu::relu_backward(&w, &y, &mut da);
    check_grad("add+relu da", &mut a, &da, 50, &mut r, &mut |a| {
        wgpu_cnn::ops::add::cpu::add_forward(&p, a, &b, &mut y);
        dot(&y, &w)
    });
}
