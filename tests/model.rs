//! Whole models through the planner, GPU schedule vs the CPU reference of the same plan (f64):
//! logits, loss, every parameter gradient on one batch, and the parameters after Adam steps — for
//! every preset and for random descriptions from a fixed-seed generator, on both kernel families
//! (the subgroup kernels lavapipe runs and the register-tiled kernels of every other device).

mod common;

use common::{assert_close, gpu, gpu_tiled, gpu_wg, random_description, rng, uniform};
use wgpu_cnn::cpu::{self, reference};
use wgpu_cnn::gpu::Gpu;
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::model::GpuModel;
use wgpu_cnn::plan::{Mode, Plan, Step};

const LR: f32 = 1e-3;

fn seed() -> Description {
    zoo::preset("flax-cifar10").unwrap()
}

fn batch(desc: &Description, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = rng(seed);
    let len = desc.input.iter().product::<u32>() as usize;
    let x = uniform(&mut r, n * len, 2.0);
    let labels = (0..n as u32).map(|i| (i * 3 + 1) % desc.classes).collect();
    (x, labels)
}

/// Tolerance for a tensor: atol relative to the tensor's largest magnitude, because its
/// entries are sums of many products whose rounding scales with the largest terms.
fn close_scaled(what: &str, got: &[f32], want: &[f64], rel: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    assert_close(what, got, want, rel * scale, 1e-4);
}

fn plan(gpu: &Gpu, desc: &Description, n: u32) -> Plan {
    Plan::new(desc, n, &gpu.caps(), Mode::Train).unwrap()
}

/// Whether no value entering a ReLU lies within `margin` of its kink (0 < |v| < margin) on
/// this batch: there f32 and f64 may legitimately take different branches (and a whole
/// element's gradient flips). Exact zeros are structural and computed alike.
fn well_posed(
    margin: f64,
    p: &Plan,
    params: &[Vec<f64>],
    stats: &[Vec<f64>],
    x: &[f64],
    phase: reference::Phase,
) -> bool {
    let mut stats = stats.to_vec();
    let outs = reference::forward_with(p, params, &mut stats, x, phase);
    p.layers.iter().all(|l| {
        if !matches!(l.op, wgpu_cnn::plan::LayerOp::Relu { .. }) {
            return true;
        }
        let input: &[f64] = match l.input {
            wgpu_cnn::plan::Src::Input => x,
            wgpu_cnn::plan::Src::Node(j) => &outs[j],
        };
        input.iter().all(|v| *v == 0.0 || v.abs() >= margin)
    })
}

/// A batch for `desc` on which the CPU trajectory is well posed (see [`well_posed`]), from
/// `seed` on. Small random models need a margin of 1e-5 (one element on the wrong side of a
/// kink moves a whole gradient of a tiny layer); the presets' large activations take 0 (the
/// batch as drawn: one element among 10⁵ is within their tolerance, a margin would reject
/// every batch).
fn posed_batch(
    margin: f64,
    p: &Plan,
    init: &[Vec<f32>],
    desc: &Description,
    n: usize,
    seed: u64,
    steps: usize,
) -> (Vec<f32>, Vec<u32>) {
    for s in seed..seed + 20 {
        let (x, labels) = batch(desc, n, s);
        let x64: Vec<f64> = cpu::cast(&x);
        let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
        let mut stats: Vec<Vec<f64>> = reference::initial_stats(p);
        let mut adam = reference::OptState::new(p);
        let mut ok = true;
        for _ in 0..steps {
            let phase = reference::Phase::Train {
                seed: 0,
                step: adam.step + 1,
            };
            if !well_posed(margin, p, &p64, &stats, &x64, phase) {
                ok = false;
                break;
            }
            let step = reference::loss_and_grads_with(p, &p64, &stats, &x64, &labels, phase);
            stats = step.stats;
            adam.step(&mut p64, &step.grads, LR);
        }
        if ok {
            return (x, labels);
        }
    }
    panic!("no well-posed batch in 20 tries");
}

/// One train step on the GPU vs the CPU reference: logits, loss, correct count, gradients.
fn check_one_step(
    gpu: &Gpu,
    desc: &Description,
    n: usize,
    seed: u64,
    rel: f64,
    margin: f64,
    what: &str,
) {
    let p = plan(gpu, desc, n as u32);
    let init = p.layout.init(seed);
    let (x, labels) = posed_batch(margin, &p, &init, desc, n, 10 + seed, 1);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.upload_batch(gpu, &x, &labels);
    m.train_step(gpu);
    gpu.wait().unwrap();

    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let want = reference::loss_and_grads(&p, &p64, &cpu::cast(&x), &labels);
    close_scaled(
        &format!("{what} logits"),
        &m.read_logits(gpu).unwrap(),
        &want.logits,
        rel,
    );
    let stats = m.read_stats(gpu).unwrap();
    assert_close(
        &format!("{what} loss"),
        &[stats.loss],
        &[want.loss],
        1e-5,
        1e-5,
    );
    assert_eq!(stats.correct, want.correct as f32, "{what} correct");
    let grads = m.read_grads(gpu).unwrap();
    let scales = layer_scales(&p, &want.grads);
    for (i, spec) in p.layout.specs.iter().enumerate() {
        // Judged on the layer's gradient scale: a bias upstream of a batch norm through linear
        // layers only has a zero gradient (batch norm subtracts the mean), which f32 computes
        // as rounding noise of the size of the layer's other gradient terms.
        assert_close(
            &format!("{what} d{}", spec.name),
            &grads[i],
            &want.grads[i],
            2.0 * rel * scales[i],
            1e-4,
        );
    }
    // The batch-norm running statistics after the step.
    let stats = m.read_batch_stats(gpu).unwrap();
    for (i, spec) in p.stats.specs.iter().enumerate() {
        close_scaled(
            &format!("{what} batch_stats.{}", spec.name),
            &stats[i],
            &want.stats[i],
            rel,
        );
    }
}

/// Per parameter tensor: the largest gradient magnitude among the tensors of its layer
/// (`Conv_0.kernel` and `Conv_0.bias` share one).
fn layer_scales(p: &Plan, grads: &[Vec<f64>]) -> Vec<f64> {
    let layer = |name: &str| name.split('.').next().unwrap_or("").to_string();
    p.layout
        .specs
        .iter()
        .map(|s| {
            p.layout
                .specs
                .iter()
                .zip(grads)
                .filter(|(t, _)| layer(&t.name) == layer(&s.name))
                .flat_map(|(_, g)| g.iter().map(|v| v.abs()))
                .fold(1e-30, f64::max)
        })
        .collect()
}

/// `steps` Adam steps on one batch, GPU vs CPU: losses and parameters.
fn check_adam_steps(
    gpu: &Gpu,
    desc: &Description,
    n: usize,
    steps: usize,
    seed: u64,
    margin: f64,
    what: &str,
) {
    let p = plan(gpu, desc, n as u32);
    let init = p.layout.init(seed);
    let (x, labels) = posed_batch(margin, &p, &init, desc, n, 50 + seed, steps);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.upload_batch(gpu, &x, &labels);
    let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let mut adam = reference::OptState::new(&p);
    let mut stats64: Vec<Vec<f64>> = reference::initial_stats(&p);
    let x64 = cpu::cast(&x);
    let mut losses = (Vec::new(), Vec::new());
    // Elements whose f64 gradient stayed below f32's rounding noise of their layer in every
    // step (a bias upstream of a batch norm through linear layers): Adam turns noise into
    // full-size steps of either sign, so only Adam's bound applies to them.
    let mut noise: Vec<Vec<bool>> = p.layout.specs.iter().map(|s| vec![true; s.len()]).collect();
    for _ in 0..steps {
        m.train_step(gpu);
        losses.0.push(m.read_stats(gpu).unwrap().loss);
        // The GPU's k-th train step draws dropout masks for step k (seed 0).
        let phase = reference::Phase::Train {
            seed: 0,
            step: adam.step + 1,
        };
        let step = reference::loss_and_grads_with(&p, &p64, &stats64, &x64, &labels, phase);
        losses.1.push(step.loss);
        stats64 = step.stats;
        let scales = layer_scales(&p, &step.grads);
        for ((mask, g), scale) in noise.iter_mut().zip(&step.grads).zip(&scales) {
            for (m, v) in mask.iter_mut().zip(g) {
                *m &= v.abs() <= 1e-6 * scale;
            }
        }
        adam.step(&mut p64, &step.grads, LR);
    }
    assert_close(&format!("{what} losses"), &losses.0, &losses.1, 1e-4, 1e-4);
    let params = m.read_params(gpu).unwrap();
    for (i, spec) in p.layout.specs.iter().enumerate() {
        assert_adam_close(
            &format!("{what} after {steps} steps {}", spec.name),
            &params[i],
            &p64[i],
            &noise[i],
            steps,
        );
    }
    let stats = m.read_batch_stats(gpu).unwrap();
    for (i, spec) in p.stats.specs.iter().enumerate() {
        close_scaled(
            &format!("{what} after {steps} steps batch_stats.{}", spec.name),
            &stats[i],
            &stats64[i],
            1e-3,
        );
    }
}

/// Parameters after `steps` Adam steps, GPU (f32) vs CPU (f64). Adam moves a weight by about lr
/// per step, so 1 % of the run's total covers the f32 gap of every element whose gradient is
/// signal. An element whose gradient is pure rounding noise (a sum that cancels to ~1e-9) is
/// normalised by Adam into full-size steps of a sign the summation order decides: such
/// elements may differ by up to Adam's bound (4·lr per step), and there may be at most one per
/// 100,000 elements (at least one allowed per tensor), besides the elements marked `noise`
/// (their f64 gradient was below f32's rounding noise in every step).
fn assert_adam_close(what: &str, got: &[f32], want: &[f64], noise: &[bool], steps: usize) {
    let lr = LR as f64;
    let tight = 0.01 * steps as f64 * lr;
    let bound = 4.0 * steps as f64 * lr;
    let flips: Vec<(usize, f64)> = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| (i, (g as f64 - w).abs()))
        .filter(|&(i, e)| e > tight + 1e-4 * want[i].abs())
        .collect();
    let (noisy, flips): (Vec<_>, Vec<_>) = flips.into_iter().partition(|&(i, _)| noise[i]);
    assert!(
        noisy.iter().all(|&(_, e)| e <= bound),
        "{what}: noise-driven elements beyond Adam's bound {bound:e}: {:?}",
        &noisy[..noisy.len().min(8)]
    );
    let allowed = (got.len() / 100_000).max(1);
    assert!(
        flips.len() <= allowed && flips.iter().all(|&(_, e)| e <= bound),
        "{what}: {} elements beyond {tight:e} (allowed {allowed}, each within {bound:e}): {:?}",
        flips.len(),
        &flips[..flips.len().min(8)]
    );
}

#[test]
fn presets_one_step_match_cpu_on_every_kernel_family() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let wg = gpu_wg();
    for name in zoo::NAMES {
        let d = zoo::preset(name).unwrap();
        // Batch norm over the 2x2 maps of vgg11-bn's last stage sees 4 values at batch 1, where
        // its gradient is ill-conditioned: models with batch norm take batches of 3 and 2.
        let bn = d.to_toml().contains("batch_norm");
        for (n, seed) in [(3usize, 1u64), (if bn { 2 } else { 1 }, 2)] {
            check_one_step(sg, &d, n, seed, 1e-5, 0.0, &format!("{name} n{n}"));
            check_one_step(tiled, &d, n, seed, 1e-5, 0.0, &format!("{name} tiled n{n}"));
            if let Some(wg) = wg {
                check_one_step(wg, &d, n, seed, 1e-5, 0.0, &format!("{name} wg n{n}"));
            }
        }
    }
}

#[test]
fn seed_ten_adam_steps_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    check_adam_steps(gpu, &d, 4, 10, 5, 0.0, "flax-cifar10");
    if let Some(tiled) = gpu_tiled() {
        check_adam_steps(tiled, &d, 4, 5, 5, 0.0, "flax-cifar10 tiled");
    }
    if let Some(wg) = gpu_wg() {
        check_adam_steps(wg, &d, 4, 5, 5, 0.0, "flax-cifar10 wg");
    }
    // The loss falls on a repeated batch.
    let p = plan(gpu, &d, 4);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &p.layout.init(5), LR).unwrap();
    let (x, labels) = batch(&d, 4, 55);
    m.upload_batch(gpu, &x, &labels);
    m.train_step(gpu);
    let first = m.read_stats(gpu).unwrap().loss;
    for _ in 0..9 {
        m.train_step(gpu);
    }
    assert!(m.read_stats(gpu).unwrap().loss < first, "loss did not fall");
}

#[test]
fn lenet5_adam_steps_match_cpu_on_every_family() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let wg = gpu_wg();
    let d = zoo::preset("lenet5").unwrap();
    check_adam_steps(sg, &d, 3, 5, 6, 0.0, "lenet5");
    check_adam_steps(tiled, &d, 3, 5, 6, 0.0, "lenet5 tiled");
    if let Some(wg) = wg {
        check_adam_steps(wg, &d, 3, 5, 6, 0.0, "lenet5 wg");
    }
}

#[test]
fn random_descriptions_match_cpu_on_every_kernel_family() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let wg = gpu_wg();
    let mut r = rng(2026);
    // What the fixed-seed set covers (checked below, so a generator change cannot drop a kind).
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..24 {
        let d = random_description(&mut r);
        let text = d.to_toml();
        for k in [
            "\"batch_norm\"",
            "\"residual\"",
            "shortcut =",
            "type = \"residual\", body",
            "\"max_pool\"",
            "\"dropout\"",
            "\"gelu\"",
            "\"scale\"",
            "\"global_avg_pool\"",
        ] {
            if text.contains(k) {
                *kinds.entry(k).or_insert(0) += 1;
            }
        }
        let what = format!("random #{i} ({})", d.summary());
        // Batch norm over a handful of values is ill-conditioned (its gradient scales with
        // 1/std of a few samples): models with batch norm train on batches of 4 to 6.
        let bn = d.to_toml().contains("batch_norm");
        let n = [1usize, 2, 3][i % 3] + if bn { 3 } else { 0 };
        // The residual fusions the plans use (the batch norm's at both kernel widths; the
        // gradient sums here all hold whole vec4s, gpu_vs_cpu tests the scalar kernel).
        let pl = plan(sg, &d, n as u32);
        for s in pl.forward.iter().chain(&pl.backward) {
            let k = match s {
                Step::BatchNorm {
                    p,
                    residual: Some(_),
                    ..
                } if p.c % 4 == 0 => "batch norm + add (vec4)",
                Step::BatchNorm {
                    residual: Some(_), ..
                } => "batch norm + add",
                Step::Add {
                    p, mask: Some(_), ..
                } if p.count % 4 == 0 => "add + relu backward (vec4)",
                Step::Add { mask: Some(_), .. } => "add + relu backward",
                _ => continue,
            };
            *kinds.entry(k).or_insert(0) += 1;
        }
        check_one_step(sg, &d, n, i as u64, 2e-5, 1e-5, &what);
        check_one_step(tiled, &d, n, i as u64, 2e-5, 1e-5, &format!("{what} tiled"));
        if let Some(wg) = wg {
            check_one_step(wg, &d, n, i as u64, 2e-5, 1e-5, &format!("{what} wg"));
        }
        check_adam_steps(sg, &d, n, 5, i as u64, 1e-5, &what);
        check_adam_steps(tiled, &d, n, 5, i as u64, 1e-5, &format!("{what} tiled"));
    }
    println!("kinds in the random descriptions: {kinds:?}");
    assert!(
        kinds.values().all(|&c| c >= 2) && kinds.len() == 12,
        "{kinds:?}"
    );
}

#[test]
fn train_step_is_bitwise_deterministic() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    let p = plan(gpu, &d, 5);
    let init = p.layout.init(9);
    let (x, labels) = batch(&d, 5, 90);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
        m.upload_batch(gpu, &x, &labels);
        for _ in 0..3 {
            m.train_step(gpu);
        }
        let bits: Vec<u32> = gpu
            .read_f32(&m.params)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        runs.push(bits);
    }
    assert!(
        runs[0] == runs[1],
        "two identical runs gave different parameters"
    );
}

#[test]
fn eval_step_matches_train_forward_and_inference_plan() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    let p = plan(gpu, &d, 7);
    let init = p.layout.init(11);
    let (x, labels) = batch(&d, 7, 110);
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let loss = reference::loss(&p, &p64, &cpu::cast(&x), &labels);
    let train = GpuModel::from_plan(gpu, p, &init, LR).unwrap();
    let inference = GpuModel::inference(gpu, &d, 7, &init).unwrap();
    assert!(inference.gpu_bytes() < train.gpu_bytes());
    for m in [&train, &inference] {
        m.upload_batch(gpu, &x, &labels);
        m.reset_totals(gpu);
        m.eval_step(gpu);
        m.eval_step(gpu);
        let stats = m.read_stats(gpu).unwrap();
        let totals = m.read_totals(gpu).unwrap();
        assert_close("eval loss", &[stats.loss], &[loss], 1e-5, 1e-5);
        assert_eq!(totals.count, 14.0);
        assert_close(
            "eval totals",
            &[totals.loss_sum],
            &[14.0 * loss],
            1e-4,
            1e-5,
        );
        // Eval does not touch the parameters.
        assert_eq!(m.read_params(gpu).unwrap(), init);
    }
}

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

/// Batch norm and dropout in evaluation mode (eval step of a train model and an inference model)
/// vs training mode: evaluation normalises with the running statistics and leaves them alone,
/// training with the batch's and updates them; dropout is the identity in evaluation. GPU vs
/// CPU in both modes.
#[test]
fn batch_norm_and_dropout_evaluate_with_running_statistics() {
    let Some(gpu) = gpu() else { return };
    let d = Description::parse(
        "input = [6, 5, 3]\nclasses = 4\nlayer = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\", momentum = 0.8 }, { type = \"relu\" }, { type = \"residual\", body = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\" } ] }, { type = \"relu\" }, { type = \"flatten\" }, { type = \"dense\", features = 12, bias = false }, { type = \"batch_norm\", epsilon = 1e-3 }, { type = \"relu\" }, { type = \"dropout\", rate = 0.5 }, { type = \"dense\", features = 4 } ]\n",
    )
    .unwrap();
    let n = 5;
    let p = plan(gpu, &d, n as u32);
    let init = p.layout.init(21);
    let (x, labels) = batch(&d, n, 120);
    let x64: Vec<f64> = cpu::cast(&x);
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    // Running statistics far from the batch's: mean ±0.5, variance 0.5..2.
    let mut r = rng(122);
    let stats: Vec<Vec<f32>> = p
        .stats
        .specs
        .iter()
        .map(|s| {
            let v = uniform(&mut r, s.len(), 1.0);
            if s.name.ends_with(".var") {
                v.iter().map(|x| 1.25 + 0.75 * x).collect()
            } else {
                v.iter().map(|x| 0.5 * x).collect()
            }
        })
        .collect();
    let s64: Vec<Vec<f64>> = stats.iter().map(|t| cpu::cast(t)).collect();
    let mut eval_stats = s64.clone();
    let eval = reference::forward_with(&p, &p64, &mut eval_stats, &x64, reference::Phase::Eval);
    assert_eq!(
        eval_stats, s64,
        "evaluation leaves the running statistics alone"
    );
    let eval_logits = eval.last().unwrap();
    let train = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    let inference = GpuModel::inference(gpu, &d, n as u32, &init).unwrap();
    for (what, m) in [("eval step", &train), ("inference", &inference)] {
        m.write_batch_stats(gpu, &stats);
        m.upload_batch(gpu, &x, &labels);
        m.eval_step(gpu);
        close_scaled(what, &m.read_logits(gpu).unwrap(), eval_logits, 1e-5);
        assert_eq!(m.read_batch_stats(gpu).unwrap(), stats, "{what}");
    }
    // Training mode: batch statistics (and the step's dropout mask), running ones updated.
    let mut train_stats = s64.clone();
    let train_out =
        reference::forward_with(&p, &p64, &mut train_stats, &x64, reference::FIRST_STEP);
    let train_logits = train_out.last().unwrap();
    let differ = train_logits
        .iter()
        .zip(eval_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        differ > 0.1,
        "train and eval logits differ by only {differ}"
    );
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.write_batch_stats(gpu, &stats);
    m.upload_batch(gpu, &x, &labels);
    m.train_step(gpu);
    close_scaled(
        "train logits",
        &m.read_logits(gpu).unwrap(),
        train_logits,
        1e-5,
    );
    let got = m.read_batch_stats(gpu).unwrap();
    for (i, s) in p.stats.specs.iter().enumerate() {
        close_scaled(
            &format!("running {}", s.name),
            &got[i],
            &train_stats[i],
            1e-5,
        );
        // momentum · old + (1 − momentum) · batch moved every statistic.
        assert!(
            got[i].iter().zip(&stats[i]).all(|(a, b)| a != b),
            "{}",
            s.name
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

/// The plan's memory report counts the texture mirrors of the subgroup kernels as the model
/// holds them (one texture per binding and size), so `models --plan` and `bench` agree.
#[test]
fn the_plan_counts_the_texture_mirrors_the_model_holds() {
    let Some(gpu) = gpu() else { return };
    for (name, n) in [("flax-cifar10", 6), ("resnet20", 3), ("lenet5", 5)] {
        let d = zoo::preset(name).unwrap();
        let p = plan(gpu, &d, n);
        let caps = gpu.caps();
        let estimate = p.texture_mirror_bytes(&|st| wgpu_cnn::plan::kernel_of(&caps, &p, st));
        let init = p.layout.init(3);
        let m = GpuModel::from_plan(gpu, p, &init, LR).unwrap();
        let held = wgpu_cnn::gpu::dispatch::mirror_bytes(
            m.train_dispatches().iter().chain(m.eval_dispatches()),
        );
        assert_eq!(estimate, held, "{name}");
        // On an adapter with 8-wide subgroups (lavapipe) the subgroup kernels use them.
        assert_eq!(held > 0, caps.subgroup8(), "{name}: {held} bytes");
    }
}

/// `--plan`, `profile` and the launchers name the same kernels: for every step of the train
/// schedule, the entry points its recorded dispatches run (what `profile` names) are exactly
/// `plan::kernels::entries` (what `--plan` prints), on all three kernel families, for the
/// presets and random descriptions, under Adam and SGD.
#[test]
fn plan_and_launchers_name_the_same_kernels() {
    let Some(sg) = gpu() else { return };
    let mut devices = vec![("default", sg)];
    devices.extend(gpu_tiled().map(|g| ("registers", g)));
    devices.extend(gpu_wg().map(|g| ("workgroup", g)));
    let mut r = rng(77);
    let mut models: Vec<(String, Description, u32)> = ["flax-cifar10", "resnet20", "lenet5"]
        .iter()
        .map(|n| (n.to_string(), zoo::preset(n).unwrap(), 2))
        .collect();
    for i in 0..6 {
        models.push((format!("random {i}"), random_description(&mut r), 3));
    }
    let mut checked = 0;
    for (family, gpu) in &devices {
        let caps = gpu.caps();
        for (name, desc, n) in &models {
            let p = Plan::new(desc, *n, &caps, Mode::Train).unwrap();
            let init = p.layout.init(1);
            let mut m = GpuModel::from_plan(gpu, p, &init, LR).unwrap();
            for opt in [
                wgpu_cnn::optim::Optimizer::default(),
                wgpu_cnn::optim::Optimizer::from_flags(&wgpu_cnn::optim::Flags {
                    optimizer: Some("sgd"),
                    momentum: Some(0.9),
                    ..Default::default()
                })
                .unwrap(),
            ] {
                m.set_optimizer(gpu, opt).unwrap();
                let steps: Vec<&Step> = m.plan.forward.iter().chain(&m.plan.backward).collect();
                assert_eq!(steps.len(), m.step_kernels().len(), "{family} {name}");
                for (s, ran) in steps.iter().zip(m.step_kernels()) {
                    let named = wgpu_cnn::plan::kernels::entries(&caps, &m.plan, s);
                    assert_eq!(
                        &named,
                        ran,
                        "{family} {name}: step {} ({:?}): the plan names {named:?}, the \
                         launcher ran {ran:?}",
                        s.layer(),
                        std::mem::discriminant(*s)
                    );
                    assert!(
                        wgpu_cnn::plan::kernel_of(&caps, &m.plan, s).contains(ran[0]),
                        "{family} {name}: --plan's line for {}",
                        s.layer()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked} steps checked");
}
