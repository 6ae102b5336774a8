//! The CPU backward of max pooling against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use wgpu_cnn::ops::*;

#[test]
fn maxpool_backward_matches_finite_differences() {
    // Continuous random inputs: no ties, so every window's maximum is unique and the gradient
    // is well defined (the tie rule is tested against the shader in gpu_vs_cpu).
    let cases = [
        (2, 7, 6, 3, [2, 2], [2, 2], Padding::Valid),
        (1, 8, 8, 2, [3, 3], [2, 2], Padding::Same),
        (
            2,
            5,
            6,
            2,
            [2, 3],
            [1, 2],
            Padding::Explicit([[1, 0], [0, 1]]),
        ),
    ];
    for (si, &(n, h, w, c, k, s, pad)) in cases.iter().enumerate() {
        let p = MaxPoolParams::general(n, h, w, c, k, s, pad).unwrap();
        let mut r = rng(1150 + si as u64);
        let mut x = randn(&mut r, p.input_len());
        let dy = randn(&mut r, p.output_len());
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::maxpool::cpu::maxpool_backward(&p, &x, &dy, &mut dx);
        let mut y = vec![0.0; p.output_len()];
        check_grad(
            &format!("maxpool n{n} h{h} w{w} c{c} k{k:?} s{s:?} {pad:?} dinput"),
            &mut x,
            &dx,
            1000,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::maxpool::cpu::maxpool_forward(&p, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}
