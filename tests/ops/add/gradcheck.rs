//! The CPU backward of the residual add against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use rand::Rng;
use wgpu_cnn::ops::*;

#[test]
fn add_backward_is_dout_to_both_inputs() {
    // y = relu(a + b): dL/da = dL/db = dout·[y > 0]. Away from the kink.
    let p = AddParams::new(50).with_relu();
    let mut r = rng(1700);
    let mut a = randn(&mut r, 50);
    let b: Vec<f64> = a
        .iter()
        .map(|&v| {
            let t: f64 = r.random_range(0.1..1.0);
            (if r.random_bool(0.5) { t } else { -t }) - v
        })
        .collect();
    let w = randn(&mut r, 50);
    let mut y = vec![0.0; 50];
    wgpu_cnn::ops::add::cpu::add_forward(&p, &a, &b, &mut y);
    let mut da = vec![0.0; 50];
    wgpu_cnn::ops::relu::cpu::relu_backward(&w, &y, &mut da);
    check_grad("add+relu da", &mut a, &da, 50, &mut r, &mut |a| {
        wgpu_cnn::ops::add::cpu::add_forward(&p, a, &b, &mut y);
        dot(&y, &w)
    });
}
