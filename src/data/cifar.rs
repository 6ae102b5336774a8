//! CIFAR-10 and CIFAR-100, binary versions: fixed-size records of label byte(s) then a 32×32×3
//! image in planar order (1,024 R, 1,024 G, 1,024 B bytes), converted to the crate's
//! interleaved HWC layout as they are read.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{ImageShape, Split};

pub const SHAPE: ImageShape = ImageShape { h: 32, w: 32, c: 3 };
pub const RECORD_PIXELS: usize = 1024;
/// Bytes of one image in the file (planar R, G, B).
pub const IMAGE_BYTES: usize = 3 * RECORD_PIXELS;
/// Bytes of one CIFAR-10 record: label + image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Bytes of one CIFAR-100 record: coarse label, fine label, image.
pub const RECORD100_BYTES: usize = 2 + IMAGE_BYTES;

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
/// Per-channel mean and std of the CIFAR-10 training images (the seed's normalisation):
/// the f32 values of 0.49139968, 0.48215841, 0.44653091 / 0.24703223, 0.24348513, 0.26158784,
/// the constants Flax's input pipeline (tools/peers) uses. (The green mean was one f32 step
/// off until the 18th session: every pixel's input moved by 6e-8, the first batch norm's
/// mean by 2e-6 relative; docs/notes/numerics.md.)
pub const MEAN: [f32; 3] = [0.491_399_68, 0.482_158_42, 0.446_530_9];
pub const STD: [f32; 3] = [0.247_032_23, 0.243_485_13, 0.261_587_84];

/// CIFAR-100's two label sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Labels {
    /// The 100 classes.
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

impl Labels {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fine" => Ok(Labels::Fine),
            "coarse" => Ok(Labels::Coarse),
            _ => bail!("--labels must be fine or coarse, got `{s}`"),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Labels::Fine => "fine",
            Labels::Coarse => "coarse",
        }
    }
}

/// Appends one planar 32×32×3 image to `out` in HWC order.
fn push_hwc(planar: &[u8], out: &mut Vec<u8>) {
    for p in 0..RECORD_PIXELS {
        out.extend_from_slice(&[
            planar[p],
            planar[RECORD_PIXELS + p],
            planar[2 * RECORD_PIXELS + p],
        ]);
    }
}

/// Parses records of `label_bytes` label bytes (the label used: byte `which`) and a planar
/// image; labels must be below `classes`. Errors name the file and the record.
fn parse(
    bytes: &[u8],
    name: &str,
    what: &str,
    label_bytes: usize,
    which: usize,
    classes: u32,
) -> Result<Split> {
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() {
        bail!("{name}: file is empty");
    }
    if !bytes.len().is_multiple_of(record) {
        bail!(
            "{name}: size {} is not a multiple of the {record}-byte {what} record \
             (truncated or not a {what} binary file)",
            bytes.len()
        );
    }
    let n = bytes.len() / record;
    let mut split = Split {
        shape: SHAPE,
        images: Vec::with_capacity(n * IMAGE_BYTES),
        labels: Vec::with_capacity(n),
    };
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[which] as u32;
        if label >= classes {
            bail!(
                "{name}: record {i}: label byte {label} is not a class (0-{})",
                classes - 1
            );
        }
        split.labels.push(label);
        push_hwc(&rec[label_bytes..], &mut split.images);
    }
    Ok(split)
}

/// Parses one CIFAR-10 binary file's bytes.
pub fn parse_records(bytes: &[u8], name: &str) -> Result<Split> {
    parse(bytes, name, "CIFAR-10", 1, 0, 10)
}

/// Parses one CIFAR-100 binary file's bytes with the `labels` label set.
pub fn parse_records100(bytes: &[u8], name: &str, labels: Labels) -> Result<Split> {
    let (which, classes) = match labels {
        Labels::Coarse => (0, 20),
        Labels::Fine => (1, 100),
    };
    parse(bytes, name, "CIFAR-100", 2, which, classes)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        bail!("{}: is a directory, expected a .bin file", path.display());
    }
    if !path.exists() {
        bail!(
            "{}: missing; the folder must hold every file of the data set",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads one CIFAR-10 binary file.
pub fn read_file(path: &Path) -> Result<Split> {
    parse_records(&read(path)?, &path.display().to_string())
}

/// True when `dir` holds every CIFAR-10 binary file.
pub fn is_cifar10(dir: &Path) -> bool {
    TRAIN_FILES
        .iter()
        .chain([&TEST_FILE])
        .all(|f| dir.join(f).is_file())
}

/// True when `dir` holds CIFAR-100's binary files.
pub fn is_cifar100(dir: &Path) -> bool {
    dir.join("train.bin").is_file() && dir.join("test.bin").is_file()
}

/// CIFAR-10's 50,000 training images (data_batch_1 first) and 10,000 test images.
pub fn load10(dir: &Path) -> Result<(Split, Split)> {
    let mut train = Split::empty(SHAPE);
    for f in TRAIN_FILES {
        train.append(&read_file(&dir.join(f))?);
    }
    Ok((train, read_file(&dir.join(TEST_FILE))?))
}

/// Only CIFAR-10's test images.
pub fn load10_test(dir: &Path) -> Result<Split> {
    read_file(&dir.join(TEST_FILE))
}

/// CIFAR-100's train.bin and test.bin with `labels`, and the class names (from
/// `fine_label_names.txt` / `coarse_label_names.txt` when present).
pub fn load100(dir: &Path, labels: Labels) -> Result<(Split, Split, Vec<String>)> {
    let one = |f: &str| -> Result<Split> {
        let path = dir.join(f);
        parse_records100(&read(&path)?, &path.display().to_string(), labels)
    };
    let (train, test) = (one("train.bin")?, one("test.bin")?);
    let classes = match labels {
        Labels::Fine => 100,
        Labels::Coarse => 20,
    };
    let names_file = dir.join(format!("{}_label_names.txt", labels.name()));
    let names = match std::fs::read_to_string(&names_file) {
        Ok(text) => {
            let names: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if names.len() != classes {
                bail!(
                    "{}: {} names, CIFAR-100's {} labels have {classes}",
                    names_file.display(),
                    names.len(),
                    labels.name()
                );
            }
            names
        }
        Err(_) => (0..classes).map(|i| format!("class {i}")).collect(),
    };
    Ok((train, test, names))
}
