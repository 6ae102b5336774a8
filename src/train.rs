//! `wgpu-cnn train`: the seed's CIFAR-10 recipe end to end on the GPU.
//!
//! The data set is uploaded once as bytes; each step writes 32 bytes of crop parameters per
//! image, then one submit records the augmentation dispatch and the model's fixed train
//! schedule in one compute pass. Loss and accuracy accumulate on the GPU and are read back
//! once per epoch. Every random choice of epoch `e` comes from an RNG seeded with (seed, e),
//! so a run resumed from any step replays the same batches as an uninterrupted one.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint};
use crate::data::{self, Crop, GpuDataset};
use crate::gpu::{Dispatch, Gpu, GpuOptions};
use crate::graph::{zoo, Description};
use crate::model::{GpuModel, ParamLayout, Totals};
use crate::ops::augment::gpu as augment;
use crate::report::{self, EpochMetrics, EvalResult};

/// `println!` that a closed stdout cannot stop: a run whose reader went away (`| head`, a `tee`
/// ended by the same Ctrl-C) goes on training and checkpointing.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` likewise for stderr.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Set by the Ctrl-C handler: the training loop checkpoints and stops at the next step.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Every setting of a run (written to config.json and into checkpoints).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    /// `--model`: a preset name or a TOML file (runs before this setting: the seed model).
    #[serde(default = "default_model")]
    pub model: String,
    /// An inline model description (from a recipe's `[model]` table); `model` is then "inline".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_text: Option<String>,
    pub data: PathBuf,
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    /// The learning-rate schedule (optax semantics; runs before this setting: constant).
    #[serde(default)]
    pub schedule: crate::schedule::Schedule,
    /// Label smoothing α of the training loss (optax.smooth_labels; runs before this setting: 0).
    #[serde(default)]
    pub label_smoothing: f64,
    /// The optimizer (runs before this setting: Adam with optax's defaults).
    #[serde(default)]
    pub optimizer: crate::optim::Optimizer,
    /// optax.clip_by_global_norm before the update (runs before this setting: none).
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    pub seed: u64,
    /// `--dataset`: the kind of data in `data` (`None`: detected from the files).
    #[serde(default)]
    pub dataset: Option<data::Kind>,
    /// CIFAR-100's label set.
    #[serde(default)]
    pub labels: data::Labels,
    /// Image folders: resize to H×W (default: the model's input).
    #[serde(default)]
    pub image_size: Option<[u32; 2]>,
    /// Validation images held out of the training split (default: 5000, image folders 10 %;
    /// ignored where the data set brings a `val/` split).
    #[serde(default)]
    pub val_size: Option<data::SplitSize>,
    /// Image folders without `test/`: the test images drawn from the rest (default 10 %).
    #[serde(default)]
    pub test_size: Option<data::SplitSize>,
    /// `--normalize`: dataset, none, cifar10 or MEANS/STDS (default: cifar10 for CIFAR-10,
    /// the data set's own statistics otherwise).
    #[serde(default)]
    pub normalize: Option<String>,
    /// Image folders: where the decoded-image cache goes (default: next to the folder).
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Image folders: leave files that are not readable images out (counted) instead of failing.
    #[serde(default)]
    pub skip_bad_images: bool,
    pub train_limit: Option<usize>,
    /// Evaluate the final weights on the first N test images only (quick runs).
    #[serde(default)]
    pub test_limit: Option<usize>,
    /// Training augmentation (runs before this setting stored `true`/`false`).
    #[serde(deserialize_with = "de_augment")]
    pub augment: data::augment::AugmentConfig,
    pub shuffle: bool,
    /// Train steps recorded into one command buffer (their crops and uniforms come from
    /// buffers filled once per epoch); 1 submits every step on its own. The weights are the
    /// same bits either way.
    #[serde(default = "default_steps_per_submit")]
    pub steps_per_submit: u32,
    /// `--stream-data`: keep the training images in host memory and copy each submit's into a
    /// window on the GPU, even where the data set would fit (one too large for the adapter's
    /// storage bindings is streamed anyway). How a run is fed, not what it computes (the
    /// weights are the same bits either way): not stored with the run, as
    /// `checkpoint_minutes`; a recipe may hold it.
    #[serde(skip)]
    pub stream_data: bool,
    /// Test-time augmentation of the final test: the mean of the softmax over each image and
    /// its horizontal flip (`--tta flip`).
    #[serde(default)]
    pub tta: bool,
    pub init: Option<PathBuf>,
    pub out: PathBuf,
    /// `--checkpoint-minutes`: also write `last.safetensors` inside an epoch whenever this many
    /// minutes passed since the last checkpoint or the epoch's start, checked between submits
    /// (a run killed without Ctrl-C then loses about that much). How a run is kept, not what it computes: not stored with the run (give it
    /// again with `--resume`), and the weights are the same bits with or without it.
    #[serde(skip)]
    pub checkpoint_minutes: Option<f64>,
}

fn default_steps_per_submit() -> u32 {
    TrainConfig::default_steps_per_submit()
}

fn default_model() -> String {
    zoo::DEFAULT.to_string()
}

/// `augment` as runs before `--augment LIST` stored it (a bool) or as now (a table).
fn de_augment<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<data::augment::AugmentConfig, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Flag(bool),
        Config(data::augment::AugmentConfig),
    }
    Ok(match Either::deserialize(d)? {
        Either::Flag(on) => data::augment::AugmentConfig::from_flag(on),
        Either::Config(c) => c,
    })
}

impl Default for TrainConfig {
    /// The seed recipe.
    fn default() -> Self {
        TrainConfig {
            model: default_model(),
            model_text: None,
            data: data::default_data_dir(),
            epochs: 100,
            batch_size: 128,
            lr: 1e-4,
            schedule: Default::default(),
            label_smoothing: 0.0,
            clip_grad_norm: None,
            optimizer: Default::default(),
            seed: 42,
            dataset: None,
            labels: Default::default(),
            image_size: None,
            val_size: None,
            test_size: None,
            normalize: None,
            cache: None,
            skip_bad_images: false,
            train_limit: None,
            test_limit: None,
            augment: Default::default(),
            shuffle: true,
            steps_per_submit: default_steps_per_submit(),
            stream_data: false,
            tta: false,
            init: None,
            out: PathBuf::from("runs"),
            checkpoint_minutes: None,
        }
    }
}

impl TrainConfig {
    /// `--steps-per-submit` when not given.
    pub const fn default_steps_per_submit() -> u32 {
        8
    }

    /// The model: the inline description, else the preset or file `model` names.
    pub fn description(&self) -> Result<(Description, String)> {
        match &self.model_text {
            Some(t) => Ok((
                Description::parse(t).map_err(|e| anyhow::anyhow!("the recipe's [model]: {e}"))?,
                t.clone(),
            )),
            None => Ok(zoo::resolve(&self.model)?),
        }
    }

    /// Rejects settings that cannot run, with one clear line.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        // Adam runs in f32: the rate must stay a positive finite f32 too.
        let lr32 = self.lr as f32;
        if !(self.lr.is_finite() && self.lr > 0.0 && lr32.is_finite() && lr32 > 0.0) {
            bail!("--lr must be a positive finite number, got {}", self.lr);
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if let Some(m) = self.checkpoint_minutes {
            if !(m > 0.0 && std::time::Duration::try_from_secs_f64(m * 60.0).is_ok()) {
                bail!("--checkpoint-minutes must be a positive number of minutes, got {m}");
            }
        }
        if !(1..=1024).contains(&self.steps_per_submit) {
            bail!(
                "--steps-per-submit must be between 1 and 1024, got {}",
                self.steps_per_submit
            );
        }
        self.optimizer.validate()?;
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0 && (c as f32) > 0.0) {
                bail!("--clip-grad-norm must be a positive finite number, got {c}");
            }
        }
        self.augment.parsed()?;
        if let Some([h, w]) = self.image_size {
            if h == 0 || w == 0 || h > 4096 || w > 4096 {
                bail!("--image-size must be between 1 and 4096 pixels per side, got {h}x{w}");
            }
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!(
                "--label-smoothing must be in [0, 1), got {}",
                self.label_smoothing
            );
        }
        Ok(())
    }
}

/// Where a run is: what a checkpoint needs to continue it exactly.
#[derive(Clone, Copy, Debug, Default)]
struct Position {
    /// The epoch in progress (or the next to run when `step_in_epoch` is 0).
    epoch: u32,
    step_in_epoch: u32,
    totals: Option<Totals>,
    best_val_accuracy: Option<f64>,
    best_epoch: Option<u32>,
}

/// The RNG of epoch `epoch`: shuffling and augmentation of that epoch only.
fn epoch_rng(seed: u64, epoch: u32) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed.wrapping_add((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    )
}

/// The crops of every training step of `epoch`, in order (`steps · batch` of them).
pub fn epoch_crops(
    cfg: &TrainConfig,
    aug: &data::Augment,
    shape: data::ImageShape,
    train_idx: &[u32],
    epoch: u32,
    steps: usize,
) -> Vec<[u32; 8]> {
    let mut rng = epoch_rng(cfg.seed, epoch);
    let mut order = train_idx.to_vec();
    if cfg.shuffle {
        order.shuffle(&mut rng);
    }
    order[..steps * cfg.batch_size as usize]
        .iter()
        .map(|&r| aug.draw(&mut rng, r, shape).words())
        .collect()
}

/// With more than two submits queued, waits for the oldest: the queue's staging copies (crops,
/// uniforms, a streamed data set's images) stay bounded; surfaces GPU errors.
fn bound_in_flight(gpu: &Gpu, in_flight: &mut VecDeque<wgpu::SubmissionIndex>) -> Result<()> {
    if in_flight.len() > 2 {
        let idx = in_flight.pop_front();
        gpu.device
            .poll(wgpu::PollType::Wait {
                submission_index: idx,
                timeout: None,
            })
            .map_err(|e| anyhow::anyhow!("GPU error: {e}"))?;
        gpu.take_errors()?;
    }
    Ok(())
}

/// Where an evaluation pass's images come from: the augmentation dispatch made for `data`
/// (by [`Runner::augment_from`]) and the split `data` was uploaded from, which a streamed
/// data set copies each batch from.
#[derive(Clone, Copy)]
pub struct Feed<'a> {
    pub aug: &'a Dispatch,
    pub data: &'a GpuDataset,
    pub host: &'a data::Split,
}

/// A model plus the buffers and dispatches that feed it from GPU-resident data sets.
pub struct Runner {
    pub model: GpuModel,
    crops: wgpu::Buffer,
    preds: Option<wgpu::Buffer>,
}

impl Runner {
    /// A model planned for training (`desc` at batch size `batch`, Adam at rate `lr`).
    pub fn new(
        gpu: &Gpu,
        desc: &Description,
        batch: u32,
        params: &[Vec<f32>],
        lr: f32,
    ) -> Result<Self> {
        Self::with_model(gpu, GpuModel::new(gpu, desc, batch, params, lr)?)
    }

    /// A model planned for inference: eval steps only.
    pub fn inference(
        gpu: &Gpu,
        desc: &Description,
        batch: u32,
        params: &[Vec<f32>],
    ) -> Result<Self> {
        Self::with_model(gpu, GpuModel::inference(gpu, desc, batch, params)?)
    }

    fn with_model(gpu: &Gpu, model: GpuModel) -> Result<Self> {
        let crops = gpu.storage("crops", 8 * model.batch() as usize);
        Ok(Runner {
            model,
            crops,
            preds: None,
        })
    }

    /// The augmentation dispatch that fills the model's input from `data`, normalised with
    /// `norm`.
    pub fn augment_from(
        &self,
        gpu: &Gpu,
        data: &GpuDataset,
        norm: &data::Normalization,
    ) -> Dispatch {
        augment::batch(
            gpu,
            self.model.batch(),
            data,
            norm,
            (&self.crops).into(),
            (&self.model.input).into(),
            (&self.model.labels).into(),
        )
    }

    /// Bytes of GPU memory held by the model and the runner's own buffers.
    pub fn gpu_bytes(&self) -> u64 {
        self.model.gpu_bytes() + self.crops.size() + self.preds.as_ref().map_or(0, |p| p.size())
    }

    /// Records train step `index` of an epoch whose crops are in `crops_all` (one batch of
    /// crop words per step) and whose uniforms are record `index` of `table`.
    pub fn encode_train_step_from(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        aug: &Dispatch,
        crops_all: &wgpu::Buffer,
        table: &wgpu::Buffer,
        index: usize,
    ) {
        let bytes = 32 * self.model.batch() as u64;
        encoder.copy_buffer_to_buffer(crops_all, index as u64 * bytes, &self.crops, 0, bytes);
        self.model
            .encode_train_step_from(encoder, &[aug], table, index as u64);
    }

    pub fn write_crops(&self, gpu: &Gpu, crops: &[[u32; 8]]) {
        gpu.queue
            .write_buffer(&self.crops, 0, bytemuck::cast_slice(crops));
    }

    /// Loss and accuracy of the current weights on `indices` of the data set behind `aug`
    /// (unaugmented). With `labels`, also the confusion matrix (logits are gathered on the GPU
    /// and read back once).
    pub fn evaluate(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: Option<&[u32]>,
    ) -> Result<EvalResult> {
        Ok(self.eval_pass(gpu, feed, indices, labels, false)?.0)
    }

    /// Test-time augmentation: each image and its horizontal mirror, the mean of their softmax
    /// probabilities (f64 on the CPU) decides the prediction; the loss is −ln of that mean at
    /// the label.
    pub fn evaluate_tta(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: &[u32],
    ) -> Result<EvalResult> {
        let (_, a) = self.eval_pass(gpu, feed, indices, Some(labels), false)?;
        let (_, b) = self.eval_pass(gpu, feed, indices, Some(labels), true)?;
        let (Some(a), Some(b)) = (a, b) else {
            bail!("test-time augmentation needs the logits");
        };
        let classes = self.model.classes() as usize;
        let softmax = |row: &[f32]| -> Vec<f64> {
            let m = row.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y)) as f64;
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        };
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss, mut correct) = (0.0f64, 0u64);
        for ((ra, rb), &idx) in a
            .chunks_exact(classes)
            .zip(b.chunks_exact(classes))
            .zip(indices)
        {
            let p: Vec<f64> = softmax(ra)
                .iter()
                .zip(softmax(rb))
                .map(|(x, y)| 0.5 * (x + y))
                .collect();
            let mut best = 0;
            for (j, &v) in p.iter().enumerate() {
                if v > p[best] {
                    best = j;
                }
            }
            let label = labels[idx as usize] as usize;
            loss -= p[label].max(f64::MIN_POSITIVE).ln();
            correct += (best == label) as u64;
            confusion[label][best] += 1;
        }
        let n = indices.len().max(1) as f64;
        Ok(EvalResult {
            loss: loss / n,
            accuracy: correct as f64 / n,
            correct,
            total: indices.len() as u64,
            confusion: Some(confusion),
            classes: Vec::new(),
        })
    }

    /// One pass over `indices` (mirrored with `flip`): the GPU totals, and with `labels` the
    /// confusion matrix and the logits.
    fn eval_pass(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: Option<&[u32]>,
        flip: bool,
    ) -> Result<(EvalResult, Option<Vec<f32>>)> {
        let shape = data::ImageShape::of_input(self.model.plan.desc.input);
        let b = self.model.batch() as usize;
        let classes = self.model.classes() as usize;
        if labels.is_some() {
            let need = (indices.len() * classes * 4) as u64;
            if self.preds.as_ref().is_none_or(|p| p.size() < need) {
                self.preds = Some(gpu.storage("predictions", indices.len() * classes));
            }
        }
        self.model.reset_totals(gpu);
        // At most three submits queued: the staging copies of crops (and of a streamed data
        // set's images) stay bounded however long the split.
        let mut in_flight: VecDeque<wgpu::SubmissionIndex> = VecDeque::new();
        for (i, chunk) in indices.chunks(b).enumerate() {
            // A partial last batch is padded with its first image; the loss counts only the
            // real rows.
            let mut crops: Vec<[u32; 8]> = (0..b)
                .map(|j| {
                    Crop {
                        flip,
                        ..Crop::identity(*chunk.get(j).unwrap_or(&chunk[0]), shape)
                    }
                    .words()
                })
                .collect();
            feed.data.stage(gpu, feed.host, &mut crops)?;
            self.write_crops(gpu, &crops);
            if chunk.len() < b {
                self.model.set_eval_rows(gpu, chunk.len() as u32);
            }
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            self.model.encode_eval_step(&mut enc, &[feed.aug]);
            if let (Some(p), Some(_)) = (&self.preds, labels) {
                let bytes = (chunk.len() * classes * 4) as u64;
                enc.copy_buffer_to_buffer(
                    &self.model.logits,
                    0,
                    p,
                    (i * b * classes * 4) as u64,
                    bytes,
                );
            }
            in_flight.push_back(gpu.queue.submit([enc.finish()]));
            if chunk.len() < b {
                self.model.set_eval_rows(gpu, b as u32);
            }
            bound_in_flight(gpu, &mut in_flight)?;
        }
        gpu.wait()?;
        let t = self.model.read_totals(gpu)?;
        let mut r = EvalResult {
            loss: t.loss_sum as f64 / t.count.max(1.0) as f64,
            accuracy: t.correct as f64 / t.count.max(1.0) as f64,
            correct: t.correct as u64,
            total: t.count as u64,
            confusion: None,
            classes: Vec::new(),
        };
        if let (Some(p), Some(labels)) = (&self.preds, labels) {
            let logits: Vec<f32> = gpu.read(crate::gpu::BufSlice {
                buffer: p,
                offset: 0,
                size: (indices.len() * classes * 4) as u64,
            })?;
            let mut m = vec![vec![0u64; classes]; classes];
            for (row, &idx) in logits.chunks_exact(classes).zip(indices) {
                m[labels[idx as usize] as usize][argmax(row)] += 1;
            }
            r.confusion = Some(m);
            return Ok((r, Some(logits)));
        }
        Ok((r, None))
    }
}

/// Index of the first maximum (as jnp.argmax and the shader).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Loads the data set in `dir` as `opts` says; the default folder of a kind with an official
/// URL (CIFAR-10, CIFAR-100, MNIST) is downloaded first when it holds no data.
pub fn load_dataset(dir: &Path, opts: &data::DataOptions) -> Result<data::Dataset> {
    let default_kind = [data::Kind::Cifar10, data::Kind::Cifar100, data::Kind::Mnist]
        .into_iter()
        .find(|k| k.default_dir() == dir && opts.kind.is_none_or(|o| o == *k));
    if let Some(kind) = default_kind {
        let present = match kind {
            data::Kind::Cifar10 => data::cifar::is_cifar10(dir),
            data::Kind::Cifar100 => data::cifar::is_cifar100(dir),
            _ => data::mnist::is_mnist(dir),
        };
        if !present {
            say_err!(
                "{} not found in {}; downloading it (checksum verified)",
                kind.name(),
                dir.display()
            );
            data::download::download_kind(kind, dir, opts.progress).map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}; pass --data DIR pointing at a copy of the data set{}",
                    if kind == data::Kind::Cifar10 {
                        format!(" ({})", data::missing_data_hint(dir))
                    } else {
                        String::new()
                    }
                )
            })?;
        }
    }
    data::load(dir, opts)
}

#[allow(clippy::too_many_arguments)]
fn checkpoint_of(
    gpu: &Gpu,
    m: &GpuModel,
    model_text: &str,
    cfg: &TrainConfig,
    pos: Position,
    adapter: &str,
    shape: (usize, usize),
    history: &[EpochMetrics],
    extra: &[(&str, String)],
) -> Result<Checkpoint> {
    let params = m.read_params(gpu)?;
    let adam = m.read_adam(gpu)?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".into(), "wgpu-cnn checkpoint 1".into());
    meta.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    meta.insert("step".into(), m.step.to_string());
    meta.insert(
        "optimizer".into(),
        if m.optimizer.is_sgd() { "sgd" } else { "adam" }.into(),
    );
    meta.insert("epoch".into(), pos.epoch.to_string());
    meta.insert("step_in_epoch".into(), pos.step_in_epoch.to_string());
    meta.insert(
        "rng".into(),
        format!("StdRng per epoch from seed {}", cfg.seed),
    );
    meta.insert("seed".into(), cfg.seed.to_string());
    meta.insert("adapter".into(), adapter.to_string());
    meta.insert("config".into(), serde_json::to_string(cfg)?);
    // What a resumed run must find again to replay the same batches.
    meta.insert("train_images".into(), shape.0.to_string());
    meta.insert("steps_per_epoch".into(), shape.1.to_string());
    if let Some(t) = pos.totals {
        meta.insert("totals".into(), t.to_meta());
    }
    // The epochs' metrics (metrics.jsonl's lines): the checkpoint commits an epoch, the log
    // follows it, and a resumed run rewrites the log from here.
    meta.insert("history".into(), history_text(history)?);
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    if let (Some(a), Some(e)) = (pos.best_val_accuracy, pos.best_epoch) {
        meta.insert("best_val_accuracy".into(), a.to_string());
        meta.insert("best_epoch".into(), e.to_string());
    }
    let mut ck = Checkpoint::new(m.plan.desc.clone(), model_text.to_string(), params);
    ck.batch_stats = m.read_batch_stats(gpu)?;
    ck.adam = Some(adam);
    ck.metadata = meta;
    Ok(ck)
}

/// Reads the loss totals back without stalling the GPU: a copy recorded into a step's command
/// buffer, mapped asynchronously, collected once the mapping has completed during later polls.
struct TotalsProbe {
    staging: wgpu::Buffer,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl TotalsProbe {
    const IDLE: u8 = 0;
    const MAPPING: u8 = 1;
    const READY: u8 = 2;
    const FAILED: u8 = 3;

    fn new(gpu: &Gpu) -> Self {
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("totals.probe"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        TotalsProbe {
            staging,
            state: Default::default(),
        }
    }

    fn idle(&self) -> bool {
        self.state.load(Ordering::SeqCst) == Self::IDLE
    }

    fn encode(&self, enc: &mut wgpu::CommandEncoder, totals: &wgpu::Buffer) {
        enc.copy_buffer_to_buffer(totals, 0, &self.staging, 0, 16);
    }

    /// Call right after submitting the command buffer `encode` wrote into.
    fn start(&self) {
        self.state.store(Self::MAPPING, Ordering::SeqCst);
        let state = self.state.clone();
        self.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            state.store(
                if r.is_ok() { Self::READY } else { Self::FAILED },
                Ordering::SeqCst,
            );
        });
    }

    /// The totals, once a started read has completed.
    fn take(&self) -> Option<Totals> {
        match self.state.load(Ordering::SeqCst) {
            Self::READY => {
                let v: Option<Vec<f32>> = self
                    .staging
                    .get_mapped_range(..)
                    .ok()
                    .map(|view| bytemuck::cast_slice(&view).to_vec());
                self.staging.unmap();
                self.state.store(Self::IDLE, Ordering::SeqCst);
                let v = v?;
                Some(Totals::from_gpu(&v))
            }
            Self::FAILED => {
                self.state.store(Self::IDLE, Ordering::SeqCst);
                None
            }
            _ => None,
        }
    }
}

/// Stops a diverged run: names the epoch and the first step whose loss was not finite; the
/// last checkpoint written (end of the previous epoch) is untouched.
fn check_finite(t: &Totals, epoch: u32, out: &Path) -> Result<()> {
    if t.first_bad_batch == 0 && t.loss_sum.is_finite() {
        return Ok(());
    }
    let last = out.join("last.safetensors");
    let keep = if last.exists() {
        format!("the last good checkpoint is {}", last.display())
    } else {
        "no checkpoint was written yet".to_string()
    };
    bail!(
        "training diverged: non-finite loss at epoch {epoch}, step {} (counting from 0 within the epoch); \
         stopped, {keep}; try a smaller --lr",
        t.first_bad_batch.max(1) - 1
    )
}

/// Bytes of one checkpoint of `layout` with Adam's state (three copies of the parameters,
/// float32).
fn checkpoint_bytes(layout: &ParamLayout) -> u64 {
    3 * 4 * layout.count() as u64
}

/// Tests only: `WGPU_CNN_INTERRUPT_AT_STEP=N` acts as a Ctrl-C that lands once the run has done
/// N steps in all (at the end of the submit that reaches it), so that resume tests stop inside
/// an epoch at a known step on any machine, however fast.
fn interrupt_for_test(done: u64) -> bool {
    std::env::var("WGPU_CNN_INTERRUPT_AT_STEP")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| done >= n)
}

/// The model must take the data's images and predict its classes.
pub fn check_model_fits_data(
    desc: &Description,
    shape: data::ImageShape,
    classes: usize,
) -> Result<()> {
    if desc.input != [shape.h, shape.w, shape.c] {
        bail!(
            "the model's input {}x{}x{} does not match the data's {} images (key `input`{})",
            desc.input[0],
            desc.input[1],
            desc.input[2],
            shape.describe(),
            if desc.input[2] == shape.c {
                "; image folders take --image-size"
            } else {
                ""
            }
        );
    }
    if desc.classes as usize != classes {
        bail!(
            "the model has {} classes, the data has {classes} (key `classes`)",
            desc.classes
        );
    }
    Ok(())
}

fn read_history(path: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn history_text(history: &[EpochMetrics]) -> Result<String> {
    let mut s = String::new();
    for m in history {
        s += &serde_json::to_string(m)?;
        s.push('\n');
    }
    Ok(s)
}

fn write_history(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    crate::io::write_atomic(path, history_text(history)?.as_bytes())
}

/// What `train` returns: final evaluations and where the outputs are.
pub struct TrainOutcome {
    pub out: PathBuf,
    pub history: Vec<EpochMetrics>,
    pub test_last: Option<EvalResult>,
    pub test_best: Option<EvalResult>,
    pub interrupted: bool,
}

/// Runs the recipe `cfg` (or continues `resume`). Prints the seed's log lines.
pub fn train(cfg: TrainConfig, resume: Option<&Path>, device: &GpuOptions) -> Result<TrainOutcome> {
    let out = cfg.out.clone();
    let created = !out.exists();
    let mut run = Run::start(cfg, resume, device).inspect_err(|_| {
        // A run that failed before it started leaves no empty output folder behind.
        if created {
            let _ = std::fs::remove_dir(&out);
        }
    })?;
    let mut interrupted = false;
    while run.pos.epoch < run.cfg.epochs {
        let first = run.pos.step_in_epoch as usize;
        let t0 = Instant::now();
        if !run.train_epoch()? {
            interrupted = true;
            break;
        }
        run.finish_epoch(first, t0)?;
        // Ctrl-C during the last step of an epoch or during validation: the end-of-epoch
        // checkpoint just written is where the run continues.
        if INTERRUPTED.load(Ordering::SeqCst) && run.pos.epoch < run.cfg.epochs {
            say_err!(
                "interrupted after epoch {}: continue with --resume {}",
                run.pos.epoch - 1,
                run.cfg.out.join("last.safetensors").display()
            );
            interrupted = true;
            break;
        }
    }
    report::curves_png(&run.history, &run.cfg.out.join("curves.png"))?;
    let (test_last, test_best) = if interrupted {
        (None, None)
    } else {
        run.final_test()?
    };
    Ok(TrainOutcome {
        out: run.cfg.out,
        history: run.history,
        test_last,
        test_best,
        interrupted,
    })
}

/// Creates the run folder and checks, before any training time is spent, that it is writable
/// and has room for two checkpoints of `checkpoint_bytes` (last and best, each written next to
/// its temporary copy) plus the reports.
fn prepare_out_folder(out: &Path, checkpoint_bytes: u64) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    crate::io::write_atomic(&out.join(".write-test"), b"ok")
        .with_context(|| format!("output folder {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(out.join(".write-test"));
    let need = 4 * checkpoint_bytes + (8 << 20);
    if let Ok(free) = fs4::available_space(out) {
        if free < need {
            bail!(
                "not enough free space in {}: {} MiB free, a run needs about {} MiB",
                out.display(),
                free >> 20,
                need >> 20
            );
        }
    }
    Ok(())
}

/// The training and validation indices of the run and the steps per epoch, checked. A
/// validation split the data set brings is appended to its training images (indices after
/// them); otherwise `--val-size` images are held out of the training split.
fn split_training_set(
    cfg: &TrainConfig,
    ds: &mut data::Dataset,
) -> Result<(Vec<u32>, Vec<u32>, usize)> {
    let (mut train_idx, val_idx) = match ds.val.take() {
        Some(val) => {
            if cfg.val_size.is_some() {
                say!(
                    "validation: the data set's own {} images (--val-size does not apply)",
                    val.len()
                );
            }
            let n = ds.train.len() as u32;
            ds.train.append(&val);
            ((0..n).collect(), (n..ds.train.len() as u32).collect())
        }
        None => {
            let n_all = ds.train.len();
            let size = cfg.val_size.unwrap_or(match ds.kind {
                data::Kind::Folder => data::SplitSize::Fraction(0.1),
                _ => data::SplitSize::Count(5000),
            });
            let val_size = size.of(n_all);
            if val_size >= n_all {
                bail!(
                    "--val-size {} leaves no training images (the training set has {n_all})",
                    size.describe()
                );
            }
            data::split_indices(n_all, val_size, cfg.seed)
        }
    };
    if let Some(limit) = cfg.train_limit {
        if limit == 0 || limit > train_idx.len() {
            bail!(
                "--train-limit {limit} must be between 1 and the training split's {} images",
                train_idx.len()
            );
        }
        train_idx.truncate(limit);
    }
    let b = cfg.batch_size as usize;
    let steps = train_idx.len() / b;
    if steps == 0 {
        bail!(
            "the training split has {} images, fewer than one batch of {b}",
            train_idx.len()
        );
    }
    Ok((train_idx, val_idx, steps))
}

/// The run's normalisation: the resumed checkpoint's, else `--normalize` (default: CIFAR-10's
/// constants for CIFAR-10, the training split's statistics otherwise).
fn resolve_normalization(
    cfg: &TrainConfig,
    ds: &data::Dataset,
    train_idx: &[u32],
    resumed: Option<&Checkpoint>,
) -> Result<data::Normalization> {
    if let Some(n) = resumed.and_then(checkpoint_normalization) {
        return Ok(n);
    }
    let spec = cfg.normalize.clone().unwrap_or_else(|| {
        match ds.kind {
            data::Kind::Cifar10 => "cifar10",
            _ => "dataset",
        }
        .into()
    });
    data::Normalization::parse(&spec, ds.shape().c, || ds.channel_stats(train_idx))
}

/// The normalisation a checkpoint was trained with (none recorded: CIFAR-10's).
pub fn checkpoint_normalization(ck: &Checkpoint) -> Option<data::Normalization> {
    ck.metadata
        .get("normalization")
        .and_then(|s| serde_json::from_str(s).ok())
}

/// The class names a checkpoint was trained with.
pub fn checkpoint_classes(ck: &Checkpoint) -> Vec<String> {
    ck.metadata
        .get("classes")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// A resumed run must find the data it was trained on and a position inside it.
fn check_resume(
    ck: &Checkpoint,
    shown: &str,
    pos: &Position,
    train_images: usize,
    steps: usize,
) -> Result<()> {
    let same = |key: &str, now: usize| ck.meta::<usize>(key).is_none_or(|v| v == now);
    if !same("train_images", train_images) || !same("steps_per_epoch", steps) {
        bail!(
            "{shown}: the run had {} training images in {} steps per epoch, the data now gives {} in {}; \
             resume with the same data set",
            ck.meta::<usize>("train_images").unwrap_or(0),
            ck.meta::<usize>("steps_per_epoch").unwrap_or(0),
            train_images,
            steps
        );
    }
    if pos.step_in_epoch as usize >= steps {
        bail!(
            "{shown}: step_in_epoch {} is past the epoch's {steps} steps",
            pos.step_in_epoch
        );
    }
    if ck.meta::<u32>("step").is_some_and(|t| t > i32::MAX as u32) {
        bail!("{shown}: Adam step count out of range");
    }
    Ok(())
}

/// One training run: its settings, position, data, model and schedules.
struct Run {
    cfg: TrainConfig,
    pos: Position,
    history: Vec<EpochMetrics>,
    progress: bool,
    gpu: Gpu,
    adapter: String,
    ds: data::Dataset,
    norm: data::Normalization,
    aug: data::Augment,
    train_idx: Vec<u32>,
    val_idx: Vec<u32>,
    steps: usize,
    runner: Runner,
    /// The model description's text (checkpoint metadata `model`).
    model_text: String,
    train_data: GpuDataset,
    test_data: GpuDataset,
    aug_train: Dispatch,
    aug_test: Dispatch,
    probe: TotalsProbe,
    /// The epoch's crop words, one batch per step (filled once per epoch).
    crops_all: wgpu::Buffer,
    /// The epoch's per-step uniforms (`GpuModel::step_records`).
    step_table: wgpu::Buffer,
}

impl Run {
    /// Checks the settings and the output folder, loads the data, opens the GPU, builds the
    /// model (from the seed, `--init` or the checkpoint being resumed) and uploads the data.
    fn start(cfg: TrainConfig, resume: Option<&Path>, device: &GpuOptions) -> Result<Run> {
        cfg.validate()?;
        let progress = std::io::stderr().is_terminal();
        let resumed = resume.map(checkpoint::load).transpose()?;
        // The model: the resumed checkpoint's, else `--model`.
        let (desc, model_text) = match &resumed {
            Some(ck) => (ck.model.clone(), ck.model_text.clone()),
            None => cfg.description()?,
        };
        // What the batch size decides about the model, whatever the adapter (limits come later).
        let mut any = crate::caps::Caps::gpu32();
        (any.max_binding, any.max_buffer) = (u64::MAX, u64::MAX);
        crate::plan::Plan::new(&desc, cfg.batch_size, &any, crate::plan::Mode::Train)?;
        let layout = ParamLayout::of(&desc)?;
        prepare_out_folder(&cfg.out, checkpoint_bytes(&layout))?;

        let input = data::ImageShape::of_input(desc.input);
        let opts = data::DataOptions {
            kind: cfg.dataset,
            labels: cfg.labels,
            shape: match cfg.image_size {
                Some([h, w]) => data::ImageShape { h, w, c: input.c },
                None => input,
            },
            test_size: cfg.test_size,
            seed: cfg.seed,
            cache: cfg.cache.clone(),
            skip_bad_images: cfg.skip_bad_images,
            progress,
        };
        // An image folder is resized to `--image-size`: a size the model cannot take is refused
        // before any image is decoded (or the folder's cache written). Other kinds ignore it.
        let folder = opts.kind.or_else(|| data::detect(&cfg.data).ok()) == Some(data::Kind::Folder);
        if folder && opts.shape != input {
            check_model_fits_data(&desc, opts.shape, desc.classes as usize)?;
        }
        let mut ds = load_dataset(&cfg.data, &opts)?;
        if cfg.labels == data::Labels::Coarse && ds.kind != data::Kind::Cifar100 {
            bail!(
                "--labels coarse: only CIFAR-100 has coarse labels; {} is {}",
                cfg.data.display(),
                ds.name
            );
        }
        check_model_fits_data(&desc, ds.shape(), ds.classes.len())?;
        let aug = cfg.augment.parsed()?;
        aug.check(ds.shape())?;
        let (train_idx, val_idx, steps) = split_training_set(&cfg, &mut ds)?;
        let norm = resolve_normalization(&cfg, &ds, &train_idx, resumed.as_ref())?;
        let data_line = format!(
            "data: {}, {} images, {} classes; {} training, {} validation, {} test; normalisation {}; augmentation {}",
            ds.name,
            ds.shape().describe(),
            ds.classes.len(),
            train_idx.len(),
            val_idx.len(),
            ds.test.len(),
            norm.describe(),
            aug.canonical()
        );

        let gpu = Gpu::new(device)?;
        let adapter = gpu.describe();
        say!("adapter: {adapter}");
        for n in &ds.notes {
            say!("{n}");
        }
        say!("{data_line}");
        if let Some(n) = cfg.test_limit.filter(|&n| n < ds.test.len()) {
            let classes = |labels: &[u32]| {
                labels
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            };
            let (some, all) = (
                classes(&ds.test.labels[..n.max(1)]),
                classes(&ds.test.labels),
            );
            if some < all {
                say!(
                    "note: --test-limit {n} tests the first {n} test images, which hold {some} of the test split's {all} classes (an image folder's test/ is in class order)"
                );
            }
        }

        let (init, stats, pos) = match &resumed {
            Some(ck) => {
                let pos = Position {
                    epoch: ck.meta("epoch").unwrap_or(0),
                    step_in_epoch: ck.meta("step_in_epoch").unwrap_or(0),
                    totals: ck.metadata.get("totals").and_then(|s| Totals::from_meta(s)),
                    best_val_accuracy: ck.meta("best_val_accuracy"),
                    best_epoch: ck.meta("best_epoch"),
                };
                (ck.params.clone(), ck.batch_stats.clone(), pos)
            }
            None => match &cfg.init {
                Some(path) => {
                    let ck = checkpoint::load_as(path, Some((&desc, &model_text)))?;
                    warn_unknown(path, &ck);
                    if ParamLayout::of(&ck.model)?.specs != layout.specs {
                        bail!(
                            "{}: its model ({}) is not the one being trained ({}); --init needs the same parameters",
                            path.display(),
                            ck.model.summary(),
                            desc.summary()
                        );
                    }
                    (ck.params, ck.batch_stats, Position::default())
                }
                None => (
                    layout.init(cfg.seed),
                    ParamLayout::stats_of(&desc)?.init(0),
                    Position::default(),
                ),
            },
        };
        if let Some(ck) = &resumed {
            let shown = resume.unwrap_or(Path::new("")).display().to_string();
            check_resume(ck, &shown, &pos, train_idx.len(), steps)?;
        }
        let mut runner = Runner::new(&gpu, &desc, cfg.batch_size, &init, cfg.lr as f32)?;
        runner.model.write_batch_stats(&gpu, &stats);
        runner
            .model
            .set_label_smoothing(&gpu, cfg.label_smoothing as f32);
        if cfg.optimizer != crate::optim::Optimizer::default() {
            runner.model.set_optimizer(&gpu, cfg.optimizer.clone())?;
            say!("optimizer: {}", cfg.optimizer.describe());
        }
        if let Some(c) = cfg.clip_grad_norm {
            runner.model.clip_grad_norm(&gpu, c as f32)?;
        }
        // Dropout masks follow the run's seed (and the step, which a resumed run restores).
        runner.model.dropout_seed = (cfg.seed ^ (cfg.seed >> 32)) as u32;
        let total = cfg.epochs as u64 * steps as u64;
        cfg.schedule.validate(total)?;
        runner.model.schedule = cfg.schedule.clone();
        if cfg.schedule != crate::schedule::Schedule::Constant {
            say!(
                "learning rate: {} from {} over {total} steps",
                cfg.schedule.describe(),
                cfg.lr
            );
        }
        runner.model.total_steps = total;
        if let Some(ck) = &resumed {
            let Some((mu, nu)) = &ck.adam else {
                bail!(
                    "{}: has no optimizer state (opt.mu.* and opt.nu.*, or opt.trace.*), cannot resume from it",
                    resume.unwrap_or(Path::new("")).display()
                );
            };
            runner
                .model
                .write_adam(&gpu, mu, nu, ck.meta("step").unwrap_or(0));
        }
        let b = cfg.batch_size as usize;
        let train_data = GpuDataset::upload(
            &gpu,
            &ds.train,
            "train",
            Some(data::Streaming {
                force: cfg.stream_data,
                ..data::Streaming::when_needed(b, cfg.steps_per_submit as usize)
            }),
        )?;
        let test_data = GpuDataset::upload(
            &gpu,
            &ds.test,
            "test",
            Some(data::Streaming {
                force: cfg.stream_data,
                ..data::Streaming::when_needed(b, 1)
            }),
        )?;
        say!(
            "GPU memory: model {:.1} MiB, data {:.1} MiB (training images {})",
            runner.gpu_bytes() as f64 / 1048576.0,
            (train_data.bytes() + test_data.bytes()) as f64 / 1048576.0,
            train_data.describe(&gpu),
        );
        if let Some(path) = resume {
            say!(
                "resumed from {}: epoch {}, step {} of {steps} ({} of {} epochs done)",
                path.display(),
                pos.epoch,
                pos.step_in_epoch,
                pos.epoch,
                cfg.epochs
            );
        }
        let aug_train = runner.augment_from(&gpu, &train_data, &norm);
        let aug_test = runner.augment_from(&gpu, &test_data, &norm);
        let probe = TotalsProbe::new(&gpu);
        let crops_all = gpu.storage("crops.epoch", steps * 8 * cfg.batch_size as usize);
        let step_table = gpu.storage(
            "steps.table",
            steps * runner.model.step_record_bytes() as usize / 4,
        );
        gpu.take_errors()?;

        crate::io::write_atomic(
            &cfg.out.join("config.json"),
            serde_json::to_string_pretty(&serde_json::json!({
                "config": &cfg,
                "adapter": &adapter,
                "version": env!("CARGO_PKG_VERSION"),
                "data": {
                    "kind": ds.kind,
                    "name": &ds.name,
                    "shape": ds.shape(),
                    "classes": &ds.classes,
                    "test_images": ds.test.len(),
                },
                "normalization": &norm,
                "augmentation": aug.canonical(),
                "train_images": train_idx.len(),
                "val_images": val_idx.len(),
                "steps_per_epoch": steps,
                "gpu_bytes": runner.gpu_bytes() + train_data.bytes() + test_data.bytes(),
            }))?
            .as_bytes(),
        )?;
        crate::io::write_atomic(
            &cfg.out.join("recipe.toml"),
            cfg.recipe()?
                .to_toml("every setting of this run: `wgpu-cnn train --recipe recipe.toml --out DIR` repeats it")?
                .as_bytes(),
        )?;
        // A resumed run keeps the metrics of the epochs its checkpoint includes: the
        // checkpoint's own copy (older checkpoints: metrics.jsonl), written back to the log.
        let mut history = match &resumed {
            Some(ck) => match ck.metadata.get("history") {
                Some(h) => h
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect(),
                None => read_history(&cfg.out.join("metrics.jsonl")),
            },
            None => Vec::new(),
        };
        history.retain(|m: &EpochMetrics| m.epoch < pos.epoch);
        if resumed.is_some() {
            write_history(&cfg.out.join("metrics.jsonl"), &history)?;
        }
        Ok(Run {
            cfg,
            pos,
            history,
            progress,
            gpu,
            adapter,
            ds,
            norm,
            aug,
            train_idx,
            val_idx,
            steps,
            runner,
            model_text,
            train_data,
            test_data,
            aug_train,
            aug_test,
            probe,
            crops_all,
            step_table,
        })
    }

    /// What checkpoints record about the data: class names, normalisation, the data set.
    fn data_meta(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![
            ("classes", serde_json::to_string(&self.ds.classes)?),
            ("normalization", serde_json::to_string(&self.norm)?),
            ("data", self.ds.name.clone()),
        ])
    }

    /// The training steps of the current epoch, from `pos.step_in_epoch`. Returns false when
    /// Ctrl-C stopped it (a checkpoint of the exact position is then written).
    fn train_epoch(&mut self) -> Result<bool> {
        let (gpu, cfg) = (&self.gpu, &self.cfg);
        let (epoch, b, steps) = (self.pos.epoch, cfg.batch_size as usize, self.steps);
        let crops = epoch_crops(
            cfg,
            &self.aug,
            self.ds.shape(),
            &self.train_idx,
            epoch,
            steps,
        );
        match self.pos.totals.take() {
            Some(t) if self.pos.step_in_epoch > 0 => self.runner.model.write_totals(gpu, t),
            _ => self.runner.model.reset_totals(gpu),
        }
        let bar = if self.progress {
            indicatif::ProgressBar::new(steps as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "epoch {epoch:03} {{bar:40}} {{pos}}/{{len}} steps, {{per_sec}}, eta {{eta}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(self.pos.step_in_epoch as u64);
        let mut in_flight: VecDeque<wgpu::SubmissionIndex> = VecDeque::new();
        // The epoch's crops and per-step uniforms go to the GPU once; each submit then records
        // `steps_per_submit` steps that copy theirs into place.
        // A streamed data set refills its window before each submit: as many steps as it holds.
        let first = self.pos.step_in_epoch as usize;
        let streamed = self.train_data.window;
        let chunk = match streamed {
            Some(w) => (cfg.steps_per_submit as usize).min(w as usize / b).max(1),
            None => cfg.steps_per_submit as usize,
        };
        if chunk > 1 {
            if streamed.is_none() {
                gpu.queue.write_buffer(
                    &self.crops_all,
                    (first * b * 32) as u64,
                    bytemuck::cast_slice(&crops[first * b..steps * b]),
                );
            }
            gpu.queue.write_buffer(
                &self.step_table,
                first as u64 * self.runner.model.step_record_bytes(),
                &self.runner.model.step_records(steps - first),
            );
        }
        let every = cfg.checkpoint_minutes.map(|m| {
            std::time::Duration::try_from_secs_f64(m * 60.0).unwrap_or(std::time::Duration::MAX)
        });
        let mut last_save = Instant::now();
        let mut s = first;
        while s < steps {
            let end = (s + chunk).min(steps);
            let mut staged;
            let mut these = &crops[s * b..end * b];
            if streamed.is_some() {
                staged = these.to_vec();
                self.train_data.stage(gpu, &self.ds.train, &mut staged)?;
                these = &staged;
                if chunk > 1 {
                    gpu.queue.write_buffer(
                        &self.crops_all,
                        (s * b * 32) as u64,
                        bytemuck::cast_slice(these),
                    );
                }
            }
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            for j in s..end {
                if chunk == 1 {
                    // One submit per step: crops and uniforms written by the queue.
                    self.runner.write_crops(gpu, these);
                    self.runner
                        .model
                        .encode_train_step(gpu, &mut enc, &[&self.aug_train]);
                } else {
                    self.runner.encode_train_step_from(
                        &mut enc,
                        &self.aug_train,
                        &self.crops_all,
                        &self.step_table,
                        j,
                    );
                }
            }
            // About every 50 steps, a copy of the loss totals comes back asynchronously: a
            // diverged run stops within about 50 steps without the GPU ever waiting for the CPU.
            let probe_now = (s / 50 != end / 50 || end == steps) && self.probe.idle();
            if probe_now {
                self.probe.encode(&mut enc, &self.runner.model.totals);
            }
            in_flight.push_back(gpu.queue.submit([enc.finish()]));
            if probe_now {
                self.probe.start();
            }
            // Few submits queued: bounds staging memory and drives the progress bar.
            bound_in_flight(gpu, &mut in_flight)?;
            bar.set_position(end as u64);
            if let Some(t) = self.probe.take() {
                check_finite(&t, epoch, &cfg.out)?;
            }
            s = end;
            let interrupted = (INTERRUPTED.load(Ordering::SeqCst)
                || interrupt_for_test(epoch as u64 * steps as u64 + end as u64))
                && end < steps;
            let due = end < steps && every.is_some_and(|d| last_save.elapsed() >= d);
            if interrupted || due {
                gpu.wait()?;
                self.pos.step_in_epoch = end as u32;
                let totals = self.runner.model.read_totals(gpu)?;
                // Never replace the last good checkpoint with diverged weights.
                check_finite(&totals, epoch, &cfg.out)?;
                self.pos.totals = Some(totals);
                let path = self.save_last()?;
                // The totals so far belong to this checkpoint only; the epoch's own stay on
                // the GPU.
                self.pos.totals = None;
                if interrupted {
                    bar.finish_and_clear();
                    say_err!(
                        "interrupted at epoch {epoch}, step {}: checkpoint written to {} (continue with --resume {})",
                        end,
                        path.display(),
                        path.display()
                    );
                    return Ok(false);
                }
                last_save = Instant::now();
            }
        }
        gpu.wait()?;
        bar.finish_and_clear();
        Ok(true)
    }

    /// Writes `last.safetensors` at the run's position (atomically) and returns its path.
    fn save_last(&self) -> Result<PathBuf> {
        let path = self.cfg.out.join("last.safetensors");
        checkpoint::save(
            &path,
            &checkpoint_of(
                &self.gpu,
                &self.runner.model,
                &self.model_text,
                &self.cfg,
                self.pos,
                &self.adapter,
                (self.train_idx.len(), self.steps),
                &self.history,
                &self.data_meta()?,
            )?,
        )?;
        Ok(path)
    }

    /// After an epoch's steps (the first of them `first`, started at `t0`): loss and accuracy,
    /// validation, the log line, metrics.jsonl, last and best checkpoints.
    fn finish_epoch(&mut self, first: usize, t0: Instant) -> Result<()> {
        let (gpu, cfg, epoch) = (&self.gpu, &self.cfg, self.pos.epoch);
        let t = self.runner.model.read_totals(gpu)?;
        check_finite(&t, epoch, &cfg.out)?;
        let train_loss = t.loss_sum as f64 / t.count as f64;
        let train_acc = t.correct as f64 / t.count as f64;
        let seconds_train = t0.elapsed().as_secs_f64();
        let val = if self.val_idx.is_empty() {
            None
        } else {
            Some(self.runner.evaluate(
                gpu,
                Feed {
                    aug: &self.aug_train,
                    data: &self.train_data,
                    host: &self.ds.train,
                },
                &self.val_idx,
                None,
            )?)
        };
        let seconds = t0.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch,
            train_loss,
            train_accuracy: train_acc,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().map(|v| v.accuracy),
            seconds,
            images_per_second: ((self.steps - first) * cfg.batch_size as usize) as f64
                / seconds_train,
            rss_bytes: report::rss_bytes(),
            gpu_bytes: Some(
                self.runner.gpu_bytes() + self.train_data.bytes() + self.test_data.bytes(),
            ),
            live_buffers: gpu.live_buffers(),
        };
        let val_text = match &val {
            Some(v) => format!(", val loss: {:.4}, val accuracy: {:.4}", v.loss, v.accuracy),
            None => String::new(),
        };
        let line = format!(
            "epoch: {epoch:03}, train loss: {train_loss:.4}, train accuracy: {train_acc:.4}{val_text}, \
             {seconds:.1} s, {:.0} images/s",
            m.images_per_second
        );
        self.history.push(m);

        self.pos.epoch += 1;
        self.pos.step_in_epoch = 0;
        let score = val.as_ref().map(|v| v.accuracy).unwrap_or(train_acc);
        let is_best = self.pos.best_val_accuracy.is_none_or(|b| score > b);
        if is_best {
            self.pos.best_val_accuracy = Some(score);
            self.pos.best_epoch = Some(epoch);
        }
        let ck = checkpoint_of(
            gpu,
            &self.runner.model,
            &self.model_text,
            cfg,
            self.pos,
            &self.adapter,
            (self.train_idx.len(), self.steps),
            &self.history,
            &self.data_meta()?,
        )?;
        // The checkpoint commits the epoch; only then does the log claim it.
        checkpoint::save(&cfg.out.join("last.safetensors"), &ck)?;
        if is_best {
            checkpoint::save(&cfg.out.join("best.safetensors"), &ck)?;
        }
        write_history(&cfg.out.join("metrics.jsonl"), &self.history)?;
        // Printed last: a reader that has gone away cannot cost the epoch.
        say!("{line}");
        Ok(())
    }

    /// Test of the last weights, then of the best checkpoint: log lines, confusion matrix,
    /// test.json and confusion.png.
    fn final_test(&mut self) -> Result<(Option<EvalResult>, Option<EvalResult>)> {
        let (gpu, cfg, test) = (&self.gpu, &self.cfg, &self.ds.test);
        let test_n = cfg.test_limit.unwrap_or(test.len()).clamp(1, test.len());
        let test_idx: Vec<u32> = (0..test_n as u32).collect();
        let feed = Feed {
            aug: &self.aug_test,
            data: &self.test_data,
            host: &self.ds.test,
        };
        let mut last = self
            .runner
            .evaluate(gpu, feed, &test_idx, Some(&test.labels))?;
        last.classes = self.ds.classes.clone();
        let last_epoch = cfg.epochs - 1;
        say!(
            "test, last weights (epoch {last_epoch:03}): {}",
            last.line()
        );
        {
            use std::io::Write as _;
            let _ = write!(std::io::stdout(), "{}", report::confusion_table(&last));
        }
        let tta = if cfg.tta {
            let mut r = self
                .runner
                .evaluate_tta(gpu, feed, &test_idx, &test.labels)?;
            r.classes = self.ds.classes.clone();
            say!(
                "test, last weights, test-time augmentation (flip): {}",
                r.line()
            );
            Some(r)
        } else {
            None
        };
        let best = match checkpoint::load(&cfg.out.join("best.safetensors")) {
            Ok(ck) => {
                self.runner.model.write_params(gpu, &ck.params);
                self.runner.model.write_batch_stats(gpu, &ck.batch_stats);
                let mut r = self
                    .runner
                    .evaluate(gpu, feed, &test_idx, Some(&test.labels))?;
                r.classes = self.ds.classes.clone();
                let e: u32 = ck.meta("best_epoch").unwrap_or(last_epoch);
                let what = if self.val_idx.is_empty() {
                    "best train accuracy"
                } else {
                    "best validation accuracy"
                };
                say!("test, {what} checkpoint (epoch {e:03}): {}", r.line());
                Some((r, e))
            }
            Err(e) => {
                say_err!("warning: cannot evaluate the best checkpoint: {e:#}");
                None
            }
        };
        let mut json = last.to_json();
        json["epoch"] = last_epoch.into();
        if let Some(t) = &tta {
            json["tta_flip"] = t.to_json();
        }
        if let Some((r, e)) = &best {
            let mut b = r.to_json();
            b["epoch"] = (*e).into();
            json["best"] = b;
        }
        crate::io::write_atomic(
            &cfg.out.join("test.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        report::confusion_png(
            &last,
            &format!("{} test, last weights", self.ds.name),
            &cfg.out.join("confusion.png"),
        )?;
        say!("outputs in {}", cfg.out.display());
        Ok((Some(last), best.map(|b| b.0)))
    }
}

pub fn warn_unknown(path: &Path, ck: &Checkpoint) {
    if !ck.unknown.is_empty() {
        say_err!(
            "warning: {}: ignoring unknown tensors: {}",
            path.display(),
            ck.unknown.join(", ")
        );
    }
}

impl TrainConfig {
    /// Every setting of the run, explicit: the recipe that reproduces the run.
    pub fn recipe(&self) -> Result<crate::recipe::Recipe> {
        let cfg = self;
        let o = &cfg.optimizer;
        let sgd = o.is_sgd();
        let (schedule, warmup_steps, end_lr, boundaries, scales) = match &cfg.schedule {
            crate::schedule::Schedule::Constant => ("constant", None, None, None, None),
            crate::schedule::Schedule::Cosine { end_lr } => {
                ("cosine", None, Some(*end_lr), None, None)
            }
            crate::schedule::Schedule::WarmupCosine {
                warmup_steps,
                end_lr,
            } => (
                "warmup-cosine",
                Some(*warmup_steps),
                Some(*end_lr),
                None,
                None,
            ),
            crate::schedule::Schedule::Piecewise { boundaries, scales } => (
                "piecewise",
                None,
                None,
                Some(boundaries.clone()),
                Some(scales.clone()),
            ),
        };
        let model = match &cfg.model_text {
            Some(t) => crate::recipe::ModelRef::Inline(
                toml::from_str(t).context("the run's inline model is not a TOML table")?,
            ),
            None => crate::recipe::ModelRef::Name(cfg.model.clone()),
        };
        Ok(crate::recipe::Recipe {
            epochs: Some(cfg.epochs),
            batch_size: Some(cfg.batch_size),
            seed: Some(cfg.seed),
            data: Some(cfg.data.clone()),
            dataset: cfg.dataset.map(|k| k.name().to_string()),
            labels: Some(cfg.labels.name().to_string()),
            image_size: cfg.image_size.map(|[h, w]| format!("{h}x{w}")),
            val_size: cfg.val_size,
            test_size: cfg.test_size,
            train_limit: cfg.train_limit,
            test_limit: cfg.test_limit,
            normalize: cfg.normalize.clone(),
            augment: Some(cfg.augment.list.clone()),
            rrc_scale: Some(crate::settings::Pair([
                cfg.augment.rrc_scale.0,
                cfg.augment.rrc_scale.1,
            ])),
            rrc_ratio: Some(crate::settings::Pair([
                cfg.augment.rrc_ratio.0,
                cfg.augment.rrc_ratio.1,
            ])),
            shuffle: Some(cfg.shuffle),
            cache: cfg.cache.clone(),
            skip_bad_images: Some(cfg.skip_bad_images),
            optimizer: Some(
                match o.kind {
                    crate::optim::Kind::Adam => "adam",
                    crate::optim::Kind::AdamW => "adamw",
                    crate::optim::Kind::Sgd => "sgd",
                }
                .into(),
            ),
            lr: Some(cfg.lr),
            b1: (!sgd).then_some(o.b1),
            b2: (!sgd).then_some(o.b2),
            eps: (!sgd).then_some(o.eps),
            momentum: sgd.then_some(o.momentum),
            nesterov: sgd.then_some(o.nesterov),
            weight_decay: Some(o.weight_decay),
            decay_mask: (o.weight_decay > 0.0).then(|| {
                match o.decay_mask {
                    crate::optim::DecayMask::All => "all",
                    crate::optim::DecayMask::Kernels => "kernels",
                }
                .into()
            }),
            schedule: Some(schedule.into()),
            warmup_steps,
            end_lr,
            boundaries: boundaries.map(crate::settings::List),
            scales: scales.map(crate::settings::List),
            label_smoothing: Some(cfg.label_smoothing),
            clip_grad_norm: cfg.clip_grad_norm,
            init: cfg.init.clone(),
            tta: Some(if cfg.tta { "flip" } else { "none" }.into()),
            steps_per_submit: Some(cfg.steps_per_submit),
            stream_data: cfg.stream_data.then_some(true),
            model: Some(model),
        })
    }
}
