//! A step of the GPU schedules: one launcher call (one or more dispatches), the tensors it
//! reads and writes, and its FLOPs.

use super::*;

/// One GPU step: a launcher call (one or two dispatches).
#[derive(Clone, Debug)]
pub enum Step {
    /// `y = conv(x) + b` with `p.relu` / `p.pool` epilogues; `pooled` with `p.pool = 1`.
    /// With `winograd` ([`Caps::winograd_conv`]) by Winograd F(4×4, 3×3), through its scratch
    /// tensors [U, V] and M (transformed weights, inputs, products; `ops::conv2d::winograd::gpu`); no
    /// M where the products go straight into the output transform
    /// (`ops::conv2d::winograd::fuses_output`).
    Conv {
        layer: String,
        fused: Vec<String>,
        p: Conv2dParams,
        x: TensorId,
        w: usize,
        b: Option<usize>,
        y: TensorId,
        pooled: Option<TensorId>,
        winograd: Option<([TensorId; 2], Option<TensorId>)>,
    },
    Dense {
        layer: String,
        fused: Vec<String>,
        p: DenseParams,
        x: TensorId,
        w: usize,
        b: Option<usize>,
        y: TensorId,
    },
    Relu {
        layer: String,
        p: ElementwiseParams,
        x: TensorId,
        y: TensorId,
    },
    AvgPool {
        layer: String,
        p: AvgPoolParams,
        x: TensorId,
        y: TensorId,
    },
    /// `y = maxpool(x)`; `argmax` (u32, one per output element) for the backward.
    MaxPool {
        layer: String,
        p: MaxPoolParams,
        x: TensorId,
        y: TensorId,
        argmax: TensorId,
    },
    Gelu {
        layer: String,
        p: GeluParams,
        x: TensorId,
        y: TensorId,
    },
    /// `y = factor · x`.
    Scale {
        layer: String,
        p: ScaleParams,
        x: TensorId,
        y: TensorId,
    },
    /// Training: the mask of the step (the runner writes the step into the uniform); the eval
    /// schedule records it with `p.eval()` (a copy).
    Dropout {
        layer: String,
        p: DropoutParams,
        x: TensorId,
        y: TensorId,
    },
    /// Train schedule: normalise with the batch statistics (saved as mean and 1/std in `saved`,
    /// reduced through `partials`) and update the running ones; eval schedule (and inference
    /// plans, where `saved`/`partials` are `None`): normalise with the running statistics.
    BatchNorm {
        layer: String,
        fused: Vec<String>,
        p: BatchNormParams,
        x: TensorId,
        /// `None`: no trainable scale (the kernels use 1).
        scale: Option<usize>,
        bias: usize,
        mean: usize,
        var: usize,
        saved: Option<TensorId>,
        partials: Option<TensorId>,
        /// A residual's other operand, added before the ReLU (the add fused into the batch
        /// norm that produces one of its operands).
        residual: Option<TensorId>,
        y: TensorId,
    },
    /// `y = a + b` (+ ReLU): a residual's add, or the sum of two gradients of one tensor; with
    /// `mask` (backward) `y = (a + b)·[mask > 0]`, the sum through a ReLU's backward.
    Add {
        layer: String,
        fused: Vec<String>,
        p: AddParams,
        a: TensorId,
        b: TensorId,
        mask: Option<TensorId>,
        y: TensorId,
    },
    /// Scale and bias gradients, and the input gradient `din` where needed; with `p.relu = 1`
    /// the gradient is masked by the fused ReLU first (its input recomputed from `x`).
    BatchNormBackward {
        layer: String,
        p: BatchNormParams,
        dout: TensorId,
        x: TensorId,
        saved: TensorId,
        partials: TensorId,
        /// `None`: no trainable scale (the kernels use 1).
        scale: Option<usize>,
        bias: usize,
        din: Option<TensorId>,
        /// Without a scale: where Σ g·x̂ per channel (the scale's gradient, which the input
        /// gradient needs) goes instead of the gradient buffer.
        dscale: Option<TensorId>,
    },
    /// Train: softmax CE forward and backward (writes `dlogits`); eval: forward only.
    Loss {
        p: SoftmaxCeParams,
        logits: TensorId,
        dlogits: Option<TensorId>,
    },
    ReluBackward {
        layer: String,
        p: ElementwiseParams,
        dout: TensorId,
        out: TensorId,
        din: TensorId,
    },
    /// With `relu_out`: times `[relu_out > 0]`, the backward of the ReLU before the pool;
    /// with `mask` that tensor holds the ReLU output's signs as bits (the fused conv → ReLU →
    /// pool forward stored them instead of the output, [`Plan::relu_masks`]).
    AvgPoolBackward {
        layer: String,
        p: AvgPoolParams,
        dout: TensorId,
        relu_out: Option<TensorId>,
        mask: bool,
        din: TensorId,
    },
    MaxPoolBackward {
        layer: String,
        p: MaxPoolParams,
        dout: TensorId,
        argmax: TensorId,
        din: TensorId,
    },
    /// The same mask drawn again (no mask buffer).
    DropoutBackward {
        layer: String,
        p: DropoutParams,
        dout: TensorId,
        din: TensorId,
    },
    /// `din = factor · dout`.
    ScaleBackward {
        layer: String,
        p: ScaleParams,
        dout: TensorId,
        din: TensorId,
    },
    /// From the forward input `x`.
    GeluBackward {
        layer: String,
        p: GeluParams,
        dout: TensorId,
        x: TensorId,
        din: TensorId,
    },
    /// With `winograd` ([`Caps::winograd_conv`]) by Winograd F(4×4, 3×3): scratch for the
    /// transformed inputs V and output gradients D, and `partials` holds the gradient in the
    /// transformed domain S (`ops::conv2d::winograd::gpu`); otherwise `partials` holds the split-K
    /// partial sums. (Separate tensors: a dispatch may not read and write one buffer.)
    ConvBackwardWeight {
        layer: String,
        p: Conv2dParams,
        x: TensorId,
        dout: TensorId,
        partials: TensorId,
        w: usize,
        b: Option<usize>,
        winograd: Option<[TensorId; 2]>,
        /// V is the forward's (a Winograd forward of the same input wrote it): no input
        /// transform here.
        forward_v: bool,
        /// The ReLU mask of a ReLU → 2×2 average pool after the layer whose backward is fused
        /// into this step's output-gradient transform ([`Plan::winograd_pool_backwards`]):
        /// `dout` is then the pooled gradient.
        pool_mask: Option<TensorId>,
    },
    /// With `winograd`: by Winograd F(4×4, 3×3), the forward's adjoint through scratch [Uᵀ, D]
    /// and E (`ops::conv2d::winograd::gpu::backward_input`; with `weight_d` D is the weight gradient's,
    /// which runs first and computes the same D, not computed again), or without E the forward
    /// of the transposed convolution through [U of the rotated weights, V of dout]
    /// (`ops::conv2d::winograd::gpu::backward_input_as_forward`, [`Caps::winograd_input_as_forward`]).
    ConvBackwardInput {
        layer: String,
        p: Conv2dParams,
        dout: TensorId,
        w: usize,
        din: TensorId,
        winograd: Option<([TensorId; 2], Option<TensorId>)>,
        weight_d: bool,
        /// The ReLU mask of a ReLU → 2×2 average pool before the layer whose backward is fused
        /// into this step's last stage ([`Plan::winograd_pool_backwards`]): `din` is then that
        /// pool's and ReLU's input gradient, at twice the layer's input size.
        pool_mask: Option<TensorId>,
    },
    /// `partials`: split-K scratch where the subgroup kernel cannot write the bias gradient
    /// straight after the weight gradient (the bias does not follow the kernel in the layout).
    DenseBackwardWeight {
        layer: String,
        p: DenseParams,
        x: TensorId,
        dout: TensorId,
        w: usize,
        b: Option<usize>,
        partials: Option<TensorId>,
    },
    DenseBackwardInput {
        layer: String,
        p: DenseParams,
        dout: TensorId,
        w: usize,
        din: TensorId,
    },
    /// The optimizer's update of every parameter (Adam's rule until the runner sets the
    /// optimizer, [`Plan::set_update_rule`]).
    Update { rule: UpdateRule },
}

impl Step {
    /// The layer a step belongs to (profiler rows).
    pub fn layer(&self) -> &str {
        match self {
            Step::Conv { layer, .. }
            | Step::Dense { layer, .. }
            | Step::Relu { layer, .. }
            | Step::AvgPool { layer, .. }
            | Step::MaxPool { layer, .. }
            | Step::Gelu { layer, .. }
            | Step::Scale { layer, .. }
            | Step::ScaleBackward { layer, .. }
            | Step::MaxPoolBackward { layer, .. }
            | Step::GeluBackward { layer, .. }
            | Step::Dropout { layer, .. }
            | Step::DropoutBackward { layer, .. }
            | Step::ReluBackward { layer, .. }
            | Step::AvgPoolBackward { layer, .. }
            | Step::ConvBackwardWeight { layer, .. }
            | Step::ConvBackwardInput { layer, .. }
            | Step::DenseBackwardWeight { layer, .. }
            | Step::DenseBackwardInput { layer, .. }
            | Step::BatchNorm { layer, .. }
            | Step::BatchNormBackward { layer, .. }
            | Step::Add { layer, .. } => layer,
            Step::Loss { .. } => "loss",
            Step::Update { .. } => "update",
        }
    }

    /// Every tensor the step reads or writes.
    pub fn tensors(&self) -> Vec<TensorId> {
        match self {
            Step::Conv {
                x,
                y,
                pooled,
                winograd,
                ..
            } => [Some(*x), Some(*y), *pooled]
                .into_iter()
                .flatten()
                .chain(
                    winograd
                        .iter()
                        .flat_map(|(uv, m)| uv.iter().copied().chain(*m)),
                )
                .collect(),
            Step::Dense { x, y, .. }
            | Step::Relu { x, y, .. }
            | Step::AvgPool { x, y, .. }
            | Step::Gelu { x, y, .. }
            | Step::Scale { x, y, .. }
            | Step::Dropout { x, y, .. } => vec![*x, *y],
            Step::DropoutBackward { dout, din, .. } | Step::ScaleBackward { dout, din, .. } => {
                vec![*dout, *din]
            }
            Step::MaxPool { x, y, argmax, .. } => vec![*x, *y, *argmax],
            Step::MaxPoolBackward {
                dout, argmax, din, ..
            } => vec![*dout, *argmax, *din],
            Step::GeluBackward { dout, x, din, .. } => vec![*dout, *x, *din],
            Step::Loss {
                logits, dlogits, ..
            } => [Some(*logits), *dlogits].into_iter().flatten().collect(),
            Step::ReluBackward { dout, out, din, .. } => vec![*dout, *out, *din],
            Step::AvgPoolBackward {
                dout,
                relu_out,
                din,
                ..
            } => [Some(*dout), *relu_out, Some(*din)]
                .into_iter()
                .flatten()
                .collect(),
            Step::ConvBackwardWeight {
                x,
                dout,
                partials,
                winograd,
                pool_mask,
                ..
            } => [*x, *dout, *partials]
                .into_iter()
                .chain(winograd.iter().flatten().copied())
                .chain(*pool_mask)
                .collect(),
            // With the weight gradient's D the output gradient itself is not read.
            Step::ConvBackwardInput {
                dout,
                din,
                winograd,
                weight_d,
                pool_mask,
                ..
            } => [*din]
                .into_iter()
                .chain((!weight_d).then_some(*dout))
                .chain(
                    winograd
                        .iter()
                        .flat_map(|(ud, e)| ud.iter().copied().chain(*e)),
                )
                .chain(*pool_mask)
                .collect(),
            Step::DenseBackwardInput { dout, din, .. } => vec![*dout, *din],
            Step::DenseBackwardWeight {
                x, dout, partials, ..
            } => [Some(*x), Some(*dout), *partials]
                .into_iter()
                .flatten()
                .collect(),
            Step::BatchNorm {
                x,
                saved,
                partials,
                residual,
                y,
                ..
            } => [Some(*x), *saved, *partials, *residual, Some(*y)]
                .into_iter()
                .flatten()
                .collect(),
            Step::Add { a, b, mask, y, .. } => [Some(*a), Some(*b), *mask, Some(*y)]
                .into_iter()
                .flatten()
                .collect(),
            Step::BatchNormBackward {
                dout,
                x,
                saved,
                partials,
                din,
                dscale,
                ..
            } => [
                Some(*dout),
                Some(*x),
                Some(*saved),
                Some(*partials),
                *din,
                *dscale,
            ]
            .into_iter()
            .flatten()
            .collect(),
            Step::Update { .. } => vec![],
        }
    }

    /// The tensors the step writes (the others of [`Step::tensors`] it only reads).
    pub fn writes(&self) -> Vec<TensorId> {
        match self {
            Step::Conv {
                y,
                pooled,
                winograd,
                ..
            } => [Some(*y), *pooled]
                .into_iter()
                .flatten()
                .chain(
                    winograd
                        .iter()
                        .flat_map(|(uv, m)| uv.iter().copied().chain(*m)),
                )
                .collect(),
            Step::Dense { y, .. }
            | Step::Relu { y, .. }
            | Step::AvgPool { y, .. }
            | Step::Gelu { y, .. }
            | Step::Scale { y, .. }
            | Step::Dropout { y, .. } => vec![*y],
            Step::DropoutBackward { din, .. } | Step::ScaleBackward { din, .. } => vec![*din],
            Step::MaxPool { y, argmax, .. } => vec![*y, *argmax],
            Step::MaxPoolBackward { din, .. } | Step::GeluBackward { din, .. } => vec![*din],
            Step::Loss { dlogits, .. } => dlogits.iter().copied().collect(),
            // The weight gradient's D (with `weight_d`) is read, not written.
            Step::ConvBackwardInput {
                din,
                winograd,
                weight_d,
                ..
            } => std::iter::once(*din)
                .chain(
                    winograd
                        .iter()
                        .flat_map(|&([ut, d], e)| [Some(ut), (!weight_d).then_some(d), e])
                        .flatten(),
                )
                .collect(),
            Step::ReluBackward { din, .. }
            | Step::AvgPoolBackward { din, .. }
            | Step::DenseBackwardInput { din, .. } => vec![*din],
            // The forward's V (with `forward_v`) is read, not written.
            Step::ConvBackwardWeight {
                partials,
                winograd,
                forward_v,
                ..
            } => std::iter::once(*partials)
                .chain(
                    winograd
                        .iter()
                        .flat_map(|&[v, d]| [(!forward_v).then_some(v), Some(d)])
                        .flatten(),
                )
                .collect(),
            Step::DenseBackwardWeight { partials, .. } => partials.iter().copied().collect(),
            Step::BatchNorm {
                saved, partials, y, ..
            } => [*saved, *partials, Some(*y)]
                .into_iter()
                .flatten()
                .collect(),
            Step::Add { y, .. } => vec![*y],
            Step::BatchNormBackward {
                partials,
                din,
                dscale,
                ..
            } => [Some(*partials), *din, *dscale]
                .into_iter()
                .flatten()
                .collect(),
            Step::Update { .. } => vec![],
        }
    }

    /// FLOPs of the step by the usual rule (2 per multiply-add; 1 per element for the others).
    pub fn flops(&self) -> u64 {
        match self {
            Step::Conv { p, .. } | Step::ConvBackwardInput { p, .. } => p.flops_forward(),
            Step::ConvBackwardWeight { p, .. } => p.flops_forward(),
            Step::Dense { p, .. }
            | Step::DenseBackwardWeight { p, .. }
            | Step::DenseBackwardInput { p, .. } => p.flops_forward(),
            Step::Relu { p, .. } | Step::ReluBackward { p, .. } => p.count as u64,
            Step::AvgPool { p, .. } | Step::AvgPoolBackward { p, .. } => p.input_len() as u64,
            Step::MaxPool { p, .. } => (p.output_len() * (p.kh * p.kw) as usize) as u64,
            Step::MaxPoolBackward { p, .. } => p.input_len() as u64,
            Step::Gelu { p, .. } | Step::GeluBackward { p, .. } => 16 * p.count as u64,
            Step::Scale { p, .. } | Step::ScaleBackward { p, .. } => p.count as u64,
            Step::Dropout { p, .. } | Step::DropoutBackward { p, .. } => p.count as u64,
            Step::Loss { p, .. } => 5 * (p.n * p.classes) as u64,
            Step::BatchNorm { p, residual, .. } => {
                (5 + residual.is_some() as u64) * p.count() as u64
            }
            Step::BatchNormBackward { p, .. } => 8 * p.count() as u64,
            Step::Add { p, mask, .. } => (1 + mask.is_some() as u64) * p.count as u64,
            Step::Update { .. } => 0,
        }
    }
}
