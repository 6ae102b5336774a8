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

pub const PRESETS: [(&str, &str); 5] = [
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
    (
        "cifar10-airbench94",
        include_str!("../assets/recipes/cifar10-airbench94.toml"),
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
            let at = e.span().map(|r| {
                let start = r.start.min(text.len());
                let n = text.as_bytes()[..start]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                (n + 1, text.lines().nth(n).unwrap_or("").trim().to_string())
            });
            let line = at
                .as_ref()
                .map(|(l, _)| format!(" line {l}:"))
                .unwrap_or_default();
            match unknown_key(e.message()) {
                // One line with the nearest key instead of serde's list of every key.
                Some((key, expected)) => {
                    let hint = expected
                        .iter()
                        .map(|k| (strsim::jaro_winkler(&key, k), k))
                        .filter(|(score, _)| *score > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_else(|| {
                            " (`wgpu-cnn recipes NAME` prints a recipe with every key)".into()
                        });
                    anyhow::anyhow!("{name}:{line} unknown recipe key `{key}`{hint}")
                }
                // The line's text names the key: `epochs = "ten"`: invalid type ….
                None => anyhow::anyhow!(
                    "{name}:{line}{} {}",
                    at.map(|(_, t)| format!(" `{t}`:")).unwrap_or_default(),
                    e.message().trim().replace('\n', " ").replace("  ", " ")
                ),
            }
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

    /// Resolves the recipe's relative paths (`data`, `init`, `cache`, a model file) against
    /// `base`, the recipe file's folder, as a recipe beside its model file and data expects.
    /// A path that exists only relative to the current folder (a recipe.toml written before
    /// runs stored absolute paths) is left as it is.
    pub fn rebase(&mut self, base: &std::path::Path) {
        let rebased = |p: &std::path::Path| -> Option<std::path::PathBuf> {
            let q = base.join(p);
            (p.is_relative() && (q.exists() || !p.exists())).then_some(q)
        };
        for p in [&mut self.data, &mut self.init, &mut self.cache]
            .into_iter()
            .flatten()
        {
            if let Some(q) = rebased(p) {
                *p = q;
            }
        }
        if let Some(ModelRef::Name(n)) = &mut self.model {
            let q = base.join(&*n);
            if crate::graph::zoo::text(n).is_none() && q.is_file() {
                *n = q.display().to_string();
            }
        }
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

/// serde's "unknown field `K`, expected one of `A`, `B`, …" (from any table of the recipe): the
/// key and the keys it allows there.
fn unknown_key(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.split("unknown field `").nth(1)?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((key.to_string(), expected))
}

#[cfg(test)]
mod typo_tests {
    use super::*;

    #[test]
    fn a_misspelt_key_gets_one_line_with_the_nearest_key() {
        let err = Recipe::parse("epochs = 3\nlr_rate = 0.1\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "r.toml: line 2: unknown recipe key `lr_rate` (did you mean `lr`?)"
        );
        let err = Recipe::parse("wightdecay = 1e-4", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `weight_decay`?"), "{err}");
        let err = Recipe::parse("zzzz = 1", "r.toml").unwrap_err().to_string();
        assert!(
            !err.contains('\n') && err.contains("wgpu-cnn recipes"),
            "{err}"
        );
        // Other errors stay one line too.
        let err = Recipe::parse("epochs = \"three\"", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains('\n') && err.starts_with("r.toml: line 1:"),
            "{err}"
        );
    }
}
