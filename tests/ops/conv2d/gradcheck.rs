//! The CPU backward of convolution against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use wgpu_cnn::ops::*;

#[test]
fn conv2d_backward_matches_finite_differences() {
    let shapes = [
        (2, 5, 6, 3, 4, 3, Padding::Same),
        (1, 7, 5, 2, 3, 3, Padding::Valid),
        (2, 6, 6, 2, 2, 5, Padding::Same),
        (1, 8, 7, 3, 2, 5, Padding::Valid),
        (3, 4, 5, 3, 5, 1, Padding::Same),
    ];
    // Even and rectangular kernels, strides, asymmetric padding, no bias.
    let general = [
        (2, 7, 8, 3, 4, [2, 2], [1, 1], Padding::Same, true),
        (1, 9, 7, 2, 3, [4, 3], [2, 2], Padding::Same, false),
        (
            2,
            8,
            8,
            3,
            2,
            [3, 3],
            [2, 1],
            Padding::Explicit([[2, 0], [1, 3]]),
            true,
        ),
        (1, 11, 10, 2, 3, [5, 2], [3, 2], Padding::Valid, true),
    ]
    .map(|(n, h, w, c, o, k, s, pad, bias)| {
        let p = Conv2dParams::general(n, h, w, c, o, k, s, pad).unwrap();
        (if bias { p } else { p.without_bias() }, pad)
    });
    let all = shapes
        .map(|(n, h, w, c, o, k, pad)| (Conv2dParams::new(n, h, w, c, o, k, pad), pad))
        .into_iter()
        .chain(general);
    for (si, (p, pad)) in all.enumerate() {
        let (n, h, w, c, o) = (p.n, p.h, p.w, p.c, p.o);
        let what = format!(
            "conv2d n{n} h{h} w{w} c{c} o{o} k{}x{} s{}x{} {pad:?} bias {}",
            p.kh, p.kw, p.sh, p.sw, p.bias
        );
        let mut r = rng(1000 + si as u64);
        let mut x = randn(&mut r, p.input_len());
        let mut wt = randn(&mut r, p.weight_len());
        let mut b = randn(&mut r, o as usize);
        let dy = randn(&mut r, p.output_len());
        let mut y = vec![0.0; p.output_len()];
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_input(&p, &dy, &wt, &mut dx);
        let (mut dw, mut db) = (vec![0.0; p.weight_len()], vec![0.0; o as usize]);
        wgpu_cnn::ops::conv2d::cpu::conv2d_backward_weight(&p, &x, &dy, &mut dw, &mut db);

        let (w0, b0) = (wt.clone(), b.clone());
        check_grad(
            &format!("{what} dinput"),
            &mut x,
            &dx,
            40,
            &mut r,
            &mut |x| {
                wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, x, &w0, &b0, &mut y);
                dot(&y, &dy)
            },
        );
        let x0 = x.clone();
        check_grad(
            &format!("{what} dweight"),
            &mut wt,
            &dw,
            40,
            &mut r,
            &mut |w| {
                wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x0, w, &b0, &mut y);
                dot(&y, &dy)
            },
        );
        if p.bias != 0 {
            check_grad(
                &format!("{what} dbias"),
                &mut b,
                &db,
                40,
                &mut r,
                &mut |b| {
                    wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x0, &w0, b, &mut y);
                    dot(&y, &dy)
                },
            );
        }
    }
}
