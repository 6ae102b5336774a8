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
//! - **Gradients.** No input gradient for the first layer with parameters, and no backward at all
//!   before it.
//! - **Buffers.** Tensors share a buffer when their lifetimes (first to last step that touches
//!   them) do not overlap: gradients ping-pong, split-K scratch reuses a gradient buffer, and the
//!   inference plan keeps only two or three activations alive.
//! - **Limits.** Every tensor must fit the adapter's storage binding; a model or batch that does
//!   not gets an error naming the layer and the largest batch that fits.

pub mod caps;
pub mod layout;

use std::fmt::Write as _;

pub use caps::Caps;
pub use layout::{ParamLayout, ParamSpec};

use crate::graph::{Description, Layer, Shape};
use crate::params::{
    AvgPoolParams, Conv2dParams, DenseParams, DropoutParams, ElementwiseParams, MaxPoolParams,
    Padding, SoftmaxCeParams,
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
}

/// One layer of the plan: description index, Flax-style name, output shape, the op.
#[derive(Clone, Debug)]
pub struct PlanLayer {
    pub index: usize,
    /// `Conv_0`, `Dense_1` for modules with parameters; `relu_3`, `avg_pool_2`, `flatten_6`
    /// (kind and description index) for the others.
    pub name: String,
    pub shape: Shape,
    pub op: LayerOp,
}

/// One GPU step: a launcher call (one or two dispatches).
#[derive(Clone, Debug)]
pub enum Step {
    /// `y = conv(x) + b` with `p.relu` / `p.pool` epilogues; `pooled` with `p.pool = 1`.
    Conv {
        layer: String,
        fused: Vec<String>,
        p: Conv2dParams,
        x: TensorId,
        w: usize,
        b: Option<usize>,
        y: TensorId,
        pooled: Option<TensorId>,
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
    /// With `relu_out`: times `[relu_out > 0]`, the backward of the ReLU before the pool.
    AvgPoolBackward {
        layer: String,
        p: AvgPoolParams,
        dout: TensorId,
        relu_out: Option<TensorId>,
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
    ConvBackwardWeight {
        layer: String,
        p: Conv2dParams,
        x: TensorId,
        dout: TensorId,
        partials: TensorId,
        w: usize,
        b: Option<usize>,
    },
    ConvBackwardInput {
        layer: String,
        p: Conv2dParams,
        dout: TensorId,
        w: usize,
        din: TensorId,
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
    Adam,
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
            | Step::DenseBackwardInput { layer, .. } => layer,
            Step::Loss { .. } => "loss",
            Step::Adam => "adam",
        }
    }

    /// Every tensor the step reads or writes.
    pub fn tensors(&self) -> Vec<TensorId> {
        match self {
            Step::Conv { x, y, pooled, .. } => [Some(*x), Some(*y), *pooled]
                .into_iter()
                .flatten()
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
                x, dout, partials, ..
            } => vec![*x, *dout, *partials],
            Step::ConvBackwardInput { dout, din, .. }
            | Step::DenseBackwardInput { dout, din, .. } => vec![*dout, *din],
            Step::DenseBackwardWeight {
                x, dout, partials, ..
            } => [Some(*x), Some(*dout), *partials]
                .into_iter()
                .flatten()
                .collect(),
            Step::Adam => vec![],
        }
    }

    /// The tensors the step writes (the others of [`Step::tensors`] it only reads).
    pub fn writes(&self) -> Vec<TensorId> {
        match self {
            Step::Conv { y, pooled, .. } => [Some(*y), *pooled].into_iter().flatten().collect(),
            Step::Dense { y, .. }
            | Step::Relu { y, .. }
            | Step::AvgPool { y, .. }
            | Step::Gelu { y, .. }
            | Step::Dropout { y, .. } => vec![*y],
            Step::DropoutBackward { din, .. } => vec![*din],
            Step::MaxPool { y, argmax, .. } => vec![*y, *argmax],
            Step::MaxPoolBackward { din, .. } | Step::GeluBackward { din, .. } => vec![*din],
            Step::Loss { dlogits, .. } => dlogits.iter().copied().collect(),
            Step::ReluBackward { din, .. }
            | Step::AvgPoolBackward { din, .. }
            | Step::ConvBackwardInput { din, .. }
            | Step::DenseBackwardInput { din, .. } => vec![*din],
            Step::ConvBackwardWeight { partials, .. } => vec![*partials],
            Step::DenseBackwardWeight { partials, .. } => partials.iter().copied().collect(),
            Step::Adam => vec![],
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
            Step::Adam => 0,
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
                ..
            } => format!(
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
                t(y),
                pooled.map_or(String::new(), |q| format!(", {}", t(&q)))
            ),
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
                din,
                ..
            } => format!(
                "avg_pool backward{}: {} -> {}",
                if relu_out.is_some() {
                    " + relu backward"
                } else {
                    ""
                },
                t(dout),
                t(din)
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
            Step::ConvBackwardInput { dout, din, .. } => {
                format!("conv input gradient: {} -> {}", t(dout), t(din))
            }
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
            Step::Adam => format!("adam over {} parameters", plan.layout.count()),
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

/// What a layer's forward left behind: its output tensor, and whether a ReLU was fused into
/// it (its output is then ReLU's output).
#[derive(Clone, Copy)]
struct Unit {
    /// Index of the first layer of the unit.
    first: usize,
    x: TensorId,
    y: TensorId,
}

impl Plan {
    /// Plans `desc` at batch size `batch` for a device with `caps`.
    pub fn new(desc: &Description, batch: u32, caps: &Caps, mode: Mode) -> Result<Self, PlanError> {
        if batch == 0 {
            return Err(PlanError("the batch size must be at least 1".into()));
        }
        let shapes = desc.shapes().map_err(|e| PlanError(e.0))?;
        let names = desc.module_names();
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
        let mut layers = Vec::new();
        let mut prev = Shape::Spatial {
            h: ih,
            w: iw,
            c: ic,
        };
        for (i, (l, &shape)) in desc.layers.iter().zip(&shapes).enumerate() {
            let name = names[i]
                .clone()
                .unwrap_or_else(|| format!("{}_{i}", l.kind()));
            let too_big = |what: &str| {
                PlanError(format!(
                    "layer {i} ({}): {what} does not fit 32-bit indexing at batch {batch}",
                    l.kind()
                ))
            };
            let op = match (l, prev) {
                (
                    Layer::Conv {
                        features,
                        kernel,
                        stride,
                        padding,
                        bias,
                    },
                    Shape::Spatial { h, w, c },
                ) => {
                    let mut p =
                        Conv2dParams::general(n, h, w, c, *features, *kernel, *stride, *padding)
                            .ok_or_else(|| too_big("the convolution"))?;
                    let (w_idx, b_idx) = param_indices(&layout, &name, *bias);
                    if !bias {
                        p = p.without_bias();
                    }
                    p = p.with_splits(caps.conv_splits());
                    LayerOp::Conv {
                        p,
                        w: w_idx,
                        b: b_idx,
                    }
                }
                (Layer::Dense { features, bias }, s) => {
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
                (Layer::Relu, s) => LayerOp::Relu {
                    p: ElementwiseParams::new(
                        u32::try_from(nz * s.len()).map_err(|_| too_big("the activation"))?,
                    ),
                },
                (
                    Layer::AvgPool {
                        window,
                        stride,
                        padding,
                    },
                    Shape::Spatial { h, w, c },
                ) => LayerOp::AvgPool {
                    p: AvgPoolParams::general(n, h, w, c, *window, *stride, *padding)
                        .ok_or_else(|| too_big("the pool"))?,
                },
                (
                    Layer::MaxPool {
                        window,
                        stride,
                        padding,
                    },
                    Shape::Spatial { h, w, c },
                ) => LayerOp::MaxPool {
                    p: MaxPoolParams::general(n, h, w, c, *window, *stride, *padding)
                        .ok_or_else(|| too_big("the pool"))?,
                },
                // The mean over H and W is the average pool whose window is the whole image.
                (Layer::GlobalAvgPool, Shape::Spatial { h, w, c }) => LayerOp::AvgPool {
                    p: AvgPoolParams::general(n, h, w, c, [h, w], [h, w], Padding::Valid)
                        .ok_or_else(|| too_big("the pool"))?,
                },
                (Layer::Gelu, s) => LayerOp::Gelu {
                    p: ElementwiseParams::new(
                        u32::try_from(nz * s.len()).map_err(|_| too_big("the activation"))?,
                    ),
                },
                (Layer::Dropout { rate }, s) => LayerOp::Dropout {
                    p: DropoutParams::new(
                        u32::try_from(nz * s.len()).map_err(|_| too_big("the activation"))?,
                        *rate,
                        i as u32,
                    ),
                },
                (Layer::Flatten, _) => LayerOp::Flatten,
                _ => unreachable!("shapes() checked the layer inputs"),
            };
            layers.push(PlanLayer {
                index: i,
                name,
                shape,
                op,
            });
            prev = shape;
        }

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
        let mut cur = input;
        let mut i = 0;
        while i < layers.len() {
            let l = &layers[i];
            let next_relu = matches!(layers.get(i + 1).map(|l| &l.op), Some(LayerOp::Relu { .. }));
            let act_len = nz * l.shape.len();
            match &l.op {
                LayerOp::Conv { p, w, b } => {
                    let mut p = *p;
                    let mut fused = Vec::new();
                    let mut last = i;
                    if next_relu {
                        p = p.with_relu();
                        fused.push(layers[i + 1].name.clone());
                        last = i + 1;
                    }
                    let y = add(
                        &mut tensors,
                        format!("{}.out", l.name),
                        act_len,
                        TensorKind::Activation,
                    );
                    let pool = match layers.get(last + 1).map(|l| &l.op) {
                        Some(LayerOp::AvgPool { p: pp }) if caps.conv_pool2(&p) && is_pool2(pp) => {
                            Some(*pp)
                        }
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
                    forward.push(Step::Conv {
                        layer: l.name.clone(),
                        fused,
                        p,
                        x: cur,
                        w: *w,
                        b: *b,
                        y,
                        pooled,
                    });
                    units.push(Unit {
                        first: i,
                        x: cur,
                        y,
                    });
                    out_of[i..=last].fill(y);
                    cur = y;
                    i = last + 1;
                    if let Some(pt) = pooled {
                        units.push(Unit {
                            first: i,
                            x: y,
                            y: pt,
                        });
                        out_of[i] = pt;
                        cur = pt;
                        i += 1;
                    }
                }
                LayerOp::Dense { p, w, b } => {
                    let mut p = *p;
                    let mut fused = Vec::new();
                    let mut last = i;
                    if next_relu {
                        p = p.with_relu();
                        fused.push(layers[i + 1].name.clone());
                        last = i + 1;
                    }
                    let y = add(
                        &mut tensors,
                        format!("{}.out", l.name),
                        act_len,
                        TensorKind::Activation,
                    );
                    forward.push(Step::Dense {
                        layer: l.name.clone(),
                        fused,
                        p,
                        x: cur,
                        w: *w,
                        b: *b,
                        y,
                    });
                    units.push(Unit {
                        first: i,
                        x: cur,
                        y,
                    });
                    out_of[i..=last].fill(y);
                    cur = y;
                    i = last + 1;
                }
                LayerOp::Relu { .. }
                | LayerOp::AvgPool { .. }
                | LayerOp::MaxPool { .. }
                | LayerOp::Gelu { .. }
                | LayerOp::Dropout { .. } => {
                    // One input, one new output tensor (plus a max pool's argmax).
                    let y = add(
                        &mut tensors,
                        format!("{}.out", l.name),
                        act_len,
                        TensorKind::Activation,
                    );
                    let (layer, x) = (l.name.clone(), cur);
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
                    units.push(Unit { first: i, x, y });
                    out_of[i] = y;
                    cur = y;
                    i += 1;
                }
                LayerOp::Flatten => {
                    // A view: the same tensor.
                    out_of[i] = cur;
                    i += 1;
                }
            }
        }
        let logits = cur;
        if logits == input {
            return Err(PlanError(
                "the model has no layer that computes anything".into(),
            ));
        }
        tensors[logits].kind = TensorKind::Io;
        tensors[logits].name = "logits".into();
        let loss = SoftmaxCeParams::new(n, desc.classes);

        // Backward, unit by unit in reverse.
        let mut backward = Vec::new();
        if mode == Mode::Train {
            let first_param = units
                .iter()
                .position(|u| has_params(&layers[u.first].op))
                .ok_or_else(|| PlanError("the model has no parameters to train".into()))?;
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
            let mut dcur = dlogits;
            // Whether dcur is already the gradient before the unit's fused ReLU.
            let mut dcur_pre = false;
            // Whether the next (lower) unit's ReLU backward was folded into a pool backward.
            let mut skip_relu = false;
            for ui in (first_param..units.len()).rev() {
                let u = units[ui];
                let l = &layers[u.first];
                let relu_fused = layers.get(u.first + 1).is_some_and(|r| {
                    matches!(r.op, LayerOp::Relu { .. }) && out_of[u.first + 1] == u.y
                }) && matches!(l.op, LayerOp::Conv { .. } | LayerOp::Dense { .. });
                let grad = |tensors: &mut Vec<Tensor>, name: &str, of: TensorId| {
                    let len = tensors[of].len;
                    let t = add(
                        tensors,
                        format!("{name}.d{}", short(&tensors[of].name)),
                        len,
                        TensorKind::Gradient,
                    );
                    t
                };
                match &l.op {
                    LayerOp::Conv { .. } | LayerOp::Dense { .. } => {
                        let mut dpre = dcur;
                        if relu_fused && !dcur_pre {
                            let rl = &layers[u.first + 1];
                            let LayerOp::Relu { p } = rl.op else {
                                unreachable!()
                            };
                            let din = grad(&mut tensors, &rl.name, u.x);
                            tensors[din].len = tensors[u.y].len;
                            tensors[din].name = format!("{}.dpre", l.name);
                            backward.push(Step::ReluBackward {
                                layer: l.name.clone(),
                                p,
                                dout: dcur,
                                out: u.y,
                                din,
                            });
                            dpre = din;
                        }
                        let need_input = ui > first_param;
                        match &l.op {
                            LayerOp::Conv { p, w, b } => {
                                let partials = add(
                                    &mut tensors,
                                    format!("{}.partials", l.name),
                                    p.partials_len(),
                                    TensorKind::Scratch,
                                );
                                backward.push(Step::ConvBackwardWeight {
                                    layer: l.name.clone(),
                                    p: *p,
                                    x: u.x,
                                    dout: dpre,
                                    partials,
                                    w: *w,
                                    b: *b,
                                });
                                if need_input {
                                    let din = grad(&mut tensors, &l.name, u.x);
                                    tensors[din].name = format!("{}.dinput", l.name);
                                    backward.push(Step::ConvBackwardInput {
                                        layer: l.name.clone(),
                                        p: *p,
                                        dout: dpre,
                                        w: *w,
                                        din,
                                    });
                                    dcur = din;
                                }
                            }
                            LayerOp::Dense { p, w, b } => {
                                let follows = b.is_none_or(|b| layout.follows(*w, b));
                                let partials = (caps.dense_as_conv(p) && !follows).then(|| {
                                    add(
                                        &mut tensors,
                                        format!("{}.partials", l.name),
                                        p.as_conv().partials_len(),
                                        TensorKind::Scratch,
                                    )
                                });
                                backward.push(Step::DenseBackwardWeight {
                                    layer: l.name.clone(),
                                    p: *p,
                                    x: u.x,
                                    dout: dpre,
                                    w: *w,
                                    b: *b,
                                    partials,
                                });
                                if need_input {
                                    let din = grad(&mut tensors, &l.name, u.x);
                                    tensors[din].name = format!("{}.dinput", l.name);
                                    backward.push(Step::DenseBackwardInput {
                                        layer: l.name.clone(),
                                        p: *p,
                                        dout: dpre,
                                        w: *w,
                                        din,
                                    });
                                    dcur = din;
                                }
                            }
                            _ => unreachable!(),
                        }
                        dcur_pre = false;
                        skip_relu = false;
                    }
                    LayerOp::AvgPool { p } => {
                        // The unit below: a ReLU (standalone, or fused into a conv/dense) whose
                        // output this pool reads folds its backward into the pool's.
                        let below = ui.checked_sub(1).map(|b| units[b]);
                        let relu_below = below.is_some_and(|b| {
                            b.y == u.x
                                && (matches!(layers[b.first].op, LayerOp::Relu { .. })
                                    || layers.get(b.first + 1).is_some_and(|r| {
                                        matches!(r.op, LayerOp::Relu { .. })
                                            && out_of[b.first + 1] == b.y
                                    }) && matches!(
                                        layers[b.first].op,
                                        LayerOp::Conv { .. } | LayerOp::Dense { .. }
                                    ))
                        }) && ui > first_param;
                        if ui > first_param {
                            let din = grad(&mut tensors, &l.name, u.x);
                            let below = below.expect("a unit below the first parameter unit");
                            let standalone = matches!(layers[below.first].op, LayerOp::Relu { .. });
                            tensors[din].name = if relu_below && standalone {
                                format!("{}.dinput", layers[below.first].name)
                            } else if relu_below {
                                format!("{}.dpre", layers[below.first].name)
                            } else {
                                format!("{}.dinput", l.name)
                            };
                            backward.push(Step::AvgPoolBackward {
                                layer: l.name.clone(),
                                p: *p,
                                dout: dcur,
                                relu_out: relu_below.then_some(u.x),
                                din,
                            });
                            dcur = din;
                            // A standalone ReLU below is done; a fused one hands a pre-ReLU
                            // gradient to its conv/dense.
                            skip_relu = relu_below && standalone;
                            dcur_pre = relu_below && !standalone;
                        }
                    }
                    LayerOp::Relu { .. }
                    | LayerOp::MaxPool { .. }
                    | LayerOp::Gelu { .. }
                    | LayerOp::Dropout { .. } => {
                        // A ReLU folded into the pool above it is done already.
                        let folded = skip_relu && matches!(l.op, LayerOp::Relu { .. });
                        if !folded && ui > first_param {
                            let din = grad(&mut tensors, &l.name, u.x);
                            tensors[din].name = format!("{}.dinput", l.name);
                            let (layer, dout) = (l.name.clone(), dcur);
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
                            dcur = din;
                        }
                        skip_relu = false;
                        dcur_pre = false;
                    }
                    LayerOp::Flatten => {}
                }
            }
            backward.push(Step::Adam);
        }

        let mut plan = Plan {
            desc: desc.clone(),
            batch,
            caps: *caps,
            mode,
            layout,
            layers,
            tensors,
            buffers: Vec::new(),
            input,
            labels,
            logits,
            forward,
            backward,
        };
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
                    "  {:<12} {:<34} {:>9.3} GFLOP  {}",
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
        let _ = writeln!(s, "  total {:.2} MiB of GPU memory", mib(self.gpu_bytes()));
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
    matches!(op, LayerOp::Conv { .. } | LayerOp::Dense { .. })
}

/// The 2×2, stride-2, unpadded pool the fused conv kernel computes.
fn is_pool2(p: &AvgPoolParams) -> bool {
    p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.pad_t == 0 && p.pad_l == 0
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}
