//! Reference for `shaders/adam.wgsl`: one optax.adam step, in place.

use super::Real;
use crate::params::AdamParams;

pub fn adam_update<T: Real>(
    p: &AdamParams,
    param: &mut [T],
    grad: &[T],
    mu: &mut [T],
    nu: &mut [T],
) {
    let (b1, b2, eps) = (T::of(p.b1 as f64), T::of(p.b2 as f64), T::of(p.eps as f64));
    let (bc1, bc2, lr) = (T::of(p.bc1 as f64), T::of(p.bc2 as f64), T::of(p.lr as f64));
    let one = T::one();
    for i in 0..param.len() {
        let g = grad[i];
        mu[i] = b1 * mu[i] + (one - b1) * g;
        nu[i] = b2 * nu[i] + (one - b2) * g * g;
        param[i] = param[i] - lr * (mu[i] / bc1) / ((nu[i] / bc2).sqrt() + eps);
    }
}
