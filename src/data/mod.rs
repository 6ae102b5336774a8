//! Data sets: CIFAR-10 and CIFAR-100 (binary files), MNIST / Fashion-MNIST (IDX files, also
//! gzipped) and image folders (torchvision's `ImageFolder` layout); their splits, per-channel
//! normalisation, augmentation parameters, and the GPU-resident copy.
//!
//! Data path: files → [`Split`] (images as interleaved HWC bytes, labels as u32) →
//! [`GpuDataset`] (packed bytes on the GPU, uploaded once, across up to four storage bindings;
//! a data set too large for them is streamed: a window refilled before each submit) →
//! `augment.wgsl` builds each batch from per-image [`Crop`]s.

pub mod augment;
pub mod cifar;
pub mod download;
pub mod export;
pub mod folder;
pub mod mnist;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use augment::{Augment, Crop, Fill};
pub use cifar::{
    parse_records, read_file, Labels, CLASS_NAMES, IMAGE_BYTES, MEAN, RECORD_BYTES, STD,
};

use crate::gpu::Gpu;

/// Height, width and channels of the images of a data set (and of a model's input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub h: u32,
    pub w: u32,
    pub c: u32,
}

impl ImageShape {
    /// Bytes of one image.
    pub fn bytes(&self) -> usize {
        (self.h * self.w * self.c) as usize
    }
    pub fn describe(&self) -> String {
        format!("{}x{}x{}", self.h, self.w, self.c)
    }
    pub fn of_input(input: [u32; 3]) -> Self {
        ImageShape {
            h: input[0],
            w: input[1],
            c: input[2],
        }
    }
}

/// Images (interleaved HWC bytes, `shape.bytes()` each) and their labels.
#[derive(Clone, Debug)]
pub struct Split {
    pub shape: ImageShape,
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
}

impl Split {
    pub fn empty(shape: ImageShape) -> Self {
        Split {
            shape,
            images: Vec::new(),
            labels: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let b = self.shape.bytes();
        &self.images[i * b..(i + 1) * b]
    }
    pub fn append(&mut self, other: &Split) {
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
    }
    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[u32]) -> Split {
        let mut out = Split::empty(self.shape);
        for &i in indices {
            out.images.extend_from_slice(self.image(i as usize));
            out.labels.push(self.labels[i as usize]);
        }
        out
    }
}

/// The kinds of data set `--data` can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Cifar10,
    Cifar100,
    Mnist,
    Folder,
}

impl Kind {
    pub const NAMES: &'static str = "cifar10, cifar100, mnist, folder";
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "cifar10" => Kind::Cifar10,
            "cifar100" => Kind::Cifar100,
            "mnist" => Kind::Mnist,
            "folder" => Kind::Folder,
            _ => bail!("unknown --dataset `{s}` (known: {})", Self::NAMES),
        })
    }
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Cifar10 => "cifar10",
            Kind::Cifar100 => "cifar100",
            Kind::Mnist => "mnist",
            Kind::Folder => "folder",
        }
    }
    /// Where the data set goes when `--data` is not given (downloaded there when empty).
    pub fn default_dir(&self) -> PathBuf {
        PathBuf::from(match self {
            Kind::Cifar10 => "data/cifar-10-batches-bin",
            Kind::Cifar100 => "data/cifar-100-binary",
            Kind::Mnist => "data/mnist",
            Kind::Folder => "data/images",
        })
    }
}

pub fn default_data_dir() -> PathBuf {
    Kind::Cifar10.default_dir()
}

/// Which kind of data set `dir` holds, from its files.
pub fn detect(dir: &Path) -> Result<Kind> {
    if !dir.exists() {
        bail!("{}", no_folder(dir));
    }
    if !dir.is_dir() {
        bail!(
            "{}: is a file; --data takes the folder that holds the data set",
            dir.display()
        );
    }
    // Any CIFAR-10 file name (even a broken one) says CIFAR-10: its reader names what is wrong.
    if cifar::TRAIN_FILES
        .iter()
        .chain([&cifar::TEST_FILE])
        .any(|f| dir.join(f).exists())
    {
        return Ok(Kind::Cifar10);
    }
    if cifar::is_cifar100(dir) {
        return Ok(Kind::Cifar100);
    }
    if mnist::is_mnist(dir) {
        return Ok(Kind::Mnist);
    }
    if std::fs::read_dir(dir)
        .map(|mut it| it.any(|e| e.is_ok_and(|e| e.path().is_dir())))
        .unwrap_or(false)
    {
        return Ok(Kind::Folder);
    }
    bail!(
        "{}: cannot tell which data set this is: expected CIFAR-10 (data_batch_1.bin …), \
         CIFAR-100 (train.bin, test.bin), MNIST (train-images-idx3-ubyte[.gz] …) or an image \
         folder (one subfolder per class); --dataset names the kind",
        dir.display()
    )
}

/// A split's size: a count, or a fraction of the images it is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SplitSize {
    Count(usize),
    Fraction(f64),
}

impl SplitSize {
    /// "500" or "0.1" (a fraction in [0, 1)).
    pub fn parse(flag: &str, s: &str) -> Result<Self> {
        if let Ok(n) = s.parse::<usize>() {
            return Ok(SplitSize::Count(n));
        }
        match s.parse::<f64>() {
            Ok(f) if (0.0..1.0).contains(&f) => Ok(SplitSize::Fraction(f)),
            _ => bail!(
                "{flag} must be a count (e.g. 5000) or a fraction in [0, 1) (e.g. 0.1), got `{s}`"
            ),
        }
    }
    /// Images taken from `n`: a fraction rounds to the nearest count.
    pub fn of(&self, n: usize) -> usize {
        match *self {
            SplitSize::Count(c) => c,
            SplitSize::Fraction(f) => (f * n as f64).round() as usize,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            SplitSize::Count(c) => c.to_string(),
            SplitSize::Fraction(f) => f.to_string(),
        }
    }
}

/// How `load` reads a data set.
#[derive(Clone, Debug)]
pub struct DataOptions {
    /// `--dataset`; `None`: detected from the files.
    pub kind: Option<Kind>,
    /// CIFAR-100's label set.
    pub labels: Labels,
    /// Image folders: the size images are resized to (default the model's input) and the
    /// channels (the model's).
    pub shape: ImageShape,
    /// Image folders without `test/`: the test images taken from the rest (default 10 %).
    pub test_size: Option<SplitSize>,
    /// Seeds the test split of image folders without `test/`.
    pub seed: u64,
    pub cache: Option<PathBuf>,
    pub skip_bad_images: bool,
    pub progress: bool,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            kind: None,
            labels: Labels::Fine,
            shape: cifar::SHAPE,
            test_size: None,
            seed: 42,
            cache: None,
            skip_bad_images: false,
            progress: false,
        }
    }
}

/// A data set as a run uses it.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub kind: Kind,
    /// "CIFAR-10", "Fashion-MNIST", "image folder flowers" …
    pub name: String,
    pub classes: Vec<String>,
    pub train: Split,
    /// A validation split the data set brings (an image folder's `val/`); otherwise validation
    /// images are held out of `train` by `--val-size`.
    pub val: Option<Split>,
    pub test: Split,
    /// Lines worth printing (cache use, skipped files).
    pub notes: Vec<String>,
}

impl Dataset {
    pub fn shape(&self) -> ImageShape {
        self.train.shape
    }
    /// The per-channel mean and std of `indices` of the training images, each in [0, 1]
    /// units (population std, accumulated in f64).
    pub fn channel_stats(&self, indices: &[u32]) -> (Vec<f32>, Vec<f32>) {
        channel_stats(&self.train, indices)
    }
}

/// Per-channel mean and (population) std of `indices` of `split`, in [0, 1] units.
pub fn channel_stats(split: &Split, indices: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let c = split.shape.c as usize;
    let mut sum = vec![0u64; c];
    let mut sq = vec![0u64; c];
    for &i in indices {
        for (k, &b) in split.image(i as usize).iter().enumerate() {
            sum[k % c] += b as u64;
            sq[k % c] += (b as u64) * (b as u64);
        }
    }
    let n = (indices.len() * (split.shape.h * split.shape.w) as usize).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / n / 255.0).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(&q, m)| ((q as f64 / n / 65025.0 - m * m).max(0.0)).sqrt() as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// Loads the data set in `dir` (downloading it first when `dir` is the kind's default folder
/// and empty, for the kinds with an official URL).
pub fn load(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
    let kind = match opts.kind {
        Some(k) => k,
        None => detect(dir)?,
    };
    if !dir.is_dir() {
        bail!("{}", no_folder(dir));
    }
    let ds = match kind {
        Kind::Cifar10 => {
            if !cifar::TRAIN_FILES
                .iter()
                .chain([&cifar::TEST_FILE])
                .any(|f| dir.join(f).exists())
            {
                bail!("{}", missing_data_hint(dir));
            }
            let (train, test) = cifar::load10(dir)?;
            Dataset {
                kind,
                name: "CIFAR-10".into(),
                classes: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
                train,
                val: None,
                test,
                notes: Vec::new(),
            }
        }
        Kind::Cifar100 => {
            let (train, test, classes) = cifar::load100(dir, opts.labels)?;
            Dataset {
                kind,
                name: format!("CIFAR-100 ({} labels)", opts.labels.name()),
                classes,
                train,
                val: None,
                test,
                notes: Vec::new(),
            }
        }
        Kind::Mnist => {
            let (train, test, classes, name) = mnist::load(dir)?;
            Dataset {
                kind,
                name: name.into(),
                classes,
                train,
                val: None,
                test,
                notes: Vec::new(),
            }
        }
        Kind::Folder => load_folder(dir, opts)?,
    };
    let ds = with_class_file(dir, ds)?;
    if ds.train.is_empty() {
        bail!("{}: the training split holds no images", dir.display());
    }
    if ds.test.is_empty() {
        bail!("{}: the test split holds no images", dir.display());
    }
    Ok(ds)
}

/// A `classes.txt` in the data folder (one name per line) names the classes of any kind.
fn with_class_file(dir: &Path, mut ds: Dataset) -> Result<Dataset> {
    let path = dir.join("classes.txt");
    if ds.kind == Kind::Folder || !path.is_file() {
        return Ok(ds);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != ds.classes.len() {
        bail!(
            "{}: {} names for the data set's {} classes",
            path.display(),
            names.len(),
            ds.classes.len()
        );
    }
    ds.classes = names;
    Ok(ds)
}

fn load_folder(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
    let loaded = folder::load(
        dir,
        opts.shape,
        opts.cache.as_deref(),
        opts.skip_bad_images,
        opts.progress,
    )?;
    let mut notes = Vec::new();
    if loaded.from_cache {
        notes.push(format!(
            "images from the cache {}",
            folder::cache_path(dir, opts.shape, opts.cache.as_deref()).display()
        ));
    }
    if !loaded.skipped.is_empty() {
        notes.push(format!(
            "skipped {} files that are not readable images (first: {})",
            loaded.skipped.len(),
            loaded.skipped[0]
        ));
    }
    let mut subsets = loaded.subsets;
    let mut take = |name: &str| {
        subsets
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| subsets.remove(i).1)
    };
    let (train, val, test) = match take("all") {
        Some(all) => {
            let (train, test) = carve_test(all, opts)?;
            (train, None, test)
        }
        None => {
            let train = take("train").expect("a split layout has train/");
            let val = take("val");
            match take("test") {
                Some(test) => (train, val, test),
                None => {
                    let (train, test) = carve_test(train, opts)?;
                    (train, val, test)
                }
            }
        }
    };
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Dataset {
        kind: Kind::Folder,
        name: format!("image folder {name}"),
        classes: loaded.classes,
        train,
        val,
        test,
        notes,
    })
}

/// The test images of a folder without `test/`: a seeded draw of `--test-size` (default 10 %)
/// of `all`; both parts keep the folder's order.
fn carve_test(all: Split, opts: &DataOptions) -> Result<(Split, Split)> {
    let size = opts.test_size.unwrap_or(SplitSize::Fraction(0.1));
    let n_test = size.of(all.len());
    if n_test == 0 || n_test >= all.len() {
        bail!(
            "--test-size {} takes {n_test} of the folder's {} images; it must leave at least one for testing and one for training",
            size.describe(),
            all.len()
        );
    }
    let mut idx: Vec<u32> = (0..all.len() as u32).collect();
    // A seed of its own, so the test images do not depend on --val-size.
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ 0x7E57_5E7D_0000_0001);
    idx.shuffle(&mut rng);
    let mut test_idx = idx.split_off(all.len() - n_test);
    test_idx.sort_unstable();
    idx.sort_unstable();
    Ok((all.select(&idx), all.select(&test_idx)))
}

fn no_folder(dir: &Path) -> String {
    format!(
        "{}: no such folder; pass --data DIR pointing at a data set (CIFAR-10: `wgpu-cnn download --dir DIR` fetches it)",
        dir.display()
    )
}

pub fn missing_data_hint(dir: &Path) -> String {
    format!(
        "CIFAR-10 not found in {}: run `wgpu-cnn download --dir {}` or pass --data DIR pointing \
         at a cifar-10-batches-bin folder",
        dir.display(),
        dir.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ".".into())
    )
}

/// True when `dir` holds every CIFAR-10 binary file.
pub fn is_present(dir: &Path) -> bool {
    cifar::is_cifar10(dir)
}

/// Normalisation of the network's input: `(x/255 − mean) / std` per channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The seed's: CIFAR-10's training-set statistics.
    pub fn cifar10() -> Self {
        Normalization {
            mean: MEAN.to_vec(),
            std: STD.to_vec(),
        }
    }
    pub fn none(c: u32) -> Self {
        Normalization {
            mean: vec![0.0; c as usize],
            std: vec![1.0; c as usize],
        }
    }
    /// `--normalize`: `dataset`, `none`, `cifar10` or `m1,m2,m3/s1,s2,s3` (one pair for one
    /// channel). `stats` computes the data set's when asked for.
    pub fn parse(
        spec: &str,
        channels: u32,
        stats: impl FnOnce() -> (Vec<f32>, Vec<f32>),
    ) -> Result<Self> {
        let n = match spec {
            "dataset" => {
                let (mean, std) = stats();
                Normalization { mean, std }
            }
            "none" => Self::none(channels),
            "cifar10" => Self::cifar10(),
            _ => {
                let Some((m, s)) = spec.split_once('/') else {
                    bail!(
                        "--normalize must be dataset, none, cifar10 or MEANS/STDS (e.g. 0.5,0.5,0.5/0.25,0.25,0.25), got `{spec}`"
                    );
                };
                let nums = |t: &str| -> Result<Vec<f32>> {
                    t.split(',')
                        .map(|v| {
                            v.trim()
                                .parse::<f32>()
                                .map_err(|_| anyhow::anyhow!("--normalize: `{v}` is not a number"))
                        })
                        .collect()
                };
                Normalization {
                    mean: nums(m)?,
                    std: nums(s)?,
                }
            }
        };
        n.check(channels)?;
        Ok(n)
    }
    pub fn check(&self, channels: u32) -> Result<()> {
        let c = channels as usize;
        if self.mean.len() != c || self.std.len() != c {
            bail!(
                "--normalize gives {} means and {} stds for images with {c} channels",
                self.mean.len(),
                self.std.len()
            );
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            bail!(
                "--normalize needs finite means and positive stds, got {:?}/{:?}",
                self.mean,
                self.std
            );
        }
        Ok(())
    }
    pub fn describe(&self) -> String {
        let f = |v: &[f32]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("mean {} std {}", f(&self.mean), f(&self.std))
    }
}

/// Train/validation indices into the training images: a permutation seeded with `seed`, the
/// last `val_size` of it for validation. With `val_size = 0` the training images stay in file
/// order (so a run can be replayed step for step by another framework).
pub fn split_indices(n: usize, val_size: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    if val_size == 0 {
        return (idx, Vec::new());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    idx.shuffle(&mut rng);
    let val = idx.split_off(n - val_size);
    (idx, val)
}

/// Image bytes as the augmentation shader reads them: byte i in bits 8·(i mod 4) of word i / 4
/// (the last word zero-padded).
fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| c.iter().rev().fold(0u32, |acc, &b| (acc << 8) | b as u32))
        .collect()
}

/// Storage bindings the augmentation shader reads images from.
pub const IMAGE_BINDINGS: usize = 4;

/// How a caller can take a data set that is streamed rather than resident: each stage (one
/// submit's images) holds at least `min` images (one batch) and at most `want` (the images
/// of the steps one submit records); `force` streams even a data set that would fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streaming {
    pub min: usize,
    pub want: usize,
    pub force: bool,
}

impl Streaming {
    /// Streams only what does not fit; a stage of `batch` to `batch · steps` images.
    pub fn when_needed(batch: usize, steps: usize) -> Self {
        Streaming {
            min: batch,
            want: batch * steps.max(1),
            force: false,
        }
    }
}

/// Where a split's images live on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// All of them, uploaded once: `per_binding` whole images in each of `bindings` bindings.
    Resident { per_binding: usize, bindings: usize },
    /// A window of `window` images (in as many bindings as it needs, each as full as the
    /// limit allows) that each submit refills from host memory.
    Streamed { window: usize },
}

/// A data set on the GPU: packed image bytes across up to [`IMAGE_BINDINGS`] storage
/// bindings (whole images in each), labels as u32. Resident, the whole split is there and
/// crops name its records; streamed, the bindings (as many as the window needs) and `labels`
/// hold a window that [`GpuDataset::stage`] fills with the records a submit's crops name.
pub struct GpuDataset {
    pub chunks: Vec<wgpu::Buffer>,
    /// Images per binding (the last holds the rest), resident or streamed.
    pub chunk_images: u32,
    pub labels: wgpu::Buffer,
    pub len: usize,
    pub shape: ImageShape,
    /// Streamed: the images one stage holds at most; `None`: resident.
    pub window: Option<u32>,
}

impl GpuDataset {
    /// Bytes one binding may hold on `gpu`.
    pub fn binding_bytes(gpu: &Gpu) -> u64 {
        gpu.limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size)
    }

    /// Uploads `split` under the adapter's limits: resident when its images fit in the
    /// bindings (and streaming is not forced), else streamed where `streaming` allows it, else
    /// an error naming the sizes.
    pub fn upload(
        gpu: &Gpu,
        split: &Split,
        label: &str,
        streaming: Option<Streaming>,
    ) -> Result<Self> {
        Self::upload_within(gpu, split, label, Self::binding_bytes(gpu), streaming)
    }

    /// Where `n` images of `shape` go with bindings of at most `max_binding` bytes.
    pub fn layout(
        label: &str,
        n: usize,
        shape: ImageShape,
        max_binding: u64,
        streaming: Option<Streaming>,
    ) -> Result<Layout> {
        let image = shape.bytes();
        // Whole words: a binding's buffer is its images' bytes rounded up to 4.
        let fit = (max_binding as usize & !3) / image;
        let per_binding = fit.min(n.max(1));
        let resident = per_binding > 0 && per_binding * IMAGE_BINDINGS >= n;
        match streaming {
            Some(s) if s.force || !resident => {
                if fit * IMAGE_BINDINGS < s.min.max(1) {
                    bail!(
                        "{label}: one batch of {} images of {} ({:.1} MiB) does not fit in the {IMAGE_BINDINGS} storage bindings of {} MiB this adapter allows; use a smaller --batch-size or --image-size",
                        s.min,
                        shape.describe(),
                        (s.min * image) as f64 / 1048576.0,
                        max_binding >> 20
                    );
                }
                Ok(Layout::Streamed {
                    window: s.want.max(s.min).max(1).min(fit * IMAGE_BINDINGS),
                })
            }
            _ if resident => Ok(Layout::Resident {
                per_binding,
                bindings: n.div_ceil(per_binding).max(1),
            }),
            _ => bail!(
                "{label}: {n} images of {} ({} MiB) do not fit in the {IMAGE_BINDINGS} storage bindings of {} MiB this adapter allows; use a smaller --image-size",
                shape.describe(),
                (n * image) as u64 >> 20,
                max_binding >> 20
            ),
        }
    }

    /// `upload` with bindings of at most `max_binding` bytes (tests use small ones to
    /// exercise the split and the streaming on any adapter).
    pub fn upload_within(
        gpu: &Gpu,
        split: &Split,
        label: &str,
        max_binding: u64,
        streaming: Option<Streaming>,
    ) -> Result<Self> {
        let image = split.shape.bytes();
        let max_binding = max_binding.min(Self::binding_bytes(gpu));
        let layout = Self::layout(label, split.len(), split.shape, max_binding, streaming)?;
        let pack = |bytes: &[u8]| -> Vec<u32> {
            let mut v = pack_bytes(bytes);
            if v.is_empty() {
                v.push(0);
            }
            v
        };
        match layout {
            Layout::Resident { per_binding, .. } => {
                let chunks = (0..IMAGE_BINDINGS)
                    .map(|k| {
                        let from = (k * per_binding).min(split.len());
                        let to = ((k + 1) * per_binding).min(split.len());
                        gpu.storage_from(
                            &format!("{label}.images{k}"),
                            &pack(&split.images[from * image..to * image]),
                        )
                    })
                    .collect();
                let labels = gpu.storage_from(&format!("{label}.labels"), &split.labels);
                Ok(GpuDataset {
                    chunks,
                    chunk_images: per_binding as u32,
                    labels,
                    len: split.len(),
                    shape: split.shape,
                    window: None,
                })
            }
            Layout::Streamed { window } => {
                let per = window.min(max_binding as usize / image).max(1);
                let chunks = (0..IMAGE_BINDINGS)
                    .map(|k| {
                        let slots = window.saturating_sub(k * per).min(per);
                        gpu.storage(&format!("{label}.window{k}"), (slots * image).div_ceil(4))
                    })
                    .collect();
                Ok(GpuDataset {
                    chunks,
                    chunk_images: per as u32,
                    labels: gpu.storage(&format!("{label}.window.labels"), window),
                    len: split.len(),
                    shape: split.shape,
                    window: Some(window as u32),
                })
            }
        }
    }

    /// Before a submit whose crops are `crops`: a streamed data set copies the images and
    /// labels they name from `host` (the split it was made from) into its window, in order,
    /// and renames each crop's record to its slot there; a resident one has nothing to do.
    /// The copy is ordered by the queue: submits already made read the window as it was.
    pub fn stage(&self, gpu: &Gpu, host: &Split, crops: &mut [[u32; 8]]) -> Result<()> {
        let Some(window) = self.window else {
            return Ok(());
        };
        if crops.is_empty() {
            return Ok(());
        }
        if crops.len() > window as usize {
            bail!(
                "a stage of {} images does not fit in the window of {window}",
                crops.len()
            );
        }
        let image = self.shape.bytes();
        let mut labels = Vec::with_capacity(crops.len());
        for c in crops.iter() {
            let r = c[0] as usize;
            match host.labels.get(r) {
                Some(&l) if (r + 1) * image <= host.images.len() => labels.push(l),
                _ => bail!("record {r} is not in the data set ({} images)", host.len()),
            }
        }
        // Slot s lives in binding s / chunk_images, as a resident record would. The images go
        // straight into the queue's staging memory, packed as `upload` packs them (on a
        // little-endian host that is the bytes as they are).
        let per = self.chunk_images.max(1) as usize;
        for (k, part) in crops.chunks(per).enumerate() {
            let len = part.len() * image;
            let Some(size) = wgpu::BufferSize::new(len.next_multiple_of(4) as u64) else {
                continue;
            };
            let Some(mut view) = gpu.queue.write_buffer_with(&self.chunks[k], 0, size) else {
                bail!(
                    "cannot stage {} images of {}",
                    part.len(),
                    self.shape.describe()
                );
            };
            if cfg!(target_endian = "little") {
                for (slot, c) in part.iter().enumerate() {
                    let r = c[0] as usize;
                    view.slice(slot * image..(slot + 1) * image)
                        .copy_from_slice(&host.images[r * image..(r + 1) * image]);
                }
                view.slice(len..)
                    .copy_from_slice(&[0u8; 3][..size.get() as usize - len]);
            } else {
                let mut bytes = Vec::with_capacity(len);
                for c in part {
                    let r = c[0] as usize;
                    bytes.extend_from_slice(&host.images[r * image..(r + 1) * image]);
                }
                view.copy_from_slice(bytemuck::cast_slice(&pack_bytes(&bytes)));
            }
        }
        for (slot, c) in crops.iter_mut().enumerate() {
            c[0] = slot as u32;
        }
        gpu.queue
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(&labels));
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|b| b.size()).sum::<u64>() + self.labels.size()
    }

    /// Bindings that hold images.
    pub fn bindings_used(&self) -> usize {
        let images = self.window.map_or(self.len, |w| w as usize);
        images.div_ceil(self.chunk_images.max(1) as usize).max(1)
    }

    /// Where the images are, for the run's log: the bindings, or the streaming window.
    pub fn describe(&self, gpu: &Gpu) -> String {
        match self.window {
            Some(w) => format!(
                "streamed: a window of {w} images ({:.1} MiB in {} storage binding{}) refilled from host memory before each submit",
                (w as usize * self.shape.bytes()) as f64 / 1048576.0,
                self.bindings_used(),
                if self.bindings_used() == 1 { "" } else { "s" }
            ),
            None => format!(
                "in {} of {IMAGE_BINDINGS} storage bindings of at most {} MiB",
                self.bindings_used(),
                Self::binding_bytes(gpu) >> 20
            ),
        }
    }
}
