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
mod gpu;
pub mod mnist;

pub use gpu::{GpuDataset, Layout, Streaming, IMAGE_BINDINGS};

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use augment::{Augment, Crop, Fill, Tta, View};
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
        bail!("{}", no_folder(dir, None));
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
        bail!("{}", no_folder(dir, Some(kind)));
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

/// A missing data folder: the download hint only where it applies (CIFAR-10, or a path that
/// names it).
fn no_folder(dir: &Path, kind: Option<Kind>) -> String {
    let cifar10 = match kind {
        Some(k) => k == Kind::Cifar10,
        None => dir.to_string_lossy().to_lowercase().contains("cifar"),
    };
    format!(
        "{}: no such folder; pass --data DIR pointing at a data set{}",
        dir.display(),
        if cifar10 {
            " (CIFAR-10: `wgpu-cnn download --dir DIR` fetches it)"
        } else {
            ""
        }
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
