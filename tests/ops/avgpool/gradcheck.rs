//! The CPU backward of average pooling against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use wgpu_cnn::ops::*;

#[test]
fn avgpool_backward_matches_finite_differences() {
    let general = [
        (2, 7, 7, 3, [3, 3], [2, 2], Padding::Same),
        (1, 8, 9, 2, [3, 2], [1, 1], Padding::Valid),
        (
            2,
            5,
            6,
            2,
            [2, 3],
            [2, 1],
            Padding::Explicit([[1, 0], [0, 2]]),
        ),
    ]
    .map(|(n, h, w, c, k, s, pad)| AvgPoolParams::general(n, h, w, c, k, s, pad).unwrap());
    let all = [(2, 7, 6, 3, 2), (1, 9, 9, 2, 3)]
        .map(|(n, h, w, c, k)| AvgPoolParams::new(n, h, w, c, k))
        .into_iter()
        .chain(general);
    for (si, p) in all.enumerate() {
        let (n, h, w, c, k) = (p.n, p.h, p.w, p.c, p.kh);
        let mut r = rng(1100 + si as u64);
        let mut x = randn(&mut r, p.input_len());
        let dy = randn(&mut r, p.output_len());
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_backward(&p, &dy, &mut dx);
        let mut y = vec![0.0; p.output_len()];
        check_grad(
            &format!("avgpool n{n} h{h} w{w} c{c} k{k} dinput"),
            &mut x,
            &dx,
            1000,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::avgpool::cpu::avgpool_forward(&p, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}
