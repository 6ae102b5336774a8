//! Image folders as torchvision's `ImageFolder`: one subfolder per class (sorted names → label
//! indices), images found recursively inside it in sorted path order, hidden files ignored.
//! With `train/` (and optionally `val/`, `test/`) subfolders, each is such a folder and the
//! class names come from `train/`. PNG and JPEG of any size and colour type are decoded on
//! every core, converted to the model's channels (RGB, or luma for one channel) and resized
//! once (bilinear, skipped when the size already matches). The decoded bytes are cached in one
//! file next to the folder (or in `--cache DIR`), keyed by every file's path, size and
//! modification time, so a second run starts in seconds and a changed file invalidates it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use rayon::prelude::*;

use super::{ImageShape, Split};

/// The subsets of a folder: `train`/`val`/`test` when `train/` exists, else `all`.
pub struct Listing {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// (subset name, files with labels) in load order.
    pub subsets: Vec<(String, Vec<(PathBuf, u32)>)>,
}

impl Listing {
    pub fn has(&self, name: &str) -> bool {
        self.subsets.iter().any(|(n, _)| n == name)
    }
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// The extensions torchvision's ImageFolder takes for images (case-insensitive). Other files in
/// a class folder (notes.txt, Thumbs.db) are skipped and counted, as ImageFolder skips them; a
/// file with one of these names that does not decode is still an error (or, with
/// `--skip-bad-images`, skipped and counted).
const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Every non-hidden image file under `dir` (by extension), recursively, in sorted path order;
/// other files go to `other`.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>, other: &mut Vec<PathBuf>) -> Result<()> {
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            files_under(&p, out, other)?;
        } else if is_image_name(&p) {
            out.push(p);
        } else {
            other.push(p);
        }
    }
    Ok(())
}

/// Class folder names of `dir` (sorted).
fn class_dirs(dir: &Path) -> Result<Vec<String>> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// Lists `root`: which layout, the classes, and every file with its label.
pub fn list(root: &Path) -> Result<Listing> {
    if !root.is_dir() {
        bail!("{}: not a folder", root.display());
    }
    let split_layout = root.join("train").is_dir();
    let base = if split_layout {
        root.join("train")
    } else {
        root.to_path_buf()
    };
    let classes = class_dirs(&base)?;
    if classes.is_empty() {
        bail!(
            "{}: holds no class folders (an image folder has one subfolder of images per class)",
            base.display()
        );
    }
    // A class without images is an error in the training images; val/ and test/ may lack one.
    let mut other = Vec::new();
    let mut subset = |dir: &Path, need_all: bool| -> Result<Vec<(PathBuf, u32)>> {
        let mut out = Vec::new();
        for name in class_dirs(dir)? {
            let Some(label) = classes.iter().position(|c| *c == name) else {
                bail!(
                    "{}: class folder `{name}` is not one of the training classes in {}",
                    dir.join(&name).display(),
                    base.display()
                );
            };
            let mut files = Vec::new();
            files_under(&dir.join(&name), &mut files, &mut other)?;
            if files.is_empty() && need_all {
                bail!(
                    "{}: class folder holds no images",
                    dir.join(&name).display()
                );
            }
            out.extend(files.into_iter().map(|f| (f, label as u32)));
        }
        Ok(out)
    };
    let mut subsets = Vec::new();
    if split_layout {
        for name in ["train", "val", "test"] {
            if root.join(name).is_dir() {
                subsets.push((name.to_string(), subset(&root.join(name), name == "train")?));
            }
        }
    } else {
        subsets.push(("all".to_string(), subset(root, true)?));
    }
    if let Some(first) = other.first() {
        use std::io::Write as _;
        let what = match other.len() {
            1 => "1 file that is not an image (by its extension):".to_string(),
            n => format!("{n} files that are not images (by their extensions), e.g."),
        };
        let _ = writeln!(
            std::io::stderr(),
            "note: {}: skipped {what} {}",
            root.display(),
            first.display()
        );
    }
    Ok(Listing {
        root: root.to_path_buf(),
        classes,
        subsets,
    })
}

/// Decodes one image to `shape` (channels converted, resized when the size differs).
pub fn decode(path: &Path, shape: ImageShape) -> Result<Vec<u8>> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .map_err(|e| {
            // The decoder's message may span lines (a truncated JPEG's does): one line.
            let why = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            anyhow::anyhow!("{}: not a readable image ({why})", path.display())
        })?;
    if img.width() == 0 || img.height() == 0 {
        bail!("{}: image has zero size", path.display());
    }
    let (w, h) = (shape.w, shape.h);
    let resize = img.width() != w || img.height() != h;
    let filter = image::imageops::FilterType::Triangle;
    Ok(match shape.c {
        1 => {
            let g = img.to_luma8();
            if resize {
                image::imageops::resize(&g, w, h, filter).into_raw()
            } else {
                g.into_raw()
            }
        }
        3 => {
            let rgb = img.to_rgb8();
            if resize {
                image::imageops::resize(&rgb, w, h, filter).into_raw()
            } else {
                rgb.into_raw()
            }
        }
        c => bail!("images with {c} channels are not supported (1 or 3)"),
    })
}

/// What decides a cache's validity: every file's path, size and modification time, the
/// target shape and the cache format.
fn fingerprint(listing: &Listing, shape: ImageShape) -> String {
    let mut h = Md5::new();
    h.update(format!("wgpu-cnn folder cache 1 {}\n", shape.describe()));
    for (name, files) in &listing.subsets {
        for (f, label) in files {
            let meta = std::fs::metadata(f).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            h.update(format!(
                "{name}\t{label}\t{}\t{size}\t{mtime}\n",
                f.display()
            ));
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache file of `root` at `shape`: next to the folder, or in `cache_dir`.
pub fn cache_path(root: &Path, shape: ImageShape, cache_dir: Option<&Path>) -> PathBuf {
    let full = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "images".into());
    let file = format!("{name}.{}.wgpu-cnn-cache", shape.describe());
    match cache_dir {
        Some(d) => d.join(file),
        None => full.parent().unwrap_or(Path::new(".")).join(file),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheHeader {
    fingerprint: String,
    shape: ImageShape,
    /// (subset, images) in file order.
    subsets: Vec<(String, usize)>,
    skipped: Vec<String>,
}

const MAGIC: &[u8] = b"wgpu-cnn image cache 1\n";

fn read_cache(path: &Path, fp: &str) -> Option<(CacheHeader, Vec<Split>)> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let header: CacheHeader = serde_json::from_slice(&rest[..nl]).ok()?;
    if header.fingerprint != fp {
        return None;
    }
    let mut at = nl + 1;
    let mut splits = Vec::new();
    for (_, n) in &header.subsets {
        let lb = n * 4;
        let ib = n * header.shape.bytes();
        let labels = rest.get(at..at + lb)?;
        let images = rest.get(at + lb..at + lb + ib)?;
        at += lb + ib;
        splits.push(Split {
            shape: header.shape,
            labels: labels
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            images: images.to_vec(),
        });
    }
    (at == rest.len()).then_some((header, splits))
}

fn write_cache(path: &Path, header: &CacheHeader, splits: &[Split]) -> Result<()> {
    // `--cache DIR` need not exist yet.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    serde_json::to_writer(&mut out, header)?;
    out.push(b'\n');
    for s in splits {
        for l in &s.labels {
            out.write_all(&l.to_le_bytes())?;
        }
        out.extend_from_slice(&s.images);
    }
    crate::io::write_atomic(path, &out)
}

/// What loading a folder gives: the subsets (as `Listing::subsets`), the class names, and the
/// files skipped as unreadable.
pub struct Loaded {
    pub subsets: Vec<(String, Split)>,
    pub classes: Vec<String>,
    pub skipped: Vec<String>,
    pub from_cache: bool,
}

/// Loads `root` at `shape`, from the cache when it is valid. Unreadable files are an error
/// naming the file, or with `skip_bad` are left out and reported.
pub fn load(
    root: &Path,
    shape: ImageShape,
    cache_dir: Option<&Path>,
    skip_bad: bool,
    progress: bool,
) -> Result<Loaded> {
    let listing = list(root)?;
    let fp = fingerprint(&listing, shape);
    let cache = cache_path(root, shape, cache_dir);
    if let Some((header, splits)) = read_cache(&cache, &fp) {
        if !skip_bad {
            if let Some(f) = header.skipped.first() {
                bail!(
                    "{f}: not a readable image ({} such files; --skip-bad-images leaves them out)",
                    header.skipped.len()
                );
            }
        }
        return Ok(Loaded {
            subsets: header
                .subsets
                .iter()
                .map(|(n, _)| n.clone())
                .zip(splits)
                .collect(),
            classes: listing.classes,
            skipped: header.skipped,
            from_cache: true,
        });
    }
    let total: usize = listing.subsets.iter().map(|(_, f)| f.len()).sum();
    let bar = if progress {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "decoding images {bar:40} {pos}/{len}, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = AtomicUsize::new(0);
    let mut subsets = Vec::new();
    let mut skipped = Vec::new();
    for (name, files) in &listing.subsets {
        let decoded: Vec<Result<Vec<u8>>> = files
            .par_iter()
            .map(|(f, _)| {
                let r = decode(f, shape);
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(64) || n == total {
                    bar.set_position(n as u64);
                }
                r
            })
            .collect();
        let mut split = Split::empty(shape);
        let mut per_class = BTreeSet::new();
        for ((f, label), r) in files.iter().zip(decoded) {
            match r {
                Ok(bytes) => {
                    split.images.extend_from_slice(&bytes);
                    split.labels.push(*label);
                    per_class.insert(*label);
                }
                Err(_) if skip_bad => skipped.push(f.display().to_string()),
                Err(e) => {
                    bar.finish_and_clear();
                    bail!("{e:#} (--skip-bad-images leaves files that are not images out)");
                }
            }
        }
        for (label, class) in listing.classes.iter().enumerate() {
            let had = files.iter().any(|(_, l)| *l == label as u32);
            if had && !per_class.contains(&(label as u32)) {
                bail!(
                    "{}: class `{class}` has no readable images in `{name}`",
                    root.display()
                );
            }
        }
        subsets.push((name.clone(), split));
    }
    bar.finish_and_clear();
    let header = CacheHeader {
        fingerprint: fp,
        shape,
        subsets: subsets.iter().map(|(n, s)| (n.clone(), s.len())).collect(),
        skipped: skipped.clone(),
    };
    let splits: Vec<Split> = subsets.iter().map(|(_, s)| s.clone()).collect();
    if let Err(e) = write_cache(&cache, &header, &splits) {
        // A closed stderr must not stop a run over a warning.
        let _ = writeln!(
            std::io::stderr(),
            "warning: cannot write the image cache {}: {e:#}",
            cache.display()
        );
    }
    Ok(Loaded {
        subsets,
        classes: listing.classes,
        skipped,
        from_cache: false,
    })
}
