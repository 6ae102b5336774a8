//! The CPU backward of dropout against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use wgpu_cnn::ops::*;

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
