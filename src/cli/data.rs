//! `wgpu-cnn export` (a data set as an image folder or CIFAR-10 files) and
//! `wgpu-cnn download` (CIFAR-10).

use std::path::PathBuf;

/// `wgpu-cnn export`.
pub fn export(
    data: PathBuf,
    dataset: Option<String>,
    labels: Option<String>,
    image_size: Option<String>,
    channels: u32,
    format: String,
    out: PathBuf,
) -> anyhow::Result<()> {
    if format != "folder" && format != "cifar10" {
        anyhow::bail!("--format must be folder or cifar10, got `{format}`");
    }
    if out.exists() {
        anyhow::bail!("{}: already exists; choose a new --out", out.display());
    }
    if channels != 1 && channels != 3 {
        anyhow::bail!("--channels must be 1 or 3, got {channels}");
    }
    let [h, w] = match image_size.as_deref() {
        None => [32, 32],
        Some(v) => {
            let p = |t: &str| {
                t.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|&x| (1..=4096).contains(&x))
                    .ok_or_else(|| {
                        anyhow::anyhow!("--image-size must be H or HxW in pixels, got `{v}`")
                    })
            };
            match v.split_once('x') {
                Some((a, b)) => [p(a)?, p(b)?],
                None => [p(v)?, p(v)?],
            }
        }
    };
    let opts = wgpu_cnn::data::DataOptions {
        kind: dataset
            .as_deref()
            .map(wgpu_cnn::data::Kind::parse)
            .transpose()?,
        labels: labels
            .as_deref()
            .map(wgpu_cnn::data::Labels::parse)
            .transpose()?
            .unwrap_or_default(),
        shape: wgpu_cnn::data::ImageShape { h, w, c: channels },
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..Default::default()
    };
    let ds = wgpu_cnn::data::load(&data, &opts)?;
    let res = if format == "folder" {
        wgpu_cnn::data::export::to_folder(&ds, &out)
    } else {
        wgpu_cnn::data::export::to_cifar10(&ds, &out)
    };
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&out);
        return Err(e);
    }
    println!(
        "wrote {} ({}: {} training, {} test images) to {}",
        format,
        ds.name,
        ds.train.len() + ds.val.as_ref().map_or(0, |v| v.len()),
        ds.test.len(),
        out.display()
    );
    Ok(())
}

/// `wgpu-cnn download`.
pub fn download(dir: PathBuf, url: String, md5: String) -> anyhow::Result<()> {
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let out = wgpu_cnn::data::download::download(&url, &md5, &dir, progress)?;
    println!("CIFAR-10 is in {}", out.display());
    Ok(())
}
