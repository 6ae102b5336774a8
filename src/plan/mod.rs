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

mod backward;
mod buffers;
mod forward;
pub mod kernels;
pub mod layout;
mod lower;
mod render;
mod rewrites;
mod step;

pub use crate::caps::{Caps, Kernels};
pub use kernels::kernel_of;
pub use layout::{Init, ParamLayout, ParamSpec};

pub use crate::graph::Src;
use crate::graph::{Description, Layer, NodeOp, Shape};
pub use crate::ops::optimizer::Rule as UpdateRule;
use crate::ops::{
    AddParams, AvgPoolParams, BatchNormParams, Conv2dParams, DenseParams, DropoutParams,
    ElementwiseParams, GeluParams, MaxPoolParams, Padding, ScaleParams, SoftmaxCeParams,
};
pub use step::Step;

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
        p: GeluParams,
    },
    Scale {
        p: ScaleParams,
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
        /// `None` without a trainable scale (`use_scale = false`: the scale is 1).
        scale: Option<usize>,
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

/// A plan error: one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// Adds a tensor (its buffer assigned later) and returns its id.
fn add(tensors: &mut Vec<Tensor>, name: String, len: usize, kind: TensorKind) -> TensorId {
    tensors.push(Tensor {
        name,
        len,
        kind,
        buffer: usize::MAX,
    });
    tensors.len() - 1
}

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
pub(super) struct Unit {
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

    /// Plans `desc` at batch size `batch` for a device with `caps`, in passes: lower
    /// (`lower.rs`: nodes to unfused layers), forward (`forward.rs`: fusion, tensors), backward
    /// (`backward.rs`: gradient steps, the update), rewrites (`rewrites.rs`: ReLU masks, pool
    /// backwards into Winograd stages), buffers (`buffers.rs`: sharing by lifetime, limits).
    pub fn new(desc: &Description, batch: u32, caps: &Caps, mode: Mode) -> Result<Self, PlanError> {
        let plan = Plan::build(desc, batch, caps, mode)?;
        plan.check_limits()?;
        Ok(plan)
    }

    /// [`Plan::new`] without the check of the adapter's buffer limits.
    pub(super) fn build(
        desc: &Description,
        batch: u32,
        caps: &Caps,
        mode: Mode,
    ) -> Result<Self, PlanError> {
        if batch == 0 {
            return Err(PlanError("the batch size must be at least 1".into()));
        }
        let nodes = desc.nodes().map_err(|e| PlanError(e.0))?;
        // Parameters in Flax order, and the unfused layer list.
        let layout = ParamLayout::of(desc).map_err(|e| PlanError(e.0))?;
        let stats = ParamLayout::stats_of(desc).map_err(|e| PlanError(e.0))?;
        let layers = lower::lower(&nodes, batch, caps, mode, &layout, &stats)?;
        let (fwd, tensors) = forward::forward(desc, batch, caps, mode, &layers, Vec::new())?;
        let (backward, tensors) = backward::backward(mode, caps, &layout, &layers, &fwd, tensors)?;
        let forward::Forward {
            input,
            labels,
            logits,
            steps: forward,
            ..
        } = fwd;
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
        // Rewrites.
        plan.relu_masks();
        plan.winograd_pool_backwards();
        // Buffers.
        plan.assign_buffers();
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
