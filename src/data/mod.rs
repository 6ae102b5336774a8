//! CIFAR-10: the official binary files, the train/validation split, augmentation parameters,
//! and the GPU-resident copy of the data set.
//!
//! Data path: bytes on disk → [`Split`] (records as in the file) → [`GpuDataset`] (packed bytes
//! on the GPU, uploaded once) → `augment.wgsl` builds each batch from per-image [`Crop`]s.

pub mod download;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::gpu::Gpu;

pub const IMAGE_SIDE: u32 = 32;
pub const RECORD_PIXELS: usize = 1024;
/// Bytes of one image in the file (planar R, G, B).
pub const IMAGE_BYTES: usize = 3 * RECORD_PIXELS;
/// Bytes of one record: label + image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// Per-channel mean and std of the CIFAR-10 training images (the seed's normalisation).
pub const MEAN: [f32; 3] = [0.491_399_68, 0.482_158_4, 0.446_530_9];
pub const STD: [f32; 3] = [0.247_032_23, 0.243_485_13, 0.261_587_84];

/// Images (the file's planar bytes, `IMAGE_BYTES` each) and labels (0–9).
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }
}

/// Parses one CIFAR-10 binary file's bytes; errors name the file and the record.
pub fn parse_records(bytes: &[u8], name: &str) -> Result<Split> {
    if bytes.is_empty() {
        bail!("{name}: file is empty");
    }
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        bail!(
            "{name}: size {} is not a multiple of the {RECORD_BYTES}-byte CIFAR-10 record \
             (truncated or not a CIFAR-10 binary file)",
            bytes.len()
        );
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut split = Split {
        images: Vec::with_capacity(n * IMAGE_BYTES),
        labels: Vec::with_capacity(n),
    };
    for (i, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if rec[0] > 9 {
            bail!(
                "{name}: record {i}: label byte {} is not a class (0-9)",
                rec[0]
            );
        }
        split.labels.push(rec[0]);
        split.images.extend_from_slice(&rec[1..]);
    }
    Ok(split)
}

/// Reads one CIFAR-10 binary file.
pub fn read_file(path: &Path) -> Result<Split> {
    if path.is_dir() {
        bail!(
            "{}: is a directory, expected a CIFAR-10 .bin file",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_records(&bytes, &path.display().to_string())
}

/// The 50,000 training images (data_batch_1 first) and the 10,000 test images.
pub struct Cifar10 {
    pub train: Split,
    pub test: Split,
}

/// True when `dir` holds every CIFAR-10 binary file.
pub fn is_present(dir: &Path) -> bool {
    TRAIN_FILES
        .iter()
        .chain([&TEST_FILE])
        .all(|f| dir.join(f).is_file())
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

pub fn load(dir: &Path) -> Result<Cifar10> {
    if !dir.is_dir() {
        bail!("{}", missing_data_hint(dir));
    }
    let mut train = Split::default();
    for f in TRAIN_FILES {
        let path = dir.join(f);
        if !path.exists() {
            bail!("{}: missing; {}", path.display(), missing_data_hint(dir));
        }
        let s = read_file(&path)?;
        train.images.extend_from_slice(&s.images);
        train.labels.extend_from_slice(&s.labels);
    }
    let path = dir.join(TEST_FILE);
    if !path.exists() {
        bail!("{}: missing; {}", path.display(), missing_data_hint(dir));
    }
    let test = read_file(&path)?;
    Ok(Cifar10 { train, test })
}

/// Only the test images (for `eval`).
pub fn load_test(dir: &Path) -> Result<Split> {
    let path = dir.join(TEST_FILE);
    if !path.exists() {
        bail!("{}: missing; {}", path.display(), missing_data_hint(dir));
    }
    read_file(&path)
}

pub fn default_data_dir() -> PathBuf {
    PathBuf::from("data/cifar-10-batches-bin")
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

/// One image's augmentation: which record, flip, and the crop (in the flipped image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub record: u32,
    pub flip: bool,
    pub top: u32,
    pub left: u32,
    pub h: u32,
    pub w: u32,
}

impl Crop {
    /// The whole image, unflipped: evaluation.
    pub fn identity(record: u32) -> Self {
        Crop {
            record,
            flip: false,
            top: 0,
            left: 0,
            h: IMAGE_SIDE,
            w: IMAGE_SIDE,
        }
    }
    /// The 8 u32 the shader reads.
    pub fn words(&self) -> [u32; 8] {
        [
            self.record,
            self.flip as u32,
            self.top,
            self.left,
            self.h,
            self.w,
            0,
            0,
        ]
    }
}

/// RandomResizedCrop parameters with torchvision's semantics: 10 tries of a target area
/// uniform in `scale`·area and a log-uniform aspect ratio, sides rounded (half to even, as
/// Python's round), then the fallback central crop clamped to `ratio`.
pub fn random_resized_crop(
    rng: &mut impl Rng,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> (u32, u32, u32, u32) {
    let (height, width) = (IMAGE_SIDE as f64, IMAGE_SIDE as f64);
    let area = height * width;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.random_range(scale.0..scale.1);
        let aspect = rng.random_range(lr0..lr1).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= width && h > 0.0 && h <= height {
            let (h, w) = (h as u32, w as u32);
            let top = rng.random_range(0..=IMAGE_SIDE - h);
            let left = rng.random_range(0..=IMAGE_SIDE - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width / height;
    let (h, w) = if in_ratio < ratio.0 {
        (width / ratio.0, width)
    } else if in_ratio > ratio.1 {
        (height, height * ratio.1)
    } else {
        (height, width)
    };
    let (h, w) = (h.round_ties_even() as u32, w.round_ties_even() as u32);
    ((IMAGE_SIDE - h) / 2, (IMAGE_SIDE - w) / 2, h, w)
}

/// The seed's training augmentation: flip with p = 0.5, then RandomResizedCrop(32,
/// scale (0.8, 1.0), ratio (0.9, 1.1)).
pub fn train_crop(rng: &mut impl Rng, record: u32) -> Crop {
    let flip = rng.random_bool(0.5);
    let (top, left, h, w) = random_resized_crop(rng, (0.8, 1.0), (0.9, 1.1));
    Crop {
        record,
        flip,
        top,
        left,
        h,
        w,
    }
}

/// A data set resident on the GPU: packed image bytes in up to two bindings, labels as u32.
pub struct GpuDataset {
    pub chunks: [wgpu::Buffer; 2],
    pub chunk_images: u32,
    pub labels: wgpu::Buffer,
    pub len: usize,
}

impl GpuDataset {
    /// Uploads `split` once. Images are split across two storage bindings so that each stays
    /// under the adapter's `max_storage_buffer_binding_size` (128 MiB by default).
    pub fn upload(gpu: &Gpu, split: &Split, label: &str) -> Result<Self> {
        let max_binding = gpu.limits.max_storage_buffer_binding_size as usize;
        let per_chunk = (max_binding / IMAGE_BYTES).min(split.len().max(1));
        if per_chunk * 2 < split.len() {
            bail!(
                "{label}: {} images do not fit in two storage bindings of {} MiB on this adapter",
                split.len(),
                max_binding >> 20
            );
        }
        let pack = |bytes: &[u8]| -> Vec<u32> {
            bytes
                .chunks(4)
                .map(|c| c.iter().rev().fold(0u32, |acc, &b| (acc << 8) | b as u32))
                .collect()
        };
        let first = per_chunk.min(split.len());
        let c0 = gpu.storage_from(
            &format!("{label}.images0"),
            &pack(&split.images[..first * IMAGE_BYTES]),
        );
        let c1 = gpu.storage_from(
            &format!("{label}.images1"),
            &pack(&split.images[first * IMAGE_BYTES..]),
        );
        let labels: Vec<u32> = split.labels.iter().map(|&l| l as u32).collect();
        let labels = gpu.storage_from(&format!("{label}.labels"), &labels);
        Ok(GpuDataset {
            chunks: [c0, c1],
            chunk_images: first as u32,
            labels,
            len: split.len(),
        })
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|b| b.size()).sum::<u64>() + self.labels.size()
    }
}
