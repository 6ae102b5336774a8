//! The backward pass: the gradient steps of the fused forward, unit by unit in reverse, and
//! the optimizer's update.

use super::*;

/// The backward schedule of a train plan (empty for inference), adding its tensors.
pub(super) fn backward(
    mode: Mode,
    caps: &Caps,
    layout: &ParamLayout,
    layers: &[PlanLayer],
    fwd: &forward::Forward,
    mut tensors: Vec<Tensor>,
) -> Result<(Vec<Step>, Vec<Tensor>), PlanError> {
    let (logits, loss, units, forward) = (fwd.logits, fwd.loss, &fwd.units, &fwd.steps);
    // Backward, unit by unit in reverse (every consumer of a tensor comes after its
    // producer, so a tensor's gradient is complete when its producer's turn comes).
    let mut backward = Vec::new();
    if mode == Mode::Train {
        if layout.specs.is_empty() {
            return Err(PlanError("the model has no parameters to train".into()));
        }
        // Whether a tensor depends on parameters (then it needs a gradient).
        let mut needs = vec![false; tensors.len()];
        for u in units {
            let l = &layers[u.first];
            needs[u.y] = has_params(&l.op) || needs[u.x] || u.residual.is_some_and(|r| needs[r]);
        }
        // Readers of each tensor (the logits: the loss).
        let mut readers = vec![0usize; tensors.len()];
        for u in units {
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
                    let din = need_x.then(|| fresh(&mut tensors, format!("{name}.dinput"), u.x));
                    let dscale = scale.is_none().then(|| {
                        add(
                            &mut tensors,
                            format!("{name}.dscale"),
                            p.c as usize,
                            TensorKind::Scratch,
                        )
                    });
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
                        dscale,
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
                | LayerOp::Scale { .. }
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
                        LayerOp::Scale { p } => Step::ScaleBackward {
                            layer,
                            p: *p,
                            dout,
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

    Ok((backward, tensors))
}
