//! `wgpu-cnn eval` and `wgpu-cnn predict`: a checkpoint's model (its description, or the seed
//! model for older checkpoints) on an inference-only plan — no gradient, Adam or split-K buffers.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::checkpoint;
use crate::data::{self, GpuDataset, Split};
use crate::gpu::{Gpu, GpuOptions};
use crate::model::GpuModel;
use crate::report::{self, EvalResult};
use crate::train::{check_model_fits_data, warn_unknown, Runner};

/// `wgpu-cnn eval`: the test set on a checkpoint's parameters.
pub fn eval(
    checkpoint_path: &Path,
    data_dir: &Path,
    out: Option<&Path>,
    batch: u32,
    device: &GpuOptions,
) -> Result<EvalResult> {
    let ck = checkpoint::load(checkpoint_path)?;
    warn_unknown(checkpoint_path, &ck);
    let test: Split = data::load_test(data_dir)?;
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.describe());
    check_model_fits_data(&ck.model).with_context(|| checkpoint_path.display().to_string())?;
    let batch = batch.min(test.len() as u32).max(1);
    let mut runner = Runner::inference(&gpu, &ck.model, batch, &ck.params)?;
    runner.model.write_batch_stats(&gpu, &ck.batch_stats);
    let test_data = GpuDataset::upload(&gpu, &test, "test")?;
    let aug = runner.augment_from(&gpu, &test_data);
    let idx: Vec<u32> = (0..test.len() as u32).collect();
    let r = runner.evaluate(&gpu, &aug, &idx, Some(&test.labels))?;
    println!("test: {}", r.line());
    print!("{}", report::confusion_table(&r));
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let mut json = r.to_json();
        json["checkpoint"] = checkpoint_path.display().to_string().into();
        checkpoint::write_atomic(
            &out.join("test.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        report::confusion_png(&r, "CIFAR-10 test", &out.join("confusion.png"))?;
        println!(
            "wrote {} and {}",
            out.join("test.json").display(),
            out.join("confusion.png").display()
        );
    }
    Ok(r)
}

/// One prediction: the top classes with probabilities.
pub struct Prediction {
    pub path: PathBuf,
    pub top: Vec<(usize, f32)>,
}

/// Reads an image of any size and format `image` knows (grayscale and RGBA converted to RGB),
/// resizes it to the model's `h`×`w` and normalises it, NHWC.
pub fn load_image(path: &Path, h: u32, w: u32) -> Result<Vec<f32>> {
    if path.is_dir() {
        bail!("{}: is a directory, expected an image", path.display());
    }
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: not a readable image ({e})", path.display()))?;
    if img.width() == 0 || img.height() == 0 {
        bail!("{}: image has zero size", path.display());
    }
    let rgb = img.to_rgb8();
    let small = image::imageops::resize(&rgb, w, h, image::imageops::FilterType::Triangle);
    let mut out = Vec::with_capacity((h * w * 3) as usize);
    for p in small.pixels() {
        for c in 0..3 {
            out.push((p[c] as f32 / 255.0 - data::MEAN[c]) / data::STD[c]);
        }
    }
    Ok(out)
}

/// `wgpu-cnn predict`: top-`k` classes of each image.
pub fn predict(
    checkpoint_path: &Path,
    images: &[PathBuf],
    k: usize,
    device: &GpuOptions,
) -> Result<Vec<Prediction>> {
    if images.is_empty() {
        bail!("no images given");
    }
    let ck = checkpoint::load(checkpoint_path)?;
    warn_unknown(checkpoint_path, &ck);
    check_model_fits_data(&ck.model).with_context(|| checkpoint_path.display().to_string())?;
    let [h, w, c] = ck.model.input;
    let inputs = images
        .iter()
        .map(|p| load_image(p, h, w))
        .collect::<Result<Vec<_>>>()?;
    let gpu = Gpu::new(device)?;
    // At most 256 images per forward pass, so any number of images fits the adapter's limits.
    let batch = images.len().min(256);
    let m = GpuModel::inference(&gpu, &ck.model, batch as u32, &ck.params)?;
    m.write_batch_stats(&gpu, &ck.batch_stats);
    let classes = m.classes() as usize;
    let mut logits = Vec::with_capacity(images.len() * classes);
    for chunk in inputs.chunks(batch) {
        let mut x = chunk.concat();
        x.resize(batch * (h * w * c) as usize, 0.0);
        m.upload_batch(&gpu, &x, &vec![0u32; batch]);
        m.eval_step(&gpu);
        logits.extend_from_slice(&m.read_logits(&gpu)?[..chunk.len() * classes]);
    }
    Ok(images
        .iter()
        .zip(logits.chunks_exact(classes))
        .map(|(path, row)| {
            let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - mx).exp()).sum();
            let mut probs: Vec<(usize, f32)> = row
                .iter()
                .map(|v| (v - mx).exp() / sum)
                .enumerate()
                .collect();
            probs.sort_by(|a, b| b.1.total_cmp(&a.1));
            probs.truncate(k);
            Prediction {
                path: path.clone(),
                top: probs,
            }
        })
        .collect())
}
