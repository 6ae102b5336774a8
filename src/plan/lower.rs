//! Lowering: the description's nodes to the unfused layer list (resolved shapes, uniform
//! structs, parameter indices) that the CPU reference interprets and the fusion pass reads.

use super::*;

/// The unfused layers of `nodes` at batch `batch`.
pub(super) fn lower(
    nodes: &[crate::graph::Node],
    batch: u32,
    caps: &Caps,
    mode: Mode,
    layout: &ParamLayout,
    stats: &ParamLayout,
) -> Result<Vec<PlanLayer>, PlanError> {
    let n = batch;
    let nz = batch as usize;
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
                    ..
                }),
                Shape::Spatial { h, w, c },
            ) => {
                let mut p =
                    Conv2dParams::general(n, h, w, c, *features, *kernel, *stride, *padding)
                        .ok_or_else(|| too_big("the convolution"))?;
                let (w_idx, b_idx) = param_indices(layout, &name, *bias);
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
            (NodeOp::Layer(Layer::Dense { features, bias, .. }), s) => {
                let (rows, k) = match s {
                    Shape::Spatial { h, w, c } => (n as u64 * h as u64 * w as u64, c),
                    Shape::Flat(f) => (n as u64, f),
                };
                if rows > u32::MAX as u64 / 4 {
                    return Err(too_big("the dense layer"));
                }
                let mut p = DenseParams::new(rows as u32, k, *features);
                let (w_idx, b_idx) = param_indices(layout, &name, *bias);
                if !bias {
                    p = p.without_bias();
                }
                LayerOp::Dense {
                    p,
                    w: w_idx,
                    b: b_idx,
                }
            }
            (
                NodeOp::Layer(Layer::BatchNorm {
                    momentum,
                    epsilon,
                    use_scale,
                }),
                s,
            ) => {
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
                    p: {
                        let p = BatchNormParams::new(rows, c, *momentum, *epsilon);
                        if *use_scale {
                            p
                        } else {
                            p.without_scale()
                        }
                    },
                    scale: use_scale.then(|| idx(layout, "scale")),
                    bias: idx(layout, "bias"),
                    mean: idx(stats, "mean"),
                    var: idx(stats, "var"),
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
            (NodeOp::Layer(Layer::GlobalAvgPool), Shape::Spatial { h, w, c }) => LayerOp::AvgPool {
                p: AvgPoolParams::general(n, h, w, c, [h, w], [h, w], Padding::Valid)
                    .ok_or_else(|| too_big("the pool"))?,
            },
            (NodeOp::Layer(Layer::Gelu { approximate }), _) => LayerOp::Gelu {
                p: GeluParams::new(count()?, *approximate),
            },
            (NodeOp::Layer(Layer::Scale { factor }), _) => LayerOp::Scale {
                p: ScaleParams::new(count()?, *factor),
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

    Ok(layers)
}
