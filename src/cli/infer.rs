//! `wgpu-cnn eval` and `wgpu-cnn predict`: a checkpoint on a test split, or on images.

use std::path::PathBuf;

use super::DeviceArgs;

/// `wgpu-cnn eval`.
#[allow(clippy::too_many_arguments)]
pub fn eval(
    checkpoint: PathBuf,
    model: Option<String>,
    data: Option<PathBuf>,
    dataset: Option<String>,
    tta: Option<String>,
    out: Option<PathBuf>,
    test_limit: Option<usize>,
    batch_size: u32,
    device: DeviceArgs,
) -> anyhow::Result<()> {
    let model = resolve(model.as_deref(), &checkpoint)?;
    wgpu_cnn::infer::eval(
        &checkpoint,
        model.as_ref().map(|(d, t)| (d, t.as_str())),
        wgpu_cnn::infer::EvalData {
            dir: data.as_deref(),
            tta: tta
                .as_deref()
                .map(wgpu_cnn::data::Tta::parse)
                .transpose()?
                .unwrap_or_default(),
            kind: dataset
                .as_deref()
                .map(wgpu_cnn::data::Kind::parse)
                .transpose()?,
            limit: test_limit,
        },
        out.as_deref(),
        batch_size,
        &device.options(),
    )?;
    Ok(())
}

/// `wgpu-cnn predict`.
pub fn predict(
    checkpoint: PathBuf,
    model: Option<String>,
    images: Vec<PathBuf>,
    device: DeviceArgs,
) -> anyhow::Result<()> {
    let model = resolve(model.as_deref(), &checkpoint)?;
    let model = model.as_ref().map(|(d, t)| (d, t.as_str()));
    for p in wgpu_cnn::infer::predict(&checkpoint, model, &images, 3, &device.options())? {
        let top: Vec<String> = p
            .top
            .iter()
            .zip(&p.names)
            .map(|((_, prob), name)| format!("{name} {prob:.3}"))
            .collect();
        println!("{}: {}", p.path.display(), top.join(", "));
    }
    Ok(())
}

/// `--model NAME|FILE`: a preset or a description file; one that leaves `input` and
/// `classes` to the data takes them from the model the checkpoint stores (the run that trained
/// it completed the same file from its data).
fn resolve(
    model: Option<&str>,
    checkpoint: &std::path::Path,
) -> anyhow::Result<Option<(wgpu_cnn::graph::Description, String)>> {
    let Some(model) = model else { return Ok(None) };
    let (draft, text) =
        wgpu_cnn::graph::zoo::resolve_draft(model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(open) = draft.open_keys() else {
        let d = draft
            .described()
            .map_err(|e| anyhow::anyhow!("{model}: {e}"))?;
        return Ok(Some((d, text)));
    };
    let Some(stored) = wgpu_cnn::checkpoint::stored_model(checkpoint)? else {
        anyhow::bail!(
            "{model} leaves {open} to the data, and {} stores no model to take them from: write them into the description",
            checkpoint.display()
        );
    };
    let d = draft
        .complete(stored.input, stored.classes)
        .map_err(|e| anyhow::anyhow!("{model}: {e}"))?;
    let text = format!(
        "# {open} from the model of {}\n{}",
        checkpoint.display(),
        d.to_toml()
    );
    Ok(Some((d, text)))
}

/// `wgpu-cnn export --checkpoint FILE [--format onnx] --out MODEL.onnx`.
pub fn export_model(
    checkpoint: PathBuf,
    model: Option<String>,
    format: Option<String>,
    out: PathBuf,
) -> anyhow::Result<()> {
    match format.as_deref() {
        None | Some("onnx") => {}
        Some(f) => anyhow::bail!("--format for a checkpoint must be onnx, got `{f}`"),
    }
    let model = resolve(model.as_deref(), &checkpoint)?;
    let e = wgpu_cnn::infer::export_onnx(
        &checkpoint,
        model.as_ref().map(|(d, t)| (d, t.as_str())),
        &out,
    )?;
    println!(
        "wrote {} ({:.1} MB, {} nodes, opset {}): input `{}` [N, H, W, C] pixels 0-255, \
         normalisation {} inside; output `{}` [N, {}]",
        out.display(),
        e.bytes as f64 / 1e6,
        e.nodes,
        wgpu_cnn::onnx::OPSET,
        wgpu_cnn::onnx::INPUT,
        e.normalization.describe(),
        wgpu_cnn::onnx::OUTPUT,
        e.classes.len(),
    );
    Ok(())
}
