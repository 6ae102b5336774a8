//! Reference for `batchnorm.wgsl`: Flax `nn.BatchNorm` over `p.rows` rows of `p.c`
//! channels (`x[row·c + ch]`; NHWC has rows = N·H·W), M = rows.
//!   train:  mean, var = the batch mean and biased variance per channel (two passes: the
//!           variance is Σ (x − mean)² / M, never E[x²] − E[x]²; blocked sums); invstd = 1/√(var + ε);
//!           y = (x − mean)·(invstd·scale) + bias, max(y, 0) when `p.relu`;
//!           running = momentum·running + (1 − momentum)·batch (in place; 1 − momentum from
//!           the decimal momentum, as Flax computes it from the Python float);
//!           saved = [mean (c) | invstd (c)], kept for backward.
//!   eval:   the same with the running mean and variance, nothing updated.
//!   backward (train): g = dout·[relu_out > 0] when `relu_out` is given (the forward output with
//!           the ReLU fused), xhat = (x − mean)·invstd:
//!           dbias = Σ g, dscale = invstd·Σ g·(x − mean) (blocked sums), dx = scale·invstd·(g − dbias/M − xhat·dscale/M) (=).

use crate::ops::real::blocked_sum;
use crate::ops::BatchNormParams;
use crate::ops::Real;

fn relu_if<T: Real>(p: &BatchNormParams, v: T) -> T {
    if p.relu != 0 {
        v.max(T::zero())
    } else {
        v
    }
}

/// Training forward: batch statistics, output, running statistics and `saved` (=).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_train<T: Real>(
    p: &BatchNormParams,
    x: &[T],
    scale: &[T],
    bias: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
    saved: &mut [T],
    y: &mut [T],
) {
    let (rows, c) = (p.rows as usize, p.c as usize);
    let m = T::of(rows as f64);
    let momentum = T::of(super::decimal(p.momentum));
    let decay = T::of(1.0 - super::decimal(p.momentum));
    let eps = T::of(p.epsilon as f64);
    for ch in 0..c {
        let column = || (0..rows).map(|r| x[r * c + ch]);
        let mean = blocked_sum(column()) / m;
        let var = blocked_sum(column().map(|v| (v - mean) * (v - mean))) / m;
        let invstd = T::one() / (var + eps).sqrt();
        saved[ch] = mean;
        saved[c + ch] = invstd;
        running_mean[ch] = momentum * running_mean[ch] + decay * mean;
        running_var[ch] = momentum * running_var[ch] + decay * var;
        let mul = invstd * scale[ch];
        for r in 0..rows {
            let i = r * c + ch;
            y[i] = relu_if(p, (x[i] - mean) * mul + bias[ch]);
        }
    }
}

/// Evaluation forward with the running statistics `mean`, `var` (=).
pub fn batchnorm_forward_eval<T: Real>(
    p: &BatchNormParams,
    x: &[T],
    scale: &[T],
    bias: &[T],
    mean: &[T],
    var: &[T],
    y: &mut [T],
) {
    let c = p.c as usize;
    let eps = T::of(p.epsilon as f64);
    for (i, (o, &v)) in y[..p.count()].iter_mut().zip(x).enumerate() {
        let ch = i % c;
        let mul = T::one() / (var[ch] + eps).sqrt() * scale[ch];
        *o = relu_if(p, (v - mean[ch]) * mul + bias[ch]);
    }
}

/// The gradient that reaches the normalisation: `dout`, masked by `relu_out > 0` when given.
fn masked<T: Real>(dout: &[T], relu_out: Option<&[T]>, i: usize) -> T {
    match relu_out {
        Some(y) if y[i] > T::zero() => dout[i],
        Some(_) => T::zero(),
        None => dout[i],
    }
}

/// Training backward from `saved` = [mean | invstd]: `dscale`, `dbias` and, when asked, `dx` (=).
/// `relu_out` (the forward output) is given exactly when the forward fused the ReLU.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward<T: Real>(
    p: &BatchNormParams,
    dout: &[T],
    relu_out: Option<&[T]>,
    x: &[T],
    scale: &[T],
    saved: &[T],
    dscale: &mut [T],
    dbias: &mut [T],
    dx: Option<&mut [T]>,
) {
    assert_eq!(
        relu_out.is_some(),
        p.relu != 0,
        "batchnorm backward: relu_out must be given exactly when the ReLU is fused"
    );
    let (rows, c) = (p.rows as usize, p.c as usize);
    let m = T::of(rows as f64);
    for ch in 0..c {
        let (mean, invstd) = (saved[ch], saved[c + ch]);
        let g = |r: usize| masked(dout, relu_out, r * c + ch);
        dbias[ch] = blocked_sum((0..rows).map(g));
        dscale[ch] = blocked_sum((0..rows).map(|r| g(r) * (x[r * c + ch] - mean))) * invstd;
    }
    if let Some(dx) = dx {
        for (i, d) in dx[..p.count()].iter_mut().enumerate() {
            let ch = i % c;
            let (mean, invstd) = (saved[ch], saved[c + ch]);
            let xhat = (x[i] - mean) * invstd;
            let g = masked(dout, relu_out, i);
            *d = scale[ch] * invstd * (g - dbias[ch] / m - xhat * dscale[ch] / m);
        }
    }
}

/// Evaluation-mode backward (statistics held fixed: the running `mean`, `var`), for fine-tuning
/// with frozen statistics and for the gradient check: xhat = (x − mean)/√(var + ε),
/// dbias = Σ g, dscale = Σ g·xhat, dx = g·scale/√(var + ε) (=). No shader yet.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward_eval<T: Real>(
    p: &BatchNormParams,
    dout: &[T],
    relu_out: Option<&[T]>,
    x: &[T],
    scale: &[T],
    mean: &[T],
    var: &[T],
    dscale: &mut [T],
    dbias: &mut [T],
    dx: &mut [T],
) {
    assert_eq!(relu_out.is_some(), p.relu != 0);
    let c = p.c as usize;
    let eps = T::of(p.epsilon as f64);
    dscale[..c].fill(T::zero());
    dbias[..c].fill(T::zero());
    for (i, d) in dx[..p.count()].iter_mut().enumerate() {
        let ch = i % c;
        let invstd = T::one() / (var[ch] + eps).sqrt();
        let g = masked(dout, relu_out, i);
        dbias[ch] = dbias[ch] + g;
        dscale[ch] = dscale[ch] + g * (x[i] - mean[ch]) * invstd;
        *d = g * scale[ch] * invstd;
    }
}
