//! Whole models through the planner, GPU schedule vs the CPU reference of the same plan (f64):
//! logits, loss, every parameter gradient on one batch, and the parameters after Adam steps — for
//! every preset and for random descriptions from a fixed-seed generator, on both kernel families
//! (the subgroup kernels lavapipe runs and the register-tiled kernels of every other device).

mod common;

use common::{assert_close, gpu, gpu_tiled, random_description, rng, uniform};
use wgpu_cnn::cpu::{self, reference};
use wgpu_cnn::gpu::Gpu;
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::model::GpuModel;
use wgpu_cnn::plan::{Mode, Plan};

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

/// One train step on the GPU vs the CPU reference: logits, loss, correct count, gradients.
fn check_one_step(gpu: &Gpu, desc: &Description, n: usize, seed: u64, rel: f64, what: &str) {
    let p = plan(gpu, desc, n as u32);
    let init = p.layout.init(seed);
    let (x, labels) = batch(desc, n, 10 + seed);
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
    for (i, spec) in p.layout.specs.iter().enumerate() {
        close_scaled(
            &format!("{what} d{}", spec.name),
            &grads[i],
            &want.grads[i],
            2.0 * rel,
        );
    }
}

/// `steps` Adam steps on one batch, GPU vs CPU: losses and parameters.
fn check_adam_steps(gpu: &Gpu, desc: &Description, n: usize, steps: usize, seed: u64, what: &str) {
    let p = plan(gpu, desc, n as u32);
    let init = p.layout.init(seed);
    let (x, labels) = batch(desc, n, 50 + seed);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.upload_batch(gpu, &x, &labels);
    let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let mut adam = reference::Adam::new(&p);
    let x64 = cpu::cast(&x);
    let mut losses = (Vec::new(), Vec::new());
    for _ in 0..steps {
        m.train_step(gpu);
        losses.0.push(m.read_stats(gpu).unwrap().loss);
        // The GPU's k-th train step draws dropout masks for step k (seed 0).
        let phase = reference::Phase::Train {
            seed: 0,
            step: adam.step + 1,
        };
        let step = reference::loss_and_grads_in(&p, &p64, &x64, &labels, phase);
        losses.1.push(step.loss);
        adam.step(&mut p64, &step.grads, LR);
    }
    assert_close(&format!("{what} losses"), &losses.0, &losses.1, 1e-4, 1e-4);
    let params = m.read_params(gpu).unwrap();
    for (i, spec) in p.layout.specs.iter().enumerate() {
        assert_adam_close(
            &format!("{what} after {steps} steps {}", spec.name),
            &params[i],
            &p64[i],
            steps,
        );
    }
}

/// Parameters after `steps` Adam steps, GPU (f32) vs CPU (f64). Adam moves a weight by about lr
/// per step, so 1 % of the run's total covers the f32 gap of every element whose gradient is
/// signal. An element whose gradient is pure rounding noise (a sum that cancels to ~1e-9) is
/// normalised by Adam into full-size steps of a sign the summation order decides: such
/// elements may differ by up to Adam's bound (4·lr per step), and there may be at most one per
/// 100,000 elements (at least one allowed per tensor).
fn assert_adam_close(what: &str, got: &[f32], want: &[f64], steps: usize) {
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
    let allowed = (got.len() / 100_000).max(1);
    assert!(
        flips.len() <= allowed && flips.iter().all(|&(_, e)| e <= bound),
        "{what}: {} elements beyond {tight:e} (allowed {allowed}, each within {bound:e}): {:?}",
        flips.len(),
        &flips[..flips.len().min(8)]
    );
}

#[test]
fn presets_one_step_match_cpu_on_both_kernel_families() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    for name in zoo::NAMES {
        let d = zoo::preset(name).unwrap();
        for (n, seed) in [(3usize, 1u64), (1, 2)] {
            check_one_step(sg, &d, n, seed, 1e-5, &format!("{name} n{n}"));
            check_one_step(tiled, &d, n, seed, 1e-5, &format!("{name} tiled n{n}"));
        }
    }
}

#[test]
fn seed_ten_adam_steps_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    check_adam_steps(gpu, &d, 4, 10, 5, "flax-cifar10");
    if let Some(tiled) = gpu_tiled() {
        check_adam_steps(tiled, &d, 4, 5, 5, "flax-cifar10 tiled");
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
fn lenet5_adam_steps_match_cpu_on_both_families() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let d = zoo::preset("lenet5").unwrap();
    check_adam_steps(sg, &d, 3, 5, 6, "lenet5");
    check_adam_steps(tiled, &d, 3, 5, 6, "lenet5 tiled");
}

#[test]
fn random_descriptions_match_cpu_on_both_kernel_families() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let mut r = rng(2026);
    for i in 0..24 {
        let d = random_description(&mut r);
        let what = format!("random #{i} ({})", d.summary());
        let n = [1usize, 2, 3][i % 3];
        check_one_step(sg, &d, n, i as u64, 2e-5, &what);
        check_one_step(tiled, &d, n, i as u64, 2e-5, &format!("{what} tiled"));
        check_adam_steps(sg, &d, n, 5, i as u64, &what);
        check_adam_steps(tiled, &d, n, 5, i as u64, &format!("{what} tiled"));
    }
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
    let mut adam = reference::Adam::new(&p);
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
        assert_adam_close(&format!("scheduled {}", spec.name), &params[i], &p64[i], 5);
    }
}
