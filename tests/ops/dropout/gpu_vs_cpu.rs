//! Dropout against its CPU twin.

use crate::common::{gpu, rng, uniform};
use crate::shared::read;
use wgpu_cnn::ops::dropout::gpu as dropout;
use wgpu_cnn::ops::*;

#[test]
fn dropout_both_directions_draw_the_cpu_mask() {
    let Some(gpu) = gpu() else { return };
    for (si, &(len, rate, layer, seed, step)) in [
        (1usize, 0.5f32, 0u32, 0u32, 1u32),
        (1000, 0.25, 3, 42, 7),
        (4099, 0.9, 1, 7, 123_456),
        (777, 0.0, 2, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let p = DropoutParams::new(len as u32, rate, layer).at(seed, step);
        let mut r = rng(470 + si as u64);
        let x = uniform(&mut r, len, 2.0);
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, eb, dxb) = (
            gpu.storage("y", len),
            gpu.storage("y_eval", len),
            gpu.storage("dx", len),
        );
        let f = dropout::forward(gpu, &p, (&xb).into(), (&yb).into());
        let e = dropout::forward(gpu, &p.eval(), (&xb).into(), (&eb).into());
        let b = dropout::backward(gpu, &p, (&dyb).into(), (&dxb).into());
        gpu.run(&[&f, &e, &b]).unwrap();
        let what = format!("dropout {len} rate {rate}");
        // The same mask bit for bit: the products are exact in f32 and f64 alike.
        let mut y = vec![0.0f32; len];
        wgpu_cnn::ops::dropout::cpu::dropout_forward(&p, &x, &mut y);
        assert_eq!(read(gpu, &yb), y, "{what} forward");
        let mut dx = vec![0.0f32; len];
        wgpu_cnn::ops::dropout::cpu::dropout_backward(&p, &dy, &mut dx);
        assert_eq!(read(gpu, &dxb), dx, "{what} backward");
        assert_eq!(read(gpu, &eb), x, "{what} eval is the identity");
    }
}

#[test]
fn dropout_masks_have_the_rate_and_change_with_step_and_layer() {
    let n = 1_000_000u32;
    for rate in [0.1f32, 0.5, 0.9] {
        let p = DropoutParams::new(n, rate, 0).at(3, 1);
        let dropped = (0..n)
            .filter(|&i| !wgpu_cnn::ops::dropout::cpu::keep(&p, i))
            .count();
        let got = dropped as f64 / n as f64;
        assert!(
            (got - rate as f64).abs() < 0.01 * rate as f64,
            "rate {rate}: dropped {got}"
        );
        // Another step, layer or seed: an independent mask (agreement rate² + (1-rate)²).
        for q in [
            p.at(3, 2),
            DropoutParams::new(n, rate, 1).at(3, 1),
            p.at(4, 1),
        ] {
            let same = (0..n)
                .filter(|&i| {
                    wgpu_cnn::ops::dropout::cpu::keep(&p, i)
                        == wgpu_cnn::ops::dropout::cpu::keep(&q, i)
                })
                .count() as f64
                / n as f64;
            let want = (rate * rate + (1.0 - rate) * (1.0 - rate)) as f64;
            assert!(
                (same - want).abs() < 0.005,
                "rate {rate}: agreement {same} vs {want}"
            );
        }
    }
}
