//! The settings of a training run, defined once: the same struct is the `train` flags (clap,
//! `--batch-size`), the recipe keys (serde, `batch_size = 128`), what a run writes to its
//! `recipe.toml`, and what `--resume` compares. A new setting is one field here, read in
//! `TrainConfig` (src/train.rs) where it takes effect. Every field is optional: `None` is "not
//! given", so flags can be laid over a recipe ([`Settings::overlay`]).

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::SplitSize;

/// The model: a preset name or a file (`--model`, `model = "resnet20"`), or an inline
/// description (a recipe's `[model]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelRef {
    Name(String),
    Inline(toml::Table),
}

impl FromStr for ModelRef {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ModelRef::Name(s.to_string()))
    }
}

/// Two numbers: `LOW,HIGH` as a flag, `[LOW, HIGH]` in a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pair(pub [f64; 2]);

/// A number of epochs, whole or not (`--epochs 9.9`: the last epoch runs its first
/// `ceil(9.9 · steps per epoch) − 9 · steps per epoch` steps, as airbench94 counts). Written as
/// an integer when whole, so recipes of whole epochs read as they always did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epochs(pub f64);

impl FromStr for Epochs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number"))?;
        Epochs::checked(v)
    }
}

impl Epochs {
    fn checked(v: f64) -> Result<Self, String> {
        if v.is_finite() && v > 0.0 && v <= u32::MAX as f64 {
            Ok(Epochs(v))
        } else {
            Err(format!("epochs must be a positive number, got {v}"))
        }
    }
}

impl Serialize for Epochs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 {
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Epochs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Epochs::checked(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A list: comma-separated as a flag, an array in a recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr> FromStr for List<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                t.trim()
                    .parse::<T>()
                    .map_err(|e| format!("`{}`: {e}", t.trim()))
            })
            .collect::<Result<Vec<T>, String>>()
            .map(List)
    }
}

impl<T: ToString> List<T> {
    /// `a,b,c`, as the flag takes it.
    pub fn joined(&self) -> String {
        self.0
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The flag parser of a split size (`--val-size 5000` or `0.1`).
fn split_size(flag: &'static str) -> impl Fn(&str) -> Result<SplitSize, String> + Clone {
    move |s| SplitSize::parse(flag, s).map_err(|e| e.to_string())
}

/// The flag parser of a pair (`--rrc-scale 0.8,1.0`).
fn pair(flag: &'static str) -> impl Fn(&str) -> Result<Pair, String> + Clone {
    move |s| {
        crate::data::augment::parse_pair(flag, s)
            .map(|(a, b)| Pair([a, b]))
            .map_err(|e| e.to_string())
    }
}

/// Every setting of a training run (flags and recipe keys alike; see the module header).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Epochs [default: 100]; a fraction ends the run inside its last epoch (`9.9`: airbench94's
    /// ceil(9.9 · steps per epoch) updates).
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<Epochs>,
    /// Batch size [default: 128].
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Seed of the split, the init and every epoch's shuffle and augmentation [default: 42].
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The data set's folder: CIFAR-10 or CIFAR-100 binary files, MNIST IDX files, or an image
    /// folder (one subfolder per class) [default: data/cifar-10-batches-bin, or the --dataset's
    /// default folder; downloaded there when empty].
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// The kind of data set: cifar10, cifar100, mnist, folder [default: detected from the files].
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// CIFAR-100: fine (100 classes) or coarse (20 superclasses) labels [default: fine].
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Image folders: resize every image to H or HxW pixels [default: the model's input].
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<String>,
    /// Training images held out for validation, a count or a fraction [default: 5000, image
    /// folders 0.1; a data set's own val/ split replaces it].
    #[arg(long, value_parser = split_size("--val-size"), help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_size: Option<SplitSize>,
    /// Image folders without test/: the test images drawn from the rest, a count or a fraction
    /// [default: 0.1].
    #[arg(long, value_parser = split_size("--test-size"), help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_size: Option<SplitSize>,
    /// Train on the first N images of the training split only.
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Test the final weights on the first N test images only (quick runs).
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Input normalisation: dataset (the training split's per-channel mean/std), none, cifar10,
    /// or MEANS/STDS such as 0.5,0.5,0.5/0.25,0.25,0.25 [default: cifar10 on CIFAR-10, else dataset].
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// Training augmentation, comma-separated: flip, rrc, crop:PAD[:reflect], translate:PX, none
    /// [default: flip,rrc].
    #[arg(long, help_heading = "Augmentation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<String>,
    /// rrc: the crop's area range as a fraction of the image, LOW,HIGH [default: 0.8,1.0].
    #[arg(long, value_parser = pair("--rrc-scale"), help_heading = "Augmentation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrc_scale: Option<Pair>,
    /// rrc: the crop's aspect-ratio range, LOW,HIGH [default: 0.9,1.1].
    #[arg(long, value_parser = pair("--rrc-ratio"), help_heading = "Augmentation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrc_ratio: Option<Pair>,
    /// Shuffle the training images every epoch (`--no-shuffle` turns it off) [default: true].
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<bool>,
    /// Image folders: where the decoded-image cache goes [default: next to the folder].
    #[arg(long, help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    /// Image folders: leave out files that are not readable images (and count them) instead of
    /// stopping at the first.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = "Data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_bad_images: Option<bool>,
    /// Optimizer, optax's: adam, adamw (decoupled weight decay, default 1e-4), sgd
    /// [default: adam].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    /// Learning rate of any optimizer (the schedule's peak) [default: 1e-4].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Adam/AdamW: exponential decay of the first moment [default: 0.9].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b1: Option<f64>,
    /// Adam/AdamW: exponential decay of the second moment [default: 0.999].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b2: Option<f64>,
    /// Adam/AdamW: epsilon [default: 1e-8].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// SGD: momentum (optax.trace) [default: none].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// SGD: Nesterov momentum.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    /// AdamW: decoupled weight decay [default: 1e-4]; SGD: decay added to the gradient
    /// (optax.add_decayed_weights before sgd).
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Which parameters decay: all, kernels (not biases or batch-norm parameters) [default: all].
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_mask: Option<String>,
    /// A parameter group, repeatable (a recipe: an array): `"PATTERN: lr=F, decay=F, frozen,
    /// frozen-from-step=N, frozen-from-epoch=E"`; PATTERN globs Flax parameter names
    /// (`BatchNorm_*.bias`, alternatives with `|`); the learning rate and the weight decay of
    /// its tensors are multiplied by `lr` and `decay`; frozen tensors are not updated. The
    /// first matching group wins (optax.multi_transform, PyTorch's param_groups).
    #[arg(long, value_name = "PATTERN: OPTIONS", help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param_group: Option<Vec<String>>,
    /// Learning-rate schedule, optax's: constant, cosine, warmup-cosine, piecewise,
    /// piecewise-linear [default: constant].
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The epochs the learning-rate schedule spans [default: --epochs]; past its end a
    /// schedule holds its final rate (optax). A run resumed with another --epochs keeps the
    /// schedule it planned by recording the planned epochs here.
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_epochs: Option<u32>,
    /// warmup-cosine: steps of linear warmup from 0.
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// warmup-cosine: the warmup in epochs (may be fractional), instead of --warmup-steps: the
    /// steps follow the run's length, so a recipe keeps its shape on --train-limit slices.
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<f64>,
    /// warmup-cosine: the warmup as a fraction of the run's steps (0-1), instead of
    /// --warmup-steps: scales with --epochs and --train-limit (the presets' choice).
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_fraction: Option<f64>,
    /// cosine, warmup-cosine: the final learning rate [default: 0].
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_lr: Option<f64>,
    /// piecewise, piecewise-linear: comma-separated steps where the rate is multiplied by the
    /// matching --scales (piecewise-linear: reached linearly from the previous boundary).
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundaries: Option<List<u64>>,
    /// piecewise: comma-separated factors, one per boundary.
    #[arg(long, help_heading = "Learning-rate schedule")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scales: Option<List<f64>>,
    /// Label smoothing α of the training loss, as optax.smooth_labels: targets
    /// (1 − α)·onehot + α/classes [default: 0]. Validation and test losses stay plain.
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// Clip the gradients to this global norm before each update (optax.clip_by_global_norm).
    #[arg(long, help_heading = "Optimizer")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Lookahead, `"every=K, decay=D, power=P"` (optax.lookahead, airbench94's): a slow copy
    /// of the weights and batch statistics moves toward the trained ones by 1 − D·(t/T)^P
    /// after every K-th update, which then take it; the run ends with the slow weights.
    #[arg(
        long,
        value_name = "every=K, decay=D, power=P",
        help_heading = "Optimizer"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<String>,
    /// Initial parameters from a checkpoint (params only is enough).
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Also keep every N-th epoch's checkpoint as epoch-NNN.safetensors (besides last and best).
    #[arg(long, value_name = "N", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_every: Option<u32>,
    /// Stop when the validation accuracy (the score that picks best.safetensors) has not
    /// improved for this many epochs; the final test then reports the best checkpoint as well.
    #[arg(long, value_name = "PATIENCE", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<u32>,
    /// With --init: parameters whose shape differs from the model's (a new head for other
    /// classes) or that the file lacks are initialised afresh instead of refused, one line
    /// each (Keras's skip_mismatch); the others load.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_skip_mismatch: Option<bool>,
    /// Test-time augmentation of the final test: flip (mean softmax of each image and its
    /// mirror), airbench (airbench94's six weighted views, logits summed), views as
    /// `id=0.5, flip=0.25, -1/-1=0.125, flip/1/1=0.125` (DY/DX a reflect-padded shift), or none
    /// [default: none].
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tta: Option<String>,
    /// Train steps recorded into one GPU submit (their inputs and uniforms are filled once per
    /// epoch); the same weights for any value; Ctrl-C stops at a submit boundary [default: 8].
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_submit: Option<u32>,
    /// Keep the training and test images in host memory and copy each submit's into a window
    /// on the GPU (a data set too large for the adapter's storage bindings is streamed without
    /// it); the same weights either way.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_data: Option<bool>,
    /// The model: a preset (`wgpu-cnn models` lists them) or a TOML file [default: flax-cifar10].
    #[arg(long, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
}

/// Settings that come as a group: a flag that names the group's kind (`--optimizer`,
/// `--schedule`) replaces the recipe's whole group, so that e.g. `--optimizer adam` over an SGD
/// recipe does not inherit its momentum.
const GROUPS: [(&str, &[&str]); 2] = [
    (
        "optimizer",
        &[
            "b1",
            "b2",
            "eps",
            "momentum",
            "nesterov",
            "weight_decay",
            "decay_mask",
            "param_group",
        ],
    ),
    (
        "schedule",
        &[
            "warmup_steps",
            "warmup_epochs",
            "warmup_fraction",
            "end_lr",
            "boundaries",
            "scales",
        ],
    ),
];

impl Settings {
    /// The settings given, as a TOML table (keys as in a recipe).
    pub fn to_table(&self) -> toml::Table {
        toml::Table::try_from(self).unwrap_or_default()
    }

    /// `self` (the flags) laid over `base` (a recipe): a setting given in `self` wins; a group
    /// named in `self` replaces `base`'s whole group ([`GROUPS`]).
    pub fn overlay(&self, base: &Settings) -> anyhow::Result<Settings> {
        let mut table = base.to_table();
        let flags = self.to_table();
        for (kind, members) in GROUPS {
            if flags.contains_key(kind) {
                for m in members {
                    table.remove(*m);
                }
            }
        }
        table.extend(flags);
        Ok(Settings::deserialize(table)?)
    }

    /// The names of the settings given.
    pub fn given(&self) -> Vec<String> {
        self.to_table().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args;

    /// Every flag of the struct is a recipe key of the same name (dashes for underscores),
    /// and a recipe key that is not a setting is refused.
    #[test]
    fn every_flag_is_a_recipe_key() {
        let cmd = Settings::augment_args(clap::Command::new("train"));
        let mut n = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let key = long.replace('-', "_");
            let err = toml::from_str::<Settings>(&format!("{key} = []"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "--{long}: {err}");
            n += 1;
        }
        assert!(n >= 35, "{n} flags");
        let err = toml::from_str::<Settings>("lrr = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn flags_win_and_replace_a_named_group() {
        let recipe: Settings =
            toml::from_str("optimizer = \"sgd\"\nmomentum = 0.9\nlr = 0.1\nepochs = 3").unwrap();
        let lr_only = Settings {
            lr: Some(0.5),
            ..Default::default()
        };
        let s = lr_only.overlay(&recipe).unwrap();
        assert_eq!(
            (s.lr, s.momentum, s.epochs, s.optimizer.as_deref()),
            (Some(0.5), Some(0.9), Some(Epochs(3.0)), Some("sgd"))
        );
        let adam = Settings {
            optimizer: Some("adam".into()),
            ..Default::default()
        };
        let s = adam.overlay(&recipe).unwrap();
        assert_eq!((s.momentum, s.lr), (None, Some(0.1)));
        assert_eq!(s.given().len(), 3, "{:?}", s.given());
    }

    #[test]
    fn flag_forms_parse_as_the_recipe_forms() {
        let cli = clap::Command::new("t");
        let m = Settings::augment_args(cli)
            .try_get_matches_from([
                "t",
                "--rrc-scale",
                "0.5,1",
                "--boundaries",
                "10,20",
                "--nesterov",
                "--val-size",
                "0.1",
                "--model",
                "resnet20",
            ])
            .unwrap();
        let flags = <Settings as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        let recipe: Settings = toml::from_str(
            "rrc_scale = [0.5, 1.0]\nboundaries = [10, 20]\nnesterov = true\nval_size = 0.1\nmodel = \"resnet20\"",
        )
        .unwrap();
        assert_eq!(flags, recipe);
    }
}
