//! The CPU reference of a plan: interprets [`Plan::layers`] one layer at a time, unfused (a
//! conv, then its ReLU, then its pool), in f32 or f64. Every fused GPU schedule is tested
//! against it; it is also the whole-model function the finite-difference checks differentiate.

use super::Real;
use crate::params::AdamParams;
use crate::plan::{LayerOp, Plan};

/// Every layer's output (index = layer) for `x` (`[plan.batch, H, W, C]` NHWC).
pub fn forward<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T]) -> Vec<Vec<T>> {
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
            LayerOp::Flatten => y.copy_from_slice(input),
        }
        outs.push(y);
    }
    outs
}

/// Mean softmax cross-entropy of the logits for `labels`.
pub fn loss<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], labels: &[u32]) -> T {
    let outs = forward(plan, params, x);
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

/// Loss, logits and the gradient of the mean loss w.r.t. every parameter.
pub fn loss_and_grads<T: Real>(plan: &Plan, params: &[Vec<T>], x: &[T], labels: &[u32]) -> Step<T> {
    assert_eq!(labels.len(), plan.batch as usize, "one label per image");
    let outs = forward(plan, params, x);
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
