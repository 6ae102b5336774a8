//! The CPU backward of GELU (the tanh approximation and the exact form) against finite
//! differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use rand::Rng;

#[test]
fn gelu_backward_matches_finite_differences() {
    for approximate in [true, false] {
        let mut r = rng(1170);
        let mut x: Vec<f64> = (0..200).map(|_| r.random_range(-5.0..5.0)).collect();
        let dy = randn(&mut r, x.len());
        let mut dx = vec![0.0; x.len()];
        wgpu_cnn::ops::gelu::cpu::gelu_backward_as(approximate, &dy, &x, &mut dx);
        let mut y = vec![0.0; x.len()];
        let what = if approximate {
            "gelu dinput"
        } else {
            "exact gelu dinput"
        };
        check_grad(what, &mut x, &dx, 200, &mut r, &mut |x| {
            wgpu_cnn::ops::gelu::cpu::gelu_forward_as(approximate, x, &mut y);
            dot(&y, &dy)
        });
    }
}
