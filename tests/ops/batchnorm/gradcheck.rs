//! The CPU backward of batch norm (training and evaluation) against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use rand::Rng;
use wgpu_cnn::ops::*;

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
