//! Reference for `adam.wgsl`: one optax.adam / adamw / sgd step, in place.

use crate::ops::AdamParams;
use crate::ops::Real;

/// `mask`: per element 0 or 1 (used when `p.masked = 1`).
pub fn adam_update<T: Real>(
    p: &AdamParams,
    param: &mut [T],
    grad: &[T],
    mu: &mut [T],
    nu: &mut [T],
    mask: &[T],
) {
    let (b1, b2, eps) = (T::of(p.b1 as f64), T::of(p.b2 as f64), T::of(p.eps as f64));
    let (bc1, bc2, lr) = (T::of(p.bc1 as f64), T::of(p.bc2 as f64), T::of(p.lr as f64));
    let one = T::one();
    for i in 0..param.len() {
        let g = grad[i];
        mu[i] = b1 * mu[i] + (one - b1) * g;
        nu[i] = b2 * nu[i] + (one - b2) * g * g;
        let u = (mu[i] / bc1) / ((nu[i] / bc2).sqrt() + eps) + decay(p, mask, i) * param[i];
        param[i] = param[i] - lr * u;
    }
}

/// SGD: `trace` is the momentum buffer.
pub fn sgd_update<T: Real>(
    p: &AdamParams,
    param: &mut [T],
    grad: &[T],
    trace: &mut [T],
    mask: &[T],
) {
    let (lr, m) = (T::of(p.lr as f64), T::of(p.momentum as f64));
    for i in 0..param.len() {
        let g = grad[i] + decay(p, mask, i) * param[i];
        trace[i] = g + m * trace[i];
        let u = if p.nesterov != 0 {
            g + m * trace[i]
        } else {
            trace[i]
        };
        param[i] = param[i] - lr * u;
    }
}

fn decay<T: Real>(p: &AdamParams, mask: &[T], i: usize) -> T {
    let wd = T::of(p.wd as f64);
    if p.masked != 0 {
        wd * mask[i]
    } else {
        wd
    }
}
