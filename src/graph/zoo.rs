//! The preset models (`wgpu-cnn models`): descriptions in `assets/models/*.toml`, compiled in.

use super::{DescError, Description, Draft};

/// Preset names, the default first.
pub const NAMES: [&str; 5] = [
    "flax-cifar10",
    "lenet5",
    "resnet20",
    "vgg11-bn",
    "airbench94",
];

/// The default model: Flax's CIFAR-10 tutorial CNN.
pub const DEFAULT: &str = "flax-cifar10";

/// The TOML text of a preset.
pub fn text(name: &str) -> Option<&'static str> {
    Some(match name {
        "flax-cifar10" => include_str!("../../assets/models/flax-cifar10.toml"),
        "lenet5" => include_str!("../../assets/models/lenet5.toml"),
        "resnet20" => include_str!("../../assets/models/resnet20.toml"),
        "vgg11-bn" => include_str!("../../assets/models/vgg11-bn.toml"),
        "airbench94" => include_str!("../../assets/models/airbench94.toml"),
        _ => return None,
    })
}

/// A preset's description.
pub fn preset(name: &str) -> Option<Description> {
    text(name).map(|t| Description::parse(t).expect("presets are valid"))
}

/// A model named by `--model`: a preset name or a TOML file. Returns the description and its
/// text (what checkpoints store).
pub fn resolve(model: &str) -> Result<(Description, String), DescError> {
    let (d, t) = resolve_draft(model)?;
    let d = d
        .described()
        .map_err(|e| DescError(format!("{model}: {e}")))?;
    Ok((d, t))
}

/// A model named by `--model`, whose file may leave `input` and `classes` to the data (what
/// `train` reads). Returns the draft and its text.
pub fn resolve_draft(model: &str) -> Result<(Draft, String), DescError> {
    if let Some(t) = text(model) {
        return Ok((Draft::parse(t)?, t.to_string()));
    }
    let path = std::path::Path::new(model);
    if !path.is_file() {
        return Err(DescError(format!(
            "--model {model}: neither a preset ({}) nor a readable file",
            NAMES.join(", ")
        )));
    }
    let t = std::fs::read_to_string(path)
        .map_err(|e| DescError(format!("--model {model}: cannot read: {e}")))?;
    let d = Draft::parse(&t).map_err(|e| DescError(format!("{model}: {e}")))?;
    Ok((d, t))
}
