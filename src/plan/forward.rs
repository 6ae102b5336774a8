//! The forward pass: fuses layers into GPU steps (ReLU epilogues, conv → ReLU → 2×2 pool,
//! residual adds into batch norms, flatten as a view) and names their tensors; what it leaves
//! behind per fused step ([`Unit`]) is what the backward pass walks.

use super::*;

/// The forward schedule and what the backward needs of it.
pub(super) struct Forward {
    pub input: TensorId,
    pub labels: TensorId,
    pub logits: TensorId,
    pub steps: Vec<Step>,
    pub units: Vec<Unit>,
    pub loss: SoftmaxCeParams,
}

/// Fuses `layers` into forward steps, adding their tensors to `tensors`.
pub(super) fn forward(
    desc: &Description,
    batch: u32,
    caps: &Caps,
    mode: Mode,
    layers: &[PlanLayer],
    mut tensors: Vec<Tensor>,
) -> Result<(Forward, Vec<Tensor>), PlanError> {
    let n = batch;
    let nz = batch as usize;
    let [ih, iw, ic] = desc.input;
    // How many layers read each layer's output (the last one's: the loss).
    let mut uses = vec![0usize; layers.len()];
    for l in layers {
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
            | LayerOp::Scale { .. }
            | LayerOp::Dropout { .. } => {
                // One input, one new output tensor (plus a max pool's argmax).
                let y = new_out(&mut tensors);
                let layer = l.name.clone();
                forward.push(match &l.op {
                    LayerOp::Relu { p } => Step::Relu { layer, p: *p, x, y },
                    LayerOp::AvgPool { p } => Step::AvgPool { layer, p: *p, x, y },
                    LayerOp::Gelu { p } => Step::Gelu { layer, p: *p, x, y },
                    LayerOp::Scale { p } => Step::Scale { layer, p: *p, x, y },
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

    Ok((
        Forward {
            input,
            labels,
            logits,
            steps: forward,
            units,
            loss,
        },
        tensors,
    ))
}
