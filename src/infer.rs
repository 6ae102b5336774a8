//! `wgpu-cnn eval` and `wgpu-cnn predict`: a checkpoint's model (its description, or the seed
//! model for older checkpoints) on an inference-only plan — no gradient, Adam or split-K buffers.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::checkpoint;
use crate::data::{self, GpuDataset};
use crate::gpu::{Gpu, GpuOptions};
use crate::graph::Description;
use crate::model::GpuModel;
use crate::report::{self, EvalResult};
use crate::train::{
    check_model_fits_data, checkpoint_normalization, warn_unknown, Runner, TrainConfig,
};

/// How `eval` reads its data: `--data` and `--dataset`, the rest as the checkpoint's run did.
pub struct EvalData<'a> {
    /// `None`: the folder the checkpoint's run read.
    pub dir: Option<&'a Path>,
    /// Test-time augmentation: also report the views' verdict (`--tta`).
    pub tta: data::Tta,
    pub kind: Option<data::Kind>,
    /// Evaluate only the first N test images (`--test-limit`; as `train --test-limit`).
    pub limit: Option<usize>,
}

/// The run settings stored in a checkpoint (none: the defaults).
fn checkpoint_config(ck: &checkpoint::Checkpoint) -> TrainConfig {
    ck.metadata
        .get("config")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// A checkpoint read as `model` (`--model`, winning over the file's metadata) or as its own
/// description.
fn load_checkpoint(
    path: &Path,
    model: Option<(&Description, &str)>,
) -> Result<checkpoint::Checkpoint> {
    match model {
        Some(m) => checkpoint::load_model(path, m),
        None => checkpoint::load(path),
    }
}

/// `wgpu-cnn eval`: the test set on a checkpoint's parameters, normalised as the checkpoint
/// was trained (checkpoints without that record: CIFAR-10's statistics).
pub fn eval(
    checkpoint_path: &Path,
    model: Option<(&Description, &str)>,
    source: EvalData<'_>,
    out: Option<&Path>,
    batch: u32,
    device: &GpuOptions,
) -> Result<EvalResult> {
    let ck = load_checkpoint(checkpoint_path, model)?;
    warn_unknown(checkpoint_path, &ck);
    let cfg = checkpoint_config(&ck);
    let input = data::ImageShape::of_input(ck.model.input);
    let opts = data::DataOptions {
        kind: source.kind.or(cfg.dataset),
        labels: cfg.labels,
        shape: match cfg.image_size {
            Some([h, w]) => data::ImageShape { h, w, c: input.c },
            None => input,
        },
        test_size: cfg.test_size,
        seed: cfg.seed,
        cache: cfg.cache.clone(),
        skip_bad_images: cfg.skip_bad_images,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let dir = source
        .dir
        .map(Path::to_path_buf)
        .unwrap_or(cfg.data.clone());
    let ds = crate::train::load_dataset(&dir, &opts)?;
    let test = &ds.test;
    check_model_fits_data(&ck.model, ds.shape(), ds.classes.len())
        .map_err(|e| {
            let e = e.to_string();
            let what = e.split(": its description").next().unwrap_or(&e);
            anyhow::anyhow!("{what}: evaluate it on the data it was trained on (--data, --dataset)")
        })
        .with_context(|| checkpoint_path.display().to_string())?;
    let norm = checkpoint_normalization(&ck).unwrap_or_else(data::Normalization::cifar10);
    norm.check(ds.shape().c)
        .with_context(|| checkpoint_path.display().to_string())?;
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.describe());
    let n = source.limit.unwrap_or(test.len()).clamp(1, test.len());
    let of = if n < test.len() {
        format!("the first {n} of {}", test.len())
    } else {
        n.to_string()
    };
    println!(
        "data: {}, {of} test images; normalisation {}",
        ds.name,
        norm.describe()
    );
    let batch = batch.min(n as u32).max(1);
    let mut runner = Runner::inference(&gpu, &ck.model, batch, &ck.params)?;
    runner.model.write_batch_stats(&gpu, &ck.batch_stats);
    let test_data = GpuDataset::upload(
        &gpu,
        test,
        "test",
        Some(data::Streaming::when_needed(batch as usize, 1)),
    )?;
    let aug = runner.augment_from(&gpu, &test_data, &norm);
    let feed = crate::train::Feed {
        aug: &aug,
        data: &test_data,
        host: test,
    };
    let idx: Vec<u32> = (0..n as u32).collect();
    let (mut r, logits) = runner.evaluate_logits(&gpu, feed, &idx, &test.labels)?;
    r.classes = ds.classes.clone();
    println!("test: {}", r.line());
    print!("{}", report::confusion_table(&r));
    let tta = runner
        .evaluate_augmented(&gpu, feed, &idx, &test.labels, &source.tta)?
        .map(|mut t| {
            t.classes = ds.classes.clone();
            println!(
                "test, test-time augmentation ({}): {}",
                source.tta.spec(),
                t.line()
            );
            t
        });
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let mut json = r.to_json();
        json["checkpoint"] = checkpoint_path.display().to_string().into();
        json["data"] = ds.name.clone().into();
        if let Some(t) = &tta {
            json[crate::train::tta_key(&source.tta)] = t.to_json();
        }
        crate::io::write_atomic(
            &out.join("test.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        report::confusion_png(&r, &format!("{} test", ds.name), &out.join("confusion.png"))?;
        let labels: Vec<u32> = idx.iter().map(|&i| test.labels[i as usize]).collect();
        write_logits(
            &out.join(LOGITS_FILE),
            &logits,
            &labels,
            ck.model.classes as usize,
        )?;
        println!(
            "wrote {}, {} and {}",
            out.join("test.json").display(),
            out.join("confusion.png").display(),
            out.join(LOGITS_FILE).display()
        );
    }
    Ok(r)
}

/// `eval --out`'s per-image scores: safetensors with `logits` (f32 `[N, classes]`, the test
/// images in the data set's order) and `labels` (i64 `[N]`), e.g. for comparing with an
/// exported ONNX model (tools/peers/onnx_check.py).
pub const LOGITS_FILE: &str = "logits.safetensors";

fn write_logits(path: &Path, logits: &[f32], labels: &[u32], classes: usize) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let l: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let y: Vec<u8> = labels
        .iter()
        .flat_map(|&v| (v as i64).to_le_bytes())
        .collect();
    let views = vec![
        (
            "logits",
            TensorView::new(Dtype::F32, vec![labels.len(), classes], &l)?,
        ),
        (
            "labels",
            TensorView::new(Dtype::I64, vec![labels.len()], &y)?,
        ),
    ];
    let bytes = safetensors::serialize(views, None)?;
    crate::io::write_atomic(path, &bytes)
}

/// What `export --format onnx` wrote.
pub struct OnnxExport {
    pub bytes: usize,
    pub nodes: usize,
    pub classes: Vec<String>,
    pub normalization: data::Normalization,
}

/// `wgpu-cnn export --checkpoint FILE --format onnx --out MODEL.onnx`: the checkpoint as an ONNX
/// inference graph (see [`crate::onnx`] for the contract), written atomically. The class names
/// and normalisation are the checkpoint's run's (none recorded: as `eval` reads it, CIFAR-10's
/// normalisation, and CIFAR-10's names for 10 classes).
pub fn export_onnx(
    checkpoint_path: &Path,
    model: Option<(&Description, &str)>,
    out: &Path,
) -> Result<OnnxExport> {
    let ck = load_checkpoint(checkpoint_path, model)?;
    warn_unknown(checkpoint_path, &ck);
    let norm = checkpoint_normalization(&ck).unwrap_or_else(data::Normalization::cifar10);
    norm.check(ck.model.input[2])
        .with_context(|| checkpoint_path.display().to_string())?;
    let classes = report::class_names(
        &crate::train::checkpoint_classes(&ck),
        ck.model.classes as usize,
    );
    let model = crate::onnx::model(&ck, &norm, &classes)
        .with_context(|| checkpoint_path.display().to_string())?;
    let nodes = model.graph.as_ref().map_or(0, |g| g.node.len());
    let bytes = prost::Message::encode_to_vec(&model);
    crate::io::write_atomic(out, &bytes)?;
    Ok(OnnxExport {
        bytes: bytes.len(),
        nodes,
        classes,
        normalization: norm,
    })
}

/// One prediction: the top classes with probabilities.
pub struct Prediction {
    pub path: PathBuf,
    /// (class index, probability), most probable first.
    pub top: Vec<(usize, f32)>,
    /// The names of `top`'s classes (the checkpoint's data set's).
    pub names: Vec<String>,
}

/// Reads an image of any size and format `image` knows, converts it to the model's channels
/// (RGB, or luma for one channel), resizes it to `shape` as image folders are, and normalises
/// it with `norm`, NHWC.
pub fn load_image(
    path: &Path,
    shape: data::ImageShape,
    norm: &data::Normalization,
) -> Result<Vec<f32>> {
    if path.is_dir() {
        bail!("{}: is a directory, expected an image", path.display());
    }
    let bytes = data::folder::decode(path, shape)?;
    let c = shape.c as usize;
    Ok(bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| (b as f32 / 255.0 - norm.mean[i % c]) / norm.std[i % c])
        .collect())
}

/// `wgpu-cnn predict`: top-`k` classes of each image.
pub fn predict(
    checkpoint_path: &Path,
    model: Option<(&Description, &str)>,
    images: &[PathBuf],
    k: usize,
    device: &GpuOptions,
) -> Result<Vec<Prediction>> {
    if images.is_empty() {
        bail!("no images given");
    }
    let ck = load_checkpoint(checkpoint_path, model)?;
    warn_unknown(checkpoint_path, &ck);
    let [h, w, c] = ck.model.input;
    let shape = data::ImageShape { h, w, c };
    let norm = checkpoint_normalization(&ck).unwrap_or_else(data::Normalization::cifar10);
    norm.check(c)
        .with_context(|| checkpoint_path.display().to_string())?;
    let inputs = images
        .iter()
        .map(|p| load_image(p, shape, &norm))
        .collect::<Result<Vec<_>>>()?;
    let gpu = Gpu::new(device)?;
    // At most 256 images per forward pass, so any number of images fits the adapter's limits.
    let batch = images.len().min(256);
    let m = GpuModel::inference(&gpu, &ck.model, batch as u32, &ck.params)?;
    m.write_batch_stats(&gpu, &ck.batch_stats);
    let classes = m.classes() as usize;
    let names = report::class_names(&crate::train::checkpoint_classes(&ck), classes);
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
                names: probs.iter().map(|(c, _)| names[*c].clone()).collect(),
                top: probs,
            }
        })
        .collect())
}
