//! The planner: pure (no wgpu) from (description, batch size, device capabilities, mode) to a
//! plan someone can print — the Flax parameter layout, every tensor and the buffer it lives in,
//! the fused GPU steps of the train / eval schedules, the unfused layer list the CPU reference
//! interprets, FLOPs and bytes.
//!
//! Every decision is made here, by rules:
//! - **Fusion.** Conv/dense followed by ReLU: ReLU in the epilogue (the layer keeps only its
//!   activated output, which the ReLU backward needs: output > 0 ⇔ input > 0). Conv → (ReLU) →
//!   2×2/2 VALID average pool in one kernel where the device runs the subgroup kernels and the
//!   output tiles exactly ([`Conv2dParams::can_pool2`]). The backward of a ReLU whose output feeds
//!   an average pool is folded into the pool's backward. Flatten is a view (NHWC is already in
//!   (H, W, C) order).
//!   A residual's add (and its ReLU) is fused into the batch norm that produces one of its
//!   operands when nothing else reads that batch norm's output (`batchnorm_forward_add`); the
//!   sum of the two gradients of a ReLU's output passes through that ReLU's backward in the same
//!   step (`add_relu_backward`).
//! - **Gradients.** No input gradient for the first layer with parameters, and no backward at all
//!   before it.
//! - **Buffers.** Tensors share a buffer when their lifetimes (first to last step that touches
//!   them) do not overlap: gradients ping-pong, split-K scratch reuses a gradient buffer, and the
//!   inference plan keeps only two or three activations alive.
//! - **Limits.** Every tensor must fit the adapter's storage binding; a model or batch that does
//!   not gets an error naming the layer and the largest batch that fits.

pub mod kernels;
pub mod layout;

use std::fmt::Write as _;

pub use crate::caps::{Caps, Kernels};
pub use kernels::kernel_of;
pub use layout::{Init, ParamLayout, ParamSpec};

pub use crate::graph::Src;
use crate::graph::{Description, Layer, NodeOp, Shape};
pub use crate::ops::optimizer::Rule as UpdateRule;
use crate::ops::{
    AddParams, AvgPoolParams, BatchNormParams, Conv2dParams, DenseParams, DropoutParams,
    ElementwiseParams, MaxPoolParams, Padding, SoftmaxCeParams,
};

/// Which schedules a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Train step (forward, loss, backward, Adam) and eval step (forward, loss).
    Train,
    /// Eval step only: no gradient, Adam or split-K buffers.
    Inference,
}

/// Index into [`Plan::tensors`].
pub type TensorId = usize;

/// What a tensor holds (for printing and memory accounting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Input images, labels, logits: bound by the runner, one buffer each.
    Io,
    Activation,
    Gradient,
    /// Split-K partial sums of a weight gradient.
    Scratch,
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    /// Elements (f32 or u32) for the whole batch.
    pub len: usize,
    pub kind: TensorKind,
    /// Index into [`Plan::buffers`].
    pub buffer: usize,
}

/// One GPU buffer and the tensors that take turns in it.
#[derive(Clone, Debug)]
pub struct Buffer {
    pub label: String,
    pub len: usize,
    pub tensors: Vec<TensorId>,
}

/// One layer of the model, unfused, with its resolved shapes: what the CPU reference runs.
#[derive(Clone, Debug)]
pub enum LayerOp {
    /// `p` without fused epilogues (relu = 0, pool = 0); `b`: bias parameter index.
    Conv {
        p: Conv2dParams,
        w: usize,
        b: Option<usize>,
    },
    Dense {
        p: DenseParams,
        w: usize,
        b: Option<usize>,
    },
    Relu {
        p: ElementwiseParams,
    },
    AvgPool {
        p: AvgPoolParams,
    },
    MaxPool {
        p: MaxPoolParams,
    },
    Gelu {
        p: ElementwiseParams,
    },
    /// Training mode (`p.train = 1`) at step 1, seed 0; see [`DropoutParams::at`].
    Dropout {
        p: DropoutParams,
    },
    Flatten,
    /// `p.relu = 0`; `scale`, `bias` index the parameters, `mean`, `var` the running statistics
    /// ([`Plan::stats`]).
    BatchNorm {
        p: BatchNormParams,
        scale: usize,
        bias: usize,
        mean: usize,
        var: usize,
    },
    /// The residual add: the layer's input plus `other`.
    Add {
        p: AddParams,
        other: Src,
    },
}

/// One layer of the plan (a node of the flattened graph): description index, path, Flax-style
/// name, output shape, input, the op.
#[derive(Clone, Debug)]
pub struct PlanLayer {
    /// The top-level description layer it belongs to.
    pub index: usize,
    /// `layer 4 (residual) body[1] (conv)`.
    pub path: String,
    /// `Conv_0`, `Dense_1` for modules with parameters; `relu_3`, `avg_pool_2`, `flatten_6`
    /// (kind and description index) for the others.
    pub name: String,
    pub shape: Shape,
    pub input: Src,
    pub op: LayerOp,
}

impl PlanLayer {
    /// Every input (two for an add).
    pub fn srcs(&self) -> Vec<Src> {
        match self.op {
            LayerOp::Add { other, .. } => vec![self.input, other],
            _ => vec![self.input],
        }
    }
}

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
        p: ElementwiseParams,
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
        scale: usize,
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
        scale: usize,
        bias: usize,
        din: Option<TensorId>,
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
    /// From the forward input `x`.
    GeluBackward {
        layer: String,
        p: ElementwiseParams,
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
            | Step::Dropout { x, y, .. } => vec![*x, *y],
            Step::DropoutBackward { dout, din, .. } => vec![*dout, *din],
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
                ..
            } => [Some(*dout), Some(*x), Some(*saved), Some(*partials), *din]
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
            | Step::Dropout { y, .. } => vec![*y],
            Step::DropoutBackward { din, .. } => vec![*din],
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
            Step::BatchNormBackward { partials, din, .. } => {
                [Some(*partials), *din].into_iter().flatten().collect()
            }
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

    /// A short description for `--plan`.
    fn describe(&self, plan: &Plan) -> String {
        let t = |i: &TensorId| plan.tensors[*i].name.clone();
        match self {
            Step::Conv {
                p,
                x,
                y,
                pooled,
                fused,
                winograd,
                ..
            } => {
                format!(
                    "conv {}x{}/{}x{} {}->{} pad t{} l{}{}: {} -> {}{}",
                    p.kh,
                    p.kw,
                    p.sh,
                    p.sw,
                    p.c,
                    p.o,
                    p.pad_t,
                    p.pad_l,
                    if fused.is_empty() {
                        String::new()
                    } else {
                        format!(" + {}", fused.join(" + "))
                    },
                    t(x),
                    if p.mask != 0 {
                        format!("{} (relu mask)", t(y))
                    } else {
                        t(y)
                    },
                    pooled.map_or(String::new(), |q| format!(", {}", t(&q)))
                ) + if winograd.is_some() {
                    " (Winograd F(4x4, 3x3))"
                } else {
                    ""
                }
            }
            Step::Dense { p, x, y, fused, .. } => format!(
                "dense {}x{}->{}{}: {} -> {}",
                p.m,
                p.k,
                p.n,
                if fused.is_empty() {
                    String::new()
                } else {
                    format!(" + {}", fused.join(" + "))
                },
                t(x),
                t(y)
            ),
            Step::Relu { x, y, .. } => format!("relu: {} -> {}", t(x), t(y)),
            Step::Gelu { x, y, .. } => format!("gelu: {} -> {}", t(x), t(y)),
            Step::Dropout { p, x, y, .. } => {
                format!("dropout {} (eval: copy): {} -> {}", p.rate, t(x), t(y))
            }
            Step::DropoutBackward { dout, din, .. } => {
                format!("dropout backward: {} -> {}", t(dout), t(din))
            }
            Step::MaxPool {
                p, x, y, argmax, ..
            } => format!(
                "max_pool {}x{}/{}x{} pad t{} l{}: {} -> {}, {}",
                p.kh,
                p.kw,
                p.sh,
                p.sw,
                p.pad_t,
                p.pad_l,
                t(x),
                t(y),
                t(argmax)
            ),
            Step::MaxPoolBackward { dout, din, .. } => {
                format!(
                    "max_pool backward (to each window's argmax): {} -> {}",
                    t(dout),
                    t(din)
                )
            }
            Step::GeluBackward { dout, din, .. } => {
                format!("gelu backward: {} -> {}", t(dout), t(din))
            }
            Step::AvgPool { p, x, y, .. } => format!(
                "avg_pool {}x{}/{}x{}: {} -> {}",
                p.kh,
                p.kw,
                p.sh,
                p.sw,
                t(x),
                t(y)
            ),
            Step::Loss {
                logits, dlogits, ..
            } => match dlogits {
                Some(d) => format!("softmax CE forward + backward: {} -> {}", t(logits), t(d)),
                None => format!("softmax CE forward: {}", t(logits)),
            },
            Step::ReluBackward { dout, din, .. } => {
                format!("relu backward: {} -> {}", t(dout), t(din))
            }
            Step::AvgPoolBackward {
                dout,
                relu_out,
                mask,
                din,
                ..
            } => format!(
                "avg_pool backward{}: {} -> {}",
                match relu_out {
                    Some(r) if *mask => format!(" + relu backward (mask {})", t(r)),
                    Some(_) => " + relu backward".to_string(),
                    None => String::new(),
                },
                t(dout),
                t(din)
            ),
            Step::ConvBackwardWeight {
                dout,
                partials,
                winograd: Some([v, d]),
                forward_v,
                pool_mask,
                ..
            } => format!(
                "conv weight gradient (Winograd F(4x4, 3x3){}): {}{} -> {}{}, {} (scratch)",
                if *forward_v { ", the forward's V" } else { "" },
                t(dout),
                pool_mask.map_or(String::new(), |m| format!(
                    " + avg_pool backward + relu backward (mask {})",
                    t(&m)
                )),
                if *forward_v {
                    String::new()
                } else {
                    format!("{}, ", t(v))
                },
                t(d),
                t(partials)
            ),
            Step::ConvBackwardWeight {
                p, dout, partials, ..
            } => format!(
                "conv weight gradient (split-K {} x {} pixels): {} -> {}",
                p.splits,
                p.chunk,
                t(dout),
                t(partials)
            ),
            Step::ConvBackwardInput {
                dout,
                din,
                winograd,
                weight_d,
                pool_mask,
                ..
            } => match winograd {
                Some(([_, d], _)) if *weight_d => format!(
                    "conv input gradient (Winograd F(4x4, 3x3), the weight gradient's D): {} -> {}{}",
                    t(d),
                    t(din),
                    pool_mask.map_or(String::new(), |m| format!(
                        " (+ avg_pool backward + relu backward, mask {})",
                        t(&m)
                    ))
                ),
                Some((_, Some(_))) => format!(
                    "conv input gradient (Winograd F(4x4, 3x3)): {} -> {}",
                    t(dout),
                    t(din)
                ),
                Some((_, None)) => format!(
                    "conv input gradient (Winograd F(4x4, 3x3) forward of the transposed conv): {} -> {}",
                    t(dout),
                    t(din)
                ),
                None => format!("conv input gradient: {} -> {}", t(dout), t(din)),
            },
            Step::DenseBackwardWeight { dout, partials, .. } => format!(
                "dense weight gradient{}: {}",
                if partials.is_some() {
                    " (via split-K scratch)"
                } else {
                    ""
                },
                t(dout)
            ),
            Step::DenseBackwardInput { dout, din, .. } => {
                format!("dense input gradient: {} -> {}", t(dout), t(din))
            }
            Step::Update { rule } => format!(
                "{} update over {} parameters",
                match rule {
                    UpdateRule::Adam => "adam/adamw",
                    UpdateRule::Sgd => "sgd",
                },
                plan.layout.count()
            ),
            Step::BatchNorm {
                p,
                x,
                residual,
                y,
                fused,
                ..
            } => format!(
                "batch_norm {} channels x {} rows{} (eval: running statistics): {}{} -> {}",
                p.c,
                p.rows,
                if fused.is_empty() {
                    String::new()
                } else {
                    format!(" + {}", fused.join(" + "))
                },
                t(x),
                residual.map_or(String::new(), |r| format!(" + {}", t(&r))),
                t(y)
            ),
            Step::BatchNormBackward { dout, din, .. } => format!(
                "batch_norm backward (scale, bias{}): {}{}",
                if din.is_some() { ", input" } else { "" },
                t(dout),
                din.map_or(String::new(), |d| format!(" -> {}", t(&d)))
            ),
            Step::Add {
                a,
                b,
                mask,
                y,
                fused,
                ..
            } => format!(
                "add{}{}: {} + {}{} -> {}",
                if fused.is_empty() {
                    String::new()
                } else {
                    format!(" + {}", fused.join(" + "))
                },
                if mask.is_some() { " backward" } else { "" },
                t(a),
                t(b),
                mask.map_or(String::new(), |m| format!(" (where {} > 0)", t(&m))),
                t(y)
            ),
        }
    }
}

/// A plan error: one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// Everything the GPU schedules and the CPU reference need, decided once.
#[derive(Clone, Debug)]
pub struct Plan {
    pub desc: Description,
    pub batch: u32,
    pub caps: Caps,
    pub mode: Mode,
    pub layout: ParamLayout,
    /// The batch-norm running statistics (Flax's `batch_stats`), same kind of flat layout.
    pub stats: ParamLayout,
    /// The unfused layers (the CPU reference).
    pub layers: Vec<PlanLayer>,
    pub tensors: Vec<Tensor>,
    pub buffers: Vec<Buffer>,
    /// Input images `[N, H, W, C]`, labels `[N]` (u32), logits `[N, classes]`.
    pub input: TensorId,
    pub labels: TensorId,
    pub logits: TensorId,
    /// Forward steps (shared by the train and eval schedules).
    pub forward: Vec<Step>,
    /// Loss, backward and Adam (train only; empty in inference plans).
    pub backward: Vec<Step>,
}

/// What a fused forward step left behind: the layers it covers, its main input, its output,
/// whether a ReLU was fused into it (its output is then the ReLU's output) and the other operand
/// of a residual add it computes (an add, or a batch norm with the add fused).
#[derive(Clone, Copy)]
struct Unit {
    /// Index of the first layer of the unit.
    first: usize,
    x: TensorId,
    y: TensorId,
    relu: bool,
    /// The fused ReLU layer (when `relu`).
    relu_layer: usize,
    residual: Option<TensorId>,
}

impl Plan {
    /// The update rule of the train schedule's optimizer step (the optimizer is a run setting,
    /// not part of the model).
    pub fn set_update_rule(&mut self, rule: UpdateRule) {
        for s in &mut self.backward {
            if let Step::Update { rule: r } = s {
                *r = rule;
            }
        }
    }

    /// Plans `desc` at batch size `batch` for a device with `caps`.
    pub fn new(desc: &Description, batch: u32, caps: &Caps, mode: Mode) -> Result<Self, PlanError> {
        if batch == 0 {
            return Err(PlanError("the batch size must be at least 1".into()));
        }
        let nodes = desc.nodes().map_err(|e| PlanError(e.0))?;
        let n = batch;
        let nz = batch as usize;
        let [ih, iw, ic] = desc.input;
        let mut tensors: Vec<Tensor> = Vec::new();
        let add = |tensors: &mut Vec<Tensor>, name: String, len: usize, kind| {
            tensors.push(Tensor {
                name,
                len,
                kind,
                buffer: usize::MAX,
            });
            tensors.len() - 1
        };

        // Parameters in Flax order, and the unfused layer list.
        let layout = ParamLayout::of(desc).map_err(|e| PlanError(e.0))?;
        let stats = ParamLayout::stats_of(desc).map_err(|e| PlanError(e.0))?;
        let mut layers = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let name = node
                .name
                .clone()
                .unwrap_or_else(|| format!("{}_{i}", node.kind()));
            let too_big = |what: &str| {
                PlanError(format!(
                    "{}: {what} does not fit 32-bit indexing at batch {batch}",
                    node.path
                ))
            };
            let count =
                || u32::try_from(nz * node.in_shape.len()).map_err(|_| too_big("the activation"));
            let op = match (&node.op, node.in_shape) {
                (NodeOp::Add { other }, _) => LayerOp::Add {
                    p: AddParams::new(count()?),
                    other: *other,
                },
                (
                    NodeOp::Layer(Layer::Conv {
                        features,
                        kernel,
                        stride,
                        padding,
                        bias,
                    }),
                    Shape::Spatial { h, w, c },
                ) => {
                    let mut p =
                        Conv2dParams::general(n, h, w, c, *features, *kernel, *stride, *padding)
                            .ok_or_else(|| too_big("the convolution"))?;
                    let (w_idx, b_idx) = param_indices(&layout, &name, *bias);
                    if !bias {
                        p = p.without_bias();
                    }
                    p = p.with_splits(caps.conv_splits(&p));
                    LayerOp::Conv {
                        p,
                        w: w_idx,
                        b: b_idx,
                    }
                }
                (NodeOp::Layer(Layer::Dense { features, bias }), s) => {
                    let (rows, k) = match s {
                        Shape::Spatial { h, w, c } => (n as u64 * h as u64 * w as u64, c),
                        Shape::Flat(f) => (n as u64, f),
                    };
                    if rows > u32::MAX as u64 / 4 {
                        return Err(too_big("the dense layer"));
                    }
                    let mut p = DenseParams::new(rows as u32, k, *features);
                    let (w_idx, b_idx) = param_indices(&layout, &name, *bias);
                    if !bias {
                        p = p.without_bias();
                    }
                    LayerOp::Dense {
                        p,
                        w: w_idx,
                        b: b_idx,
                    }
                }
                (NodeOp::Layer(Layer::BatchNorm { momentum, epsilon }), s) => {
                    let c = s.channels();
                    let rows = count()? / c;
                    if rows == 1 && mode == Mode::Train {
                        return Err(PlanError(format!(
                            "{}: batch norm over a single value per channel (batch size {batch}, {} input) normalises every output to its bias; train with a batch size above 1",
                            node.path,
                            if matches!(s, Shape::Flat(_)) { "flat" } else { "1x1" }
                        )));
                    }
                    let idx = |l: &ParamLayout, what: &str| {
                        l.index(&format!("{name}.{what}"))
                            .expect("the layouts name every batch norm")
                    };
                    LayerOp::BatchNorm {
                        p: BatchNormParams::new(rows, c, *momentum, *epsilon),
                        scale: idx(&layout, "scale"),
                        bias: idx(&layout, "bias"),
                        mean: idx(&stats, "mean"),
                        var: idx(&stats, "var"),
                    }
                }
                (NodeOp::Layer(Layer::Relu), _) => LayerOp::Relu {
                    p: ElementwiseParams::new(count()?),
                },
                (
                    NodeOp::Layer(Layer::AvgPool {
                        window,
                        stride,
                        padding,
                    }),
                    Shape::Spatial { h, w, c },
                ) => LayerOp::AvgPool {
                    p: AvgPoolParams::general(n, h, w, c, *window, *stride, *padding)
                        .ok_or_else(|| too_big("the pool"))?,
                },
                (
                    NodeOp::Layer(Layer::MaxPool {
                        window,
                        stride,
                        padding,
                    }),
                    Shape::Spatial { h, w, c },
                ) => LayerOp::MaxPool {
                    p: MaxPoolParams::general(n, h, w, c, *window, *stride, *padding)
                        .ok_or_else(|| too_big("the pool"))?,
                },
                // The mean over H and W is the average pool whose window is the whole image.
                (NodeOp::Layer(Layer::GlobalAvgPool), Shape::Spatial { h, w, c }) => {
                    LayerOp::AvgPool {
                        p: AvgPoolParams::general(n, h, w, c, [h, w], [h, w], Padding::Valid)
                            .ok_or_else(|| too_big("the pool"))?,
                    }
                }
                (NodeOp::Layer(Layer::Gelu), _) => LayerOp::Gelu {
                    p: ElementwiseParams::new(count()?),
                },
                (NodeOp::Layer(Layer::Dropout { rate }), _) => LayerOp::Dropout {
                    p: DropoutParams::new(count()?, *rate, i as u32),
                },
                (NodeOp::Layer(Layer::Flatten), _) => LayerOp::Flatten,
                _ => unreachable!("nodes() checked the layer inputs"),
            };
            layers.push(PlanLayer {
                index: node.index,
                path: node.path.clone(),
                name,
                shape: node.shape,
                input: node.input,
                op,
            });
        }

        // How many layers read each layer's output (the last one's: the loss).
        let mut uses = vec![0usize; layers.len()];
        for l in &layers {
            for s in l.srcs() {
                if let Src::Node(j) = s {
                    uses[j] += 1;
                }
            }
        }
        if let Some(u) = uses.last_mut() {
            *u += 1;
        }
        // Layer `j` is a ReLU reading only layer `i`, which nothing else reads.
        let relu_after = |i: usize, j: usize| {
            layers.get(j).is_some_and(|l| {
                matches!(l.op, LayerOp::Relu { .. }) && l.input == Src::Node(i) && uses[i] == 1
            })
        };

        // Forward: fuse and name the tensors.
        let input = add(
            &mut tensors,
            "input".into(),
            nz * (ih * iw * ic) as usize,
            TensorKind::Io,
        );
        let labels = add(&mut tensors, "labels".into(), nz, TensorKind::Io);
        let mut forward = Vec::new();
        let mut units: Vec<Unit> = Vec::new();
        // Per layer: the tensor holding its output.
        let mut out_of: Vec<TensorId> = vec![usize::MAX; layers.len()];
        let src = |out_of: &[TensorId], s: Src| match s {
            Src::Input => input,
            Src::Node(j) => out_of[j],
        };
        let mut i = 0;
        while i < layers.len() {
            let l = &layers[i];
            let x = src(&out_of, l.input);
            let act_len = nz * l.shape.len();
            let relu = relu_after(i, i + 1)
                && matches!(
                    l.op,
                    LayerOp::Conv { .. }
                        | LayerOp::Dense { .. }
                        | LayerOp::BatchNorm { .. }
                        | LayerOp::Add { .. }
                );
            let last = if relu { i + 1 } else { i };
            let fused: Vec<String> = if relu {
                vec![layers[i + 1].name.clone()]
            } else {
                Vec::new()
            };
            let new_out = |tensors: &mut Vec<Tensor>| {
                add(
                    tensors,
                    format!("{}.out", l.name),
                    act_len,
                    TensorKind::Activation,
                )
            };
            match &l.op {
                LayerOp::Conv { p, w, b } => {
                    let mut p = *p;
                    let mut fused = fused;
                    if relu {
                        p = p.with_relu();
                    }
                    let y = new_out(&mut tensors);
                    let pool = match layers.get(last + 1) {
                        Some(pl) if pl.input == Src::Node(last) && uses[last] == 1 => match pl.op {
                            LayerOp::AvgPool { p: pp } if caps.conv_pool2(&p) && is_pool2(&pp) => {
                                Some(pp)
                            }
                            _ => None,
                        },
                        _ => None,
                    };
                    let pooled = pool.map(|pp| {
                        let pl = &layers[last + 1];
                        fused.push(pl.name.clone());
                        add(
                            &mut tensors,
                            format!("{}.out", pl.name),
                            pp.output_len(),
                            TensorKind::Activation,
                        )
                    });
                    if pooled.is_some() {
                        p = p.with_pool2();
                    }
                    let winograd = caps.winograd_forward(&p).then(|| {
                        let [u, v, m] = crate::ops::conv2d::winograd::scratch_lens(&p).0;
                        let mut scratch = |which: &str, len| {
                            add(
                                &mut tensors,
                                format!("{}.winograd_{which}", l.name),
                                len,
                                TensorKind::Scratch,
                            )
                        };
                        let uv = [scratch("u", u), scratch("v", v)];
                        (uv, (m > 0).then(|| scratch("m", m)))
                    });
                    forward.push(Step::Conv {
                        layer: l.name.clone(),
                        fused,
                        p,
                        x,
                        w: *w,
                        b: *b,
                        y,
                        pooled,
                        winograd,
                    });
                    units.push(Unit {
                        first: i,
                        x,
                        y,
                        relu,
                        relu_layer: i + 1,
                        residual: None,
                    });
                    out_of[i..=last].fill(y);
                    i = last + 1;
                    if let Some(pt) = pooled {
                        units.push(Unit {
                            first: i,
                            x: y,
                            y: pt,
                            relu: false,
                            relu_layer: i,
                            residual: None,
                        });
                        out_of[i] = pt;
                        i += 1;
                    }
                    continue;
                }
                LayerOp::Dense { p, w, b } => {
                    let p = if relu { p.with_relu() } else { *p };
                    let y = new_out(&mut tensors);
                    forward.push(Step::Dense {
                        layer: l.name.clone(),
                        fused,
                        p,
                        x,
                        w: *w,
                        b: *b,
                        y,
                    });
                    units.push(Unit {
                        first: i,
                        x,
                        y,
                        relu,
                        relu_layer: i + 1,
                        residual: None,
                    });
                    out_of[i..=last].fill(y);
                }
                LayerOp::BatchNorm {
                    p,
                    scale,
                    bias,
                    mean,
                    var,
                } => {
                    // A residual's add that reads this batch norm's output (and nothing else
                    // does) is fused into it: y = bn(x) + other, then the add's ReLU.
                    let res_add = layers.get(i + 1).and_then(|a| match a.op {
                        LayerOp::Add { other, .. } if uses[i] == 1 => {
                            let me = Src::Node(i);
                            if a.input == me && other != me {
                                Some(other)
                            } else if other == me && a.input != me {
                                Some(a.input)
                            } else {
                                None
                            }
                        }
                        _ => None,
                    });
                    let (relu, last, fused, residual) = match res_add {
                        Some(other) => {
                            let relu = relu_after(i + 1, i + 2);
                            let mut fused = vec![layers[i + 1].name.clone()];
                            if relu {
                                fused.push(layers[i + 2].name.clone());
                            }
                            let last = if relu { i + 2 } else { i + 1 };
                            (relu, last, fused, Some(src(&out_of, other)))
                        }
                        None => (relu, last, fused, None),
                    };
                    let p = if relu { p.with_relu() } else { *p };
                    let y = match residual {
                        Some(_) => add(
                            &mut tensors,
                            format!("{}.out", layers[i + 1].name),
                            act_len,
                            TensorKind::Activation,
                        ),
                        None => new_out(&mut tensors),
                    };
                    let train = mode == Mode::Train;
                    let saved = train.then(|| {
                        add(
                            &mut tensors,
                            format!("{}.saved", l.name),
                            2 * p.c as usize,
                            TensorKind::Activation,
                        )
                    });
                    let partials = train.then(|| {
                        add(
                            &mut tensors,
                            format!("{}.partials", l.name),
                            p.partials_len(),
                            TensorKind::Scratch,
                        )
                    });
                    forward.push(Step::BatchNorm {
                        layer: l.name.clone(),
                        fused,
                        p,
                        x,
                        scale: *scale,
                        bias: *bias,
                        mean: *mean,
                        var: *var,
                        saved,
                        partials,
                        residual,
                        y,
                    });
                    units.push(Unit {
                        first: i,
                        x,
                        y,
                        relu,
                        relu_layer: last,
                        residual,
                    });
                    out_of[i..=last].fill(y);
                    i = last + 1;
                    continue;
                }
                LayerOp::Add { p, other } => {
                    let p = if relu { p.with_relu() } else { *p };
                    let y = new_out(&mut tensors);
                    let b = src(&out_of, *other);
                    forward.push(Step::Add {
                        layer: l.name.clone(),
                        fused,
                        p,
                        a: x,
                        b,
                        mask: None,
                        y,
                    });
                    units.push(Unit {
                        first: i,
                        x,
                        y,
                        relu,
                        relu_layer: i + 1,
                        residual: Some(b),
                    });
                    out_of[i..=last].fill(y);
                }
                LayerOp::Relu { .. }
                | LayerOp::AvgPool { .. }
                | LayerOp::MaxPool { .. }
                | LayerOp::Gelu { .. }
                | LayerOp::Dropout { .. } => {
                    // One input, one new output tensor (plus a max pool's argmax).
                    let y = new_out(&mut tensors);
                    let layer = l.name.clone();
                    forward.push(match &l.op {
                        LayerOp::Relu { p } => Step::Relu { layer, p: *p, x, y },
                        LayerOp::AvgPool { p } => Step::AvgPool { layer, p: *p, x, y },
                        LayerOp::Gelu { p } => Step::Gelu { layer, p: *p, x, y },
                        LayerOp::Dropout { p } => Step::Dropout { layer, p: *p, x, y },
                        LayerOp::MaxPool { p } => {
                            let argmax = add(
                                &mut tensors,
                                format!("{}.argmax", l.name),
                                act_len,
                                TensorKind::Activation,
                            );
                            Step::MaxPool {
                                layer,
                                p: *p,
                                x,
                                y,
                                argmax,
                            }
                        }
                        _ => unreachable!("the arms above"),
                    });
                    units.push(Unit {
                        first: i,
                        x,
                        y,
                        relu: false,
                        relu_layer: i,
                        residual: None,
                    });
                    out_of[i] = y;
                }
                // A view: the same tensor.
                LayerOp::Flatten => out_of[i] = x,
            }
            i = last + 1;
        }
        let logits = *out_of.last().expect("a description has layers");
        if logits == input {
            return Err(PlanError(
                "the model has no layer that computes anything".into(),
            ));
        }
        tensors[logits].kind = TensorKind::Io;
        tensors[logits].name = "logits".into();
        let loss = SoftmaxCeParams::new(n, desc.classes);

        // Backward, unit by unit in reverse (every consumer of a tensor comes after its
        // producer, so a tensor's gradient is complete when its producer's turn comes).
        let mut backward = Vec::new();
        if mode == Mode::Train {
            if layout.specs.is_empty() {
                return Err(PlanError("the model has no parameters to train".into()));
            }
            // Whether a tensor depends on parameters (then it needs a gradient).
            let mut needs = vec![false; tensors.len()];
            for u in &units {
                let l = &layers[u.first];
                needs[u.y] =
                    has_params(&l.op) || needs[u.x] || u.residual.is_some_and(|r| needs[r]);
            }
            // Readers of each tensor (the logits: the loss).
            let mut readers = vec![0usize; tensors.len()];
            for u in &units {
                readers[u.x] += 1;
                if let Some(r) = u.residual {
                    readers[r] += 1;
                }
            }
            readers[logits] += 1;
            let producer = |t: TensorId| units.iter().position(|u| u.y == t);
            let logits_len = tensors[logits].len;
            let dlogits = add(
                &mut tensors,
                "dlogits".into(),
                logits_len,
                TensorKind::Gradient,
            );
            backward.push(Step::Loss {
                p: loss,
                logits,
                dlogits: Some(dlogits),
            });
            // The gradient of each tensor so far, and whether it is already the gradient before
            // its producer's ReLU (folded into the backward of a pool that reads it).
            let mut grads: Vec<Option<(TensorId, bool)>> = vec![None; tensors.len()];
            grads[logits] = Some((dlogits, false));
            let fresh = |tensors: &mut Vec<Tensor>, name: String, like: TensorId| {
                let len = tensors[like].len;
                add(tensors, name, len, TensorKind::Gradient)
            };
            // Adds gradient `g` to tensor `x`'s (a tensor read twice: a residual's input).
            let accumulate = |tensors: &mut Vec<Tensor>,
                              backward: &mut Vec<Step>,
                              grads: &mut Vec<Option<(TensorId, bool)>>,
                              layer: &str,
                              x: TensorId,
                              g: TensorId,
                              pre: bool| {
                grads[x] = Some(match grads[x] {
                    None => (g, pre),
                    Some((old, _)) => {
                        let y = fresh(tensors, format!("{layer}.dsum"), x);
                        backward.push(Step::Add {
                            layer: layer.to_string(),
                            fused: Vec::new(),
                            p: AddParams::new(tensors[x].len as u32),
                            a: old,
                            b: g,
                            mask: None,
                            y,
                        });
                        (y, false)
                    }
                });
            };
            for u in units.iter().rev() {
                let l = &layers[u.first];
                let Some((dy, pre)) = grads[u.y] else {
                    continue;
                };
                if !needs[u.y] {
                    continue;
                }
                let name = l.name.clone();
                // A gradient summed from two readers passes through the backward of this unit's
                // ReLU in the same pass (add_relu_backward): then it is already the gradient
                // before the ReLU.
                let pre = pre
                    || (u.relu
                        && match backward
                            .iter_mut()
                            .rev()
                            .find(|s| matches!(s, Step::Add { y, .. } if *y == dy))
                        {
                            Some(Step::Add { mask, fused, .. }) if mask.is_none() => {
                                *mask = Some(u.y);
                                fused.push(layers[u.relu_layer].name.clone());
                                tensors[dy].name = format!("{name}.dpre");
                                true
                            }
                            _ => false,
                        });
                // The gradients this unit hands to its inputs: (input, gradient, whether it is
                // already the gradient before the input's own ReLU).
                let mut to: Vec<(TensorId, TensorId, bool)> = Vec::new();
                // The gradient before a fused ReLU (BN applies the mask itself).
                let dpre = |tensors: &mut Vec<Tensor>, backward: &mut Vec<Step>| {
                    if !u.relu || pre {
                        return dy;
                    }
                    let LayerOp::Relu { p } = layers[u.relu_layer].op else {
                        unreachable!("a fused ReLU follows its layer")
                    };
                    let din = fresh(tensors, format!("{name}.dpre"), u.y);
                    backward.push(Step::ReluBackward {
                        layer: name.clone(),
                        p,
                        dout: dy,
                        out: u.y,
                        din,
                    });
                    din
                };
                let need_x = needs[u.x];
                match &l.op {
                    LayerOp::Conv { p, w, b } => {
                        let dout = dpre(&mut tensors, &mut backward);
                        let lens = crate::ops::conv2d::winograd::scratch_lens(p).2;
                        // The forward's transformed inputs, when it ran Winograd: the same V.
                        let forward_v = forward.iter().find_map(|s| match s {
                            Step::Conv {
                                layer,
                                winograd: Some(([_, v], _)),
                                ..
                            } if *layer == name => Some(*v),
                            _ => None,
                        });
                        let winograd = caps.winograd_conv(p).then(|| {
                            let v = forward_v.unwrap_or_else(|| {
                                add(
                                    &mut tensors,
                                    format!("{name}.dweight_winograd_v"),
                                    lens[0],
                                    TensorKind::Scratch,
                                )
                            });
                            let d = add(
                                &mut tensors,
                                format!("{name}.dweight_winograd_d"),
                                lens[1],
                                TensorKind::Scratch,
                            );
                            [v, d]
                        });
                        let partials = add(
                            &mut tensors,
                            format!("{name}.partials"),
                            if winograd.is_some() {
                                lens[2]
                            } else {
                                p.partials_len()
                            },
                            TensorKind::Scratch,
                        );
                        backward.push(Step::ConvBackwardWeight {
                            layer: name.clone(),
                            p: *p,
                            x: u.x,
                            dout,
                            partials,
                            w: *w,
                            b: *b,
                            winograd,
                            forward_v: winograd.is_some() && forward_v.is_some(),
                            pool_mask: None,
                        });
                        if need_x {
                            let din = fresh(&mut tensors, format!("{name}.dinput"), u.x);
                            // Uᵀ, D (the weight gradient's, which it just computed), E.
                            let weight_d = winograd.map(|[_, d]| d);
                            let as_forward = caps.winograd_input_as_forward(p);
                            let adjoint = caps.winograd_conv(p) && !as_forward;
                            let winograd = (adjoint || as_forward).then(|| {
                                let [ut, d, e] = crate::ops::conv2d::winograd::scratch_lens(p).1;
                                let mut scratch = |which: &str, len| {
                                    add(
                                        &mut tensors,
                                        format!("{name}.dinput_winograd_{which}"),
                                        len,
                                        TensorKind::Scratch,
                                    )
                                };
                                if as_forward {
                                    // U of the rotated weights, V of dout (D's size).
                                    return ([scratch("u", ut), scratch("v", d)], None);
                                }
                                let ut = scratch("ut", ut);
                                let d = weight_d.unwrap_or_else(|| scratch("d", d));
                                ([ut, d], Some(scratch("e", e)))
                            });
                            backward.push(Step::ConvBackwardInput {
                                layer: name.clone(),
                                p: *p,
                                dout,
                                w: *w,
                                din,
                                winograd,
                                weight_d: adjoint && weight_d.is_some(),
                                pool_mask: None,
                            });
                            to.push((u.x, din, false));
                        }
                    }
                    LayerOp::Dense { p, w, b } => {
                        let dout = dpre(&mut tensors, &mut backward);
                        let follows = b.is_none_or(|b| layout.follows(*w, b));
                        let partials = (caps.dense_as_conv(p) && !follows).then(|| {
                            add(
                                &mut tensors,
                                format!("{name}.partials"),
                                p.as_conv().partials_len(),
                                TensorKind::Scratch,
                            )
                        });
                        backward.push(Step::DenseBackwardWeight {
                            layer: name.clone(),
                            p: *p,
                            x: u.x,
                            dout,
                            w: *w,
                            b: *b,
                            partials,
                        });
                        if need_x {
                            let din = fresh(&mut tensors, format!("{name}.dinput"), u.x);
                            backward.push(Step::DenseBackwardInput {
                                layer: name.clone(),
                                p: *p,
                                dout,
                                w: *w,
                                din,
                            });
                            to.push((u.x, din, false));
                        }
                    }
                    LayerOp::BatchNorm { p, scale, bias, .. } => {
                        let saved = match forward
                            .iter()
                            .find(|s| matches!(s, Step::BatchNorm { y, .. } if *y == u.y))
                        {
                            Some(Step::BatchNorm { saved, .. }) => {
                                saved.expect("train plans save batch statistics")
                            }
                            _ => unreachable!("a batch norm unit has its forward step"),
                        };
                        let partials = add(
                            &mut tensors,
                            format!("{name}.dpartials"),
                            p.partials_len(),
                            TensorKind::Scratch,
                        );
                        // With a fused residual add the gradient before the ReLU goes to both
                        // operands: formed once; otherwise the batch norm masks it itself.
                        let (dout, relu) = match u.residual {
                            Some(_) => (dpre(&mut tensors, &mut backward), false),
                            None => (dy, u.relu && !pre),
                        };
                        let din =
                            need_x.then(|| fresh(&mut tensors, format!("{name}.dinput"), u.x));
                        backward.push(Step::BatchNormBackward {
                            layer: name.clone(),
                            p: if relu { p.with_relu() } else { *p },
                            dout,
                            x: u.x,
                            saved,
                            partials,
                            scale: *scale,
                            bias: *bias,
                            din,
                        });
                        if let Some(din) = din {
                            to.push((u.x, din, false));
                        }
                        if let Some(r) = u.residual.filter(|&r| needs[r]) {
                            to.push((r, dout, false));
                        }
                    }
                    LayerOp::Add { .. } => {
                        let g = dpre(&mut tensors, &mut backward);
                        for t in [Some(u.x), u.residual].into_iter().flatten() {
                            if needs[t] {
                                to.push((t, g, false));
                            }
                        }
                    }
                    LayerOp::AvgPool { p } if need_x => {
                        // The producer of the pool's input: a ReLU (standalone, or fused) that
                        // nothing else reads folds its backward into the pool's.
                        let below = producer(u.x).map(|b| units[b]);
                        let fold = readers[u.x] == 1
                            && below.is_some_and(|b| {
                                b.relu || matches!(layers[b.first].op, LayerOp::Relu { .. })
                            });
                        let din = fresh(
                            &mut tensors,
                            if fold {
                                format!("{}.dpre", layers[below.expect("folded").first].name)
                            } else {
                                format!("{name}.dinput")
                            },
                            u.x,
                        );
                        backward.push(Step::AvgPoolBackward {
                            layer: name.clone(),
                            p: *p,
                            dout: dy,
                            relu_out: fold.then_some(u.x),
                            mask: false,
                            din,
                        });
                        to.push((u.x, din, fold));
                    }
                    LayerOp::Relu { .. } if pre => {
                        // Folded into the pool above: the gradient passes through.
                        to.push((u.x, dy, false));
                    }
                    LayerOp::Relu { .. }
                    | LayerOp::MaxPool { .. }
                    | LayerOp::Gelu { .. }
                    | LayerOp::Dropout { .. }
                        if need_x =>
                    {
                        let din = fresh(&mut tensors, format!("{name}.dinput"), u.x);
                        let (layer, dout) = (name.clone(), dy);
                        backward.push(match &l.op {
                            LayerOp::Relu { p } => Step::ReluBackward {
                                layer,
                                p: *p,
                                dout,
                                out: u.y,
                                din,
                            },
                            LayerOp::Gelu { p } => Step::GeluBackward {
                                layer,
                                p: *p,
                                dout,
                                x: u.x,
                                din,
                            },
                            LayerOp::Dropout { p } => Step::DropoutBackward {
                                layer,
                                p: *p,
                                dout,
                                din,
                            },
                            LayerOp::MaxPool { p } => {
                                let argmax = match forward
                                    .iter()
                                    .find(|s| matches!(s, Step::MaxPool { y, .. } if *y == u.y))
                                {
                                    Some(Step::MaxPool { argmax, .. }) => *argmax,
                                    _ => unreachable!("a max pool unit has its forward step"),
                                };
                                Step::MaxPoolBackward {
                                    layer,
                                    p: *p,
                                    dout,
                                    argmax,
                                    din,
                                }
                            }
                            _ => unreachable!("the arms above"),
                        });
                        to.push((u.x, din, false));
                    }
                    _ => {}
                }
                for (x, g, pre) in to {
                    accumulate(&mut tensors, &mut backward, &mut grads, &name, x, g, pre);
                }
            }
            backward.push(Step::Update {
                rule: UpdateRule::default(),
            });
        }

        let mut plan = Plan {
            desc: desc.clone(),
            batch,
            caps: *caps,
            mode,
            layout,
            stats,
            layers,
            tensors,
            buffers: Vec::new(),
            input,
            labels,
            logits,
            forward,
            backward,
        };
        plan.relu_masks();
        plan.winograd_pool_backwards();
        plan.assign_buffers();
        plan.check_limits()?;
        Ok(plan)
    }

    /// The eval loss step (forward only).
    pub fn eval_loss(&self) -> Step {
        Step::Loss {
            p: SoftmaxCeParams::new(self.batch, self.desc.classes),
            logits: self.logits,
            dlogits: None,
        }
    }

    /// Gives every tensor a buffer: I/O tensors their own, the others by lifetime (first to
    /// last step touching them over forward + backward) — a buffer is reused once its previous
    /// tenant's last step is over, so no step reads and writes one buffer.
    /// A conv → ReLU → 2×2 pool run as one subgroup kernel keeps its full-resolution ReLU
    /// output only for the pool backward's ReLU mask. When nothing else reads it, the forward
    /// stores the output's signs instead (`ceil(O/32)` u32 words per pixel, 1/32 of the
    /// floats) and the pool backward reads those: fewer stores in the forward, fewer loads in
    /// the backward, the same values (docs/benchmarks.md, twelfth session).
    fn relu_masks(&mut self) {
        for bi in 0..self.backward.len() {
            let Step::AvgPoolBackward {
                p: pool,
                relu_out: Some(t),
                ..
            } = &self.backward[bi]
            else {
                continue;
            };
            let (t, pool) = (*t, *pool);
            let Some(fi) = self.forward.iter().position(|s| {
                matches!(s, Step::Conv { y, pooled: Some(_), p, .. }
                    if *y == t && p.relu == 1 && p.pool == 1)
            }) else {
                continue;
            };
            let readers = self
                .forward
                .iter()
                .chain(&self.backward)
                .filter(|s| s.tensors().contains(&t))
                .count();
            if readers != 2 || !crate::ops::avgpool::mask_fits(&pool) {
                continue;
            }
            if let Step::Conv {
                p,
                winograd: Some(_),
                ..
            } = &self.forward[fi]
            {
                if !crate::ops::conv2d::winograd::can_mask(p) {
                    continue;
                }
            }
            if let Step::Conv { p, .. } = &mut self.forward[fi] {
                *p = p.with_relu_mask();
                self.tensors[t].len = p.relu_mask_len();
            }
            if let Step::AvgPoolBackward { mask, .. } = &mut self.backward[bi] {
                *mask = true;
            }
        }
    }

    /// A Winograd weight gradient whose output gradient comes from a masked 2×2 average pool
    /// backward ([`Plan::relu_masks`]) and is read by nothing else (the input gradient takes
    /// the weight gradient's D) computes it itself from the pooled gradient and the mask
    /// (`winograd_dout_pool`): the pool backward step goes, and the full-resolution gradient is
    /// never stored. Likewise a masked 2×2 pool backward whose input is only a Winograd input
    /// gradient's output runs inside that step's last stage (`winograd_gather_pool`).
    fn winograd_pool_backwards(&mut self) {
        let mut bi = 0;
        while bi < self.backward.len() {
            let Step::AvgPoolBackward {
                p: pool,
                dout: dpool,
                relu_out: Some(mask),
                mask: true,
                din: dy,
                ..
            } = &self.backward[bi]
            else {
                bi += 1;
                continue;
            };
            let (pool, dpool, mask, dy) = (*pool, *dpool, *mask, *dy);
            // The one other backward step that uses tensor `t` (none if a forward step does).
            let only_user = |t: TensorId| -> Option<usize> {
                if self.forward.iter().any(|s| s.tensors().contains(&t)) {
                    return None;
                }
                let users: Vec<usize> = (0..self.backward.len())
                    .filter(|&i| i != bi && self.backward[i].tensors().contains(&t))
                    .collect();
                (users.len() == 1).then(|| users[0])
            };
            // The weight gradient of the layer before the ReLU, the only reader of dy.
            let into_weight = only_user(dy).filter(|&wi| {
                matches!(&self.backward[wi], Step::ConvBackwardWeight {
                    p, dout, winograd: Some(_), pool_mask: None, ..
                } if *dout == dy && crate::ops::conv2d::winograd::can_mask(p)
                    && p.h == pool.h && p.w == pool.w && p.o == pool.c)
            });
            // The input gradient of the layer after the pool, the only writer of dpool.
            let into_input = only_user(dpool).filter(|&ii| {
                ii < bi
                    && matches!(&self.backward[ii], Step::ConvBackwardInput {
                        p, din, winograd: Some((_, Some(_))), pool_mask: None, ..
                    } if *din == dpool && p.c.is_multiple_of(4)
                        && pool.h == 2 * p.h && pool.w == 2 * p.w && pool.c == p.c)
            });
            match (into_weight, into_input, &mut self.backward[..]) {
                (Some(wi), _, steps) => {
                    if let Step::ConvBackwardWeight {
                        dout, pool_mask, ..
                    } = &mut steps[wi]
                    {
                        *dout = dpool;
                        *pool_mask = Some(mask);
                    }
                    self.tensors[dy].len = 0;
                }
                (None, Some(ii), steps) => {
                    if let Step::ConvBackwardInput { din, pool_mask, .. } = &mut steps[ii] {
                        *din = dy;
                        *pool_mask = Some(mask);
                    }
                    self.tensors[dpool].len = 0;
                }
                (None, None, _) => {
                    bi += 1;
                    continue;
                }
            }
            self.backward.remove(bi);
        }
    }

    fn assign_buffers(&mut self) {
        let steps: Vec<Vec<TensorId>> = self
            .forward
            .iter()
            .chain(&self.backward)
            .map(|s| s.tensors())
            .collect();
        let mut first = vec![usize::MAX; self.tensors.len()];
        let mut last = vec![0; self.tensors.len()];
        for (i, ts) in steps.iter().enumerate() {
            for &t in ts {
                first[t] = first[t].min(i);
                last[t] = last[t].max(i);
            }
        }
        // The eval loss reads the logits after the forward.
        let end = steps.len();
        let mut order: Vec<TensorId> = (0..self.tensors.len()).collect();
        order.sort_by_key(|&t| (first[t], t));
        // Buffers with the step after which they are free.
        let mut free_after: Vec<usize> = Vec::new();
        for t in order {
            let tensor = &self.tensors[t];
            if tensor.kind == TensorKind::Io || first[t] == usize::MAX {
                self.buffers.push(Buffer {
                    label: tensor.name.clone(),
                    len: tensor.len,
                    tensors: vec![t],
                });
                free_after.push(usize::MAX);
                self.tensors[t].buffer = self.buffers.len() - 1;
                continue;
            }
            // Activations are bound to their producer's output for the eval schedule too,
            // which is a prefix of the train schedule: lifetimes from the train order hold.
            let candidates: Vec<usize> = (0..self.buffers.len())
                .filter(|&b| free_after[b] < first[t])
                .collect();
            let fit = candidates
                .iter()
                .copied()
                .filter(|&b| self.buffers[b].len >= tensor.len)
                .min_by_key(|&b| self.buffers[b].len)
                .or_else(|| {
                    candidates
                        .iter()
                        .copied()
                        .max_by_key(|&b| self.buffers[b].len)
                });
            let b = match fit {
                Some(b) => {
                    let buf = &mut self.buffers[b];
                    buf.len = buf.len.max(tensor.len);
                    buf.tensors.push(t);
                    buf.label = format!("{} | {}", buf.label, tensor.name);
                    b
                }
                None => {
                    self.buffers.push(Buffer {
                        label: tensor.name.clone(),
                        len: tensor.len,
                        tensors: vec![t],
                    });
                    free_after.push(0);
                    self.buffers.len() - 1
                }
            };
            free_after[b] = if self.tensors[t].kind == TensorKind::Io {
                end
            } else {
                last[t]
            };
            self.tensors[t].buffer = b;
        }
    }

    /// Every buffer within the adapter's storage-binding and buffer-size limits.
    fn check_limits(&self) -> Result<(), PlanError> {
        let max = self.caps.max_binding.min(self.caps.max_buffer);
        let params = 4 * self.layout.total as u64;
        if params > max {
            return Err(PlanError(format!(
                "the model's {} parameters need a {} MiB buffer, over this adapter's {} MiB storage binding limit",
                self.layout.count(),
                params >> 20,
                max >> 20
            )));
        }
        for t in &self.tensors {
            let bytes = 4 * t.len as u64;
            if bytes > max {
                let fits = Plan::max_batch(&self.desc, &self.caps, self.mode);
                return Err(PlanError(format!(
                    "{}: batch size {} needs a {} MiB buffer ({}), over this adapter's {} MiB storage binding limit; {}",
                    self.layer_of(t),
                    self.batch,
                    bytes >> 20,
                    t.name,
                    max >> 20,
                    match fits {
                        Some(b) => format!("the largest batch that fits is {b}"),
                        None => "no batch size fits".into(),
                    }
                )));
            }
        }
        Ok(())
    }

    /// `layer 3 (conv)` for a tensor named after a layer.
    fn layer_of(&self, t: &Tensor) -> String {
        let stem = t.name.split('.').next().unwrap_or("");
        match self.layers.iter().find(|l| l.name == stem) {
            Some(l) => format!(
                "layer {} ({}, {})",
                l.index,
                self.desc.layers[l.index].kind(),
                l.name
            ),
            None => format!("tensor {}", t.name),
        }
    }

    /// The largest batch size whose plan fits the adapter's limits (`None`: not even 1).
    pub fn max_batch(desc: &Description, caps: &Caps, mode: Mode) -> Option<u32> {
        let fits = |b: u32| {
            let mut p = match Plan::new_unchecked(desc, b, caps, mode) {
                Some(p) => p,
                None => return false,
            };
            p.buffers.clear();
            p.check_limits_quiet()
        };
        if !fits(1) {
            return None;
        }
        let (mut lo, mut hi) = (1u32, 2u32);
        while hi < (1 << 24) && fits(hi) {
            lo = hi;
            hi *= 2;
        }
        if hi >= (1 << 24) && fits(hi) {
            return Some(hi);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    fn new_unchecked(desc: &Description, batch: u32, caps: &Caps, mode: Mode) -> Option<Plan> {
        let mut c = *caps;
        c.max_binding = u64::MAX;
        c.max_buffer = u64::MAX;
        let mut p = Plan::new(desc, batch, &c, mode).ok()?;
        p.caps = *caps;
        Some(p)
    }

    fn check_limits_quiet(&self) -> bool {
        let max = self.caps.max_binding.min(self.caps.max_buffer);
        4 * self.layout.total as u64 <= max && self.tensors.iter().all(|t| 4 * t.len as u64 <= max)
    }

    /// Bytes of GPU memory: every buffer, the parameters (and in train plans gradients and
    /// Adam's two moments), the loss statistics.
    pub fn gpu_bytes(&self) -> u64 {
        let bufs: u64 = self.buffers.iter().map(|b| 4 * b.len as u64).sum();
        let copies = if self.mode == Mode::Train { 4 } else { 1 };
        bufs + copies * 4 * self.layout.total as u64 + 4 * (2 * self.batch as u64 + 3 + 4)
    }

    /// Bytes of the textures through which the `conv2d_sg.wgsl` kernels read their per-lane
    /// operand (the weights, or the weight gradient's dout; `gpu::dispatch::TextureMirror`):
    /// one texture per binding and size, shared by the steps; `kernel` names each step's kernel
    /// on the device as in [`Plan::render`]. Staging copies of unaligned slices not counted.
    pub fn texture_mirror_bytes(&self, kernel: &dyn Fn(&Step) -> String) -> u64 {
        use crate::caps::{mirror_texel_bytes, TEXTURE_ROW};
        let row = TEXTURE_ROW as u64;
        let rows = |binding: u32, floats: usize| {
            (4 * floats as u64)
                .div_ceil(mirror_texel_bytes(binding))
                .div_ceil(row)
                .max(1)
        };
        let mut seen = std::collections::BTreeSet::new();
        for st in self.forward.iter().chain(&self.backward) {
            let name = kernel(st);
            if !name.contains("_sg") {
                continue;
            }
            // The 16-output-channel-tile kernels read vec2 mirrors (rg32float, bindings 32
            // and 33).
            let rg = name.contains("_o16");
            let (binding, floats) = match st {
                Step::Conv {
                    p,
                    winograd: Some(_),
                    ..
                }
                | Step::ConvBackwardInput {
                    p,
                    winograd: Some(_),
                    ..
                } => (30, 36 * (p.c * p.o) as usize),
                Step::Conv { p, .. } | Step::ConvBackwardInput { p, .. } => (30, p.weight_len()),
                Step::ConvBackwardWeight {
                    p,
                    winograd: Some(_),
                    ..
                } => (31, crate::ops::conv2d::winograd::scratch_lens(p).2[1]),
                Step::ConvBackwardWeight { p, .. } => (31, p.output_len()),
                Step::Dense { p, .. } | Step::DenseBackwardInput { p, .. } => {
                    (30, p.as_conv().weight_len())
                }
                Step::DenseBackwardWeight { p, .. } => (31, p.as_conv().output_len()),
                _ => continue,
            };
            let binding = if rg { binding + 2 } else { binding };
            seen.insert((binding, rows(binding, floats)));
        }
        seen.iter()
            .map(|&(b, r)| r * row * mirror_texel_bytes(b))
            .sum()
    }

    /// FLOPs of one training step by the 3×-forward rule (padding taps included).
    pub fn train_flops(&self) -> u64 {
        3 * self.forward_flops()
    }

    /// Multiply-add FLOPs of the forward pass (conv and dense layers).
    pub fn forward_flops(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| match &l.op {
                LayerOp::Conv { p, .. } => p.flops_forward(),
                LayerOp::Dense { p, .. } => p.flops_forward(),
                _ => 0,
            })
            .sum()
    }

    /// The plan as text (`wgpu-cnn models NAME --plan`); `kernel` names the kernel a step runs
    /// on the device (the launchers' pure selection functions).
    pub fn render(&self, kernel: &dyn Fn(&Step) -> String) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan: batch {}, {} mode, {} parameters, forward {:.2} MFLOP/image",
            self.batch,
            if self.mode == Mode::Train {
                "train"
            } else {
                "inference"
            },
            self.layout.count(),
            self.forward_flops() as f64 / self.batch as f64 / 1e6
        );
        let _ = writeln!(s, "device: {}", self.caps.describe());
        let _ = writeln!(s, "\nlayers:");
        let [h, w, c] = self.desc.input;
        let _ = writeln!(
            s,
            "  {:<4} {:<14} {:>12}",
            "",
            "input",
            format!("{h}x{w}x{c}")
        );
        for l in &self.layers {
            let params: usize = self
                .layout
                .specs
                .iter()
                .filter(|p| p.name.starts_with(&format!("{}.", l.name)))
                .map(|p| p.len())
                .sum();
            let _ = writeln!(
                s,
                "  {:<4} {:<14} {:>12}  {:>9}  {}",
                l.index,
                l.name,
                l.shape.to_string(),
                if params > 0 {
                    format!("{params} p")
                } else {
                    String::new()
                },
                self.desc.layers[l.index].summary()
            );
        }
        let mut steps = |title: &str, list: &[Step]| {
            let _ = writeln!(s, "\n{title}:");
            for st in list {
                let _ = writeln!(
                    s,
                    "  {:<12} {:<42} {:>9.3} GFLOP  {}",
                    st.layer(),
                    kernel(st),
                    st.flops() as f64 / 1e9,
                    st.describe(self)
                );
            }
        };
        steps("forward (train and eval)", &self.forward);
        if self.mode == Mode::Train {
            steps("loss, backward, update", &self.backward);
        } else {
            steps("loss (eval)", &[self.eval_loss()]);
        }
        let _ = writeln!(s, "\nbuffers:");
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let _ = writeln!(
            s,
            "  {:>10}  params (flat, 256-byte aligned tensors)",
            format!("{:.2} MiB", mib(4 * self.layout.total as u64)),
        );
        if self.mode == Mode::Train {
            for what in ["grads", "adam.mu", "adam.nu"] {
                let _ = writeln!(
                    s,
                    "  {:>10}  {what}",
                    format!("{:.2} MiB", mib(4 * self.layout.total as u64))
                );
            }
        }
        for b in &self.buffers {
            let _ = writeln!(
                s,
                "  {:>10}  {}",
                format!("{:.2} MiB", mib(4 * b.len as u64)),
                b.label
            );
        }
        let mirrors = self.texture_mirror_bytes(kernel);
        if mirrors > 0 {
            let _ = writeln!(
                s,
                "  {:>10}  textures of the subgroup kernels' per-lane operand (weights, dout)",
                format!("{:.2} MiB", mib(mirrors))
            );
        }
        let _ = writeln!(
            s,
            "  total {:.2} MiB of GPU memory",
            mib(self.gpu_bytes() + mirrors)
        );
        match Plan::max_batch(&self.desc, &self.caps, self.mode) {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "  largest batch within this adapter's binding limits: {b}"
                );
            }
            None => {
                let _ = writeln!(s, "  no batch fits this adapter's binding limits");
            }
        }
        s
    }
}

/// Indices of `name.kernel` and `name.bias` in the layout.
fn param_indices(layout: &ParamLayout, name: &str, bias: bool) -> (usize, Option<usize>) {
    let w = layout
        .index(&format!("{name}.kernel"))
        .expect("ParamLayout::of names every kernel");
    let b = bias.then(|| {
        layout
            .index(&format!("{name}.bias"))
            .expect("ParamLayout::of names every bias")
    });
    (w, b)
}

fn has_params(op: &LayerOp) -> bool {
    matches!(
        op,
        LayerOp::Conv { .. } | LayerOp::Dense { .. } | LayerOp::BatchNorm { .. }
    )
}

/// The 2×2, stride-2, unpadded pool the fused conv kernel computes.
fn is_pool2(p: &AvgPoolParams) -> bool {
    p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.pad_t == 0 && p.pad_l == 0
}
