//! The resolved settings of a run (`config.json`): defaults, the flags' and recipe's
//! values applied (src/main.rs), validation, and the recipe that reproduces the run.

use super::*;

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
    /// The epochs the run enters (a fractional `--epochs` rounded up).
    pub epochs: u32,
    /// `--epochs` when it is not whole (the run ends inside its last epoch; see
    /// [`TrainConfig::total_steps`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs_exact: Option<f64>,
    pub batch_size: u32,
    pub lr: f64,
    /// The learning-rate schedule (optax semantics; runs before this setting: constant).
    #[serde(default)]
    pub schedule: crate::schedule::Schedule,
    /// The epochs the schedule spans (`None`: `epochs`); set when a resumed run's `epochs`
    /// changed, so that the schedule keeps its plan and recipe.toml repeats what ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_epochs: Option<u32>,
    /// Label smoothing α of the training loss (optax.smooth_labels; runs before this setting: 0).
    #[serde(default)]
    pub label_smoothing: f64,
    /// The optimizer (runs before this setting: Adam with optax's defaults).
    #[serde(default)]
    pub optimizer: crate::optim::Optimizer,
    /// optax.clip_by_global_norm before the update (runs before this setting: none).
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Lookahead over the weights and batch statistics (runs before this setting: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<crate::optim::Lookahead>,
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
    /// Test-time augmentation of the final test (`--tta`): none, the mean of the softmax over
    /// each image and its mirror (`flip`; config.json `true`), or weighted views whose logits
    /// are summed (`airbench`, …).
    #[serde(default)]
    pub tta: crate::data::Tta,
    pub init: Option<PathBuf>,
    /// `--init-skip-mismatch`: tensors of another shape (or missing) are initialised afresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init_skip_mismatch: bool,
    /// `--keep-every N`: also keep every N-th epoch's checkpoint (`epoch-NNN.safetensors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_every: Option<u32>,
    /// `--early-stop PATIENCE`: stop after this many epochs without a better validation score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<u32>,
    pub out: PathBuf,
    /// `--checkpoint-minutes`: also write `last.safetensors` inside an epoch whenever this many
    /// minutes passed since the last checkpoint or the epoch's start, checked between submits
    /// (a run killed without Ctrl-C then loses about that much). How a run is kept, not what it computes: not stored with the run (give it
    /// again with `--resume`), and the weights are the same bits with or without it.
    #[serde(skip)]
    pub checkpoint_minutes: Option<f64>,
}

pub(super) fn default_steps_per_submit() -> u32 {
    TrainConfig::default_steps_per_submit()
}

pub(super) fn default_model() -> String {
    zoo::DEFAULT.to_string()
}

/// `augment` as runs before `--augment LIST` stored it (a bool) or as now (a table).
pub(super) fn de_augment<'de, D: serde::Deserializer<'de>>(
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
            epochs_exact: None,
            batch_size: 128,
            lr: 1e-4,
            schedule: Default::default(),
            schedule_epochs: None,
            label_smoothing: 0.0,
            clip_grad_norm: None,
            lookahead: None,
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
            tta: crate::data::Tta::None,
            init: None,
            init_skip_mismatch: false,
            keep_every: None,
            early_stop: None,
            out: PathBuf::from("runs"),
            checkpoint_minutes: None,
        }
    }
}

impl TrainConfig {
    /// The run's updates with `steps` per epoch: `epochs · steps`, or for fractional epochs
    /// `ceil(epochs · steps)` (airbench94's count), the last epoch ending early.
    pub fn total_steps(&self, steps: usize) -> u64 {
        match self.epochs_exact {
            Some(e) => ((e * steps as f64).ceil() as u64).max(1),
            None => self.epochs as u64 * steps as u64,
        }
    }

    /// The steps epoch `epoch` runs: all `steps`, fewer in the last of fractional epochs.
    pub fn steps_in_epoch(&self, epoch: u32, steps: usize) -> usize {
        let before = epoch as u64 * steps as u64;
        (self.total_steps(steps).saturating_sub(before) as usize).min(steps)
    }

    /// `--steps-per-submit` when not given.
    pub const fn default_steps_per_submit() -> u32 {
        8
    }

    /// The model: the inline description, else the preset or file `model` names; it may leave
    /// `input` and `classes` to the data.
    pub fn description(&self) -> Result<(Draft, String)> {
        match &self.model_text {
            Some(t) => Ok((
                Draft::parse(t).map_err(|e| anyhow::anyhow!("the recipe's [model]: {e}"))?,
                t.clone(),
            )),
            None => Ok(zoo::resolve_draft(&self.model)?),
        }
    }

    /// Makes the run's paths absolute (the data, `--init`, the cache, a model file), so that
    /// what the run stores works from any folder.
    pub fn absolute_paths(&mut self) {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        self.data = abs(&self.data);
        if let Some(p) = &mut self.init {
            *p = abs(p);
        }
        if let Some(p) = &mut self.cache {
            *p = abs(p);
        }
        if self.model_text.is_none()
            && zoo::text(&self.model).is_none()
            && Path::new(&self.model).is_file()
        {
            self.model = abs(Path::new(&self.model)).display().to_string();
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
        if self.keep_every == Some(0) {
            bail!("--keep-every must be at least 1");
        }
        if self.early_stop == Some(0) {
            bail!("--early-stop must be at least 1 epoch");
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

impl TrainConfig {
    /// Every setting of the run, explicit: the recipe that reproduces the run.
    pub fn recipe(&self) -> Result<crate::recipe::Recipe> {
        let cfg = self;
        let o = &cfg.optimizer;
        let sgd = o.is_sgd();
        let (schedule, warmup_steps, warmup_epochs, warmup_fraction, end_lr, boundaries, scales) =
            match &cfg.schedule {
                crate::schedule::Schedule::Constant => {
                    ("constant", None, None, None, None, None, None)
                }
                crate::schedule::Schedule::Cosine { end_lr } => {
                    ("cosine", None, None, None, Some(*end_lr), None, None)
                }
                // A warmup given in epochs is written as epochs: the recipe then repeats the
                // run on any slice of the data, and on this one resolves to the same steps.
                crate::schedule::Schedule::WarmupCosine {
                    warmup_steps,
                    end_lr,
                    warmup_epochs,
                    warmup_fraction,
                } => (
                    "warmup-cosine",
                    (warmup_epochs.is_none() && warmup_fraction.is_none()).then_some(*warmup_steps),
                    *warmup_epochs,
                    *warmup_fraction,
                    Some(*end_lr),
                    None,
                    None,
                ),
                crate::schedule::Schedule::PiecewiseLinear { boundaries, scales } => (
                    "piecewise-linear",
                    None,
                    None,
                    None,
                    None,
                    Some(boundaries.clone()),
                    Some(scales.clone()),
                ),
                crate::schedule::Schedule::Piecewise { boundaries, scales } => (
                    "piecewise",
                    None,
                    None,
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
            epochs: Some(crate::settings::Epochs(
                cfg.epochs_exact.unwrap_or(cfg.epochs as f64),
            )),
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
            param_group: (!o.groups.is_empty())
                .then(|| o.groups.iter().map(|g| g.spec()).collect()),
            schedule: Some(schedule.into()),
            schedule_epochs: cfg.schedule_epochs,
            warmup_steps,
            warmup_epochs,
            warmup_fraction,
            end_lr,
            boundaries: boundaries.map(crate::settings::List),
            scales: scales.map(crate::settings::List),
            label_smoothing: Some(cfg.label_smoothing),
            clip_grad_norm: cfg.clip_grad_norm,
            lookahead: cfg.lookahead.map(|l| l.spec()),
            init: cfg.init.clone(),
            init_skip_mismatch: cfg.init_skip_mismatch.then_some(true),
            keep_every: cfg.keep_every,
            early_stop: cfg.early_stop,
            tta: Some(cfg.tta.spec()),
            steps_per_submit: Some(cfg.steps_per_submit),
            stream_data: cfg.stream_data.then_some(true),
            model: Some(model),
        })
    }
}
