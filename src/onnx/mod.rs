//! ONNX export: a checkpoint as an inference graph any ONNX runtime runs (onnxruntime, TensorRT,
//! OpenVINO, tract, onnxruntime-web).
//!
//! The contract (README "Export to ONNX"; keep it):
//! - one input `images`: float32, NHWC `[N, H, W, C]`, raw pixel values 0–255; the checkpoint's
//!   normalisation `(x / 255 − mean) / std` is the graph's first nodes;
//! - one output `logits`: float32 `[N, classes]`;
//! - metadata_props `classes`: the class names as a JSON list (also `normalization`, `model`:
//!   the description's TOML, `producer`);
//! - opset 17, evaluation mode: batch norm with the running statistics, dropout gone.
//!
//! The graph is built from the plan's unfused layer list (what the CPU reference interprets), so
//! every layer kind the description format has is exported the way it is evaluated. Inside, the
//! layout is ONNX's NCHW (Conv and the pools are defined on it): the input is transposed once,
//! and a flatten transposes back to (H, W, C) order first, so that Flax's dense kernels apply as
//! they are. A dense layer on a spatial input (Flax's `nn.Dense` on the last axis) is a 1×1
//! convolution. Parameters keep their Flax names as initializer names (conv kernels transposed
//! from Flax's HWIO to ONNX's OIHW).

pub mod proto;

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use prost::Message;

use crate::checkpoint::Checkpoint;
use crate::data::Normalization;
use crate::graph::Shape;
use crate::plan::{Caps, LayerOp, Mode, Plan, Src};
use proto::*;

/// The opset the graph is written for (BatchNormalization-15, the pools' and Conv's current
/// definitions; every runtime of the last years reads it).
pub const OPSET: i64 = 17;
/// ONNX IR version 8 (the one that goes with opset 17).
pub const IR_VERSION: i64 = 8;
/// The input's and output's names (the contract).
pub const INPUT: &str = "images";
pub const OUTPUT: &str = "logits";

/// Encodes `ck` as an ONNX model (the bytes of a `.onnx` file).
pub fn export(ck: &Checkpoint, norm: &Normalization, classes: &[String]) -> Result<Vec<u8>> {
    Ok(model(ck, norm, classes)?.encode_to_vec())
}

/// The ONNX model of `ck`, input normalised by `norm`, with `classes` in its metadata.
pub fn model(ck: &Checkpoint, norm: &Normalization, classes: &[String]) -> Result<ModelProto> {
    let desc = &ck.model;
    let [h, w, c] = desc.input;
    norm.check(c)?;
    if classes.len() != desc.classes as usize {
        bail!(
            "{} class names for a model with {} classes",
            classes.len(),
            desc.classes
        );
    }
    let plan =
        Plan::new(desc, 1, &Caps::gpu32(), Mode::Inference).map_err(|e| anyhow::anyhow!("{e}"))?;
    let layout = &plan.layout.specs;
    let stats = &plan.stats.specs;
    if ck.params.len() != layout.len() || ck.batch_stats.len() != stats.len() {
        bail!("the checkpoint's tensors do not match its model");
    }
    let mut g = Builder::default();

    // Normalisation, exactly as the data pipeline computes it: (x / 255 − mean) / std.
    let c = c as usize;
    let k255 = g.constant("pixel_max", &[], &[255.0]);
    let mean = g.constant("normalization.mean", &[c], &norm.mean);
    let std = g.constant("normalization.std", &[c], &norm.std);
    let x = g.node("Div", "scale_pixels", vec![INPUT.into(), k255], vec![]);
    let x = g.node("Sub", "subtract_mean", vec![x, mean], vec![]);
    let x = g.node("Div", "divide_std", vec![x, std], vec![]);
    let input = g.node(
        "Transpose",
        "to_nchw",
        vec![x],
        vec![ints("perm", &[0, 3, 1, 2])],
    );

    // One value per layer; `Shape::Spatial` values are NCHW, `Shape::Flat` ones `[N, F]`.
    let mut values: Vec<String> = Vec::with_capacity(plan.layers.len());
    let input_shape = Shape::Spatial { h, w, c: c as u32 };
    for l in &plan.layers {
        let (src, src_shape) = match l.input {
            Src::Input => (input.clone(), input_shape),
            Src::Node(j) => (values[j].clone(), plan.layers[j].shape),
        };
        let name = l.name.as_str();
        let param = |i: usize| &ck.params[i];
        let y = match &l.op {
            LayerOp::Conv { p, w, b } => {
                let (o, ci, kh, kw) = (p.o as usize, p.c as usize, p.kh as usize, p.kw as usize);
                let kernel = g.constant(
                    &layout[*w].name,
                    &[o, ci, kh, kw],
                    &hwio_to_oihw(param(*w), kh, kw, ci, o),
                );
                let mut inputs = vec![src, kernel];
                if let Some(b) = b {
                    inputs.push(g.constant(&layout[*b].name, &[o], param(*b)));
                }
                let pads = pads(
                    [p.h, p.w],
                    [p.kh, p.kw],
                    [p.sh, p.sw],
                    [p.pad_t, p.pad_l],
                    [p.out_h, p.out_w],
                );
                let attrs = vec![
                    ints("kernel_shape", &[p.kh as i64, p.kw as i64]),
                    ints("strides", &[p.sh as i64, p.sw as i64]),
                    ints("pads", &pads),
                ];
                g.node("Conv", name, inputs, attrs)
            }
            LayerOp::Dense { p, w, b } => {
                let (k, n) = (p.k as usize, p.n as usize);
                match src_shape {
                    // nn.Dense on the channel axis of an image: a 1×1 convolution.
                    Shape::Spatial { .. } => {
                        let kernel = g.constant(
                            &layout[*w].name,
                            &[n, k, 1, 1],
                            &hwio_to_oihw(param(*w), 1, 1, k, n),
                        );
                        let mut inputs = vec![src, kernel];
                        if let Some(b) = b {
                            inputs.push(g.constant(&layout[*b].name, &[n], param(*b)));
                        }
                        g.node("Conv", name, inputs, vec![ints("kernel_shape", &[1, 1])])
                    }
                    Shape::Flat(_) => {
                        let kernel = g.constant(&layout[*w].name, &[k, n], param(*w));
                        let mut inputs = vec![src, kernel];
                        if let Some(b) = b {
                            inputs.push(g.constant(&layout[*b].name, &[n], param(*b)));
                        }
                        g.node("Gemm", name, inputs, vec![])
                    }
                }
            }
            LayerOp::BatchNorm {
                p,
                scale,
                bias,
                mean,
                var,
            } => {
                let ch = p.c as usize;
                let inputs = vec![
                    src,
                    match scale {
                        Some(s) => g.constant(&layout[*s].name, &[ch], param(*s)),
                        // use_scale = false: the scale is 1.
                        None => g.constant(&format!("{name}.scale"), &[ch], &vec![1.0; ch]),
                    },
                    g.constant(&layout[*bias].name, &[ch], param(*bias)),
                    g.constant(&stats[*mean].name, &[ch], &ck.batch_stats[*mean]),
                    g.constant(&stats[*var].name, &[ch], &ck.batch_stats[*var]),
                ];
                g.node(
                    "BatchNormalization",
                    name,
                    inputs,
                    vec![float("epsilon", p.epsilon)],
                )
            }
            LayerOp::Relu { .. } => g.node("Relu", name, vec![src], vec![]),
            LayerOp::Gelu { p } if p.approximate() => gelu(&mut g, name, src),
            LayerOp::Gelu { .. } => gelu_exact(&mut g, name, src),
            LayerOp::Scale { p } => {
                let f = g.constant(&format!("{name}.factor"), &[], &[p.factor]);
                g.node("Mul", name, vec![src, f], vec![])
            }
            // Evaluation mode: dropout is the identity.
            LayerOp::Dropout { .. } => src,
            LayerOp::Add { other, .. } => {
                let b = match other {
                    Src::Input => input.clone(),
                    Src::Node(j) => values[*j].clone(),
                };
                g.node("Add", name, vec![src, b], vec![])
            }
            LayerOp::AvgPool { p } if matches!(l.shape, Shape::Flat(_)) => {
                // global_avg_pool: the mean over H and W, then [N, C].
                debug_assert!(p.kh == p.h && p.kw == p.w);
                let m = g.node("GlobalAveragePool", name, vec![src], vec![]);
                g.node(
                    "Flatten",
                    &format!("{name}_flatten"),
                    vec![m],
                    vec![int("axis", 1)],
                )
            }
            LayerOp::AvgPool { p } | LayerOp::MaxPool { p } => {
                let max = matches!(l.op, LayerOp::MaxPool { .. });
                let pads = pads(
                    [p.h, p.w],
                    [p.kh, p.kw],
                    [p.sh, p.sw],
                    [p.pad_t, p.pad_l],
                    [p.out_h, p.out_w],
                );
                let mut attrs = vec![
                    ints("kernel_shape", &[p.kh as i64, p.kw as i64]),
                    ints("strides", &[p.sh as i64, p.sw as i64]),
                ];
                // Runtimes refuse pool padding as large as the window; such padding (Flax
                // allows it) becomes an explicit Pad: zeros for the average (Flax counts
                // padding in the divisor), −∞ for the maximum.
                let fits = pads[0] < p.kh as i64
                    && pads[2] < p.kh as i64
                    && pads[1] < p.kw as i64
                    && pads[3] < p.kw as i64;
                let src = if fits {
                    attrs.push(ints("pads", &pads));
                    src
                } else {
                    let all = g.constant_i64(
                        &format!("{name}.pads"),
                        &[8],
                        &[0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]],
                    );
                    let fill = g.constant(
                        &format!("{name}.fill"),
                        &[],
                        &[if max { f32::NEG_INFINITY } else { 0.0 }],
                    );
                    g.node("Pad", &format!("{name}_pad"), vec![src, all, fill], vec![])
                };
                if max {
                    g.node("MaxPool", name, vec![src], attrs)
                } else {
                    attrs.push(int("count_include_pad", 1));
                    g.node("AveragePool", name, vec![src], attrs)
                }
            }
            LayerOp::Flatten => match src_shape {
                Shape::Flat(_) => src,
                Shape::Spatial { h, w, .. } => {
                    // Flax flattens NHWC in (H, W, C) order.
                    let nhwc = if h == 1 && w == 1 {
                        src
                    } else {
                        g.node(
                            "Transpose",
                            &format!("{name}_to_nhwc"),
                            vec![src],
                            vec![ints("perm", &[0, 2, 3, 1])],
                        )
                    };
                    g.node("Flatten", name, vec![nhwc], vec![int("axis", 1)])
                }
            },
        };
        values.push(y);
    }
    let last = values.last().context("the model has no layers")?.clone();
    g.output(&last);

    let batch = || Dimension {
        value: Some(DimValue::DimParam("N".into())),
    };
    let dim = |v: usize| Dimension {
        value: Some(DimValue::DimValue(v as i64)),
    };
    let value_info = |name: &str, dims: Vec<Dimension>, doc: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim: dims }),
            }),
        }),
        doc_string: doc.into(),
    };
    let graph = GraphProto {
        node: g.nodes,
        name: "wgpu-cnn".into(),
        initializer: g.inits,
        doc_string: String::new(),
        input: vec![value_info(
            INPUT,
            vec![batch(), dim(h as usize), dim(w as usize), dim(c)],
            "NHWC images, raw pixel values 0-255",
        )],
        output: vec![value_info(
            OUTPUT,
            vec![batch(), dim(desc.classes as usize)],
            "class scores before softmax",
        )],
    };
    let meta = |key: &str, value: String| StringStringEntryProto {
        key: key.into(),
        value,
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "wgpu-cnn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: format!(
            "{}: input `images` NHWC float32 pixels 0-255, output `logits` [N, {}]",
            desc.summary(),
            desc.classes
        ),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: vec![
            meta("classes", serde_json::to_string(classes)?),
            meta("normalization", serde_json::to_string(norm)?),
            meta("model", ck.model_text.clone()),
        ],
    })
}

/// Flax's HWIO kernel `[kh, kw, c_in, c_out]` as ONNX's OIHW `[c_out, c_in, kh, kw]`.
fn hwio_to_oihw(k: &[f32], kh: usize, kw: usize, ci: usize, o: usize) -> Vec<f32> {
    let mut out = vec![0.0; k.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..ci {
                for j in 0..o {
                    out[((j * ci + i) * kh + y) * kw + x] = k[((y * kw + x) * ci + i) * o + j];
                }
            }
        }
    }
    out
}

/// ONNX's `pads` `[top, left, bottom, right]` for a window geometry whose output size is known:
/// the bottom and right padding are what the last window needs (never negative: rows that no
/// window reaches are simply not read, as in Flax's VALID).
fn pads(input: [u32; 2], k: [u32; 2], s: [u32; 2], before: [u32; 2], out: [u32; 2]) -> [i64; 4] {
    let after = |a: usize| {
        let reach = (out[a] as i64 - 1) * s[a] as i64 + k[a] as i64;
        (reach - input[a] as i64 - before[a] as i64).max(0)
    };
    [before[0] as i64, before[1] as i64, after(0), after(1)]
}

/// Flax's `nn.gelu` (tanh approximation) in the operators every opset has:
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
fn gelu(g: &mut Builder, name: &str, x: String) -> String {
    let k0 = g.constant("gelu.sqrt_2_over_pi", &[], &[0.797_884_6]);
    let k1 = g.constant("gelu.cubic", &[], &[0.044715]);
    let half = g.constant("gelu.half", &[], &[0.5]);
    let one = g.constant("gelu.one", &[], &[1.0]);
    let x2 = g.node(
        "Mul",
        &format!("{name}_x2"),
        vec![x.clone(), x.clone()],
        vec![],
    );
    let x3 = g.node("Mul", &format!("{name}_x3"), vec![x2, x.clone()], vec![]);
    let c = g.node("Mul", &format!("{name}_cubic"), vec![x3, k1], vec![]);
    let u = g.node("Add", &format!("{name}_inner"), vec![x.clone(), c], vec![]);
    let u = g.node("Mul", &format!("{name}_scaled"), vec![u, k0], vec![]);
    let t = g.node("Tanh", &format!("{name}_tanh"), vec![u], vec![]);
    let t = g.node("Add", &format!("{name}_one_plus"), vec![t, one], vec![]);
    let hx = g.node("Mul", &format!("{name}_half"), vec![x, half], vec![]);
    g.node("Mul", name, vec![hx, t], vec![])
}

/// `nn.gelu(approximate=False)`: `0.5·x·(1 + erf(x/√2))` (Erf is in every opset since 9).
fn gelu_exact(g: &mut Builder, name: &str, x: String) -> String {
    let r = g.constant("gelu.inv_sqrt_2", &[], &[std::f32::consts::FRAC_1_SQRT_2]);
    let half = g.constant("gelu.half", &[], &[0.5]);
    let one = g.constant("gelu.one", &[], &[1.0]);
    let u = g.node("Mul", &format!("{name}_scaled"), vec![x.clone(), r], vec![]);
    let e = g.node("Erf", &format!("{name}_erf"), vec![u], vec![]);
    let e = g.node("Add", &format!("{name}_one_plus"), vec![e, one], vec![]);
    let hx = g.node("Mul", &format!("{name}_half"), vec![x, half], vec![]);
    g.node("Mul", name, vec![hx, e], vec![])
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: v,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    }
}

/// Nodes and initializers in topological order, every value name unique.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    names: HashSet<String>,
}

impl Builder {
    /// `base`, or `base_1`, `base_2`, … when taken.
    fn unique(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 0;
        while self.names.contains(&name) || name == INPUT || name == OUTPUT {
            i += 1;
            name = format!("{base}_{i}");
        }
        self.names.insert(name.clone());
        name
    }

    /// A float32 initializer (a shared constant such as GELU's is written once).
    fn constant(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        if self.inits.iter().any(|t| t.name == name) {
            return name.to_string();
        }
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, FLOAT, raw)
    }

    fn constant_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, INT64, raw)
    }

    /// An initializer of `data_type` from its little-endian bytes, under a unique name.
    fn initializer(&mut self, name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> String {
        let name = self.unique(name);
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.clone(),
            raw_data: raw,
            doc_string: String::new(),
        });
        name
    }

    /// Adds a node with one output, named after the node; returns the output's name.
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) -> String {
        let out = self.unique(name);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// Makes `value` the graph's output `logits`: the last node's output is renamed when
    /// nothing else reads it, else an Identity copies it.
    fn output(&mut self, value: &str) {
        let read_elsewhere = self
            .nodes
            .iter()
            .any(|n| n.input.iter().any(|i| i == value));
        match self.nodes.last_mut() {
            Some(last) if !read_elsewhere && last.output[0] == value => {
                last.output[0] = OUTPUT.into();
            }
            _ => {
                self.nodes.push(NodeProto {
                    input: vec![value.into()],
                    output: vec![OUTPUT.into()],
                    name: "output".into(),
                    op_type: "Identity".into(),
                    ..Default::default()
                });
            }
        }
    }
}
