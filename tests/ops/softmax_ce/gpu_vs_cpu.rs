//! Softmax cross-entropy against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::softmax_ce::gpu as softmax_ce;
use wgpu_cnn::ops::softmax_ce::gpu::SoftmaxCeBuffers;
use wgpu_cnn::ops::*;

#[test]
fn softmax_ce_forward_backward_reduce() {
    let Some(gpu) = gpu() else { return };
    // n > 256 exercises the strided part of the one-workgroup reduction.
    // Label smoothing (optax.smooth_labels) 0, 0.1 and 0.3.
    for (si, &(n, classes, alpha)) in [
        (1u32, 10u32, 0.0f32),
        (3, 10, 0.0),
        (300, 7, 0.0),
        (37, 1, 0.0),
        (3, 10, 0.1),
        (300, 7, 0.3),
        (37, 1, 0.1),
    ]
    .iter()
    .enumerate()
    {
        let p = SoftmaxCeParams::new(n, classes).with_smoothing(alpha);
        let what = format!("softmax_ce n{n} classes{classes} smoothing {alpha}");
        let mut r = rng(500 + si as u64);
        let logits = uniform(&mut r, (n * classes) as usize, 4.0);
        let labels: Vec<u32> = (0..n).map(|i| (i * 7 + si as u32) % classes).collect();
        let lb = gpu.storage_from("logits", &logits);
        let lab = gpu.storage_from("labels", &labels);
        let rows = gpu.storage("rows", 2 * n as usize);
        let stats = gpu.storage("stats", 3);
        let totals = gpu.storage("totals", 4);
        let dl = gpu.storage("dlogits", logits.len());
        let bufs = SoftmaxCeBuffers {
            logits: (&lb).into(),
            labels: (&lab).into(),
            row_stats: (&rows).into(),
            stats: (&stats).into(),
            totals: (&totals).into(),
        };
        let [fr, fred] = softmax_ce::forward(gpu, &p, &bufs);
        let [br, bred] = softmax_ce::backward(gpu, &p, &bufs, (&dl).into());
        // forward then backward: totals accumulate both batches.
        gpu.run(&[&fr, &fred]).unwrap();
        let fwd_stats = read(gpu, &stats);
        gpu.run(&[&br, &bred]).unwrap();
        let mut dlogits = vec![0.0; logits.len()];
        let (loss, correct) = wgpu_cnn::ops::softmax_ce::cpu::softmax_ce_backward(
            &p,
            &to_f64(&logits),
            &labels,
            &mut dlogits,
        );
        assert_close(
            &format!("{what} backward dlogits"),
            &read(gpu, &dl),
            &dlogits,
            1e-7,
            1e-5,
        );
        let s = read(gpu, &stats);
        assert_close(
            &format!("{what} forward loss"),
            &fwd_stats[..1],
            &[loss],
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{what} backward loss"),
            &s[..1],
            &[loss],
            1e-6,
            1e-5,
        );
        assert_eq!(
            fwd_stats[1], correct as f32,
            "{what}: forward correct count"
        );
        assert_eq!(s[1], correct as f32, "{what}: backward correct count");
        let t = read(gpu, &totals);
        assert_close(
            &format!("{what} totals"),
            &t,
            &[
                2.0 * loss * n as f64,
                2.0 * correct as f64,
                2.0 * n as f64,
                0.0,
            ],
            1e-4,
            1e-5,
        );
    }
}

#[test]
fn softmax_ce_reports_the_first_non_finite_batch() {
    let Some(gpu) = gpu() else { return };
    let p = SoftmaxCeParams::new(3, 10);
    let mut r = rng(510);
    let good = uniform(&mut r, 30, 2.0);
    let mut bad = good.clone();
    bad[17] = f32::NAN;
    let lb = gpu.storage_from("logits", &good);
    let lab = gpu.storage_from("labels", &[1u32, 2, 3]);
    let rows = gpu.storage("rows", 6);
    let stats = gpu.storage("stats", 3);
    let totals = gpu.storage("totals", 4);
    let dl = gpu.storage("dlogits", 30);
    let bufs = SoftmaxCeBuffers {
        logits: (&lb).into(),
        labels: (&lab).into(),
        row_stats: (&rows).into(),
        stats: (&stats).into(),
        totals: (&totals).into(),
    };
    let [a, b] = softmax_ce::backward(gpu, &p, &bufs, (&dl).into());
    for batch in [&good, &good, &bad, &good, &bad] {
        gpu.queue.write_buffer(&lb, 0, bytemuck::cast_slice(batch));
        gpu.run(&[&a, &b]).unwrap();
    }
    let t = read(gpu, &totals);
    assert_eq!(t[2], 15.0);
    assert_eq!(t[3], 3.0, "first bad batch is the third");
    assert!(t[0].is_nan());
}
