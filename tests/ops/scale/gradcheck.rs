//! The CPU backward of the constant scale against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use wgpu_cnn::ops::ScaleParams;

#[test]
fn scale_backward_matches_finite_differences() {
    let mut r = rng(1180);
    for factor in [1.0f32 / 9.0, -3.0] {
        let mut x = randn(&mut r, 50);
        let p = ScaleParams::new(x.len() as u32, factor);
        let dy = randn(&mut r, x.len());
        let mut dx = vec![0.0; x.len()];
        wgpu_cnn::ops::scale::cpu::scale_backward(&p, &dy, &mut dx);
        let mut y = vec![0.0; x.len()];
        check_grad(
            &format!("scale x{factor} dinput"),
            &mut x,
            &dx,
            50,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::scale::cpu::scale_forward(&p, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}
