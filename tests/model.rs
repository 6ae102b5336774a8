//! The whole seed model, GPU vs CPU reference (f64) on one fixed batch: logits, loss, every
//! parameter gradient, and the parameters after 10 Adam steps.

mod common;

use common::{assert_close, gpu, rng, uniform};
use wgpu_cnn::cpu;
use wgpu_cnn::model::{self, GpuModel};

const LR: f32 = 1e-3;

fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = rng(seed);
    let x = uniform(&mut r, n * model::IMAGE_LEN, 2.0);
    let labels = (0..n as u32).map(|i| (i * 3 + 1) % 10).collect();
    (x, labels)
}

/// Tolerance for a tensor: atol relative to the tensor's largest magnitude, because its
/// entries are sums of many products whose rounding scales with the largest terms.
fn close_scaled(what: &str, got: &[f32], want: &[f64], rel: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    assert_close(what, got, want, rel * scale, 1e-4);
}

#[test]
fn one_step_logits_loss_and_gradients_match_cpu() {
    let Some(gpu) = gpu() else { return };
    for (n, seed) in [(3usize, 1u64), (1, 2)] {
        let init = model::init_params(seed);
        let (x, labels) = batch(n, 10 + seed);
        let mut m = GpuModel::new(gpu, n as u32, &init, LR).unwrap();
        m.upload_batch(gpu, &x, &labels);
        m.train_step(gpu);
        gpu.wait().unwrap();

        let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
        let want = model::cpu_loss_and_grads(&p64, &cpu::cast(&x), &labels);
        close_scaled(
            &format!("model n{n} logits"),
            &m.read_logits(gpu).unwrap(),
            &want.logits,
            1e-5,
        );
        let stats = m.read_stats(gpu).unwrap();
        assert_close(
            &format!("model n{n} loss"),
            &[stats.loss],
            &[want.loss],
            1e-5,
            1e-5,
        );
        assert_eq!(stats.correct, want.correct as f32);
        let grads = m.read_grads(gpu).unwrap();
        for (i, spec) in model::param_specs().iter().enumerate() {
            close_scaled(
                &format!("model n{n} d{}", spec.name),
                &grads[i],
                &want.grads[i],
                2e-5,
            );
        }
    }
}

#[test]
fn ten_adam_steps_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let n = 4;
    let init = model::init_params(5);
    let (x, labels) = batch(n, 50);
    let mut m = GpuModel::new(gpu, n as u32, &init, LR).unwrap();
    m.upload_batch(gpu, &x, &labels);
    let mut p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let mut adam = model::CpuAdam::new();
    let x64 = cpu::cast(&x);
    let mut losses = (Vec::new(), Vec::new());
    for _ in 0..10 {
        m.train_step(gpu);
        losses.0.push(m.read_stats(gpu).unwrap().loss);
        let step = model::cpu_loss_and_grads(&p64, &x64, &labels);
        losses.1.push(step.loss);
        model::cpu_adam_step(&mut p64, &step.grads, &mut adam, LR);
    }
    // Same batch ten times: the loss must fall.
    assert!(
        losses.1[9] < losses.1[0] && losses.0[9] < losses.0[0],
        "loss did not fall: {losses:?}"
    );
    assert_close("model 10 steps losses", &losses.0, &losses.1, 1e-4, 1e-4);
    let params = m.read_params(gpu).unwrap();
    for (i, spec) in model::param_specs().iter().enumerate() {
        // Adam moves a weight by at most ~lr per step, 10·lr over the run; allow 1% of that for
        // the f32 (GPU) vs f64 (CPU) gap, which also covers elements whose gradient is pure
        // rounding noise (Adam normalises those to full-size steps of either sign).
        assert_close(
            &format!("model after 10 steps {}", spec.name),
            &params[i],
            &p64[i],
            0.01 * 10.0 * LR as f64,
            1e-4,
        );
    }
}

#[test]
fn train_step_is_bitwise_deterministic() {
    let Some(gpu) = gpu() else { return };
    let init = model::init_params(9);
    let (x, labels) = batch(5, 90);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut m = GpuModel::new(gpu, 5, &init, LR).unwrap();
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
fn eval_step_matches_train_forward() {
    let Some(gpu) = gpu() else { return };
    let init = model::init_params(11);
    let (x, labels) = batch(7, 110);
    let m = GpuModel::new(gpu, 7, &init, LR).unwrap();
    m.upload_batch(gpu, &x, &labels);
    m.reset_totals(gpu);
    m.eval_step(gpu);
    m.eval_step(gpu);
    let stats = m.read_stats(gpu).unwrap();
    let totals = m.read_totals(gpu).unwrap();
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let loss = model::cpu_loss(&p64, &cpu::cast(&x), &labels);
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
    let after = m.read_params(gpu).unwrap();
    assert_eq!(after, init);
}
