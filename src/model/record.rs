//! Recording a plan's steps as dispatches: each step's launcher call with the model's buffers
//! bound by tensor and parameter index.

use super::*;

/// What a step's dispatches bind: the model's buffers, by tensor and parameter index.
pub(super) struct Bindings<'a> {
    pub gpu: &'a Gpu,
    pub plan: &'a Plan,
    pub buffers: &'a [wgpu::Buffer],
    pub params: &'a wgpu::Buffer,
    pub batch_stats: &'a wgpu::Buffer,
    pub train_state: Option<&'a TrainState>,
    pub ce: SoftmaxCeBuffers<'a>,
    pub lr: f32,
}

impl<'a> Bindings<'a> {
    fn tensor(&self, t: TensorId) -> BufSlice<'a> {
        let t = &self.plan.tensors[t];
        BufSlice::elems(&self.buffers[t.buffer], 0, t.len)
    }

    /// The dispatches of `step` (`eval`: as the eval schedule records it).
    pub fn record(&self, step: &Step, eval: bool) -> Vec<Dispatch> {
        let (gpu, ce, train_state, lr, params) =
            (self.gpu, &self.ce, self.train_state, self.lr, self.params);
        let layout = &self.plan.layout;
        let tensor = |t: TensorId| self.tensor(t);
        let param = |i: usize| layout.slice(self.params, i);
        let stat = |i: usize| self.plan.stats.slice(self.batch_stats, i);
        let grad = |i: usize| layout.slice(&self.train_state.expect("a train plan").grads, i);
        let v: Vec<Dispatch> = match step {
            Step::Dropout { p, x, y, .. } => {
                let p = if eval { p.eval() } else { *p };
                vec![dropout::forward(gpu, &p, tensor(*x), tensor(*y))]
            }
            Step::BatchNorm {
                p,
                x,
                scale,
                bias,
                mean,
                var,
                saved,
                partials,
                residual,
                y,
                ..
            } => {
                let bufs = batchnorm::BatchNormBuffers {
                    x: tensor(*x),
                    residual: residual.map(tensor),
                    // Without a scale the kernels read none: any bound slice will do.
                    scale: param(scale.unwrap_or(*bias)),
                    bias: param(*bias),
                    running_mean: stat(*mean),
                    running_var: stat(*var),
                    y: tensor(*y),
                };
                match (eval, saved, partials) {
                    (false, Some(saved), Some(partials)) => {
                        batchnorm::forward_train(gpu, p, &bufs, tensor(*partials), tensor(*saved))
                    }
                    _ => vec![batchnorm::forward_eval(gpu, p, &bufs)],
                }
            }
            Step::BatchNormBackward {
                p,
                dout,
                x,
                saved,
                partials,
                scale,
                bias,
                din,
                dscale,
                ..
            } => batchnorm::backward(
                gpu,
                p,
                &batchnorm::BatchNormBackwardBuffers {
                    dout: tensor(*dout),
                    x: tensor(*x),
                    scale: param(scale.unwrap_or(*bias)),
                    bias: param(*bias),
                    saved: tensor(*saved),
                    dscale: match (scale, dscale) {
                        (Some(s), _) => grad(*s),
                        (None, Some(t)) => tensor(*t),
                        (None, None) => unreachable!(
                            "the planner gives a scale-less batch norm a dscale scratch"
                        ),
                    },
                    dbias: grad(*bias),
                    dx: din.map(tensor),
                },
                tensor(*partials),
            ),
            Step::Add {
                p, a, b, mask, y, ..
            } => vec![match mask {
                Some(m) => {
                    add::relu_backward(gpu, p, tensor(*a), tensor(*b), tensor(*m), tensor(*y))
                }
                None => add::forward(gpu, p, tensor(*a), tensor(*b), tensor(*y)),
            }],
            Step::DropoutBackward { p, dout, din, .. } => {
                vec![dropout::backward(gpu, p, tensor(*dout), tensor(*din))]
            }
            Step::Conv {
                p,
                x,
                w,
                b,
                y,
                pooled,
                winograd: Some(([u, v], m)),
                ..
            } => winograd::forward(
                gpu,
                p,
                tensor(*x),
                param(*w),
                b.map(param),
                tensor(*y),
                pooled.map(tensor),
                winograd::Scratch {
                    a: tensor(*u),
                    b: tensor(*v),
                    c: tensor(m.unwrap_or(*v)),
                },
            ),
            Step::Conv {
                p,
                x,
                w,
                b,
                y,
                pooled,
                ..
            } => {
                let bias = b.map(param);
                vec![match pooled {
                    Some(q) => conv2d::forward_pool2(
                        gpu,
                        p,
                        tensor(*x),
                        param(*w),
                        bias,
                        tensor(*y),
                        tensor(*q),
                    )
                    .expect("the planner fuses the pool only where the kernel runs"),
                    None => conv2d::forward(gpu, p, tensor(*x), param(*w), bias, tensor(*y)),
                }]
            }
            Step::Dense { p, x, w, b, y, .. } => {
                vec![dense::forward(
                    gpu,
                    p,
                    tensor(*x),
                    param(*w),
                    b.map(param),
                    tensor(*y),
                )]
            }
            Step::Relu { p, x, y, .. } => vec![relu::forward(gpu, p, tensor(*x), tensor(*y))],
            Step::AvgPool { p, x, y, .. } => {
                vec![avgpool::forward(gpu, p, tensor(*x), tensor(*y))]
            }
            Step::MaxPool {
                p, x, y, argmax, ..
            } => vec![maxpool::forward(
                gpu,
                p,
                tensor(*x),
                tensor(*y),
                tensor(*argmax),
            )],
            Step::Gelu { p, x, y, .. } => vec![gelu::forward(gpu, p, tensor(*x), tensor(*y))],
            Step::MaxPoolBackward {
                p,
                dout,
                argmax,
                din,
                ..
            } => vec![maxpool::backward(
                gpu,
                p,
                tensor(*dout),
                tensor(*argmax),
                tensor(*din),
            )],
            Step::Scale { p, x, y, .. } => vec![scale::forward(gpu, p, tensor(*x), tensor(*y))],
            Step::ScaleBackward { p, dout, din, .. } => {
                vec![scale::backward(gpu, p, tensor(*dout), tensor(*din))]
            }
            Step::GeluBackward {
                p, dout, x, din, ..
            } => {
                vec![gelu::backward(
                    gpu,
                    p,
                    tensor(*dout),
                    tensor(*x),
                    tensor(*din),
                )]
            }
            Step::Loss { p, dlogits, .. } => match dlogits {
                Some(d) => softmax_ce::backward(gpu, p, ce, tensor(*d))
                    .into_iter()
                    .collect(),
                None => softmax_ce::forward(gpu, p, ce).into_iter().collect(),
            },
            Step::ReluBackward {
                p, dout, out, din, ..
            } => {
                vec![relu::backward(
                    gpu,
                    p,
                    tensor(*dout),
                    tensor(*out),
                    tensor(*din),
                )]
            }
            Step::AvgPoolBackward {
                p,
                dout,
                relu_out,
                mask,
                din,
                ..
            } => vec![match relu_out {
                Some(r) if *mask => {
                    avgpool::backward_relu_mask(gpu, p, tensor(*dout), tensor(*r), tensor(*din))
                }
                Some(r) => avgpool::backward_relu(gpu, p, tensor(*dout), tensor(*r), tensor(*din)),
                None => avgpool::backward(gpu, p, tensor(*dout), tensor(*din)),
            }],
            Step::ConvBackwardWeight {
                p,
                x,
                dout,
                partials,
                w,
                b,
                winograd: Some([v, d]),
                forward_v,
                pool_mask,
                ..
            } => winograd::backward_weight(
                gpu,
                p,
                (!forward_v).then(|| tensor(*x)),
                match pool_mask {
                    Some(m) => winograd::Dout::Pooled {
                        dpool: tensor(*dout),
                        mask: tensor(*m),
                    },
                    None => winograd::Dout::Full(tensor(*dout)),
                },
                grad(*w),
                b.map(grad),
                winograd::Scratch {
                    a: tensor(*v),
                    b: tensor(*d),
                    c: tensor(*partials),
                },
            ),
            Step::ConvBackwardWeight {
                p,
                x,
                dout,
                partials,
                w,
                b,
                ..
            } => conv2d::backward_weight(
                gpu,
                p,
                tensor(*x),
                tensor(*dout),
                tensor(*partials),
                grad(*w),
                b.map(grad),
            )
            .into_iter()
            .collect(),
            Step::ConvBackwardInput {
                p,
                dout,
                w,
                din,
                winograd: Some(([u, v], None)),
                ..
            } => winograd::backward_input_as_forward(
                gpu,
                p,
                tensor(*dout),
                param(*w),
                tensor(*din),
                winograd::Scratch {
                    a: tensor(*u),
                    b: tensor(*v),
                    c: tensor(*v),
                },
            ),
            Step::ConvBackwardInput {
                p,
                dout,
                w,
                din,
                winograd: Some(([u, v], Some(m))),
                weight_d,
                pool_mask,
                ..
            } => winograd::backward_input(
                gpu,
                p,
                (!weight_d).then(|| tensor(*dout)),
                param(*w),
                match pool_mask {
                    Some(mask) => winograd::Dinput::Pooled {
                        dpre: tensor(*din),
                        mask: tensor(*mask),
                    },
                    None => winograd::Dinput::Full(tensor(*din)),
                },
                winograd::Scratch {
                    a: tensor(*u),
                    b: tensor(*v),
                    c: tensor(*m),
                },
            ),
            Step::ConvBackwardInput {
                p, dout, w, din, ..
            } => {
                vec![conv2d::backward_input(
                    gpu,
                    p,
                    tensor(*dout),
                    param(*w),
                    tensor(*din),
                )]
            }
            Step::DenseBackwardWeight {
                p,
                x,
                dout,
                w,
                b,
                partials,
                ..
            } => dense::backward_weight(
                gpu,
                p,
                tensor(*x),
                tensor(*dout),
                grad(*w),
                b.map(grad),
                partials.map(tensor),
            ),
            Step::DenseBackwardInput {
                p, dout, w, din, ..
            } => {
                vec![dense::backward_input(
                    gpu,
                    p,
                    tensor(*dout),
                    param(*w),
                    tensor(*din),
                )]
            }
            Step::Update { rule } => {
                let s = train_state.as_ref().expect("a train plan");
                vec![adam::update(
                    gpu,
                    &AdamParams::new(layout.total as u32, lr, 1),
                    &adam::OptimizerBuffers {
                        param: params.into(),
                        grad: (&s.grads).into(),
                        mu: (&s.mu).into(),
                        nu: (&s.nu).into(),
                        group: (&s.group).into(),
                    },
                    *rule,
                )]
            }
        };
        v.into_iter().map(|d| d.in_layer(step.layer())).collect()
    }
}
