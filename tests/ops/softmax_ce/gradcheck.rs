//! The CPU backward of softmax cross-entropy against finite differences.

use crate::common::{check_grad, rng};
use rand::Rng;
use wgpu_cnn::ops::*;

#[test]
fn softmax_ce_backward_matches_finite_differences() {
    for (si, &(n, classes, alpha)) in [
        (1u32, 10u32, 0.0f32),
        (5, 10, 0.0),
        (4, 3, 0.0),
        (5, 10, 0.1),
        (4, 3, 0.4),
    ]
    .iter()
    .enumerate()
    {
        let p = SoftmaxCeParams::new(n, classes).with_smoothing(alpha);
        let mut r = rng(1400 + si as u64);
        let mut logits: Vec<f64> = (0..n * classes)
            .map(|_| r.random_range(-3.0..3.0))
            .collect();
        let labels: Vec<u32> = (0..n).map(|_| r.random_range(0..classes)).collect();
        let mut dl = vec![0.0; logits.len()];
        wgpu_cnn::ops::softmax_ce::cpu::softmax_ce_backward(&p, &logits, &labels, &mut dl);
        check_grad(
            &format!("softmax_ce n{n} classes{classes} smoothing {alpha} dlogits"),
            &mut logits,
            &dl,
            1000,
            &mut r,
            &mut |l| wgpu_cnn::ops::softmax_ce::cpu::softmax_ce_forward(&p, l, &labels).0,
        );
    }
}
