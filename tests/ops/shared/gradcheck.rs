//! Helpers the finite-difference checks of several ops share.

use rand::Rng;

pub fn randn(r: &mut impl Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| r.random_range(-1.0..1.0)).collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
