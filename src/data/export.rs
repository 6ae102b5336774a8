//! `wgpu-cnn export`: a loaded data set written out as an image folder (PNG files,
//! `train/`, `val/` when the data set has one, `test/`, one subfolder per class) or as CIFAR-10
//! binary files (32×32×3 images, at most 10 classes), in the loader's order. Used to look at a
//! data set, to hand it to another tool, and to show that the loaders agree: CIFAR-10 →
//! folder → CIFAR-10 binary gives back the same records.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::{Dataset, Split};

/// Folder names safe on every file system for `classes`: the names with path separators and
/// other troublesome characters replaced, unique.
fn folder_names(classes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, c) in classes.iter().enumerate() {
        let mut n: String = c
            .chars()
            .map(|ch| {
                if ch.is_alphanumeric() || "-_ .".contains(ch) {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        if n.trim().is_empty() || n.starts_with('.') || out.contains(&n) {
            n = format!("{i:03}_{n}");
        }
        out.push(n);
    }
    out
}

fn write_split_png(split: &Split, names: &[String], dir: &Path) -> Result<()> {
    let mut present: Vec<u32> = split.labels.clone();
    present.sort_unstable();
    present.dedup();
    for &l in &present {
        let d = dir.join(&names[l as usize]);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let s = split.shape;
    (0..split.len()).into_par_iter().try_for_each(|i| {
        let path = dir
            .join(&names[split.labels[i] as usize])
            .join(format!("{i:06}.png"));
        let img = split.image(i).to_vec();
        let res = match s.c {
            1 => image::GrayImage::from_raw(s.w, s.h, img).map(|m| m.save(&path)),
            3 => image::RgbImage::from_raw(s.w, s.h, img).map(|m| m.save(&path)),
            c => bail!("cannot write {c}-channel images as PNG"),
        };
        res.context("image buffer size")?
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Writes `ds` as an image folder under `out` (which must not hold one already).
pub fn to_folder(ds: &Dataset, out: &Path) -> Result<()> {
    let names = folder_names(&ds.classes);
    write_split_png(&ds.train, &names, &out.join("train"))?;
    if let Some(v) = &ds.val {
        write_split_png(v, &names, &out.join("val"))?;
    }
    write_split_png(&ds.test, &names, &out.join("test"))
}

/// Writes `ds` as CIFAR-10 binary files under `out`: the training images over five
/// `data_batch_*.bin` files in order (a data set's own validation images appended), the test
/// images as `test_batch.bin`, class names in `batches.meta.txt`.
pub fn to_cifar10(ds: &Dataset, out: &Path) -> Result<()> {
    if ds.shape() != super::cifar::SHAPE {
        bail!(
            "CIFAR-10 binary files hold 32x32x3 images, the data set's are {}",
            ds.shape().describe()
        );
    }
    if ds.classes.len() > 10 {
        bail!(
            "CIFAR-10 binary files hold labels 0-9, the data set has {} classes",
            ds.classes.len()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let records = |s: &Split, range: std::ops::Range<usize>| -> Vec<u8> {
        let mut v = Vec::with_capacity(range.len() * super::cifar::RECORD_BYTES);
        for i in range {
            v.push(s.labels[i] as u8);
            let img = s.image(i);
            for c in 0..3 {
                v.extend(img.iter().skip(c).step_by(3));
            }
        }
        v
    };
    let mut train = ds.train.clone();
    if let Some(v) = &ds.val {
        train.append(v);
    }
    let n = train.len();
    for (k, f) in super::cifar::TRAIN_FILES.iter().enumerate() {
        let (a, b) = (k * n / 5, (k + 1) * n / 5);
        crate::io::write_atomic(&out.join(f), &records(&train, a..b))?;
    }
    crate::io::write_atomic(
        &out.join(super::cifar::TEST_FILE),
        &records(&ds.test, 0..ds.test.len()),
    )?;
    crate::io::write_atomic(
        &out.join("batches.meta.txt"),
        (ds.classes.join("\n") + "\n").as_bytes(),
    )
}
