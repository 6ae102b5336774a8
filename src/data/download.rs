//! `wgpu-cnn download`: fetch the official CIFAR-10 binary tarball, verify its md5, extract.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};

pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The folder the tarball extracts to.
pub const FOLDER: &str = "cifar-10-batches-bin";

/// Downloads `url` into `dir`, checks `md5`, extracts it there, and returns the extracted
/// `cifar-10-batches-bin` folder. The tarball is written to a temporary name and only renamed
/// into place once its checksum matches; a failed download leaves nothing behind.
pub fn download(url: &str, md5: &str, dir: &Path, progress: bool) -> Result<PathBuf> {
    let tarball = fetch(url, md5, dir, progress)?;
    extract(&tarball, dir)?;
    let out = dir.join(FOLDER);
    if !super::is_present(&out) {
        bail!(
            "{} did not contain {FOLDER}/ with the CIFAR-10 binary files",
            tarball.display()
        );
    }
    Ok(out)
}

pub const CIFAR100_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
pub const CIFAR100_MD5: &str = "03b5dce01913d631647c71ecec9e9cb8";

/// Fetches the data set `kind` into its default folder `dir` (official URLs, md5-checked):
/// CIFAR-10 and CIFAR-100 tarballs extracted next to `dir`, MNIST's four gzipped IDX files
/// (Fashion-MNIST's when `dir`'s path says fashion) into `dir`.
pub fn download_kind(kind: super::Kind, dir: &Path, progress: bool) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    match kind {
        super::Kind::Cifar10 => {
            download(URL, MD5, parent, progress)?;
        }
        super::Kind::Cifar100 => {
            let tarball = fetch(CIFAR100_URL, CIFAR100_MD5, parent, progress)?;
            extract(&tarball, parent)?;
            if !super::cifar::is_cifar100(dir) {
                bail!(
                    "{} did not contain {} with train.bin and test.bin",
                    tarball.display(),
                    dir.display()
                );
            }
        }
        super::Kind::Mnist => {
            let (base, files) = if super::mnist::is_fashion(dir) {
                super::mnist::FASHION_FILES
            } else {
                super::mnist::MNIST_FILES
            };
            for (file, md5) in files {
                fetch(&format!("{base}{file}"), md5, dir, progress)?;
            }
        }
        super::Kind::Folder => bail!(
            "{}: an image folder has no download; pass --data DIR",
            dir.display()
        ),
    }
    Ok(())
}

/// Downloads `url` into `dir` under its own name and checks `md5`; returns the file. A failed
/// download or a checksum mismatch leaves nothing behind.
pub fn fetch(url: &str, md5: &str, dir: &Path, progress: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = url
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("cifar-10-binary.tar.gz");
    let tarball = dir.join(name);
    let partial = dir.join(format!("{name}.part"));
    let response = ureq::get(url)
        .call()
        .with_context(|| format!("download of {url} failed"))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bar = if progress {
        indicatif::ProgressBar::new(total.unwrap_or(0))
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reader = response.into_body().into_reader();
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let result: Result<()> = (|| {
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("download of {url} failed"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", partial.display()))?;
            bar.inc(n as u64);
        }
        file.sync_all()?;
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != md5 {
        let _ = std::fs::remove_file(&partial);
        bail!("checksum mismatch for {url}: md5 {got}, expected {md5}; the download is corrupt or not the expected file");
    }
    std::fs::rename(&partial, &tarball)?;
    Ok(tarball)
}

/// Extracts a .tar.gz into `dir` (entries stay inside `dir`).
pub fn extract(tarball: &Path, dir: &Path) -> Result<()> {
    let f = std::fs::File::open(tarball)
        .with_context(|| format!("cannot open {}", tarball.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    archive.unpack(dir).with_context(|| {
        format!(
            "cannot extract {} into {}",
            tarball.display(),
            dir.display()
        )
    })
}
