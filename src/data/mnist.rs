//! MNIST and Fashion-MNIST: the IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-…`; also gzipped as distributed, and with the `.idx3-ubyte` spelling some mirrors use).
//! Images are unsigned bytes of any rows × columns, one channel.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{ImageShape, Split};

pub const FASHION_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// (base URL, [(file, md5)]) of the gzipped files: MNIST from torchvision's mirror, Fashion-MNIST
/// from its repository.
pub const MNIST_FILES: (&str, [(&str, &str); 4]) = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    [
        (
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ],
);
pub const FASHION_FILES: (&str, [(&str, &str); 4]) = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    [
        (
            "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ],
);

/// The file of one IDX set in `dir`: `{split}-{kind}-idx{d}-ubyte`, or with a dot before
/// `idx`, each optionally `.gz`.
pub fn find(dir: &Path, split: &str, kind: &str, dims: u32) -> Option<PathBuf> {
    for sep in ['-', '.'] {
        for gz in ["", ".gz"] {
            let p = dir.join(format!("{split}-{kind}{sep}idx{dims}-ubyte{gz}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// True when `dir` holds MNIST-style training images.
pub fn is_mnist(dir: &Path) -> bool {
    find(dir, "train", "images", 3).is_some()
}

/// A file's bytes, gunzipped when it ends in `.gz`.
fn read(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| anyhow::anyhow!("{}: not a readable gzip file ({e})", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses IDX image bytes: magic 0x00000803 (unsigned bytes, 3 dimensions), then n, rows,
/// columns and exactly n·rows·columns bytes.
pub fn parse_images(bytes: &[u8], name: &str) -> Result<Split> {
    if bytes.len() < 16 || be32(bytes, 0) != 0x0803 {
        bail!(
            "{name}: not an IDX image file (magic number {}, expected 0x00000803: unsigned bytes, 3 dimensions)",
            if bytes.len() >= 4 {
                format!("0x{:08x}", be32(bytes, 0))
            } else {
                "missing".into()
            }
        );
    }
    let (n, rows, cols) = (be32(bytes, 4), be32(bytes, 8), be32(bytes, 12));
    if rows == 0 || cols == 0 {
        bail!("{name}: the header gives {rows}x{cols} images");
    }
    let want = n as u64 * rows as u64 * cols as u64;
    if (bytes.len() - 16) as u64 != want {
        bail!(
            "{name}: the header promises {n} images of {rows}x{cols} ({want} bytes), the file holds {} bytes after it",
            bytes.len() - 16
        );
    }
    Ok(Split {
        shape: ImageShape {
            h: rows,
            w: cols,
            c: 1,
        },
        images: bytes[16..].to_vec(),
        labels: Vec::new(),
    })
}

/// Parses IDX label bytes: magic 0x00000801, n, then n bytes.
pub fn parse_labels(bytes: &[u8], name: &str) -> Result<Vec<u32>> {
    if bytes.len() < 8 || be32(bytes, 0) != 0x0801 {
        bail!(
            "{name}: not an IDX label file (magic number {}, expected 0x00000801: unsigned bytes, 1 dimension)",
            if bytes.len() >= 4 {
                format!("0x{:08x}", be32(bytes, 0))
            } else {
                "missing".into()
            }
        );
    }
    let n = be32(bytes, 4) as usize;
    if bytes.len() - 8 != n {
        bail!(
            "{name}: the header promises {n} labels, the file holds {}",
            bytes.len() - 8
        );
    }
    Ok(bytes[8..].iter().map(|&b| b as u32).collect())
}

fn load_split(dir: &Path, split: &str) -> Result<Split> {
    let images = find(dir, split, "images", 3)
        .with_context(|| format!("{}: no {split}-images-idx3-ubyte[.gz] file", dir.display()))?;
    let labels = find(dir, split, "labels", 1)
        .with_context(|| format!("{}: no {split}-labels-idx1-ubyte[.gz] file", dir.display()))?;
    let mut s = parse_images(&read(&images)?, &images.display().to_string())?;
    s.labels = parse_labels(&read(&labels)?, &labels.display().to_string())?;
    let n = s.images.len() / s.shape.bytes();
    if s.labels.len() != n {
        bail!(
            "{} holds {} labels but {} holds {n} images",
            labels.display(),
            s.labels.len(),
            images.display()
        );
    }
    Ok(s)
}

/// Whether `dir` holds Fashion-MNIST: its official gzipped training labels (by checksum,
/// wherever they are), or a path component that says fashion (for unpacked files).
pub fn is_fashion(dir: &Path) -> bool {
    let (_, files) = FASHION_FILES;
    let (labels, md5) = files[1];
    if has_file_with_md5(&dir.join(labels), md5) {
        return true;
    }
    let full = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    full.components().any(|c| {
        c.as_os_str()
            .to_string_lossy()
            .to_lowercase()
            .contains("fashion")
    })
}

/// Whether `path` is a file whose MD5 is `md5` (lowercase hex).
fn has_file_with_md5(path: &Path, md5: &str) -> bool {
    use md5::{Digest, Md5};
    std::fs::read(path).is_ok_and(|bytes| {
        Md5::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            == md5
    })
}

/// Training and test splits, the class count (the largest label + 1, at least 10) and the
/// names: Fashion-MNIST's when the files are Fashion-MNIST's ([`is_fashion`]), digits otherwise.
pub fn load(dir: &Path) -> Result<(Split, Split, Vec<String>, &'static str)> {
    let train = load_split(dir, "train")?;
    let test = load_split(dir, "t10k")?;
    if test.shape != train.shape {
        bail!(
            "{}: training images are {} but test images are {}",
            dir.display(),
            train.shape.describe(),
            test.shape.describe()
        );
    }
    let classes = train
        .labels
        .iter()
        .chain(&test.labels)
        .max()
        .map_or(10, |&m| (m + 1).max(10)) as usize;
    let fashion = classes == 10 && is_fashion(dir);
    let names = if fashion {
        FASHION_NAMES.iter().map(|s| s.to_string()).collect()
    } else if classes == 10 {
        (0..10).map(|i| i.to_string()).collect()
    } else {
        (0..classes).map(|i| format!("class {i}")).collect()
    };
    let name = if fashion { "Fashion-MNIST" } else { "MNIST" };
    Ok((train, test, names, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_recognised_by_its_md5() {
        let dir = std::env::temp_dir().join(format!("wgpu-cnn-md5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("labels.gz");
        std::fs::write(&f, b"abc").unwrap();
        // RFC 1321's test vector.
        assert!(has_file_with_md5(&f, "900150983cd24fb0d6963f7d28e17f72"));
        assert!(!has_file_with_md5(&f, "900150983cd24fb0d6963f7d28e17f73"));
        assert!(!has_file_with_md5(
            &dir.join("absent"),
            "900150983cd24fb0d6963f7d28e17f72"
        ));
        // Files that are not Fashion-MNIST's, in a folder whose path does not say fashion.
        std::fs::write(dir.join(FASHION_FILES.1[1].0), b"not the labels").unwrap();
        assert!(!is_fashion(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
