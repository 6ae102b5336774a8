//! The optimizers (Adam, SGD) against their CPU twins.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::optimizer::gpu as adam;

#[test]
fn optimizers_match_their_cpu_twins() {
    let Some(gpu) = gpu() else { return };
    use wgpu_cnn::optim::{DecayMask, Kind, Optimizer};
    let adamw = Optimizer {
        kind: Kind::AdamW,
        b1: 0.8,
        b2: 0.99,
        eps: 1e-6,
        weight_decay: 0.05,
        decay_mask: DecayMask::Kernels,
        ..Optimizer::default()
    };
    let sgd = |momentum: f64, nesterov: bool, wd: f64| Optimizer {
        kind: Kind::Sgd,
        momentum,
        nesterov,
        weight_decay: wd,
        decay_mask: if wd > 0.0 {
            DecayMask::Kernels
        } else {
            DecayMask::All
        },
        ..Optimizer::default()
    };
    let cases = [
        ("adam", Optimizer::default()),
        ("adamw", adamw),
        ("sgd", sgd(0.0, false, 0.0)),
        ("sgd momentum", sgd(0.9, false, 0.0)),
        ("sgd nesterov", sgd(0.9, true, 0.0)),
        ("sgd nesterov decay", sgd(0.9, true, 0.01)),
    ];
    for (name, opt) in cases {
        // Unpadded buffers take the scalar entry points unless len % 4 == 0; buffers padded to
        // whole vec4s (as the model allocates them) take the vec4 ones, tails included.
        for (si, &len, padded) in [1usize, 7, 1000, 4099]
            .iter()
            .enumerate()
            .flat_map(|(si, len)| [(si, len, false), (si, len, true)])
        {
            let what = format!("{name} n{len}{}", if padded { " padded" } else { "" });
            let alen = if padded { adam::padded_len(len) } else { len };
            let mut r = rng(600 + si as u64);
            let param = uniform(&mut r, len, 1.0);
            // A mask of whole runs of 0 and 1, as kernels and biases alternate in the layout.
            let mask: Vec<f32> = (0..len).map(|i| ((i / 3) % 2) as f32).collect();
            let pad = |v: &[f32]| {
                let mut v = v.to_vec();
                v.resize(alen, 0.0);
                v
            };
            let (pb, gb) = (
                gpu.storage_from("param", &pad(&param)),
                gpu.storage("grad", alen),
            );
            let (mb, vb) = (gpu.storage("mu", alen), gpu.storage("nu", alen));
            let kb = gpu.storage_from("mask", &pad(&mask));
            let (mut p64, mut m64, mut v64) = (to_f64(&param), vec![0.0; len], vec![0.0; len]);
            let k64 = to_f64(&mask);
            for t in 1..=3 {
                // Gradients over many magnitudes, zero included.
                let mut g = uniform(&mut r, len, 1.0);
                for (i, v) in g.iter_mut().enumerate() {
                    *v *= 10f32.powi(i as i32 % 7 - 4);
                }
                g[0] = 0.0;
                gpu.queue.write_buffer(&gb, 0, bytemuck::cast_slice(&g));
                let ap = opt.params(len as u32, 1e-3, t);
                let d = adam::update(
                    gpu,
                    &ap,
                    &adam::OptimizerBuffers {
                        param: (&pb).into(),
                        grad: (&gb).into(),
                        mu: (&mb).into(),
                        nu: (&vb).into(),
                        mask: (&kb).into(),
                    },
                    opt.rule(),
                );
                let vec4 = padded || len % 4 == 0;
                assert_eq!(d.entry.ends_with("_vec4"), vec4, "{what}: {}", d.entry);
                gpu.run(&[&d]).unwrap();
                if opt.is_sgd() {
                    wgpu_cnn::ops::optimizer::cpu::sgd_update(
                        &ap,
                        &mut p64,
                        &to_f64(&g),
                        &mut m64,
                        &k64,
                    );
                } else {
                    wgpu_cnn::ops::optimizer::cpu::adam_update(
                        &ap,
                        &mut p64,
                        &to_f64(&g),
                        &mut m64,
                        &mut v64,
                        &k64,
                    );
                }
            }
            assert_close(
                &format!("{what} param"),
                &read(gpu, &pb)[..len],
                &p64,
                1e-6,
                1e-6,
            );
            // mu and nu mix gradients of both signs (cancellation), so their error scales with
            // the gradient magnitude of each element, not with the result: compare them
            // normalised.
            let scale = |i: usize| 10f64.powi(i as i32 % 7 - 4);
            let norm = |v: &[f32], pow: i32| -> Vec<f32> {
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| (x as f64 / scale(i).powi(pow)) as f32)
                    .collect()
            };
            let norm64 = |v: &[f64], pow: i32| -> Vec<f64> {
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| x / scale(i).powi(pow))
                    .collect()
            };
            let pow = 1;
            assert_close(
                &format!("{what} mu"),
                &norm(&read(gpu, &mb)[..len], pow),
                &norm64(&m64, pow),
                1e-6,
                1e-5,
            );
            for (slot, b) in [("param", &pb), ("mu", &mb), ("nu", &vb)] {
                assert!(
                    read(gpu, b)[len..].iter().all(|&v| v == 0.0),
                    "{what}: the {slot} pads stay zero"
                );
            }
            if !opt.is_sgd() {
                assert_close(
                    &format!("{what} nu"),
                    &norm(&read(gpu, &vb)[..len], 2),
                    &norm64(&v64, 2),
                    1e-6,
                    1e-5,
                );
            }
        }
    }
}
