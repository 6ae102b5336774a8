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
use crate::data::{self, Crop, GpuDataset, Tta, View};
use crate::gpu::{Dispatch, Gpu, GpuOptions};
use crate::graph::{zoo, Description, Draft};
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

mod config;
mod runner;
mod training;
pub mod whitening;

pub use config::TrainConfig;
use runner::*;
pub use runner::{argmax, epoch_crops, Feed, Runner};
use training::Training;

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

/// Loads the data set in `dir` as `opts` says; the default folder of a kind with an official
/// URL (CIFAR-10, CIFAR-100, MNIST) is downloaded first when it holds no data.
/// Whether two paths name the same place (relative ones from the current folder).
fn same_path(a: &Path, b: &Path) -> bool {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs(a) == abs(b)
}

pub fn load_dataset(dir: &Path, opts: &data::DataOptions) -> Result<data::Dataset> {
    let default_kind = [data::Kind::Cifar10, data::Kind::Cifar100, data::Kind::Mnist]
        .into_iter()
        .find(|k| same_path(&k.default_dir(), dir) && opts.kind.is_none_or(|o| o == *k));
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
    let adam = m.read_opt_state(gpu)?;
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
    ck.opt_state = Some(adam);
    ck.lookahead = m.read_lookahead(gpu)?;
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
            "the model's input {}x{}x{} does not match the data's {} images: its description fixes `input`; set `input = [{}, {}, {}]` there, or leave `input` out to take the data's (a preset adapts to the data by itself)",
            desc.input[0],
            desc.input[1],
            desc.input[2],
            shape.describe(),
            shape.h,
            shape.w,
            shape.c
        );
    }
    if desc.classes as usize != classes {
        bail!(
            "the model has {} classes, the data has {classes}: set `classes = {classes}` in its description, or leave `classes` and the last dense layer's `features` out to take the data's (a preset adapts to the data by itself)",
            desc.classes
        );
    }
    Ok(())
}

/// What the batch size decides about the model, whatever the adapter (its limits come when the
/// GPU opens), and with `out` the room in the output folder for its checkpoints.
fn check_model_and_out(desc: &Description, cfg: &TrainConfig, out: bool) -> Result<()> {
    let mut any = crate::caps::Caps::gpu32();
    (any.max_binding, any.max_buffer) = (u64::MAX, u64::MAX);
    crate::plan::Plan::new(desc, cfg.batch_size, &any, crate::plan::Mode::Train)?;
    if out {
        prepare_out_folder(&cfg.out, checkpoint_bytes(&ParamLayout::of(desc)?))?;
    }
    Ok(())
}

/// A description that leaves `input` or `classes` out, completed from the data's image shape
/// and class count; with the line that says so.
fn complete_from_data(
    draft: &Draft,
    name: &str,
    shape: data::ImageShape,
    classes: usize,
) -> Result<(Description, String)> {
    let desc = draft
        .complete([shape.h, shape.w, shape.c], classes as u32)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let line = format!(
        "model: {} taken from the data: input {}x{}x{}, {} classes",
        draft.open_keys().unwrap_or_default(),
        desc.input[0],
        desc.input[1],
        desc.input[2],
        desc.classes
    );
    Ok((desc, line))
}

/// The learning-rate schedule's length (the run's updates, or the length a resumed run keeps,
/// `schedule_epochs`), resolved into `cfg.schedule`; says so, and what a kept plan means for
/// the rest of the run.
fn plan_schedule(cfg: &mut TrainConfig, steps: usize, pos: &Position) -> Result<u64> {
    let total = cfg.total_steps(steps);
    // The schedule's length: the run's, or the planned one a resumed run keeps.
    let planned = cfg
        .schedule_epochs
        .map_or(total, |e| e as u64 * steps as u64);
    cfg.schedule.resolve(steps as u64, planned);
    cfg.schedule.validate(planned)?;
    if cfg.schedule != crate::schedule::Schedule::Constant {
        say!(
            "learning rate: {} from {} over {planned} steps",
            cfg.schedule.describe(),
            cfg.lr
        );
    }
    if planned != total && cfg.schedule != crate::schedule::Schedule::Constant {
        let count = pos.epoch as u64 * steps as u64 + pos.step_in_epoch as u64;
        let at = |c: u64| cfg.schedule.lr(cfg.lr, c, planned);
        let after = if planned < total {
            format!(
                "{:.4e} from step {planned} to the run's end at step {total} (past its end a schedule holds its final rate; to train on at another rate, start a new run from this checkpoint with --init)",
                at(planned)
            )
        } else {
            format!("{:.4e} at the run's end, step {total}", at(total))
        };
        say!(
            "learning-rate schedule kept as planned over {} epochs ({planned} steps; --epochs {} now): {:.4e} at step {count}, {after}",
            planned / steps as u64,
            cfg.epochs,
            at(count),
        );
    }
    Ok(planned)
}

/// A preset trained on data of another shape or class count takes the data's: its input
/// becomes the images' `[H, W, C]` and its head the data's classes (a new model with the
/// preset's layers; its description, written into the run, says so). Returns the line to print.
pub fn adapt_preset(
    name: &str,
    desc: &mut Description,
    shape: data::ImageShape,
    classes: usize,
) -> Option<String> {
    let input = [shape.h, shape.w, shape.c];
    if desc.input == input && desc.classes as usize == classes {
        return None;
    }
    let was = (desc.input, desc.classes);
    desc.input = input;
    desc.classes = classes as u32;
    // The head: the last dense layer, which outputs the classes (a scale may follow it).
    if let Some(crate::graph::Layer::Dense { features, .. }) = desc
        .layers
        .iter_mut()
        .rev()
        .find(|l| matches!(l, crate::graph::Layer::Dense { .. }))
    {
        *features = classes as u32;
    }
    Some(format!(
        "model: {name} adapted to the data: input {}x{}x{} (the preset's {}x{}x{}), {} classes (the preset's {})",
        input[0], input[1], input[2], was.0[0], was.0[1], was.0[2], classes, was.1
    ))
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

/// The key of a TTA result in test.json: `tta_flip` (the mirror's softmax mean, as ever) or
/// `tta_views` (weighted views; the spec is in the run's config).
pub fn tta_key(tta: &Tta) -> &'static str {
    match tta {
        Tta::Views(_) => "tta_views",
        _ => "tta_flip",
    }
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
    let mut run = Training::start(cfg, resume, device).inspect_err(|_| {
        // A run that failed before it started leaves no empty output folder behind.
        if created {
            let _ = std::fs::remove_dir(&out);
        }
    })?;
    let mut interrupted = false;
    while run.pos.epoch < run.cfg.epochs {
        if let Some(line) = run.early_stop() {
            say!("{line}");
            break;
        }
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

pub fn warn_unknown(path: &Path, ck: &Checkpoint) {
    for note in &ck.notes {
        say_err!("note: {note}");
    }
    if !ck.unknown.is_empty() {
        say_err!(
            "warning: {}: ignoring unknown tensors: {}",
            path.display(),
            ck.unknown.join(", ")
        );
    }
}
