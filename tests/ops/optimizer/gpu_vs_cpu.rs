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
        // Without a group table, and with one: elements in runs of 3 cycling through entries
        // without decay (the decay mask's 0), plain (its 1), lr ×64 with decay ÷64 (airbench's
        // batch-norm biases) and frozen (neither the parameter nor the state may move).
        for (si, &len, padded, grouped) in
            [1usize, 7, 1000, 4099]
                .iter()
                .enumerate()
                .flat_map(|(si, len)| {
                    [false, true]
                        .into_iter()
                        .flat_map(move |pad| [(si, len, pad, false), (si, len, pad, true)])
                })
        {
            let what = format!(
                "{name} n{len}{}{}",
                if padded { " padded" } else { "" },
                if grouped { " grouped" } else { "" }
            );
            let alen = if padded { adam::padded_len(len) } else { len };
            let mut r = rng(600 + si as u64);
            let param = uniform(&mut r, len, 1.0);
            let group: Vec<u32> = (0..len).map(|i| ((i / 3) % 4) as u32).collect();
            let table = [
                [1.0, 0.0, 0.0, 0.0],
                [1.0, 1.0, 0.0, 0.0],
                [64.0, 1.0 / 64.0, 0.0, 0.0],
                [1.0, 1.0, 1.0, 0.0],
            ];
            let pad = |v: &[f32]| {
                let mut v = v.to_vec();
                v.resize(alen, 0.0);
                v
            };
            let mut group_padded = group.clone();
            group_padded.resize(alen, 0);
            let (pb, gb) = (
                gpu.storage_from("param", &pad(&param)),
                gpu.storage("grad", alen),
            );
            let (mb, vb) = (gpu.storage("mu", alen), gpu.storage("nu", alen));
            let kb = gpu.storage_from("group", &group_padded);
            let before = param.clone();
            let (mut p64, mut m64, mut v64) = (to_f64(&param), vec![0.0; len], vec![0.0; len]);
            for t in 1..=3 {
                // Gradients over many magnitudes, zero included.
                let mut g = uniform(&mut r, len, 1.0);
                for (i, v) in g.iter_mut().enumerate() {
                    *v *= 10f32.powi(i as i32 % 7 - 4);
                }
                g[0] = 0.0;
                gpu.queue.write_buffer(&gb, 0, bytemuck::cast_slice(&g));
                let mut ap = opt.params(len as u32, 1e-3, t);
                if grouped {
                    ap.masked = 1;
                    ap.groups[..4].copy_from_slice(&table);
                }
                let d = adam::update(
                    gpu,
                    &ap,
                    &adam::OptimizerBuffers {
                        param: (&pb).into(),
                        grad: (&gb).into(),
                        mu: (&mb).into(),
                        nu: (&vb).into(),
                        group: (&kb).into(),
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
                        &group,
                    );
                } else {
                    wgpu_cnn::ops::optimizer::cpu::adam_update(
                        &ap,
                        &mut p64,
                        &to_f64(&g),
                        &mut m64,
                        &mut v64,
                        &group,
                    );
                }
            }
            // The rounding of an update grows with its size: with a learning-rate multiplier L
            // the parameters' movement is compared divided by L (the same tolerance then holds).
            let lr_mult = |i: usize| {
                if grouped {
                    table[group[i] as usize][0] as f64
                } else {
                    1.0
                }
            };
            let got: Vec<f32> = read(gpu, &pb)[..len]
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    (before[i] as f64 + (x as f64 - before[i] as f64) / lr_mult(i)) as f32
                })
                .collect();
            let want: Vec<f64> = p64
                .iter()
                .enumerate()
                .map(|(i, &x)| before[i] as f64 + (x - before[i] as f64) / lr_mult(i))
                .collect();
            assert_close(&format!("{what} param"), &got, &want, 1e-6, 1e-6);
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
            if grouped {
                // Frozen elements (entry 3) keep their bits, state included.
                let (p, m) = (read(gpu, &pb), read(gpu, &mb));
                for i in (0..len).filter(|i| group[*i] == 3) {
                    assert_eq!(
                        p[i].to_bits(),
                        before[i].to_bits(),
                        "{what}: frozen param {i}"
                    );
                    assert_eq!(m[i], 0.0, "{what}: frozen state {i}");
                }
            }
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

/// The lookahead synchronisation: bit for bit the f32 twin (one lerp per element, PyTorch's two
/// forms on either side of w = 0.5), both ends exact, and within an ulp of the f64 twin.
#[test]
fn lookahead_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    use wgpu_cnn::ops::optimizer::cpu::lookahead_sync;
    use wgpu_cnn::ops::LookaheadParams;
    for (si, len) in [1usize, 5, 1031].into_iter().enumerate() {
        for w in [0.0f32, 0.2, 0.4999, 0.5, 0.7737809, 1.0] {
            let what = format!("n{len} w{w}");
            let mut r = rng(700 + si as u64);
            let slow = uniform(&mut r, len, 1.0);
            let fast = uniform(&mut r, len, 3.0);
            let (sb, fb) = (
                gpu.storage_from("slow", &slow),
                gpu.storage_from("fast", &fast),
            );
            let p = LookaheadParams::new(len as u32, w);
            let d = wgpu_cnn::ops::optimizer::gpu::lookahead(gpu, &p, (&sb).into(), (&fb).into());
            gpu.run(&[&d]).unwrap();
            let (mut s32, mut f32_) = (slow.clone(), fast.clone());
            lookahead_sync(&p, &mut s32, &mut f32_);
            let (gs, gf) = (read(gpu, &sb), read(gpu, &fb));
            assert!(
                gs.iter().zip(&s32).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: slow differs from the f32 twin"
            );
            assert!(gs == gf, "{what}: fast takes the slow weights");
            let (mut s64, mut f64_) = (to_f64(&slow), to_f64(&fast));
            lookahead_sync(&p, &mut s64, &mut f64_);
            assert_close(&format!("{what} vs f64"), &gs, &s64, 1e-6, 1e-6);
            if w == 0.0 {
                assert!(gs == slow, "{what}: w = 0 keeps the slow weights");
            }
            if w == 1.0 {
                assert!(gs == fast, "{what}: w = 1 takes the fast weights");
            }
        }
    }
}
