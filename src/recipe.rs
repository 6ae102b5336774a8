//! Recipes: one TOML file with every setting of a training run (`wgpu-cnn train --recipe
//! FILE|PRESET`). Keys are the `train` flags with underscores (`batch_size`, `weight_decay`,
//! `augment` …); flags given on the command line override the recipe. `model` is a preset
//! name, a model file, or an inline description as a `[model]` table (the description format,
//! its layers as `[[model.layer]]`). Relative paths are relative to the working directory, as
//! on the command line. Every run writes `recipe.toml` next to its `config.json`: all settings
//! explicit, so that `train --recipe runs/X/recipe.toml` reproduces the run bit for bit.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::SplitSize;
use crate::schedule::Schedule;
use crate::train::TrainConfig;

/// A model in a recipe: a preset name or file, or an inline description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelRef {
    Name(String),
    Inline(toml::Table),
}

/// Every key a recipe may hold (all optional: an absent key leaves the default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_size: Option<SplitSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_size: Option<SplitSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrc_scale: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrc_ratio: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_bad_images: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundaries: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scales: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tta: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_submit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_data: Option<bool>,
    /// Last: an inline `[model]` table must follow the plain keys in TOML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
}

/// The preset recipes: (name, file text).
pub const PRESETS: [(&str, &str); 4] = [
    (
        "flax-cifar10",
        include_str!("../assets/recipes/flax-cifar10.toml"),
    ),
    (
        "mnist-lenet5",
        include_str!("../assets/recipes/mnist-lenet5.toml"),
    ),
    (
        "cifar10-resnet20",
        include_str!("../assets/recipes/cifar10-resnet20.toml"),
    ),
    (
        "cifar100-resnet20",
        include_str!("../assets/recipes/cifar100-resnet20.toml"),
    ),
];

/// The first comment line of a recipe's text: what `wgpu-cnn recipes` shows.
pub fn summary(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix('#'))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

impl Recipe {
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{name}: {}",
                e.to_string().trim().replace('\n', " ").replace("  ", " ")
            )
        })
    }

    /// A preset's name or a recipe file: the recipe and its text.
    pub fn resolve(name: &str) -> Result<(Self, String)> {
        if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) {
            return Ok((Self::parse(text, name)?, text.to_string()));
        }
        let path = std::path::Path::new(name);
        if !path.is_file() {
            bail!(
                "--recipe {name}: neither a preset ({}) nor a readable file",
                PRESETS.map(|p| p.0).join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--recipe {name}: cannot read"))?;
        Ok((Self::parse(&text, name)?, text))
    }

    /// The inline model's description text, when the recipe holds one.
    pub fn model_text(&self) -> Result<Option<String>> {
        match &self.model {
            Some(ModelRef::Inline(t)) => Ok(Some(
                toml::to_string(t).context("the recipe's [model] table")?,
            )),
            _ => Ok(None),
        }
    }

    /// Every setting of `cfg`, explicit: the recipe that reproduces the run.
    pub fn of(cfg: &TrainConfig) -> Result<Self> {
        let o = &cfg.optimizer;
        let sgd = o.is_sgd();
        let (schedule, warmup_steps, end_lr, boundaries, scales) = match &cfg.schedule {
            Schedule::Constant => ("constant", None, None, None, None),
            Schedule::Cosine { end_lr } => ("cosine", None, Some(*end_lr), None, None),
            Schedule::WarmupCosine {
                warmup_steps,
                end_lr,
            } => (
                "warmup-cosine",
                Some(*warmup_steps),
                Some(*end_lr),
                None,
                None,
            ),
            Schedule::Piecewise { boundaries, scales } => (
                "piecewise",
                None,
                None,
                Some(boundaries.clone()),
                Some(scales.clone()),
            ),
        };
        let model = match &cfg.model_text {
            Some(t) => ModelRef::Inline(
                toml::from_str(t).context("the run's inline model is not a TOML table")?,
            ),
            None => ModelRef::Name(cfg.model.clone()),
        };
        Ok(Recipe {
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
            rrc_scale: Some([cfg.augment.rrc_scale.0, cfg.augment.rrc_scale.1]),
            rrc_ratio: Some([cfg.augment.rrc_ratio.0, cfg.augment.rrc_ratio.1]),
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
            boundaries,
            scales,
            label_smoothing: Some(cfg.label_smoothing),
            clip_grad_norm: cfg.clip_grad_norm,
            init: cfg.init.clone(),
            tta: Some(if cfg.tta { "flip" } else { "none" }.into()),
            steps_per_submit: Some(cfg.steps_per_submit),
            stream_data: cfg.stream_data.then_some(true),
            model: Some(model),
        })
    }

    /// The recipe as TOML, headed by a comment.
    pub fn to_toml(&self, header: &str) -> Result<String> {
        let body = toml::to_string(self).context("cannot write the recipe")?;
        Ok(format!("# {header}\n{body}"))
    }
}
