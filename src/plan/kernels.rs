//! The kernel each plan step runs, by name (what `wgpu-cnn models --plan` prints).

use crate::ops::conv2d::winograd;
use crate::ops::{add, conv2d, dense, relu};

/// The kernel (entry point) a plan step runs on a device with `caps`, from the launchers' pure
/// selection functions (what `wgpu-cnn models --plan` prints).
pub fn kernel_of(caps: &super::Caps, plan: &super::Plan, step: &super::Step) -> String {
    use super::Step;
    match step {
        Step::Conv {
            winograd: Some(_),
            p,
            ..
        } => format!("{} + transforms", winograd::forward_gemm(p)),
        Step::ConvBackwardInput {
            winograd: Some((_, None)),
            p,
            ..
        } => format!(
            "{} + transforms",
            winograd::forward_gemm(&p.winograd_transposed())
        ),
        Step::ConvBackwardInput {
            winograd: Some(_), ..
        } => "winograd_gemm_sg + transforms".to_string(),
        Step::Conv { p, .. } => conv2d::select_forward(caps, p).to_string(),
        Step::ConvBackwardInput { p, .. } => conv2d::select_backward_input(caps, p).to_string(),
        Step::ConvBackwardWeight {
            winograd: Some(_), ..
        } => "winograd_gemm_weight_sg + transforms".to_string(),
        Step::ConvBackwardWeight { p, .. } => {
            format!("{} + reduce", conv2d::select_backward_weight(caps, p))
        }
        Step::Dense { p, .. } => dense::select(caps, p, true)[0].clone(),
        Step::DenseBackwardInput { p, .. } => dense::select(caps, p, true)[1].clone(),
        Step::DenseBackwardWeight { p, w, b, .. } => {
            let follows = b.is_none_or(|b| plan.layout.follows(*w, b));
            dense::select(caps, p, follows)[2].clone()
        }
        Step::Relu { p, .. } => relu::select(p)[0].into(),
        Step::Gelu { .. } => "gelu_forward".into(),
        Step::Dropout { .. } => "dropout_forward".into(),
        Step::DropoutBackward { .. } => "dropout_backward".into(),
        Step::GeluBackward { .. } => "gelu_backward".into(),
        Step::MaxPool { .. } => "maxpool_forward".into(),
        Step::MaxPoolBackward { .. } => "maxpool_backward".into(),
        Step::ReluBackward { p, .. } => relu::select(p)[1].into(),
        Step::AvgPool { .. } => "avgpool_forward".into(),
        Step::AvgPoolBackward {
            p, relu_out, mask, ..
        } => match relu_out {
            Some(_) if *mask => "avgpool_backward_relu_k2_mask".into(),
            Some(_) if p.is_k2() && p.c.is_multiple_of(4) => "avgpool_backward_relu_k2".into(),
            Some(_) if p.is_disjoint_vec4() => "avgpool_backward_disjoint_relu".into(),
            Some(_) => "avgpool_backward_relu".into(),
            None if p.is_disjoint_vec4() => "avgpool_backward_disjoint".into(),
            None => "avgpool_backward".into(),
        },
        Step::Loss { dlogits, .. } => if dlogits.is_some() {
            "softmax_ce_backward + reduce"
        } else {
            "softmax_ce_forward + reduce"
        }
        .into(),
        Step::Adam => "adam_update_vec4".into(),
        Step::BatchNorm { residual, .. } => if residual.is_some() {
            "batchnorm_stats + finalize + normalize_add (eval: batchnorm_eval_add)"
        } else {
            "batchnorm_stats + finalize + normalize (eval: batchnorm_eval)"
        }
        .into(),
        Step::BatchNormBackward { din, .. } => if din.is_some() {
            "batchnorm_backward_stats + finalize + input"
        } else {
            "batchnorm_backward_stats + finalize"
        }
        .into(),
        Step::Add { p, mask, .. } => match mask {
            Some(_) if p.count.is_multiple_of(4) => "add_relu_backward_vec4",
            Some(_) => "add_relu_backward",
            None => add::select(p),
        }
        .into(),
    }
}
