//! The seed model, Flax's CIFAR-10 CNN, expressed with the engine's ops:
//!
//! ```text
//! x [N,32,32,3] ─ Conv_0 3×3×3→32 SAME ─ ReLU ─ AvgPool 2 ─ Conv_1 3×3×32→64 SAME ─ ReLU ─ AvgPool 2
//!   ─ flatten [N,4096] (H,W,C order) ─ Dense_0 4096→256 ─ ReLU ─ Dense_1 256→10 ─ softmax CE
//! ```
//!
//! All activations are NHWC f32 (see `params.rs`). Parameters use Flax's names and layouts and
//! live in one flat buffer (each tensor at a 256-byte aligned offset) so that a single Adam
//! dispatch updates all of them; gradients, Adam's mu and nu share that layout.
//!
//! [`GpuModel`] turns the model into two fixed schedules of dispatches (train step, eval step)
//! with every buffer and bind group created once; [`cpu_loss_and_grads`] and [`cpu_adam_step`]
//! are the same step on the CPU reference.

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::cpu::{self, Real};
use crate::gpu::ops::softmax_ce::SoftmaxCeBuffers;
use crate::gpu::ops::{adam, avgpool, conv2d, dense, relu, softmax_ce};
use crate::gpu::{BufSlice, Dispatch, Gpu, GpuError};
use crate::params::{
    AdamParams, AvgPoolParams, Conv2dParams, DenseParams, ElementwiseParams, Padding,
    SoftmaxCeParams,
};

pub const IMAGE_H: u32 = 32;
pub const IMAGE_W: u32 = 32;
pub const IMAGE_C: u32 = 3;
pub const IMAGE_LEN: usize = (IMAGE_H * IMAGE_W * IMAGE_C) as usize;
pub const CLASSES: u32 = 10;

/// One parameter tensor: Flax name, shape, fan-in (for lecun_normal).
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub fan_in: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_bias(&self) -> bool {
        self.shape.len() == 1
    }
}

/// The parameters of the model in Flax's order and layout.
pub fn param_specs() -> Vec<ParamSpec> {
    let s = |name, shape: &[usize], fan_in| ParamSpec {
        name,
        shape: shape.to_vec(),
        fan_in,
    };
    vec![
        s("Conv_0.kernel", &[3, 3, 3, 32], 27),
        s("Conv_0.bias", &[32], 0),
        s("Conv_1.kernel", &[3, 3, 32, 64], 288),
        s("Conv_1.bias", &[64], 0),
        s("Dense_0.kernel", &[4096, 256], 4096),
        s("Dense_0.bias", &[256], 0),
        s("Dense_1.kernel", &[256, 10], 256),
        s("Dense_1.bias", &[10], 0),
    ]
}

/// Offsets of each tensor inside the flat parameter (and gradient, mu, nu) buffer.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    pub specs: Vec<ParamSpec>,
    pub offsets: Vec<usize>,
    pub total: usize,
}

/// Tensors start at multiples of 64 floats = 256 bytes, WebGPU's largest allowed
/// `min_storage_buffer_offset_alignment`, so the layout binds on every adapter.
const ALIGN: usize = 64;

impl ParamLayout {
    pub fn new(specs: Vec<ParamSpec>) -> Self {
        let mut offsets = Vec::with_capacity(specs.len());
        let mut at = 0;
        for s in &specs {
            offsets.push(at);
            at = (at + s.len()).div_ceil(ALIGN) * ALIGN;
        }
        ParamLayout {
            specs,
            offsets,
            total: at,
        }
    }
    pub fn seed() -> Self {
        Self::new(param_specs())
    }
    pub fn count(&self) -> usize {
        self.specs.iter().map(|s| s.len()).sum()
    }
    /// Packs per-tensor vectors into the flat layout (padding is zero).
    pub fn flatten<T: Real>(&self, tensors: &[Vec<T>]) -> Vec<T> {
        let mut flat = vec![T::zero(); self.total];
        for ((t, &off), s) in tensors.iter().zip(&self.offsets).zip(&self.specs) {
            flat[off..off + s.len()].copy_from_slice(&t[..s.len()]);
        }
        flat
    }
    /// Splits a flat buffer into per-tensor vectors.
    pub fn unflatten<T: Real>(&self, flat: &[T]) -> Vec<Vec<T>> {
        self.specs
            .iter()
            .zip(&self.offsets)
            .map(|(s, &off)| flat[off..off + s.len()].to_vec())
            .collect()
    }
    pub fn slice<'a>(&self, buffer: &'a wgpu::Buffer, i: usize) -> BufSlice<'a> {
        BufSlice::elems(buffer, self.offsets[i], self.specs[i].len())
    }
}

/// Flax's default init: kernels lecun_normal (truncated normal in ±2σ, variance 1/fan_in),
/// biases zero.
pub fn init_params(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    param_specs()
        .iter()
        .map(|s| {
            if s.is_bias() {
                return vec![0.0; s.len()];
            }
            // Std of a standard normal truncated to [-2, 2] is 0.87962566; divide it out.
            let std = (1.0 / s.fan_in as f64).sqrt() / 0.879_625_661_034_239_8;
            (0..s.len())
                .map(|_| loop {
                    let z: f64 = rng.sample(StandardNormal);
                    if z.abs() <= 2.0 {
                        break (z * std) as f32;
                    }
                })
                .collect()
        })
        .collect()
}

/// Shapes of every layer at batch size `n`.
#[derive(Clone, Copy, Debug)]
pub struct Shapes {
    pub n: u32,
    pub conv0: Conv2dParams,
    pub pool0: AvgPoolParams,
    pub conv1: Conv2dParams,
    pub pool1: AvgPoolParams,
    pub dense0: DenseParams,
    pub dense1: DenseParams,
    pub loss: SoftmaxCeParams,
}

impl Shapes {
    pub fn new(n: u32) -> Self {
        let conv0 = Conv2dParams::new(n, IMAGE_H, IMAGE_W, IMAGE_C, 32, 3, Padding::Same);
        let pool0 = AvgPoolParams::new(n, conv0.out_h, conv0.out_w, 32, 2);
        let conv1 = Conv2dParams::new(n, pool0.out_h, pool0.out_w, 32, 64, 3, Padding::Same);
        let pool1 = AvgPoolParams::new(n, conv1.out_h, conv1.out_w, 64, 2);
        let flat = pool1.out_h * pool1.out_w * 64;
        let dense0 = DenseParams::new(n, flat, 256);
        let dense1 = DenseParams::new(n, 256, CLASSES);
        Shapes {
            n,
            conv0,
            pool0,
            conv1,
            pool1,
            dense0,
            dense1,
            loss: SoftmaxCeParams::new(n, CLASSES),
        }
    }
    /// Both convolutions' weight gradients split into about `splits` partial sums.
    pub fn with_splits(mut self, splits: u32) -> Self {
        self.conv0 = self.conv0.with_splits(splits);
        self.conv1 = self.conv1.with_splits(splits);
        self
    }

    /// Bytes of the largest activation buffer: it must fit one storage binding.
    pub fn largest_buffer_bytes(&self) -> u64 {
        4 * self
            .conv0
            .output_len()
            .max(self.conv0.partials_len())
            .max(self.conv1.partials_len()) as u64
    }

    /// FLOPs of one training step by the 3×-forward rule (padding taps included).
    pub fn train_flops(&self) -> u64 {
        3 * (self.conv0.flops_forward()
            + self.conv1.flops_forward()
            + self.dense0.flops_forward()
            + self.dense1.flops_forward())
    }
}

/// Forward activations of the CPU reference (kept for backward).
pub struct CpuForward<T> {
    pub z0: Vec<T>,
    pub a0: Vec<T>,
    pub p0: Vec<T>,
    pub z1: Vec<T>,
    pub a1: Vec<T>,
    pub p1: Vec<T>,
    pub z2: Vec<T>,
    pub a2: Vec<T>,
    pub logits: Vec<T>,
}

/// The model's forward pass on the CPU reference; `x` is [n,32,32,3] NHWC.
pub fn cpu_forward<T: Real>(params: &[Vec<T>], x: &[T], n: u32) -> CpuForward<T> {
    let s = Shapes::new(n);
    let z = |len: usize| vec![T::zero(); len];
    let mut f = CpuForward {
        z0: z(s.conv0.output_len()),
        a0: z(s.conv0.output_len()),
        p0: z(s.pool0.output_len()),
        z1: z(s.conv1.output_len()),
        a1: z(s.conv1.output_len()),
        p1: z(s.pool1.output_len()),
        z2: z((n * 256) as usize),
        a2: z((n * 256) as usize),
        logits: z((n * CLASSES) as usize),
    };
    cpu::conv2d::conv2d_forward(&s.conv0, x, &params[0], &params[1], &mut f.z0);
    cpu::relu::relu_forward(&f.z0, &mut f.a0);
    cpu::avgpool::avgpool_forward(&s.pool0, &f.a0, &mut f.p0);
    cpu::conv2d::conv2d_forward(&s.conv1, &f.p0, &params[2], &params[3], &mut f.z1);
    cpu::relu::relu_forward(&f.z1, &mut f.a1);
    cpu::avgpool::avgpool_forward(&s.pool1, &f.a1, &mut f.p1);
    cpu::dense::dense_forward(&s.dense0, &f.p1, &params[4], &params[5], &mut f.z2);
    cpu::relu::relu_forward(&f.z2, &mut f.a2);
    cpu::dense::dense_forward(&s.dense1, &f.a2, &params[6], &params[7], &mut f.logits);
    f
}

/// Mean loss of the CPU reference.
pub fn cpu_loss<T: Real>(params: &[Vec<T>], x: &[T], labels: &[u32]) -> T {
    let n = labels.len() as u32;
    let f = cpu_forward(params, x, n);
    cpu::softmax_ce::softmax_ce_forward(&Shapes::new(n).loss, &f.logits, labels).0
}

/// Result of one forward + backward on the CPU reference.
pub struct CpuStep<T> {
    pub loss: T,
    pub correct: u32,
    pub logits: Vec<T>,
    pub grads: Vec<Vec<T>>,
}

/// Loss, logits and the gradient of the mean loss w.r.t. every parameter.
pub fn cpu_loss_and_grads<T: Real>(params: &[Vec<T>], x: &[T], labels: &[u32]) -> CpuStep<T> {
    let n = labels.len() as u32;
    let s = Shapes::new(n);
    let f = cpu_forward(params, x, n);
    let z = |len: usize| vec![T::zero(); len];
    let mut grads: Vec<Vec<T>> = param_specs().iter().map(|p| z(p.len())).collect();
    let mut dlogits = z(f.logits.len());
    let (loss, correct) =
        cpu::softmax_ce::softmax_ce_backward(&s.loss, &f.logits, labels, &mut dlogits);

    let (mut da2, mut dz2) = (z(f.a2.len()), z(f.z2.len()));
    let [g0, g1, g2, g3, g4, g5, g6, g7] = &mut grads[..] else {
        unreachable!()
    };
    cpu::dense::dense_backward_weight(&s.dense1, &f.a2, &dlogits, g6, g7);
    cpu::dense::dense_backward_input(&s.dense1, &dlogits, &params[6], &mut da2);
    cpu::relu::relu_backward(&da2, &f.a2, &mut dz2);
    let mut dp1 = z(f.p1.len());
    cpu::dense::dense_backward_weight(&s.dense0, &f.p1, &dz2, g4, g5);
    cpu::dense::dense_backward_input(&s.dense0, &dz2, &params[4], &mut dp1);
    let (mut da1, mut dz1) = (z(f.a1.len()), z(f.z1.len()));
    cpu::avgpool::avgpool_backward(&s.pool1, &dp1, &mut da1);
    cpu::relu::relu_backward(&da1, &f.a1, &mut dz1);
    let mut dp0 = z(f.p0.len());
    cpu::conv2d::conv2d_backward_weight(&s.conv1, &f.p0, &dz1, g2, g3);
    cpu::conv2d::conv2d_backward_input(&s.conv1, &dz1, &params[2], &mut dp0);
    let (mut da0, mut dz0) = (z(f.a0.len()), z(f.z0.len()));
    cpu::avgpool::avgpool_backward(&s.pool0, &dp0, &mut da0);
    cpu::relu::relu_backward(&da0, &f.a0, &mut dz0);
    // The first layer needs no input gradient.
    cpu::conv2d::conv2d_backward_weight(&s.conv0, x, &dz0, g0, g1);
    CpuStep {
        loss,
        correct,
        logits: f.logits,
        grads,
    }
}

/// Adam state of the CPU reference: (mu, nu) per tensor.
pub struct CpuAdam<T> {
    pub mu: Vec<Vec<T>>,
    pub nu: Vec<Vec<T>>,
    pub step: u32,
}

impl<T: Real> CpuAdam<T> {
    pub fn new() -> Self {
        let z: Vec<Vec<T>> = param_specs()
            .iter()
            .map(|s| vec![T::zero(); s.len()])
            .collect();
        CpuAdam {
            mu: z.clone(),
            nu: z,
            step: 0,
        }
    }
}

impl<T: Real> Default for CpuAdam<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// One Adam step on every tensor of the CPU reference.
pub fn cpu_adam_step<T: Real>(
    params: &mut [Vec<T>],
    grads: &[Vec<T>],
    state: &mut CpuAdam<T>,
    lr: f32,
) {
    state.step += 1;
    for i in 0..params.len() {
        let p = AdamParams::new(params[i].len() as u32, lr, state.step);
        cpu::adam::adam_update(
            &p,
            &mut params[i],
            &grads[i],
            &mut state.mu[i],
            &mut state.nu[i],
        );
    }
}

/// Adam's (mu, nu), per tensor in `param_specs()` order.
pub type Moments = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Batch statistics read back from the GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchStats {
    pub loss: f32,
    pub correct: f32,
}

/// Totals accumulated on the GPU over many steps (an epoch): summed loss, correct, rows, and
/// the 1-based index of the first batch whose loss was not finite (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Totals {
    pub loss_sum: f32,
    pub correct: f32,
    pub count: f32,
    pub first_bad_batch: u32,
}

/// The seed model on the GPU at a fixed batch size: weights, Adam state, activations and
/// gradients live in buffers allocated once; each step replays a recorded schedule.
pub struct GpuModel {
    pub shapes: Shapes,
    pub layout: ParamLayout,
    pub lr: f32,
    /// Adam steps taken so far.
    pub step: u32,
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub mu: wgpu::Buffer,
    pub nu: wgpu::Buffer,
    pub input: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    pub stats: wgpu::Buffer,
    pub totals: wgpu::Buffer,
    /// Every buffer the model allocated, for memory accounting.
    buffers: Vec<wgpu::Buffer>,
    train: Vec<Dispatch>,
    eval: Vec<Dispatch>,
    adam_index: usize,
    eval_loss_index: usize,
}

impl GpuModel {
    /// Allocates every buffer for batch size `batch` and records both schedules.
    pub fn new(gpu: &Gpu, batch: u32, init: &[Vec<f32>], lr: f32) -> Result<Self, GpuError> {
        // Split-K of the conv weight gradients: a CPU-type adapter has few lanes to fill and
        // pays for the partials' traffic (Conv_1: 98 vs 103 ms + 0.3 vs 4.6 ms reduce on
        // lavapipe at 16 vs 256 splits); a GPU wants many independent sums.
        let splits = if gpu.info.device_type == wgpu::DeviceType::Cpu {
            32
        } else {
            256
        };
        let s = Shapes::new(batch).with_splits(splits);
        let layout = ParamLayout::seed();
        let n = batch as usize;
        let mut all = Vec::new();
        let mut buf = |label: &str, len: usize| {
            let b = gpu.storage(label, len);
            all.push(b.clone());
            b
        };
        let params = buf("params", layout.total);
        gpu.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&layout.flatten(init)));
        let grads = buf("grads", layout.total);
        let mu = buf("adam.mu", layout.total);
        let nu = buf("adam.nu", layout.total);
        let input = buf("input", n * IMAGE_LEN);
        let labels = buf("labels", n);
        // Forward: ReLU is fused into the conv and dense epilogues, so each layer keeps only
        // its activated output (which the ReLU backward needs: output > 0 ⇔ input > 0).
        let a0 = buf("Conv_0.out", s.conv0.output_len());
        let p0 = buf("pool0.out", s.pool0.output_len());
        let a1 = buf("Conv_1.out", s.conv1.output_len());
        let p1 = buf("pool1.out", s.pool1.output_len());
        let a2 = buf("Dense_0.out", n * 256);
        let logits = buf("logits", n * CLASSES as usize);
        let dlogits = buf("dlogits", n * CLASSES as usize);
        let da2 = buf("Dense_0.dout", n * 256);
        let dz2 = buf("Dense_0.dpre", n * 256);
        let dp1 = buf("pool1.dout", s.pool1.output_len());
        let dz1 = buf("Conv_1.dpre", s.conv1.output_len());
        let dp0 = buf("pool0.dout", s.pool0.output_len());
        let dz0 = buf("Conv_0.dpre", s.conv0.output_len());
        let part0 = buf("Conv_0.partials", s.conv0.partials_len());
        let part1 = buf("Conv_1.partials", s.conv1.partials_len());
        let row_stats = buf("loss.rows", 2 * n);
        let stats = buf("loss.stats", 3);
        let totals = buf("loss.totals", 4);

        let ce = SoftmaxCeBuffers {
            logits: (&logits).into(),
            labels: (&labels).into(),
            row_stats: (&row_stats).into(),
            stats: (&stats).into(),
            totals: (&totals).into(),
        };
        let param = |i: usize| layout.slice(&params, i);
        let grad = |i: usize| layout.slice(&grads, i);

        // Conv → ReLU → pool: one kernel where the device runs the subgroup kernels, else a
        // conv with fused ReLU and a pool.
        let conv_relu_pool = |gpu: &Gpu,
                              conv: &Conv2dParams,
                              pool: &AvgPoolParams,
                              x: BufSlice<'_>,
                              (w, b): (usize, usize),
                              (a, pooled): (&wgpu::Buffer, &wgpu::Buffer),
                              names: (&str, &str)|
         -> Vec<Dispatch> {
            let conv = conv.with_relu();
            let fused = (pool.k == 2)
                .then(|| {
                    conv2d::forward_pool2(
                        gpu,
                        &conv,
                        x,
                        param(w),
                        param(b),
                        a.into(),
                        pooled.into(),
                    )
                })
                .flatten();
            match fused {
                Some(d) => vec![d.in_layer(names.0)],
                None => vec![
                    conv2d::forward(gpu, &conv, x, param(w), param(b), a.into()).in_layer(names.0),
                    avgpool::forward(gpu, pool, a.into(), pooled.into()).in_layer(names.1),
                ],
            }
        };
        let forward = |gpu: &Gpu| -> Vec<Dispatch> {
            let mut v = conv_relu_pool(
                gpu,
                &s.conv0,
                &s.pool0,
                (&input).into(),
                (0, 1),
                (&a0, &p0),
                ("Conv_0", "pool0"),
            );
            v.extend(conv_relu_pool(
                gpu,
                &s.conv1,
                &s.pool1,
                (&p0).into(),
                (2, 3),
                (&a1, &p1),
                ("Conv_1", "pool1"),
            ));
            v.extend([
                dense::forward(
                    gpu,
                    &s.dense0.with_relu(),
                    (&p1).into(),
                    param(4),
                    param(5),
                    (&a2).into(),
                )
                .in_layer("Dense_0"),
                dense::forward(
                    gpu,
                    &s.dense1,
                    (&a2).into(),
                    param(6),
                    param(7),
                    (&logits).into(),
                )
                .in_layer("Dense_1"),
            ]);
            v
        };

        let mut train = forward(gpu);
        train.extend(
            softmax_ce::backward(gpu, &s.loss, &ce, (&dlogits).into()).map(|d| d.in_layer("loss")),
        );
        train.extend(
            dense::backward_weight(
                gpu,
                &s.dense1,
                (&a2).into(),
                (&dlogits).into(),
                grad(6),
                grad(7),
            )
            .into_iter()
            .map(|d| d.in_layer("Dense_1")),
        );
        train.push(
            dense::backward_input(gpu, &s.dense1, (&dlogits).into(), param(6), (&da2).into())
                .in_layer("Dense_1"),
        );
        let e = ElementwiseParams::new((n * 256) as u32);
        train.push(
            relu::backward(gpu, &e, (&da2).into(), (&a2).into(), (&dz2).into()).in_layer("Dense_0"),
        );
        train.extend(
            dense::backward_weight(
                gpu,
                &s.dense0,
                (&p1).into(),
                (&dz2).into(),
                grad(4),
                grad(5),
            )
            .into_iter()
            .map(|d| d.in_layer("Dense_0")),
        );
        train.push(
            dense::backward_input(gpu, &s.dense0, (&dz2).into(), param(4), (&dp1).into())
                .in_layer("Dense_0"),
        );
        // Pool backward fused with the backward of the ReLU before it.
        train.push(
            avgpool::backward_relu(gpu, &s.pool1, (&dp1).into(), (&a1).into(), (&dz1).into())
                .in_layer("pool1"),
        );
        train.extend(
            conv2d::backward_weight(
                gpu,
                &s.conv1,
                (&p0).into(),
                (&dz1).into(),
                (&part1).into(),
                grad(2),
                grad(3),
            )
            .map(|d| d.in_layer("Conv_1")),
        );
        train.push(
            conv2d::backward_input(gpu, &s.conv1, (&dz1).into(), param(2), (&dp0).into())
                .in_layer("Conv_1"),
        );
        train.push(
            avgpool::backward_relu(gpu, &s.pool0, (&dp0).into(), (&a0).into(), (&dz0).into())
                .in_layer("pool0"),
        );
        // The first layer computes no input gradient.
        train.extend(
            conv2d::backward_weight(
                gpu,
                &s.conv0,
                (&input).into(),
                (&dz0).into(),
                (&part0).into(),
                grad(0),
                grad(1),
            )
            .map(|d| d.in_layer("Conv_0")),
        );
        let adam_index = train.len();
        train.push(
            adam::update(
                gpu,
                &AdamParams::new(layout.total as u32, lr, 1),
                (&params).into(),
                (&grads).into(),
                (&mu).into(),
                (&nu).into(),
            )
            .in_layer("adam"),
        );

        let mut eval = forward(gpu);
        let eval_loss_index = eval.len();
        eval.extend(softmax_ce::forward(gpu, &s.loss, &ce).map(|d| d.in_layer("loss")));
        gpu.take_errors()?;

        Ok(GpuModel {
            shapes: s,
            layout,
            lr,
            step: 0,
            params,
            grads,
            mu,
            nu,
            input,
            labels,
            logits,
            stats,
            totals,
            buffers: all,
            train,
            eval,
            adam_index,
            eval_loss_index,
        })
    }

    pub fn batch(&self) -> u32 {
        self.shapes.n
    }

    /// Bytes of GPU memory in the model's buffers (uniforms excluded).
    pub fn gpu_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size()).sum()
    }

    /// The dispatches of one training step, in order (for the profiler).
    pub fn train_schedule(&self) -> &[Dispatch] {
        &self.train
    }

    pub fn eval_schedule(&self) -> &[Dispatch] {
        &self.eval
    }

    /// Uploads one batch: `images` [batch,32,32,3] NHWC f32, `labels` [batch].
    pub fn upload_batch(&self, gpu: &Gpu, images: &[f32], labels: &[u32]) {
        gpu.queue
            .write_buffer(&self.input, 0, bytemuck::cast_slice(images));
        gpu.queue
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
    }

    /// Zeroes the on-GPU loss/accuracy totals (start of an epoch).
    pub fn reset_totals(&self, gpu: &Gpu) {
        gpu.queue
            .write_buffer(&self.totals, 0, bytemuck::cast_slice(&[0f32; 4]));
    }

    /// Records the train step (forward, loss, backward, Adam) into `encoder` as one compute
    /// pass, after the `prologue` dispatches (e.g. building the batch). Advances the Adam
    /// step; the caller submits.
    pub fn encode_train_step(
        &mut self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        prologue: &[&Dispatch],
    ) {
        self.begin_train_step(gpu);
        record(encoder, "train_step", prologue, &self.train);
    }

    /// Advances the Adam step and writes its parameters; call once before recording
    /// [`train_schedule`](Self::train_schedule) by hand (the profiler does).
    pub fn begin_train_step(&mut self, gpu: &Gpu) {
        self.step = self.step.saturating_add(1);
        let adam = AdamParams::new(self.layout.total as u32, self.lr, self.step);
        gpu.queue.write_buffer(
            &self.train[self.adam_index].uniform,
            0,
            bytemuck::bytes_of(&adam),
        );
    }

    /// Records the eval step (forward and loss, no gradients) into `encoder`.
    pub fn encode_eval_step(&self, encoder: &mut wgpu::CommandEncoder, prologue: &[&Dispatch]) {
        record(encoder, "eval_step", prologue, &self.eval);
    }

    /// Makes the eval loss count only the first `valid` rows of the batch (a partial last
    /// batch); `valid = batch` restores it. Takes effect from the next submit.
    pub fn set_eval_rows(&self, gpu: &Gpu, valid: u32) {
        let p = SoftmaxCeParams::new(valid.clamp(1, self.batch()), CLASSES);
        gpu.queue.write_buffer(
            &self.eval[self.eval_loss_index].uniform,
            0,
            bytemuck::bytes_of(&p),
        );
    }

    /// Replaces the parameters (per-tensor vectors in `param_specs()` order).
    pub fn write_params(&self, gpu: &Gpu, params: &[Vec<f32>]) {
        gpu.queue.write_buffer(
            &self.params,
            0,
            bytemuck::cast_slice(&self.layout.flatten(params)),
        );
    }

    /// Replaces Adam's state: moments and the number of steps taken.
    pub fn write_adam(&mut self, gpu: &Gpu, mu: &[Vec<f32>], nu: &[Vec<f32>], step: u32) {
        gpu.queue
            .write_buffer(&self.mu, 0, bytemuck::cast_slice(&self.layout.flatten(mu)));
        gpu.queue
            .write_buffer(&self.nu, 0, bytemuck::cast_slice(&self.layout.flatten(nu)));
        self.step = step;
    }

    /// Adam's moments (mu, nu) per tensor.
    pub fn read_adam(&self, gpu: &Gpu) -> Result<Moments, GpuError> {
        Ok((
            self.layout.unflatten(&gpu.read_f32(&self.mu)?),
            self.layout.unflatten(&gpu.read_f32(&self.nu)?),
        ))
    }

    /// Sets the on-GPU totals (resuming mid-epoch).
    pub fn write_totals(&self, gpu: &Gpu, t: Totals) {
        gpu.queue.write_buffer(
            &self.totals,
            0,
            bytemuck::cast_slice(&[t.loss_sum, t.correct, t.count, t.first_bad_batch as f32]),
        );
    }

    /// One training step on the uploaded batch, submitted without waiting.
    pub fn train_step(&mut self, gpu: &Gpu) {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.encode_train_step(gpu, &mut encoder, &[]);
        gpu.queue.submit([encoder.finish()]);
    }

    /// One evaluation step on the uploaded batch, submitted without waiting.
    pub fn eval_step(&self, gpu: &Gpu) {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.encode_eval_step(&mut encoder, &[]);
        gpu.queue.submit([encoder.finish()]);
    }

    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>, GpuError> {
        Ok(self.layout.unflatten(&gpu.read_f32(&self.params)?))
    }

    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>, GpuError> {
        Ok(self.layout.unflatten(&gpu.read_f32(&self.grads)?))
    }

    pub fn read_logits(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        gpu.read_f32(&self.logits)
    }

    pub fn read_stats(&self, gpu: &Gpu) -> Result<BatchStats, GpuError> {
        let v = gpu.read_f32(&self.stats)?;
        Ok(BatchStats {
            loss: v[0],
            correct: v[1],
        })
    }

    pub fn read_totals(&self, gpu: &Gpu) -> Result<Totals, GpuError> {
        let v = gpu.read_f32(&self.totals)?;
        Ok(Totals {
            loss_sum: v[0],
            correct: v[1],
            count: v[2],
            first_bad_batch: v[3] as u32,
        })
    }
}

fn record(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    prologue: &[&Dispatch],
    schedule: &[Dispatch],
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    for d in prologue.iter().copied().chain(schedule) {
        d.record(&mut pass);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_aligns_tensors_and_round_trips() {
        let l = ParamLayout::seed();
        assert!(l.offsets.iter().all(|o| o % ALIGN == 0));
        assert_eq!(
            l.count(),
            27 * 32 + 32 + 288 * 64 + 64 + 4096 * 256 + 256 + 2560 + 10
        );
        let t = init_params(7);
        assert_eq!(l.unflatten(&l.flatten(&t)), t);
    }

    #[test]
    fn init_is_lecun_normal_truncated() {
        let t = init_params(1);
        for (s, v) in param_specs().iter().zip(&t) {
            if s.is_bias() {
                assert!(v.iter().all(|&x| x == 0.0));
                continue;
            }
            let std = (1.0 / s.fan_in as f64).sqrt();
            let var = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64;
            // Variance 1/fan_in (the truncation is compensated), within sampling error.
            assert!(
                (var.sqrt() / std - 1.0).abs() < 0.15,
                "{}: std {} vs {}",
                s.name,
                var.sqrt(),
                std
            );
            let bound = 2.0 * std / 0.879_625_661_034_239_8;
            assert!(
                v.iter().all(|&x| (x as f64).abs() <= bound + 1e-6),
                "{}",
                s.name
            );
        }
        assert_ne!(init_params(1), init_params(2));
    }

    #[test]
    fn train_flops_match_the_headline_count() {
        assert_eq!(Shapes::new(128).train_flops(), 5_110_628_352);
    }
}
