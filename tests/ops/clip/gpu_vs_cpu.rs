//! Gradient clipping by global norm against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::*;

/// optax.clip_by_global_norm on the flat gradient buffer vs the CPU twin: a norm above the
/// bound (scaled), one below (untouched, bit for bit); 300,000 values make 293 partial sums (the
/// strided part of the one-workgroup reduction).
#[test]
fn clip_by_global_norm_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    for (i, &(count, scale)) in [(5000u32, 0.5f64), (300_000, 0.5), (777, 2.0)]
        .iter()
        .enumerate()
    {
        let mut r = rng(2100 + i as u64);
        let g = uniform(&mut r, count as usize, 1.0);
        let norm64 = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let max = (norm64 * scale) as f32;
        let p = ClipParams::new(count, max);
        let gb = gpu.storage_from("grad", &g);
        let partials = gpu.storage("partials", p.chunks as usize);
        let norm = gpu.storage("norm", 1);
        let d = wgpu_cnn::ops::clip::gpu::clip_by_global_norm(
            gpu,
            &p,
            (&gb).into(),
            (&partials).into(),
            (&norm).into(),
        );
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        let mut want = vec![to_f64(&g)];
        let n = wgpu_cnn::ops::clip::cpu::clip_by_global_norm(&mut want, max as f64);
        let what = format!("clip count {count} max {scale}·norm");
        assert_close(&format!("{what} norm"), &read(gpu, &norm), &[n], 1e-6, 1e-6);
        let got = read(gpu, &gb);
        assert_close(&what, &got, &want[0], 1e-7, 1e-5);
        if scale > 1.0 {
            assert_eq!(
                got, g,
                "{what}: below the bound the gradients stay as they are"
            );
        }
    }
}
