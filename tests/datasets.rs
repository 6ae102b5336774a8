//! The data-set readers on small files the tests write — CIFAR-100, MNIST IDX (plain and
//! gzipped), image folders (mixed sizes, grayscale, RGBA, JPEG and PNG; the cache) — their
//! errors through the CLI, and an image folder made from CIFAR-10 records training to the same
//! weights as the binary loader.
//!
//! By file format: MNIST IDX (`datasets/mnist.rs`), CIFAR-100 (`datasets/cifar100.rs`), image
//! folders (`datasets/folders.rs`), CIFAR-10 records as folders, trained on and exported
//! (`datasets/cifar10.rs`), and the data set of a run: eval, predict, TTA and the plan's memory
//! (`datasets/runs.rs`); the writers they share are here.

mod common;

#[path = "datasets/cifar10.rs"]
mod cifar10;
#[path = "datasets/cifar100.rs"]
mod cifar100;
#[path = "datasets/folders.rs"]
mod folders;
#[path = "datasets/mnist.rs"]
mod mnist;
#[path = "datasets/runs.rs"]
mod runs;

use std::io::Write;
use std::path::Path;

use common::rng;
use rand::Rng;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub(crate) fn idx_images(n: u32, rows: u32, cols: u32, seed: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0803u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    let mut r = rng(seed);
    v.extend((0..n * rows * cols).map(|_| r.random::<u8>()));
    v
}

pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0801u32, labels.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

/// An MNIST-style folder: `n_train`/`n_test` images of 28×28, labels i % 10.
pub(crate) fn write_mnist(dir: &Path, n_train: u32, n_test: u32, gzipped: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let put = |name: &str, bytes: Vec<u8>| {
        if gzipped {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    let labels = |n: u32| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    put("train-images-idx3-ubyte", idx_images(n_train, 28, 28, 1));
    put("train-labels-idx1-ubyte", idx_labels(&labels(n_train)));
    put("t10k-images-idx3-ubyte", idx_images(n_test, 28, 28, 2));
    put("t10k-labels-idx1-ubyte", idx_labels(&labels(n_test)));
}

/// Writes `img` to `path` as PNG or JPEG (by extension).
pub(crate) fn save(img: image::DynamicImage, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

pub(crate) fn noise_rgb(w: u32, h: u32, seed: u64) -> image::RgbImage {
    let mut r = rng(seed);
    image::RgbImage::from_fn(w, h, |_, _| {
        image::Rgb([r.random(), r.random(), r.random()])
    })
}

/// CIFAR-10 records (label i % 10 for record i) as `n_train` + `n_test` binary records.
pub(crate) fn cifar_records(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut r = rng(seed);
    (0..n)
        .map(|i| {
            let mut rec = vec![(i * 7 % 10) as u8];
            rec.extend((0..3072).map(|_| r.random::<u8>()));
            rec
        })
        .collect()
}
