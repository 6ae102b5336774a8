//! Reference for `adam.wgsl`: one optax.adam / adamw / sgd step, in place.

use super::LookaheadParams;
use crate::ops::AdamParams;
use crate::ops::Real;

/// `group`: per element its entry of `p.groups` (read when `p.masked = 1`).
pub fn adam_update<T: Real>(
    p: &AdamParams,
    param: &mut [T],
    grad: &[T],
    mu: &mut [T],
    nu: &mut [T],
    group: &[u32],
) {
    let (b1, b2, eps) = (T::of(p.b1 as f64), T::of(p.b2 as f64), T::of(p.eps as f64));
    let (bc1, bc2) = (T::of(p.bc1 as f64), T::of(p.bc2 as f64));
    let one = T::one();
    for i in 0..param.len() {
        let Some((lr, wd)) = entry::<T>(p, group, i) else {
            continue;
        };
        let g = grad[i];
        mu[i] = b1 * mu[i] + (one - b1) * g;
        nu[i] = b2 * nu[i] + (one - b2) * g * g;
        let u = (mu[i] / bc1) / ((nu[i] / bc2).sqrt() + eps) + wd * param[i];
        param[i] = param[i] - lr * u;
    }
}

/// SGD: `trace` is the momentum buffer.
pub fn sgd_update<T: Real>(
    p: &AdamParams,
    param: &mut [T],
    grad: &[T],
    trace: &mut [T],
    group: &[u32],
) {
    let m = T::of(p.momentum as f64);
    for i in 0..param.len() {
        let Some((lr, wd)) = entry::<T>(p, group, i) else {
            continue;
        };
        let g = grad[i] + wd * param[i];
        trace[i] = g + m * trace[i];
        let u = if p.nesterov != 0 {
            g + m * trace[i]
        } else {
            trace[i]
        };
        param[i] = param[i] - lr * u;
    }
}

/// Element i's learning rate and weight decay, `None` when its group is frozen. The products
/// are formed in f32 as the shader forms them (`p.lr * L`, `p.wd * D`).
fn entry<T: Real>(p: &AdamParams, group: &[u32], i: usize) -> Option<(T, T)> {
    let [l, d, frozen, _] = if p.masked != 0 {
        p.groups[group[i] as usize]
    } else {
        [1.0, 1.0, 0.0, 0.0]
    };
    (frozen == 0.0).then(|| (T::of((p.lr * l) as f64), T::of((p.wd * d) as f64)))
}

/// Reference for `lookahead_sync`: `slow = lerp(slow, fast, w)` as PyTorch's lerp (the form
/// chosen by `w < 0.5`, so both ends are exact), then `fast = slow`.
pub fn lookahead_sync<T: Real>(p: &LookaheadParams, slow: &mut [T], fast: &mut [T]) {
    let w = T::of(p.weight as f64);
    let one = T::one();
    for (s, f) in slow.iter_mut().zip(fast.iter_mut()) {
        let v = if p.weight < 0.5 {
            *s + w * (*f - *s)
        } else {
            *f - (*f - *s) * (one - w)
        };
        *s = v;
        *f = v;
    }
}
