//! The CPU reference of a plan: interprets [`Plan::layers`] one layer at a time, unfused (a
//! conv, then its ReLU, then its pool), in f32 or f64. Every fused GPU schedule is tested
//! against it; it is also the whole-model function the finite-difference checks differentiate.

use super::Real;
use crate::params::AdamParams;
use crate::plan::{LayerOp, Plan};

/// Training or evaluation: only dropout differs (a mask drawn from the run's seed and the
/// train step, as the GPU's `GpuModel` numbers its steps from 1; identity in evaluation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Eval,
    Train { seed: u32, step: u32 },
}

/// What a fresh `GpuModel`'s first train step uses (dropout seed 0, step 1).
pub const FIRST_STEP: Phase = Phase::Train { seed: 0, step: 1 };

fn dropout_params(p: &crate::params::DropoutParams, phase: Phase) -> crate::params::DropoutParams {
    match phase {
        Phase::Eval => p.eval(),
        Phase::Train { seed, step } => p.at(seed, step),
    }
}

/// Every layer's output (index = layer) for `x` (`[plan.batch, H, W, C]` NHWC), in evaluation
/// mode.
pub fn forward<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T]) -> Vec<Vec<T>> {
    forward_in(plan, params, x, Phase::Eval)
}

/// Every layer's output in `phase`.
pub fn forward_in<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], phase: Phase) -> Vec<Vec<T>> {
    let n = plan.batch as usize;
    let mut outs: Vec<Vec<T>> = Vec::with_capacity(plan.layers.len());
    for l in &plan.layers {
        let input: &[T] = outs.last().map_or(x, |v| v.as_slice());
        let mut y = vec![T::zero(); n * l.shape.len()];
        match &l.op {
            LayerOp::Conv { p, w, b } => {
                let bias = b.map_or(&[][..], |b| params[b].as_slice());
                super::conv2d::conv2d_forward(p, input, &params[*w], bias, &mut y)
            }
            LayerOp::Dense { p, w, b } => {
                let bias = b.map_or(&[][..], |b| params[b].as_slice());
                super::dense::dense_forward(p, input, &params[*w], bias, &mut y)
            }
            LayerOp::Relu { .. } => super::relu::relu_forward(input, &mut y),
            LayerOp::AvgPool { p } => super::avgpool::avgpool_forward(p, input, &mut y),
            LayerOp::MaxPool { p } => super::maxpool::maxpool_forward(p, input, &mut y),
            LayerOp::Gelu { .. } => super::gelu::gelu_forward(input, &mut y),
            LayerOp::Dropout { p } => {
                super::dropout::dropout_forward(&dropout_params(p, phase), input, &mut y)
            }
            LayerOp::Flatten => y.copy_from_slice(input),
        }
        outs.push(y);
    }
    outs
}

/// Mean softmax cross-entropy of the logits for `labels`, in evaluation mode.
pub fn loss<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], labels: &[u32]) -> T {
    loss_in(plan, params, x, labels, Phase::Eval)
}

/// Mean softmax cross-entropy in `phase` (the function a train step differentiates).
pub fn loss_in<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    x: &[T],
    labels: &[u32],
    phase: Phase,
) -> T {
    let outs = forward_in(plan, params, x, phase);
    let logits = outs.last().expect("a plan has layers");
    super::softmax_ce::softmax_ce_forward(&loss_params(plan), logits, labels).0
}

fn loss_params(plan: &Plan) -> crate::params::SoftmaxCeParams {
    crate::params::SoftmaxCeParams::new(plan.batch, plan.desc.classes)
}

/// Result of one forward + backward on the CPU reference.
pub struct Step<T> {
    pub loss: T,
    pub correct: u32,
    pub logits: Vec<T>,
    pub grads: Vec<Vec<T>>,
}

/// Loss, logits and the gradient of the mean loss w.r.t. every parameter, as a fresh
/// `GpuModel`'s first train step computes them ([`FIRST_STEP`]).
pub fn loss_and_grads<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], labels: &[u32]) -> Step<T> {
    loss_and_grads_in(plan, params, x, labels, FIRST_STEP)
}

/// Loss, logits and gradients in `phase`.
pub fn loss_and_grads_in<T: Real>(
    plan: &Plan,
    params: &[Vec<T>],
    x: &[T],
    labels: &[u32],
    phase: Phase,
) -> Step<T> {
    assert_eq!(labels.len(), plan.batch as usize, "one label per image");
    let outs = forward_in(plan, params, x, phase);
    let logits = outs.last().expect("a plan has layers").clone();
    let mut grads: Vec<Vec<T>> = plan.layout.zeros();
    let mut d = vec![T::zero(); logits.len()];
    let (loss, correct) =
        super::softmax_ce::softmax_ce_backward(&loss_params(plan), &logits, labels, &mut d);
    let first_param = plan
        .layers
        .iter()
        .position(|l| matches!(l.op, LayerOp::Conv { .. } | LayerOp::Dense { .. }));
    for (i, l) in plan.layers.iter().enumerate().rev() {
        let Some(first) = first_param.filter(|&f| i >= f) else {
            break;
        };
        let input: &[T] = if i == 0 { x } else { &outs[i - 1] };
        let mut din = vec![T::zero(); input.len()];
        match &l.op {
            LayerOp::Conv { p, w, b } => {
                let mut db = vec![T::zero(); p.o as usize];
                super::conv2d::conv2d_backward_weight(p, input, &d, &mut grads[*w], &mut db);
                if let Some(b) = b {
                    grads[*b] = db;
                }
                if i > first {
                    super::conv2d::conv2d_backward_input(p, &d, &params[*w], &mut din);
                }
            }
            LayerOp::Dense { p, w, b } => {
                let mut db = vec![T::zero(); p.n as usize];
                super::dense::dense_backward_weight(p, input, &d, &mut grads[*w], &mut db);
                if let Some(b) = b {
                    grads[*b] = db;
                }
                if i > first {
                    super::dense::dense_backward_input(p, &d, &params[*w], &mut din);
                }
            }
            LayerOp::Relu { .. } => super::relu::relu_backward(&d, &outs[i], &mut din),
            LayerOp::AvgPool { p } => super::avgpool::avgpool_backward(p, &d, &mut din),
            LayerOp::MaxPool { p } => super::maxpool::maxpool_backward(p, input, &d, &mut din),
            LayerOp::Gelu { .. } => super::gelu::gelu_backward(&d, input, &mut din),
            LayerOp::Dropout { p } => {
                super::dropout::dropout_backward(&dropout_params(p, phase), &d, &mut din)
            }
            LayerOp::Flatten => din.copy_from_slice(&d),
        }
        d = din;
    }
    Step {
        loss,
        correct,
        logits,
        grads,
    }
}

/// Adam state of the CPU reference: (mu, nu) per tensor.
pub struct Adam<T> {
    pub mu: Vec<Vec<T>>,
    pub nu: Vec<Vec<T>>,
    pub step: u32,
}

impl<T: Real> Adam<T> {
    pub fn new(plan: &Plan) -> Self {
        Adam {
            mu: plan.layout.zeros(),
            nu: plan.layout.zeros(),
            step: 0,
        }
    }

    /// One Adam step on every tensor (optax defaults).
    pub fn step(&mut self, params: &mut [Vec<T>], grads: &[Vec<T>], lr: f32) {
        self.step += 1;
        for i in 0..params.len() {
            let p = AdamParams::new(params[i].len() as u32, lr, self.step);
            super::adam::adam_update(
                &p,
                &mut params[i],
                &grads[i],
                &mut self.mu[i],
                &mut self.nu[i],
            );
        }
    }
}
