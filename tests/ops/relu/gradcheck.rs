//! The CPU backward of ReLU against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use rand::Rng;

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
