//! A planned model on the GPU: [`GpuModel`] allocates the buffers of a [`Plan`] once and records
//! its schedules as fixed dispatch lists (train step: forward, loss, backward, Adam; eval step:
//! forward and loss). Parameters use Flax's names and layouts and live in one flat buffer
//! ([`ParamLayout`]) so that a single Adam dispatch updates all of them; gradients, Adam's mu and
//! nu share that layout. The CPU reference of the same plan is `cpu::reference`.

use crate::gpu::{BufSlice, Dispatch, Gpu, GpuError};
use crate::graph::Description;
use crate::ops::add::gpu as add;
use crate::ops::avgpool::gpu as avgpool;
use crate::ops::batchnorm::gpu as batchnorm;
use crate::ops::clip::gpu as clip;
use crate::ops::conv2d::gpu as conv2d;
use crate::ops::conv2d::winograd::gpu as winograd;
use crate::ops::dense::gpu as dense;
use crate::ops::dropout::gpu as dropout;
use crate::ops::gelu::gpu as gelu;
use crate::ops::maxpool::gpu as maxpool;
use crate::ops::optimizer::gpu as adam;
use crate::ops::relu::gpu as relu;
use crate::ops::scale::gpu as scale;
use crate::ops::softmax_ce::gpu as softmax_ce;
use crate::ops::softmax_ce::gpu::SoftmaxCeBuffers;
use crate::ops::{AdamParams, ClipParams, DropoutParams, SoftmaxCeParams};
use crate::plan::{Mode, Plan, Step, TensorId};

pub use crate::plan::{ParamLayout, ParamSpec};

impl ParamLayout {
    /// Tensor `i` of a buffer in this layout.
    pub fn slice<'a>(&self, buffer: &'a wgpu::Buffer, i: usize) -> BufSlice<'a> {
        BufSlice::elems(buffer, self.offsets[i], self.specs[i].len())
    }
}

pub use crate::checkpoint::Moments;

mod lookahead;
mod record;

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

impl Totals {
    /// The `loss.totals` buffer's layout: four floats (the batch index as a float: exact below
    /// 2^24 batches per epoch).
    pub fn to_gpu(&self) -> [f32; 4] {
        [
            self.loss_sum,
            self.correct,
            self.count,
            self.first_bad_batch as f32,
        ]
    }
    pub fn from_gpu(v: &[f32]) -> Self {
        Totals {
            loss_sum: v[0],
            correct: v[1],
            count: v[2],
            first_bad_batch: v[3] as u32,
        }
    }
    /// Checkpoint metadata `totals`: the floats' bit patterns, so a resumed run continues with
    /// exactly the same sums.
    pub fn to_meta(&self) -> String {
        format!(
            "{} {} {} {}",
            self.loss_sum.to_bits(),
            self.correct.to_bits(),
            self.count.to_bits(),
            self.first_bad_batch
        )
    }
    /// Parses [`Totals::to_meta`] (older checkpoints wrote three numbers, without the batch).
    pub fn from_meta(s: &str) -> Option<Self> {
        let v: Vec<u32> = s
            .split(' ')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let (a, b, c, bad) = match v[..] {
            [a, b, c] => (a, b, c, 0),
            [a, b, c, bad] => (a, b, c, bad),
            _ => return None,
        };
        Some(Totals {
            loss_sum: f32::from_bits(a),
            correct: f32::from_bits(b),
            count: f32::from_bits(c),
            first_bad_batch: bad,
        })
    }
}

/// A planned model on the GPU at a fixed batch size: weights, Adam state, activations and
/// gradients live in buffers allocated once (the plan's); each step replays a recorded schedule.
pub struct GpuModel {
    pub plan: Plan,
    pub layout: ParamLayout,
    pub lr: f32,
    /// Adam steps taken so far.
    pub step: u32,
    pub params: wgpu::Buffer,
    /// Batch-norm running statistics ([`Plan::stats`] layout; one float without batch norm).
    pub batch_stats: wgpu::Buffer,
    /// Gradients and Adam's moments (train plans only).
    train_state: Option<TrainState>,
    pub input: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    pub stats: wgpu::Buffer,
    pub totals: wgpu::Buffer,
    /// Every buffer the model allocated, for memory accounting.
    buffers: Vec<wgpu::Buffer>,
    /// The plan's buffers ([`Plan::buffers`] order), where its tensors take turns.
    plan_buffers: Vec<wgpu::Buffer>,

    train: Vec<Dispatch>,
    eval: Vec<Dispatch>,
    update_index: usize,
    /// The entry points each step of the train schedule recorded, in order (`plan.forward`
    /// then `plan.backward`): what `plan::kernels::entries` must name.
    step_kernels: Vec<Vec<&'static str>>,
    /// The dropout dispatches of the train schedule (index, params): each train step writes
    /// its step number into their uniforms.
    dropouts: Vec<(usize, DropoutParams)>,
    /// The seed of the dropout masks (the run's `--seed`; 0 unless set).
    pub dropout_seed: u32,
    /// The learning-rate schedule over a run of `total_steps` Adam steps (constant unless set).
    pub schedule: crate::schedule::Schedule,
    pub total_steps: u64,
    /// The optimizer (Adam unless [`GpuModel::set_optimizer`]).
    pub optimizer: crate::optim::Optimizer,
    /// The optimizer's parameter groups over this model's tensors.
    groups: crate::optim::Groups,
    /// Lookahead's slow weights and synchronisations ([`GpuModel::set_lookahead`]).
    lookahead: Option<lookahead::LookaheadState>,
    eval_loss_index: usize,
    /// The train schedule's softmax CE dispatch (label smoothing goes into its uniform).
    train_loss_index: usize,
}

struct TrainState {
    grads: wgpu::Buffer,
    /// Adam's first moment, or SGD's momentum trace.
    mu: wgpu::Buffer,
    nu: wgpu::Buffer,
    /// Each parameter's entry of the update's group table (one u32 per parameter) where the
    /// groups or the decay mask change anything, else one unused word.
    group: wgpu::Buffer,
}

impl GpuModel {
    /// Plans `desc` for training at batch size `batch` on `gpu`, allocates every buffer and
    /// records the train and eval schedules.
    pub fn new(
        gpu: &Gpu,
        desc: &Description,
        batch: u32,
        init: &[Vec<f32>],
        lr: f32,
    ) -> anyhow::Result<Self> {
        let plan = Plan::new(desc, batch, &gpu.caps(), Mode::Train)?;
        Ok(Self::from_plan(gpu, plan, init, lr)?)
    }

    /// Plans `desc` for inference (forward and loss only: no gradient, Adam or split-K
    /// buffers).
    pub fn inference(
        gpu: &Gpu,
        desc: &Description,
        batch: u32,
        params: &[Vec<f32>],
    ) -> anyhow::Result<Self> {
        let plan = Plan::new(desc, batch, &gpu.caps(), Mode::Inference)?;
        Ok(Self::from_plan(gpu, plan, params, 0.0)?)
    }

    /// Allocates the plan's buffers and records its schedules.
    pub fn from_plan(gpu: &Gpu, plan: Plan, init: &[Vec<f32>], lr: f32) -> Result<Self, GpuError> {
        let layout = plan.layout.clone();
        assert_eq!(
            init.len(),
            layout.specs.len(),
            "one init tensor per parameter"
        );
        let n = plan.batch as usize;
        let mut all = Vec::new();
        let mut buf = |label: &str, len: usize| {
            let b = gpu.storage(label, len.max(1));
            all.push(b.clone());
            b
        };
        // The flat buffers the optimizer updates are padded to whole vec4s (adam::padded_len).
        let flat = adam::padded_len(layout.total);
        let params = buf("params", flat);
        gpu.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&layout.flatten(init)));
        let batch_stats = buf("batch_stats", plan.stats.total);
        gpu.queue.write_buffer(
            &batch_stats,
            0,
            bytemuck::cast_slice(&plan.stats.flatten(&plan.stats.init(0))),
        );
        let train_state = (plan.mode == Mode::Train).then(|| TrainState {
            grads: buf("grads", flat),
            mu: buf("adam.mu", flat),
            nu: buf("adam.nu", flat),
            group: buf("opt.group", 4),
        });
        let buffers: Vec<wgpu::Buffer> =
            plan.buffers.iter().map(|b| buf(&b.label, b.len)).collect();
        let row_stats = buf("loss.rows", 2 * n);
        let stats = buf("loss.stats", 3);
        let totals = buf("loss.totals", 4);
        let ce = SoftmaxCeBuffers {
            logits: BufSlice::elems(
                &buffers[plan.tensors[plan.logits].buffer],
                0,
                plan.tensors[plan.logits].len,
            ),
            labels: BufSlice::elems(
                &buffers[plan.tensors[plan.labels].buffer],
                0,
                plan.tensors[plan.labels].len,
            ),
            row_stats: (&row_stats).into(),
            stats: (&stats).into(),
            totals: (&totals).into(),
        };
        let bind = record::Bindings {
            gpu,
            plan: &plan,
            buffers: &buffers,
            params: &params,
            batch_stats: &batch_stats,
            train_state: train_state.as_ref(),
            ce,
            lr,
        };
        let record = |step: &Step, eval: bool| bind.record(step, eval);
        let mut train: Vec<Dispatch> = Vec::new();
        let mut step_kernels = Vec::new();
        let mut update_index = 0;
        let mut train_loss_index = 0;
        let mut dropouts = Vec::new();
        if plan.mode == Mode::Train {
            for s in plan.forward.iter().chain(&plan.backward) {
                match s {
                    Step::Update { .. } => update_index = train.len(),
                    Step::Loss { .. } => train_loss_index = train.len(),
                    Step::Dropout { p, .. } | Step::DropoutBackward { p, .. } => {
                        dropouts.push((train.len(), *p))
                    }
                    _ => {}
                }
                let ds = record(s, false);
                step_kernels.push(ds.iter().map(|d| d.entry).collect());
                train.extend(ds);
            }
        }

        let mut eval: Vec<Dispatch> = plan.forward.iter().flat_map(|s| record(s, true)).collect();
        let eval_loss_index = eval.len();
        eval.extend(record(&plan.eval_loss(), true));
        gpu.take_errors()?;
        let io = |t: TensorId| buffers[plan.tensors[t].buffer].clone();
        Ok(GpuModel {
            input: io(plan.input),
            labels: io(plan.labels),
            logits: io(plan.logits),
            layout,
            lr,
            step: 0,
            params,
            batch_stats,
            train_state,
            stats,
            totals,
            buffers: all,
            plan_buffers: buffers,
            train,
            eval,
            update_index,
            step_kernels,
            dropouts,
            dropout_seed: 0,
            schedule: Default::default(),
            total_steps: 0,
            optimizer: Default::default(),
            groups: Default::default(),
            lookahead: None,
            eval_loss_index,
            train_loss_index,
            plan,
        })
    }

    fn state(&self) -> &TrainState {
        self.train_state
            .as_ref()
            .expect("a train-mode model (GpuModel::new)")
    }

    /// The gradient buffer (train plans).
    /// The entry points each train-schedule step runs, in `plan.forward` then `plan.backward`
    /// order (empty for inference models).
    pub fn step_kernels(&self) -> &[Vec<&'static str>] {
        &self.step_kernels
    }

    pub fn grads(&self) -> &wgpu::Buffer {
        &self.state().grads
    }

    pub fn batch(&self) -> u32 {
        self.plan.batch
    }

    pub fn classes(&self) -> u32 {
        self.plan.desc.classes
    }

    /// Bytes of GPU memory in the model's buffers and its kernels' texture mirrors (uniforms
    /// excluded).
    pub fn gpu_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size()).sum::<u64>()
            + crate::gpu::dispatch::mirror_bytes(self.train.iter().chain(&self.eval))
    }

    /// The dispatches of one training step, in order (for the profiler).
    pub fn train_dispatches(&self) -> &[Dispatch] {
        &self.train
    }

    pub fn eval_dispatches(&self) -> &[Dispatch] {
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
        self.write_lookahead_uniforms(gpu);
        self.encode_lookahead(encoder, None);
    }

    /// Advances the Adam step and writes its parameters; call once before recording
    /// [`train_dispatches`](Self::train_dispatches) by hand (the profiler does).
    pub fn begin_train_step(&mut self, gpu: &Gpu) {
        self.step = self.step.saturating_add(1);
        // optax evaluates the schedule at the count of updates done before this one.
        let lr = self
            .schedule
            .lr(self.lr as f64, self.step as u64 - 1, self.total_steps) as f32;
        let mut adam = self
            .optimizer
            .params(self.layout.total as u32, lr, self.step);
        self.groups.apply(&mut adam, self.step);
        gpu.queue.write_buffer(
            &self.train[self.update_index].uniform,
            0,
            bytemuck::bytes_of(&adam),
        );
        for &(i, p) in &self.dropouts {
            let p = p.at(self.dropout_seed, self.step);
            gpu.queue
                .write_buffer(&self.train[i].uniform, 0, bytemuck::bytes_of(&p));
        }
    }

    /// Bytes of one step's record in a step table: the optimizer's uniform, then each dropout
    /// layer's.
    pub fn step_record_bytes(&self) -> u64 {
        (std::mem::size_of::<crate::ops::AdamParams>()
            + self.dropouts.len() * std::mem::size_of::<DropoutParams>()) as u64
            + self.lookahead_record_bytes()
    }

    /// The uniforms of the next `count` train steps (steps `self.step + 1 …`), one record each:
    /// what [`begin_train_step`](Self::begin_train_step) would write, computed ahead so that many
    /// steps can be recorded into one command buffer.
    pub fn step_records(&self, count: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(count * self.step_record_bytes() as usize);
        for k in 1..=count as u32 {
            let step = self.step.saturating_add(k);
            let lr = self
                .schedule
                .lr(self.lr as f64, step as u64 - 1, self.total_steps) as f32;
            let mut adam = self.optimizer.params(self.layout.total as u32, lr, step);
            self.groups.apply(&mut adam, step);
            out.extend_from_slice(bytemuck::bytes_of(&adam));
            for &(_, p) in &self.dropouts {
                out.extend_from_slice(bytemuck::bytes_of(&p.at(self.dropout_seed, step)));
            }
            out.extend_from_slice(&self.lookahead_record(step));
        }
        out
    }

    /// Records the next train step into `encoder` with its uniforms copied from record `index`
    /// of `table` (written from [`step_records`](Self::step_records)) instead of written by the
    /// queue: the same work as [`encode_train_step`](Self::encode_train_step), any number of
    /// times per command buffer.
    pub fn encode_train_step_from(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        prologue: &[&Dispatch],
        table: &wgpu::Buffer,
        index: u64,
    ) {
        self.step = self.step.saturating_add(1);
        let mut at = index * self.step_record_bytes();
        let adam = std::mem::size_of::<crate::ops::AdamParams>() as u64;
        encoder.copy_buffer_to_buffer(table, at, &self.train[self.update_index].uniform, 0, adam);
        at += adam;
        let drop = std::mem::size_of::<DropoutParams>() as u64;
        for &(i, _) in &self.dropouts {
            encoder.copy_buffer_to_buffer(table, at, &self.train[i].uniform, 0, drop);
            at += drop;
        }
        record(encoder, "train_step", prologue, &self.train);
        self.encode_lookahead(encoder, Some((table, at)));
    }

    /// Records the eval step (forward and loss, no gradients) into `encoder`.
    pub fn encode_eval_step(&self, encoder: &mut wgpu::CommandEncoder, prologue: &[&Dispatch]) {
        record(encoder, "eval_step", prologue, &self.eval);
    }

    /// Makes the eval loss count only the first `valid` rows of the batch (a partial last
    /// batch); `valid = batch` restores it. Takes effect from the next submit.
    pub fn set_eval_rows(&self, gpu: &Gpu, valid: u32) {
        let p = SoftmaxCeParams::new(valid.clamp(1, self.batch()), self.classes());
        gpu.queue.write_buffer(
            &self.eval[self.eval_loss_index].uniform,
            0,
            bytemuck::bytes_of(&p),
        );
    }

    /// Trains with `opt` (Adam, AdamW or SGD; optax semantics, with its parameter groups, whose
    /// epochs must be resolved to steps: [`crate::optim::Optimizer::with_epoch_length`]):
    /// re-records the update dispatch and, where the groups or `--decay-mask kernels` change
    /// anything, uploads each parameter's group entry. Call before training.
    pub fn set_optimizer(&mut self, gpu: &Gpu, opt: crate::optim::Optimizer) -> anyhow::Result<()> {
        let total = self.layout.total;
        let groups = opt.groups(&self.layout.specs)?;
        let s = self.train_state.as_mut().expect("a train-mode model");
        if groups.active() {
            let mut flat = vec![0u32; adam::padded_len(total)];
            for ((spec, &off), &k) in self
                .layout
                .specs
                .iter()
                .zip(&self.layout.offsets)
                .zip(&groups.of_tensor)
            {
                flat[off..off + spec.len()].fill(k);
            }
            s.group = gpu.storage_from("opt.group", &flat);
            self.buffers.push(s.group.clone());
        }
        let d = adam::update(
            gpu,
            &opt.params(total as u32, self.lr, 1),
            &adam::OptimizerBuffers {
                param: (&self.params).into(),
                grad: (&s.grads).into(),
                mu: (&s.mu).into(),
                nu: (&s.nu).into(),
                group: (&s.group).into(),
            },
            opt.rule(),
        )
        .in_layer("update");
        let update = self
            .plan
            .forward
            .iter()
            .chain(&self.plan.backward)
            .position(|s| matches!(s, Step::Update { .. }));
        if let Some(k) = update.and_then(|i| self.step_kernels.get_mut(i)) {
            *k = vec![d.entry];
        }
        self.train[self.update_index] = d;
        self.plan.set_update_rule(opt.rule());
        self.optimizer = opt;
        self.groups = groups;
        Ok(gpu.take_errors()?)
    }

    /// Clips the gradients to a global norm of at most `max_norm` before each update
    /// (optax.clip_by_global_norm, chained before the optimizer): three dispatches recorded
    /// into the train schedule before Adam. Call once, before training.
    pub fn clip_grad_norm(&mut self, gpu: &Gpu, max_norm: f32) -> Result<(), GpuError> {
        let p = ClipParams::new(self.layout.total as u32, max_norm);
        let partials = gpu.storage("clip.partials", p.chunks as usize);
        let norm = gpu.storage("clip.norm", 1);
        let grads = self.state().grads.clone();
        let d: Vec<Dispatch> =
            clip::clip_by_global_norm(gpu, &p, (&grads).into(), (&partials).into(), (&norm).into())
                .into_iter()
                .map(|d| d.in_layer("clip"))
                .collect();
        let k = d.len();
        self.train.splice(self.update_index..self.update_index, d);
        self.update_index += k;
        self.buffers.extend([partials, norm]);
        gpu.take_errors()
    }

    /// Trains against targets smoothed by `alpha` (optax.smooth_labels; 0: one-hot). The eval
    /// schedule keeps the plain cross-entropy. Takes effect from the next submit.
    pub fn set_label_smoothing(&self, gpu: &Gpu, alpha: f32) {
        let p = SoftmaxCeParams::new(self.batch(), self.classes()).with_smoothing(alpha);
        gpu.queue.write_buffer(
            &self.train[self.train_loss_index].uniform,
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
    pub fn write_opt_state(&mut self, gpu: &Gpu, mu: &[Vec<f32>], nu: &[Vec<f32>], step: u32) {
        let s = self.state();
        gpu.queue
            .write_buffer(&s.mu, 0, bytemuck::cast_slice(&self.layout.flatten(mu)));
        gpu.queue
            .write_buffer(&s.nu, 0, bytemuck::cast_slice(&self.layout.flatten(nu)));
        self.step = step;
    }

    /// Adam's moments (mu, nu) per tensor.
    pub fn read_opt_state(&self, gpu: &Gpu) -> Result<Moments, GpuError> {
        Ok((
            self.layout.unflatten(&gpu.read_f32(&self.state().mu)?),
            self.layout.unflatten(&gpu.read_f32(&self.state().nu)?),
        ))
    }

    /// Sets the on-GPU totals (resuming mid-epoch).
    pub fn write_totals(&self, gpu: &Gpu, t: Totals) {
        gpu.queue
            .write_buffer(&self.totals, 0, bytemuck::cast_slice(&t.to_gpu()));
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

    /// Runs the forward half of a train step (batch statistics; the running statistics move
    /// as in a step) on the uploaded batch, up to the step that writes tensor `name` (a plan
    /// tensor such as `BatchNorm_0.out`), and reads it back before a later step can reuse its
    /// buffer. For numerical studies and tests of the activations a train step computes.
    pub fn read_train_forward(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>, GpuError> {
        let missing = || GpuError::Wgpu(format!("no forward step writes a tensor {name}"));
        let id = (0..self.plan.tensors.len())
            .find(|&i| self.plan.tensors[i].name == name)
            .ok_or_else(missing)?;
        let at = self
            .plan
            .forward
            .iter()
            .position(|s| s.writes().contains(&id));
        let at = at.ok_or_else(missing)?;
        let dispatches: usize = self.step_kernels[..=at].iter().map(Vec::len).sum();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        record(
            &mut encoder,
            "train_forward",
            &[],
            &self.train[..dispatches],
        );
        gpu.queue.submit([encoder.finish()]);
        let t = &self.plan.tensors[id];
        let mut v = gpu.read_f32(&self.plan_buffers[t.buffer])?;
        v.truncate(t.len);
        Ok(v)
    }

    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>, GpuError> {
        Ok(self.layout.unflatten(&gpu.read_f32(&self.params)?))
    }

    /// The batch-norm running statistics per tensor ([`Plan::stats`] order).
    pub fn read_batch_stats(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>, GpuError> {
        Ok(self.plan.stats.unflatten(&gpu.read_f32(&self.batch_stats)?))
    }

    /// Replaces the batch-norm running statistics.
    pub fn write_batch_stats(&self, gpu: &Gpu, stats: &[Vec<f32>]) {
        gpu.queue.write_buffer(
            &self.batch_stats,
            0,
            bytemuck::cast_slice(&self.plan.stats.flatten(stats)),
        );
    }

    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>, GpuError> {
        Ok(self.layout.unflatten(&gpu.read_f32(self.grads())?))
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
        Ok(Totals::from_gpu(&gpu.read_f32(&self.totals)?))
    }
}

fn record(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    prologue: &[&Dispatch],
    schedule: &[Dispatch],
) {
    crate::gpu::dispatch::record_passes(encoder, label, prologue.iter().copied().chain(schedule));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::zoo;

    fn seed_plan() -> Plan {
        Plan::new(
            &zoo::preset("flax-cifar10").unwrap(),
            128,
            &crate::caps::Caps::subgroup8_cpu(),
            Mode::Train,
        )
        .unwrap()
    }

    #[test]
    fn layout_aligns_tensors_and_round_trips() {
        let l = seed_plan().layout;
        assert!(l
            .offsets
            .iter()
            .all(|o| o % crate::plan::layout::ALIGN == 0));
        assert_eq!(
            l.count(),
            27 * 32 + 32 + 288 * 64 + 64 + 4096 * 256 + 256 + 2560 + 10
        );
        let t = l.init(7);
        assert_eq!(l.unflatten(&l.flatten(&t)), t);
    }

    #[test]
    fn init_is_lecun_normal_truncated() {
        let l = seed_plan().layout;
        let t = l.init(1);
        for (s, v) in l.specs.iter().zip(&t) {
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
        assert_ne!(l.init(1), l.init(2));
    }

    #[test]
    fn train_flops_match_the_headline_count() {
        assert_eq!(seed_plan().train_flops(), 5_110_628_352);
    }
}
