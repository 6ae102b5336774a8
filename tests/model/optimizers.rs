//! Learning-rate schedules, gradient clipping and the optimizers (Adam, AdamW, SGD) driving
//! the GPU's steps, against the CPU reference stepping with the same rates.

use crate::common::{assert_close, gpu};
use crate::{assert_adam_close, batch, close_scaled, layer_scales, plan, posed_batch, LR};
use wgpu_cnn::cpu::{self, reference};
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::model::GpuModel;

/// The learning-rate schedule reaches the GPU's Adam step by step: step t uses the schedule at
/// optax's count t − 1 (a warmup from 0 leaves the weights of the first step untouched, and the
/// GPU matches the CPU reference stepping with the same rates).
#[test]
fn schedules_drive_the_gpu_adam_steps() {
    let Some(gpu) = gpu() else { return };
    let d = zoo::preset("lenet5").unwrap();
    let p = plan(gpu, &d, 3);
    let init = p.layout.init(21);
    let (x, labels) = batch(&d, 3, 210);
    let schedule = wgpu_cnn::schedule::Schedule::WarmupCosine {
        warmup_steps: 2,
        end_lr: 1e-5,
        warmup_epochs: None,
        warmup_fraction: None,
    };
    let total = 6;
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.schedule = schedule.clone();
    m.total_steps = total;
    m.upload_batch(gpu, &x, &labels);
    // Step 1 runs at count 0 of the warmup: rate 0, the weights do not move.
    m.train_step(gpu);
    assert_eq!(
        m.read_params(gpu).unwrap(),
        init,
        "warmup count 0 must be rate 0"
    );
    let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let mut adam = reference::OptState::new(&p);
    let x64 = cpu::cast(&x);
    let step = reference::loss_and_grads(&p, &p64, &x64, &labels);
    adam.step(&mut p64, &step.grads, 0.0);
    for t in 2..=total {
        m.train_step(gpu);
        let lr = schedule.lr(LR as f64, t - 1, total) as f32;
        let step = reference::loss_and_grads(&p, &p64, &x64, &labels);
        adam.step(&mut p64, &step.grads, lr);
    }
    let params = m.read_params(gpu).unwrap();
    for (i, spec) in p.layout.specs.iter().enumerate() {
        let none = vec![false; spec.len()];
        assert_adam_close(
            &format!("scheduled {}", spec.name),
            &params[i],
            &p64[i],
            &none,
            5,
        );
    }
}

/// `--clip-grad-norm`: the train step clips the gradients to the global norm (optax's
/// clip_by_global_norm chained before Adam): the GPU's gradients after the step and its
/// parameters match the CPU reference's gradients clipped by the CPU twin, then Adam.
#[test]
fn clipped_gradients_drive_adam() {
    let Some(gpu) = gpu() else { return };
    let d = zoo::preset("lenet5").unwrap();
    let p = plan(gpu, &d, 3);
    let init = p.layout.init(31);
    let (x, labels) = batch(&d, 3, 131);
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let mut step = reference::loss_and_grads(&p, &p64, &cpu::cast(&x), &labels);
    let norm: f64 = step
        .grads
        .iter()
        .flatten()
        .map(|g| g * g)
        .sum::<f64>()
        .sqrt();
    let max = (0.3 * norm) as f32;
    let n = wgpu_cnn::ops::clip::cpu::clip_by_global_norm(&mut step.grads, max as f64);
    assert!((n - norm).abs() < 1e-12);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.clip_grad_norm(gpu, max).unwrap();
    m.upload_batch(gpu, &x, &labels);
    m.train_step(gpu);
    let grads = m.read_grads(gpu).unwrap();
    let scales = layer_scales(&p, &step.grads);
    let clipped: f64 = grads
        .iter()
        .flatten()
        .map(|&g| (g as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        (clipped / max as f64 - 1.0).abs() < 1e-5,
        "norm after clipping {clipped} vs {max}"
    );
    for (i, s) in p.layout.specs.iter().enumerate() {
        assert_close(
            &format!("clipped d{}", s.name),
            &grads[i],
            &step.grads[i],
            2e-5 * scales[i],
            1e-4,
        );
    }
    let mut want = p64.clone();
    let mut adam = reference::OptState::new(&p);
    adam.step(&mut want, &step.grads, LR);
    let got = m.read_params(gpu).unwrap();
    for (i, s) in p.layout.specs.iter().enumerate() {
        let none = vec![false; s.len()];
        assert_adam_close(
            &format!("clipped step {}", s.name),
            &got[i],
            &want[i],
            &none,
            1,
        );
    }
}

/// AdamW, SGD (plain, momentum, Nesterov with weight decay on kernels) drive 5 GPU steps as the
/// CPU reference's steps (optax's formulas): parameters and the state slots, on a model with
/// batch norm and a residual (biases and batch-norm parameters outside the kernel mask).
#[test]
fn optimizers_drive_the_gpu_steps() {
    let Some(gpu) = gpu() else { return };
    use wgpu_cnn::optim::{DecayMask, Kind, Optimizer};
    let d = Description::parse(
        "input = [6, 6, 3]\nclasses = 5\nlayer = [ { type = \"conv\", features = 8, kernel = 3 }, { type = \"relu\" }, { type = \"residual\", body = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\" }, { type = \"relu\" } ] }, { type = \"flatten\" }, { type = \"dense\", features = 5 } ]\n",
    )
    .unwrap();
    let sgd = |momentum: f64, nesterov: bool, wd: f64| Optimizer {
        kind: Kind::Sgd,
        momentum,
        nesterov,
        weight_decay: wd,
        decay_mask: DecayMask::Kernels,
        ..Optimizer::default()
    };
    let cases = [
        (
            "adamw",
            Optimizer {
                kind: Kind::AdamW,
                weight_decay: 0.1,
                ..Optimizer::default()
            },
            1e-3f32,
        ),
        ("sgd", sgd(0.0, false, 0.0), 0.05),
        ("sgd momentum", sgd(0.9, false, 0.0), 0.05),
        ("sgd nesterov decay", sgd(0.9, true, 5e-2), 0.05),
        // Parameter groups (airbench's): batch-norm biases at lr ×64 with decay ÷64, the first
        // conv trained for 2 of the 5 steps, the dense kernel frozen from the start; with the
        // decay mask on top.
        (
            "sgd nesterov decay groups",
            Optimizer {
                groups: [
                    "BatchNorm_*.bias: lr=64, decay=0.015625",
                    "Conv_0.*: frozen-from-step=2",
                    "Dense_0.kernel: frozen",
                ]
                .iter()
                .map(|g| wgpu_cnn::optim::ParamGroup::parse(g).unwrap())
                .collect(),
                ..sgd(0.9, true, 5e-2)
            },
            0.05,
        ),
        (
            "adamw groups",
            Optimizer {
                kind: Kind::AdamW,
                weight_decay: 0.1,
                groups: vec![wgpu_cnn::optim::ParamGroup::parse(
                    "Conv_1.kernel|Dense_0.bias: lr=0.5, decay=2",
                )
                .unwrap()],
                ..Optimizer::default()
            },
            1e-3f32,
        ),
    ];
    let n = 4;
    for (name, opt, lr) in cases {
        let p = plan(gpu, &d, n as u32);
        let init = p.layout.init(41);
        let (x, labels) = posed_batch(1e-5, &p, &init, &d, n, 141, 1);
        let mut m = GpuModel::from_plan(gpu, p.clone(), &init, lr).unwrap();
        m.set_optimizer(gpu, opt.clone()).unwrap();
        m.upload_batch(gpu, &x, &labels);
        let x64 = cpu::cast(&x);
        let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
        let mut stats: Vec<Vec<f64>> = reference::initial_stats(&p);
        let mut state = reference::OptState::with(&p, opt.clone());
        for _ in 0..5 {
            m.train_step(gpu);
            let phase = reference::Phase::Train {
                seed: 0,
                step: state.step + 1,
            };
            let step = reference::loss_and_grads_with(&p, &p64, &stats, &x64, &labels, phase);
            stats = step.stats;
            state.step(&mut p64, &step.grads, lr);
        }
        let params = m.read_params(gpu).unwrap();
        let (mu, _) = m.read_opt_state(gpu).unwrap();
        for (i, s) in p.layout.specs.iter().enumerate() {
            let what = format!("{name}: {}", s.name);
            if name == "sgd nesterov decay groups" && s.name == "Dense_0.kernel" {
                // Frozen: the bits as initialised, no momentum.
                assert!(params[i] == init[i], "{what}: moved");
                assert!(mu[i].iter().all(|&v| v == 0.0), "{what}");
                continue;
            }
            if opt.is_sgd() {
                // SGD moves by lr·gradient: relative to the movement, as for the gradients.
                let moved: Vec<f64> = p64[i]
                    .iter()
                    .zip(&init[i])
                    .map(|(a, &b)| a - b as f64)
                    .collect();
                let got: Vec<f32> = params[i].iter().zip(&init[i]).map(|(a, b)| a - b).collect();
                close_scaled(&format!("{what} change"), &got, &moved, 1e-3);
                close_scaled(&format!("{what} trace"), &mu[i], &state.mu[i], 1e-3);
            } else {
                let none = vec![false; s.len()];
                assert_adam_close(&what, &params[i], &p64[i], &none, 5);
            }
        }
    }
}

/// Every optimizer under every schedule for 200 steps on a toy problem (a smooth two-layer
/// network, one fixed batch): the GPU's weights follow the CPU twin stepping in f64 with the
/// same rates, and the loss falls.
#[test]
fn every_optimizer_and_schedule_for_200_steps() {
    let Some(gpu) = gpu() else { return };
    use wgpu_cnn::optim::{DecayMask, Kind, Optimizer};
    use wgpu_cnn::schedule::Schedule;
    let d = Description::parse(
        "input = [4, 4, 1]\nclasses = 3\nlayer = [ { type = \"flatten\" }, { type = \"dense\", features = 16 }, { type = \"gelu\" }, { type = \"dense\", features = 3 } ]\n",
    )
    .unwrap();
    let n = 24;
    // Labels from a fixed rule of the inputs: learnable.
    let (x, _) = batch(&d, n, 300);
    let labels: Vec<u32> = x
        .chunks(16)
        .map(|v| {
            let a: f32 = v[..5].iter().sum();
            let b: f32 = v[5..10].iter().sum();
            let c: f32 = v[10..].iter().sum();
            if a > b && a > c {
                0
            } else if b > c {
                1
            } else {
                2
            }
        })
        .collect();
    let optimizers = [
        ("adam", Optimizer::default(), 3e-3f32),
        (
            "adamw",
            Optimizer {
                kind: Kind::AdamW,
                weight_decay: 1e-2,
                ..Optimizer::default()
            },
            3e-3,
        ),
        (
            "sgd nesterov",
            Optimizer {
                kind: Kind::Sgd,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-3,
                decay_mask: DecayMask::Kernels,
                ..Optimizer::default()
            },
            0.05,
        ),
    ];
    let schedules = [
        Schedule::Constant,
        Schedule::Cosine { end_lr: 0.0 },
        Schedule::WarmupCosine {
            warmup_steps: 20,
            end_lr: 1e-4,
            warmup_epochs: None,
            warmup_fraction: None,
        },
        Schedule::Piecewise {
            boundaries: vec![50, 150],
            scales: vec![0.5, 0.2],
        },
    ];
    let total = 200u64;
    let x64 = cpu::cast(&x);
    for (oname, opt, lr) in &optimizers {
        for schedule in &schedules {
            let what = format!("{oname}, {}", schedule.describe());
            let p = plan(gpu, &d, n as u32);
            let init = p.layout.init(77);
            let mut m = GpuModel::from_plan(gpu, p.clone(), &init, *lr).unwrap();
            m.set_optimizer(gpu, opt.clone()).unwrap();
            m.schedule = schedule.clone();
            m.total_steps = total;
            m.upload_batch(gpu, &x, &labels);
            let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
            let stats: Vec<Vec<f64>> = reference::initial_stats(&p);
            let mut state = reference::OptState::with(&p, opt.clone());
            let mut first_loss = None;
            let mut last_loss = 0.0;
            for t in 1..=total {
                m.train_step(gpu);
                let phase = reference::Phase::Train {
                    seed: 0,
                    step: t as u32,
                };
                let step = reference::loss_and_grads_with(&p, &p64, &stats, &x64, &labels, phase);
                first_loss.get_or_insert(step.loss);
                last_loss = step.loss;
                let rate = schedule.lr(*lr as f64, t - 1, total) as f32;
                state.step(&mut p64, &step.grads, rate);
            }
            gpu.wait().unwrap();
            let first = first_loss.unwrap();
            assert!(
                last_loss < 0.8 * first,
                "{what}: loss {first:.4} -> {last_loss:.4} did not fall"
            );
            let params = m.read_params(gpu).unwrap();
            let mut worst = 0.0f64;
            for (i, s) in p.layout.specs.iter().enumerate() {
                let (mut diff, mut moved) = (0.0f64, 0.0f64);
                for ((&g, &c), &i0) in params[i].iter().zip(&p64[i]).zip(&init[i]) {
                    diff += (g as f64 - c).powi(2);
                    moved += (c - i0 as f64).powi(2);
                }
                let rel = (diff / moved.max(1e-30)).sqrt();
                worst = worst.max(rel);
                assert!(
                    rel < 1e-5,
                    "{what}: {} after 200 steps: GPU vs CPU {rel:.2e} of the change",
                    s.name
                );
            }
            println!("{what}: loss {first:.4} -> {last_loss:.4}, worst GPU vs CPU {worst:.1e}");
        }
    }
}

/// Lookahead on the GPU model (weights and batch statistics), against the CPU reference with
/// the synchronisation's f64 twin applied after the same updates: 7 SGD steps, a sync after
/// updates 3 and 6 and the copy-back after the last; the run ends on the slow weights, which
/// `read_lookahead` returns.
#[test]
fn lookahead_drives_the_gpu_steps() {
    let Some(gpu) = gpu() else { return };
    use wgpu_cnn::ops::optimizer::cpu::lookahead_sync;
    use wgpu_cnn::ops::LookaheadParams;
    use wgpu_cnn::optim::{Kind, Lookahead, Optimizer};
    let d = Description::parse(
        "input = [6, 6, 3]\nclasses = 5\nlayer = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\", momentum = 0.6 }, { type = \"relu\" }, { type = \"flatten\" }, { type = \"dense\", features = 5 } ]\n",
    )
    .unwrap();
    let opt = Optimizer {
        kind: Kind::Sgd,
        momentum: 0.85,
        nesterov: true,
        ..Optimizer::default()
    };
    let la = Lookahead::parse("every=3, decay=0.77, power=3").unwrap();
    let (n, steps, lr) = (4, 7u64, 0.05f32);
    let p = plan(gpu, &d, n as u32);
    let init = p.layout.init(43);
    let (x, labels) = posed_batch(1e-5, &p, &init, &d, n, 143, 1);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, lr).unwrap();
    m.set_optimizer(gpu, opt.clone()).unwrap();
    m.set_lookahead(gpu, la, steps).unwrap();
    m.upload_batch(gpu, &x, &labels);
    let x64 = cpu::cast(&x);
    let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let mut stats: Vec<Vec<f64>> = reference::initial_stats(&p);
    let (mut slow_p, mut slow_s) = (p64.clone(), stats.clone());
    let mut state = reference::OptState::with(&p, opt.clone());
    let mut synced = 0;
    for t in 1..=steps {
        m.train_step(gpu);
        let phase = reference::Phase::Train {
            seed: 0,
            step: t as u32,
        };
        let step = reference::loss_and_grads_with(&p, &p64, &stats, &x64, &labels, phase);
        stats = step.stats;
        state.step(&mut p64, &step.grads, lr);
        if let Some(w) = la.weight(t, steps) {
            synced += 1;
            for (s, f) in slow_p
                .iter_mut()
                .zip(p64.iter_mut())
                .chain(slow_s.iter_mut().zip(stats.iter_mut()))
            {
                lookahead_sync(&LookaheadParams::new(s.len() as u32, w), s, f);
            }
        }
    }
    assert_eq!(synced, 3);
    let params = m.read_params(gpu).unwrap();
    let (slow, slow_stats) = m.read_lookahead(gpu).unwrap().unwrap();
    assert!(slow == params, "the run ends on the slow weights");
    let moved = |a: &[f64], b: &[f32]| -> Vec<f64> {
        a.iter().zip(b).map(|(a, &b)| a - b as f64).collect()
    };
    for (i, s) in p.layout.specs.iter().enumerate() {
        let got: Vec<f32> = params[i].iter().zip(&init[i]).map(|(a, b)| a - b).collect();
        close_scaled(
            &format!("lookahead: {} change", s.name),
            &got,
            &moved(&p64[i], &init[i]),
            1e-3,
        );
    }
    let gpu_stats = m.read_batch_stats(gpu).unwrap();
    assert!(
        gpu_stats == slow_stats,
        "the statistics end on the slow ones"
    );
    for (i, s) in gpu_stats.iter().enumerate() {
        assert_close(&format!("lookahead: stats {i}"), s, &stats[i], 1e-5, 1e-4);
    }
}
