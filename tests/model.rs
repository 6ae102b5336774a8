//! Whole models through the planner, GPU schedule vs the CPU reference of the same plan (f64):
//! logits, loss, every parameter gradient on one batch, and the parameters after Adam steps — for
//! every preset and for random descriptions from a fixed-seed generator, on both kernel families
//! (the subgroup kernels lavapipe runs and the register-tiled kernels of every other device).
//!
//! By topic: the one-step and Adam trajectories (`model/trajectory.rs`), evaluation against
//! training mode (`model/modes.rs`), schedules, clipping and the optimizers
//! (`model/optimizers.rs`), and the kernels and texture mirrors the plan names against those
//! the model runs (`model/kernels.rs`); the helpers they share are here.

mod common;

#[path = "model/kernels.rs"]
mod kernels;
#[path = "model/modes.rs"]
mod modes;
#[path = "model/optimizers.rs"]
mod optimizers;
#[path = "model/trajectory.rs"]
mod trajectory;

use common::{assert_close, rng, uniform};
use wgpu_cnn::cpu::{self, reference};
use wgpu_cnn::gpu::Gpu;
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::model::GpuModel;
use wgpu_cnn::plan::{Mode, Plan};

pub(crate) const LR: f32 = 1e-3;

pub(crate) fn seed() -> Description {
    zoo::preset("flax-cifar10").unwrap()
}

pub(crate) fn batch(desc: &Description, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = rng(seed);
    let len = desc.input.iter().product::<u32>() as usize;
    let x = uniform(&mut r, n * len, 2.0);
    let labels = (0..n as u32).map(|i| (i * 3 + 1) % desc.classes).collect();
    (x, labels)
}

/// Tolerance for a tensor: atol relative to the tensor's largest magnitude, because its
/// entries are sums of many products whose rounding scales with the largest terms.
pub(crate) fn close_scaled(what: &str, got: &[f32], want: &[f64], rel: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    assert_close(what, got, want, rel * scale, 1e-4);
}

pub(crate) fn plan(gpu: &Gpu, desc: &Description, n: u32) -> Plan {
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
pub(crate) fn posed_batch(
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
pub(crate) fn check_one_step(
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
pub(crate) fn layer_scales(p: &Plan, grads: &[Vec<f64>]) -> Vec<f64> {
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
pub(crate) fn check_adam_steps(
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
pub(crate) fn assert_adam_close(
    what: &str,
    got: &[f32],
    want: &[f64],
    noise: &[bool],
    steps: usize,
) {
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
