//! Recipes: one TOML file with every setting of a training run (`wgpu-cnn train --recipe
//! FILE|PRESET`). Keys are the `train` flags with underscores (`batch_size`, `weight_decay`,
//! `augment` …); flags given on the command line override the recipe. `model` is a preset
//! name, a model file, or an inline description as a `[model]` table (the description format,
//! its layers as `[[model.layer]]`). Relative paths are relative to the working directory, as
//! on the command line. Every run writes `recipe.toml` next to its `config.json`: all settings
//! explicit, so that `train --recipe runs/X/recipe.toml` reproduces the run bit for bit.

use anyhow::{bail, Context, Result};

pub use crate::settings::ModelRef;

/// A recipe is the run's settings written down (`crate::settings::Settings`).
pub type Recipe = crate::settings::Settings;

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

    /// The recipe as TOML, headed by a comment.
    pub fn to_toml(&self, header: &str) -> Result<String> {
        let body = toml::to_string(self).context("cannot write the recipe")?;
        Ok(format!("# {header}\n{body}"))
    }
}
