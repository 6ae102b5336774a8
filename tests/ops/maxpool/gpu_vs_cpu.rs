//! Max pooling against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use rand::Rng;
use wgpu_cnn::ops::maxpool::gpu as maxpool;
use wgpu_cnn::ops::*;

#[test]
fn maxpool_both_directions() {
    let Some(gpu) = gpu() else { return };
    // Square and rectangular windows, overlapping (stride < window), gapped, SAME (−inf
    // padding), asymmetric explicit padding; odd sizes and channel counts.
    let cases = [
        (3, 7, 7, 5, [2, 2], [2, 2], Padding::Valid),
        (2, 8, 6, 3, [3, 3], [2, 2], Padding::Same),
        (1, 9, 10, 4, [3, 2], [1, 1], Padding::Valid),
        (2, 6, 7, 8, [2, 2], [3, 3], Padding::Valid),
        (
            3,
            5,
            6,
            2,
            [2, 3],
            [2, 1],
            Padding::Explicit([[1, 0], [0, 2]]),
        ),
        (1, 4, 4, 1, [1, 1], [1, 1], Padding::Valid),
    ];
    for (si, &(n, h, w, c, k, s, pad)) in cases.iter().enumerate() {
        let p = MaxPoolParams::general(n, h, w, c, k, s, pad).unwrap();
        let what = format!("maxpool n{n} h{h} w{w} c{c} k{k:?} s{s:?} {pad:?}");
        let mut r = rng(250 + si as u64);
        // Values from a small set: many ties, where the gradient rule (first maximum in
        // row-major window order) decides.
        let x: Vec<f32> = (0..p.input_len())
            .map(|_| r.random_range(-2i32..=2) as f32 * 0.5)
            .collect();
        let dy = uniform(&mut r, p.output_len(), 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, ab, dxb) = (
            gpu.storage("y", p.output_len()),
            gpu.storage("argmax", p.output_len()),
            gpu.storage("dx", p.input_len()),
        );
        let f = maxpool::forward(gpu, &p, (&xb).into(), (&yb).into(), (&ab).into());
        let b = maxpool::backward(gpu, &p, (&dyb).into(), (&ab).into(), (&dxb).into());
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; p.output_len()];
        wgpu_cnn::ops::maxpool::cpu::maxpool_forward(&p, &to_f64(&x), &mut y);
        assert_close(&format!("{what} forward"), &read(gpu, &yb), &y, 0.0, 0.0);
        let mut dx = vec![0.0; p.input_len()];
        wgpu_cnn::ops::maxpool::cpu::maxpool_backward(&p, &to_f64(&x), &to_f64(&dy), &mut dx);
        assert_close(
            &format!("{what} backward"),
            &read(gpu, &dxb),
            &dx,
            1e-6,
            1e-6,
        );
    }
}
