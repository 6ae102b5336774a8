//! `wgpu-cnn eval` and `wgpu-cnn predict`: a checkpoint on a test split, or on images.

use std::path::PathBuf;

use super::DeviceArgs;

/// `wgpu-cnn eval`.
pub fn eval(
    checkpoint: PathBuf,
    data: Option<PathBuf>,
    dataset: Option<String>,
    tta: Option<String>,
    out: Option<PathBuf>,
    batch_size: u32,
    device: DeviceArgs,
) -> anyhow::Result<()> {
    wgpu_cnn::infer::eval(
        &checkpoint,
        wgpu_cnn::infer::EvalData {
            dir: data.as_deref(),
            tta: match tta.as_deref() {
                None | Some("none") => false,
                Some("flip") => true,
                Some(v) => anyhow::bail!("--tta must be flip or none, got `{v}`"),
            },
            kind: dataset
                .as_deref()
                .map(wgpu_cnn::data::Kind::parse)
                .transpose()?,
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
    images: Vec<PathBuf>,
    device: DeviceArgs,
) -> anyhow::Result<()> {
    for p in wgpu_cnn::infer::predict(&checkpoint, &images, 3, &device.options())? {
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
