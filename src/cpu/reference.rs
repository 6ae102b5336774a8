//! The CPU reference of a plan: interprets [`Plan::layers`] (the flattened graph) one layer at a
//! time, unfused (a conv, then its ReLU, then its pool), in f32 or f64, each layer reading its
//! own input (a residual's add reads two). Every fused GPU schedule is tested against it; it is
//! also the whole-model function the finite-difference checks differentiate.

use super::Real;
use crate::ops::AdamParams;
use crate::plan::{LayerOp, Plan, Src};

/// Training or evaluation: dropout (a mask drawn from the run's seed and the train step, as the
/// GPU's `GpuModel` numbers its steps from 1; identity in evaluation) and batch norm (batch
/// statistics, updating the running ones; running statistics in evaluation) differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Eval,
    Train { seed: u32, step: u32 },
}

/// What a fresh `GpuModel`'s first train step uses (dropout seed 0, step 1).
pub const FIRST_STEP: Phase = Phase::Train { seed: 0, step: 1 };

fn dropout_params(p: &crate::ops::DropoutParams, phase: Phase) -> crate::ops::DropoutParams {
    match phase {
        Phase::Eval => p.eval(),
        Phase::Train { seed, step } => p.at(seed, step),
    }
}

/// The initial running statistics of a plan's batch norms (means 0, variances 1).
pub fn initial_stats<T: Real>(plan: &Plan) -> Vec<Vec<T>> {
    plan.stats.init(0).iter().map(|v| super::cast(v)).collect()
}

/// A forward pass: every layer's output, and each batch norm's saved (mean, 1/std) in training.
struct Forward<T> {
    outs: Vec<Vec<T>>,
    saved: Vec<Vec<T>>,
}

/// A batch norm's scale: its parameter, or ones without a trainable scale.
fn scale_of<T: Real>(params: &[Vec<T>], scale: Option<usize>, c: u32) -> Vec<T> {
    match scale {
        Some(i) => params[i].clone(),
        None => vec![T::one(); c as usize],
    }
}

fn input_of<'a, T>(outs: &'a [Vec<T>], x: &'a [T], s: Src) -> &'a [T] {
    match s {
        Src::Input => x,
        Src::Node(j) => &outs[j],
    }
}

fn run<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    stats: &mut [Vec<T>],
    x: &[T],
    phase: Phase,
) -> Forward<T> {
    let n = plan.batch as usize;
    let mut outs: Vec<Vec<T>> = Vec::with_capacity(plan.layers.len());
    let mut saved: Vec<Vec<T>> = Vec::with_capacity(plan.layers.len());
    for l in &plan.layers {
        let input = input_of(&outs, x, l.input);
        let mut y = vec![T::zero(); n * l.shape.len()];
        let mut keep = Vec::new();
        match &l.op {
            LayerOp::Conv { p, w, b } => {
                let bias = b.map_or(&[][..], |b| params[b].as_slice());
                crate::ops::conv2d::cpu::conv2d_forward(p, input, &params[*w], bias, &mut y)
            }
            LayerOp::Dense { p, w, b } => {
                let bias = b.map_or(&[][..], |b| params[b].as_slice());
                crate::ops::dense::cpu::dense_forward(p, input, &params[*w], bias, &mut y)
            }
            LayerOp::Relu { .. } => crate::ops::relu::cpu::relu_forward(input, &mut y),
            LayerOp::AvgPool { p } => crate::ops::avgpool::cpu::avgpool_forward(p, input, &mut y),
            LayerOp::MaxPool { p } => crate::ops::maxpool::cpu::maxpool_forward(p, input, &mut y),
            LayerOp::Gelu { p } => {
                crate::ops::gelu::cpu::gelu_forward_as(p.approximate(), input, &mut y)
            }
            LayerOp::Scale { p } => crate::ops::scale::cpu::scale_forward(p, input, &mut y),
            LayerOp::Dropout { p } => {
                crate::ops::dropout::cpu::dropout_forward(&dropout_params(p, phase), input, &mut y)
            }
            LayerOp::Flatten => y.copy_from_slice(input),
            LayerOp::Add { other, .. } => {
                let b = input_of(&outs, x, *other);
                for ((o, &a), &b) in y.iter_mut().zip(input).zip(b) {
                    *o = a + b;
                }
            }
            LayerOp::BatchNorm {
                p,
                scale,
                bias,
                mean,
                var,
            } => match phase {
                Phase::Eval => crate::ops::batchnorm::cpu::batchnorm_forward_eval(
                    p,
                    input,
                    &scale_of(params, *scale, p.c),
                    &params[*bias],
                    &stats[*mean],
                    &stats[*var],
                    &mut y,
                ),
                Phase::Train { .. } => {
                    keep = vec![T::zero(); 2 * p.c as usize];
                    let (mut m, mut v) = (stats[*mean].clone(), stats[*var].clone());
                    crate::ops::batchnorm::cpu::batchnorm_forward_train(
                        p,
                        input,
                        &scale_of(params, *scale, p.c),
                        &params[*bias],
                        &mut m,
                        &mut v,
                        &mut keep,
                        &mut y,
                    );
                    stats[*mean] = m;
                    stats[*var] = v;
                }
            },
        }
        outs.push(y);
        saved.push(keep);
    }
    Forward { outs, saved }
}

/// Every layer's output (index = layer of [`Plan::layers`]) for `x` (`[plan.batch, H, W, C]`
/// NHWC), in evaluation mode with the initial running statistics.
pub fn forward<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T]) -> Vec<Vec<T>> {
    forward_in(plan, params, x, Phase::Eval)
}

/// Every layer's output in `phase`, from the initial running statistics.
pub fn forward_in<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], phase: Phase) -> Vec<Vec<T>> {
    let mut stats = initial_stats(plan);
    run(plan, params, &mut stats, x, phase).outs
}

/// Every layer's output in `phase` with running statistics `stats` (updated in training).
pub fn forward_with<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    stats: &mut [Vec<T>],
    x: &[T],
    phase: Phase,
) -> Vec<Vec<T>> {
    run(plan, params, stats, x, phase).outs
}

/// Mean softmax cross-entropy of the logits for `labels`, in evaluation mode.
pub fn loss<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], labels: &[u32]) -> T {
    loss_in(plan, params, x, labels, Phase::Eval)
}

/// Mean softmax cross-entropy in `phase` (the function a train step differentiates), from the
/// initial running statistics.
pub fn loss_in<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    x: &[T],
    labels: &[u32],
    phase: Phase,
) -> T {
    let outs = forward_in(plan, params, x, phase);
    let logits = outs.last().expect("a plan has layers");
    crate::ops::softmax_ce::cpu::softmax_ce_forward(&loss_params(plan), logits, labels).0
}

fn loss_params(plan: &Plan) -> crate::ops::SoftmaxCeParams {
    crate::ops::SoftmaxCeParams::new(plan.batch, plan.desc.classes)
}

/// Result of one forward + backward on the CPU reference.
pub struct LossAndGrads<T> {
    pub loss: T,
    pub correct: u32,
    pub logits: Vec<T>,
    pub grads: Vec<Vec<T>>,
    /// The running statistics after the forward (updated in training).
    pub stats: Vec<Vec<T>>,
}

/// Loss, logits and the gradient of the mean loss w.r.t. every parameter, as a fresh
/// `GpuModel`'s first train step computes them ([`FIRST_STEP`]).
pub fn loss_and_grads<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    x: &[T],
    labels: &[u32],
) -> LossAndGrads<T> {
    loss_and_grads_in(plan, params, x, labels, FIRST_STEP)
}

/// Loss, logits and gradients in `phase`, from the initial running statistics.
pub fn loss_and_grads_in<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    x: &[T],
    labels: &[u32],
    phase: Phase,
) -> LossAndGrads<T> {
    loss_and_grads_with(plan, params, &initial_stats(plan), x, labels, phase)
}

/// Loss, logits and gradients in `phase` with running statistics `stats`.
pub fn loss_and_grads_with<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    stats: &[Vec<T>],
    x: &[T],
    labels: &[u32],
    phase: Phase,
) -> LossAndGrads<T> {
    assert_eq!(labels.len(), plan.batch as usize, "one label per image");
    let mut stats = stats.to_vec();
    let Forward { outs, saved } = run(plan, params, &mut stats, x, phase);
    let logits = outs.last().expect("a plan has layers").clone();
    let mut grads: Vec<Vec<T>> = plan.layout.zeros();
    let mut d = vec![T::zero(); logits.len()];
    let (loss, correct) = crate::ops::softmax_ce::cpu::softmax_ce_backward(
        &loss_params(plan),
        &logits,
        labels,
        &mut d,
    );
    // Whether a layer's output depends on parameters (then it needs a gradient).
    let mut needs = vec![false; plan.layers.len()];
    for (i, l) in plan.layers.iter().enumerate() {
        needs[i] = matches!(
            l.op,
            LayerOp::Conv { .. } | LayerOp::Dense { .. } | LayerOp::BatchNorm { .. }
        ) || l
            .srcs()
            .iter()
            .any(|s| matches!(s, Src::Node(j) if needs[*j]));
    }
    let wants = |s: Src| matches!(s, Src::Node(j) if needs[j]);
    let mut dout: Vec<Option<Vec<T>>> = vec![None; plan.layers.len()];
    *dout.last_mut().expect("a plan has layers") = Some(d);
    let add_to = |dout: &mut [Option<Vec<T>>], s: Src, g: Vec<T>| {
        if let Src::Node(j) = s {
            match &mut dout[j] {
                Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, &b)| *a = *a + b),
                slot => *slot = Some(g),
            }
        }
    };
    for (i, l) in plan.layers.iter().enumerate().rev() {
        let Some(d) = dout[i].take() else {
            continue;
        };
        if !needs[i] {
            continue;
        }
        let input = input_of(&outs, x, l.input);
        let want = wants(l.input);
        let mut din = vec![T::zero(); input.len()];
        match &l.op {
            LayerOp::Conv { p, w, b } => {
                let mut db = vec![T::zero(); p.o as usize];
                crate::ops::conv2d::cpu::conv2d_backward_weight(
                    p,
                    input,
                    &d,
                    &mut grads[*w],
                    &mut db,
                );
                if let Some(b) = b {
                    grads[*b] = db;
                }
                if want {
                    crate::ops::conv2d::cpu::conv2d_backward_input(p, &d, &params[*w], &mut din);
                }
            }
            LayerOp::Dense { p, w, b } => {
                let mut db = vec![T::zero(); p.n as usize];
                crate::ops::dense::cpu::dense_backward_weight(
                    p,
                    input,
                    &d,
                    &mut grads[*w],
                    &mut db,
                );
                if let Some(b) = b {
                    grads[*b] = db;
                }
                if want {
                    crate::ops::dense::cpu::dense_backward_input(p, &d, &params[*w], &mut din);
                }
            }
            LayerOp::BatchNorm {
                p,
                scale,
                bias,
                mean,
                var,
            } => {
                let c = p.c as usize;
                let (mut ds, mut dbias) = (vec![T::zero(); c], vec![T::zero(); c]);
                match phase {
                    Phase::Train { .. } => crate::ops::batchnorm::cpu::batchnorm_backward(
                        p,
                        &d,
                        None,
                        input,
                        &scale_of(params, *scale, p.c),
                        &saved[i],
                        &mut ds,
                        &mut dbias,
                        want.then_some(&mut din[..]),
                    ),
                    Phase::Eval => crate::ops::batchnorm::cpu::batchnorm_backward_eval(
                        p,
                        &d,
                        None,
                        input,
                        &scale_of(params, *scale, p.c),
                        &stats[*mean],
                        &stats[*var],
                        &mut ds,
                        &mut dbias,
                        &mut din,
                    ),
                }
                if let Some(scale) = scale {
                    grads[*scale] = ds;
                }
                grads[*bias] = dbias;
            }
            LayerOp::Add { other, .. } => {
                if wants(*other) {
                    add_to(&mut dout, *other, d.clone());
                }
                din = d;
            }
            LayerOp::Relu { .. } => crate::ops::relu::cpu::relu_backward(&d, &outs[i], &mut din),
            LayerOp::AvgPool { p } => crate::ops::avgpool::cpu::avgpool_backward(p, &d, &mut din),
            LayerOp::MaxPool { p } => {
                crate::ops::maxpool::cpu::maxpool_backward(p, input, &d, &mut din)
            }
            LayerOp::Gelu { p } => {
                crate::ops::gelu::cpu::gelu_backward_as(p.approximate(), &d, input, &mut din)
            }
            LayerOp::Scale { p } => crate::ops::scale::cpu::scale_backward(p, &d, &mut din),
            LayerOp::Dropout { p } => {
                crate::ops::dropout::cpu::dropout_backward(&dropout_params(p, phase), &d, &mut din)
            }
            LayerOp::Flatten => din.copy_from_slice(&d),
        }
        if want {
            add_to(&mut dout, l.input, din);
        }
    }
    LossAndGrads {
        loss,
        correct,
        logits,
        grads,
        stats,
    }
}

/// Optimizer state of the CPU reference: (mu, nu) per tensor (SGD: mu is the momentum
/// trace), for [`crate::optim::Optimizer`] (Adam unless [`Adam::with`]).
pub struct OptState<T> {
    pub mu: Vec<Vec<T>>,
    pub nu: Vec<Vec<T>>,
    pub step: u32,
    pub optimizer: crate::optim::Optimizer,
    groups: crate::optim::Groups,
}

impl<T: Real> OptState<T> {
    /// optax.adam's defaults.
    pub fn new(plan: &Plan) -> Self {
        Self::with(plan, crate::optim::Optimizer::default())
    }

    /// `optimizer`, whose parameter groups must match the model and be frozen from steps, not
    /// epochs (panics otherwise: the reference takes checked settings).
    pub fn with(plan: &Plan, optimizer: crate::optim::Optimizer) -> Self {
        let groups = optimizer
            .groups(&plan.layout.specs)
            .expect("parameter groups that fit the model");
        OptState {
            mu: plan.layout.zeros(),
            nu: plan.layout.zeros(),
            step: 0,
            optimizer,
            groups,
        }
    }

    /// One step on every tensor.
    pub fn step(&mut self, params: &mut [Vec<T>], grads: &[Vec<T>], lr: f32) {
        self.step += 1;
        for i in 0..params.len() {
            let mut p: AdamParams = self.optimizer.params(params[i].len() as u32, lr, self.step);
            self.groups.apply(&mut p, self.step);
            let group = vec![self.groups.of_tensor.get(i).copied().unwrap_or(0); params[i].len()];
            if self.optimizer.is_sgd() {
                crate::ops::optimizer::cpu::sgd_update(
                    &p,
                    &mut params[i],
                    &grads[i],
                    &mut self.mu[i],
                    &group,
                );
            } else {
                crate::ops::optimizer::cpu::adam_update(
                    &p,
                    &mut params[i],
                    &grads[i],
                    &mut self.mu[i],
                    &mut self.nu[i],
                    &group,
                );
            }
        }
    }
}
