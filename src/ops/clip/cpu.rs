//! Reference for `clip.wgsl`: optax.clip_by_global_norm over every gradient tensor.

use crate::ops::Real;

/// Scales `grads` in place to a global norm of at most `max_norm` (optax: `(g / norm) · max`
/// where `norm ≥ max`); returns the norm before clipping.
pub fn clip_by_global_norm<T: Real>(grads: &mut [Vec<T>], max_norm: T) -> T {
    let norm = grads
        .iter()
        .flatten()
        .map(|&g| g * g)
        .fold(T::zero(), |a, b| a + b)
        .sqrt();
    if norm >= max_norm {
        for g in grads.iter_mut().flatten() {
            *g = (*g / norm) * max_norm;
        }
    }
    norm
}
