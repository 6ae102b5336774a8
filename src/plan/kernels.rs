//! The kernels each plan step runs, decided once from the ops' pure selection rules
//! (`ops::<op>::select*`, `impl Caps` beside each op): [`entries`] is the exact list of entry
//! points the step's dispatches run, in order — what the launchers record (tests/model.rs
//! checks it step by step on every kernel family), what `profile` names per dispatch, and what
//! `wgpu-cnn models --plan` prints ([`kernel_of`]).

use super::{Caps, Plan, Step};
use crate::ops::conv2d::winograd;
use crate::ops::{
    add, avgpool, batchnorm, conv2d, dense, dropout, gelu, maxpool, relu, scale, softmax_ce,
    Conv2dParams,
};

/// The split-K reduction after a direct weight gradient with `o` output channels.
fn conv_reduce(o: u32) -> &'static str {
    if o.is_multiple_of(4) {
        "conv2d_backward_weight_reduce_vec4"
    } else {
        "conv2d_backward_weight_reduce"
    }
}

/// The Winograd forward of `p`: weight and input transforms, the GEMM, and the output
/// transform where the GEMM does not fuse it.
fn winograd_forward(weight: &'static str, p: &Conv2dParams) -> Vec<&'static str> {
    let mut v = vec![weight, "winograd_input", winograd::forward_gemm(p)];
    if !winograd::fuses_output(p) {
        v.push("winograd_output");
    }
    v
}

/// Every entry point the step's dispatches run on a device with `caps`, in order (the train
/// schedule's; a batch norm's eval form is [`eval_entries`]).
pub fn entries(caps: &Caps, plan: &Plan, step: &Step) -> Vec<&'static str> {
    match step {
        Step::Conv {
            winograd: Some(_),
            p,
            ..
        } => winograd_forward("winograd_weight", p),
        Step::Conv { p, .. } => vec![conv2d::select_forward(caps, p)],
        Step::ConvBackwardInput {
            winograd: Some((_, None)),
            p,
            ..
        } => winograd_forward("winograd_weight_flip_t", &p.winograd_transposed()),
        Step::ConvBackwardInput {
            winograd: Some(_),
            weight_d,
            pool_mask,
            ..
        } => {
            let mut v = if *weight_d {
                vec![]
            } else {
                vec!["winograd_dout"]
            };
            v.extend([
                "winograd_weight_t",
                "winograd_gemm_sg",
                "winograd_adjoint",
                if pool_mask.is_some() {
                    "winograd_gather_pool"
                } else {
                    "winograd_gather"
                },
            ]);
            v
        }
        Step::ConvBackwardInput { p, .. } => vec![conv2d::select_backward_input(caps, p)],
        Step::ConvBackwardWeight {
            winograd: Some(_),
            forward_v,
            pool_mask,
            ..
        } => {
            let mut v = if *forward_v {
                vec![]
            } else {
                vec!["winograd_input"]
            };
            v.extend([
                if pool_mask.is_some() {
                    "winograd_dout_pool"
                } else {
                    "winograd_dout"
                },
                "winograd_gemm_weight_sg",
                "winograd_weight_grad",
            ]);
            v
        }
        Step::ConvBackwardWeight { p, .. } => {
            vec![conv2d::select_backward_weight(caps, p), conv_reduce(p.o)]
        }
        Step::Dense { p, .. } if caps.dense_as_conv(p) => {
            vec![conv2d::select_forward(caps, &p.as_conv())]
        }
        Step::Dense { p, .. } => vec![dense::forward_entry(p)],
        Step::DenseBackwardInput { p, .. } => vec![dense::backward_input_entry(caps, p)],
        Step::DenseBackwardWeight { p, w, b, .. } => {
            let follows = b.is_none_or(|b| plan.layout.follows(*w, b));
            if caps.dense_as_conv(p) {
                let mut v = vec![conv2d::select_backward_weight(caps, &p.as_conv())];
                if !follows {
                    v.push(conv_reduce(p.n));
                }
                v
            } else {
                let mut v = vec![dense::backward_weight_entry(p)];
                if p.bias != 0 {
                    v.push("dense_backward_bias");
                }
                v
            }
        }
        Step::Relu { p, .. } => vec![relu::select(p)[0]],
        Step::ReluBackward { p, .. } => vec![relu::select(p)[1]],
        Step::Gelu { .. } => vec![gelu::ENTRIES[0]],
        Step::GeluBackward { .. } => vec![gelu::ENTRIES[1]],
        Step::Scale { p, .. } => vec![scale::select(p)[0]],
        Step::ScaleBackward { p, .. } => vec![scale::select(p)[1]],
        Step::Dropout { .. } => vec![dropout::ENTRIES[0]],
        Step::DropoutBackward { .. } => vec![dropout::ENTRIES[1]],
        Step::MaxPool { .. } => vec![maxpool::ENTRIES[0]],
        Step::MaxPoolBackward { .. } => vec![maxpool::ENTRIES[1]],
        Step::AvgPool { .. } => vec!["avgpool_forward"],
        Step::AvgPoolBackward {
            p, relu_out, mask, ..
        } => vec![avgpool::backward_entry(p, relu_out.is_some(), *mask)],
        Step::Loss { dlogits, .. } => vec![
            if dlogits.is_some() {
                softmax_ce::BACKWARD
            } else {
                softmax_ce::FORWARD
            },
            softmax_ce::REDUCE,
        ],
        Step::Update { rule } => vec![rule.entry(true)],
        Step::BatchNorm { p, residual, .. } => vec![
            batchnorm::stats_entry(p),
            batchnorm::STATS_FINALIZE,
            batchnorm::forward_entries(p, residual.is_some())[0],
        ],
        Step::BatchNormBackward { p, din, .. } => {
            let mut v = vec![
                batchnorm::backward_stats_entry(p),
                batchnorm::BACKWARD_FINALIZE,
            ];
            if din.is_some() {
                v.push(batchnorm::select(p)[2]);
            }
            v
        }
        Step::Add { p, mask, .. } => vec![match mask {
            Some(_) => add::relu_backward_entry(p),
            None => add::select(p),
        }],
    }
}

/// The entry points of the step in the eval schedule, where that differs from the train
/// schedule's (a batch norm normalises with the running statistics; dropout is a copy).
pub fn eval_entries(step: &Step) -> Option<Vec<&'static str>> {
    match step {
        Step::BatchNorm { p, residual, .. } => {
            Some(vec![batchnorm::forward_entries(p, residual.is_some())[1]])
        }
        _ => None,
    }
}

/// The `--plan` line of the step's kernels: [`entries`] joined, and the eval form after it
/// where it differs.
pub fn kernel_of(caps: &Caps, plan: &Plan, step: &Step) -> String {
    let mut s = entries(caps, plan, step).join(" + ");
    if let Some(e) = eval_entries(step) {
        s += &format!(" (eval: {})", e.join(" + "));
    }
    s
}
