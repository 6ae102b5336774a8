//! Average pooling against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::avgpool::gpu as avgpool;
use wgpu_cnn::ops::*;

#[test]
fn avgpool_both_directions() {
    let Some(gpu) = gpu() else { return };
    // (n, h, w, c, k): odd sizes drop the last row/column, as Flax's VALID pooling.
    let square = [
        (3, 7, 7, 5, 2),
        (2, 8, 6, 3, 2),
        (1, 9, 10, 4, 3),
        (2, 4, 4, 1, 1),
        // k = 2, even sizes, C % 4 == 0: the straight-line vec4 backward.
        (3, 6, 4, 8, 2),
        (1, 2, 10, 4, 2),
    ]
    .map(|(n, h, w, c, k)| AvgPoolParams::new(n, h, w, c, k));
    // Overlapping (stride < window), gapped (stride > window), padded (SAME and asymmetric
    // explicit: padding counts as zeros, the divisor is the full window), rectangular.
    let general = [
        (2, 7, 7, 3, [3, 3], [2, 2], Padding::Same),
        (1, 8, 9, 4, [3, 2], [1, 1], Padding::Valid),
        (2, 6, 7, 5, [2, 2], [3, 3], Padding::Valid),
        (
            3,
            5,
            6,
            8,
            [2, 3],
            [2, 1],
            Padding::Explicit([[1, 0], [0, 2]]),
        ),
        (1, 9, 5, 2, [1, 1], [2, 2], Padding::Same),
        // global_avg_pool: the window is the whole (odd, rectangular) image, as the planner
        // lowers it; C % 4 == 0 and not.
        (3, 7, 5, 6, [7, 5], [7, 5], Padding::Valid),
        (2, 8, 8, 12, [8, 8], [8, 8], Padding::Valid),
        (3, 5, 9, 4, [5, 9], [5, 9], Padding::Valid),
        // Windows that tile the input (the straight-line vec4 backward), rectangular.
        (2, 6, 9, 8, [3, 3], [3, 3], Padding::Valid),
        (1, 4, 6, 4, [2, 3], [2, 3], Padding::Valid),
        // Stride = window but SAME pads bottom and right: the general kernel.
        (1, 5, 6, 4, [2, 3], [2, 3], Padding::Same),
    ]
    .map(|(n, h, w, c, k, s, pad)| AvgPoolParams::general(n, h, w, c, k, s, pad).unwrap());
    for (si, p) in square.into_iter().chain(general).enumerate() {
        let (n, h, w, c, k) = (p.n, p.h, p.w, p.c, p.kh);
        let what = format!(
            "avgpool n{n} h{h} w{w} c{c} k{}x{} s{}x{} pad t{} l{}",
            p.kh, p.kw, p.sh, p.sw, p.pad_t, p.pad_l
        );
        let mut r = rng(200 + si as u64);
        let x = uniform(&mut r, p.input_len(), 1.0);
        let dy = uniform(&mut r, p.output_len(), 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (
            gpu.storage("y", p.output_len()),
            gpu.storage("dx", p.input_len()),
        );
        let f = avgpool::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = avgpool::backward(gpu, &p, (&dyb).into(), (&dxb).into());
        // x plays the ReLU output whose sign masks the fused backward.
        let dxrb = gpu.storage("dx_relu", p.input_len());
        let br = avgpool::backward_relu(gpu, &p, (&dyb).into(), (&xb).into(), (&dxrb).into());
        let k2 = p.is_k2() && k == 2 && h % 2 == 0 && w % 2 == 0 && c % 4 == 0;
        assert_eq!(br.entry == "avgpool_backward_relu_k2", k2, "{what}");
        // Windows that tile the input exactly, whole vec4s of channels (and not the k2 case).
        let tiles = p.sh == p.kh
            && p.sw == p.kw
            && p.pad_t == 0
            && p.pad_l == 0
            && h == p.out_h * p.kh
            && w == p.out_w * p.kw
            && c % 4 == 0;
        assert_eq!(b.entry == "avgpool_backward_disjoint", tiles, "{what}");
        assert_eq!(
            br.entry == "avgpool_backward_disjoint_relu",
            tiles && !k2,
            "{what}"
        );
        gpu.run(&[&f, &b, &br]).unwrap();
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_forward(&p, &to_f64(&x), &mut y);
        assert_close(&format!("{what} forward"), &read(gpu, &yb), &y, 1e-6, 1e-6);
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::avgpool::cpu::avgpool_backward(&p, &to_f64(&dy), &mut dx);
        assert_close(
            &format!("{what} backward"),
            &read(gpu, &dxb),
            &dx,
            1e-6,
            1e-6,
        );
        wgpu_cnn::ops::avgpool::cpu::avgpool_backward_relu(&p, &to_f64(&dy), &to_f64(&x), &mut dx);
        assert_close(
            &format!("{what} backward+relu"),
            &read(gpu, &dxrb),
            &dx,
            1e-6,
            1e-6,
        );
    }
}
