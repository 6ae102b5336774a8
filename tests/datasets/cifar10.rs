//! CIFAR-10 records as image folders: a folder trains like the binary loader, and `export`
//! round-trips between the two.

use std::path::Path;

use crate::common::{cli, temp_dir};
use crate::{cifar_records, save, write_mnist};
use wgpu_cnn::data::{self, DataOptions, ImageShape};

/// Writes `records` (already in folder order) as PNGs `<sub>/<class>/<nnnnn>.png`.
fn write_pngs(root: &Path, sub: &str, records: &[Vec<u8>]) {
    for (i, rec) in records.iter().enumerate() {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let p = (y * 32 + x) as usize;
            image::Rgb([rec[1 + p], rec[1 + 1024 + p], rec[1 + 2048 + p]])
        });
        let class = data::CLASS_NAMES[rec[0] as usize];
        save(
            image::DynamicImage::ImageRgb8(img),
            &root.join(format!("{sub}/{class}/{i:05}.png")),
        );
    }
}

/// Binary records and an image folder with the same images in the same order (the folder's
/// order: by class, then file name) train to bit-identical weights and equal test results.
#[test]
fn image_folder_trains_like_the_binary_loader() {
    let root = temp_dir("folder-vs-bin");
    let by_class = |mut v: Vec<Vec<u8>>| {
        v.sort_by_key(|r| r[0]);
        v
    };
    let train = by_class(cifar_records(100, 3));
    let test = by_class(cifar_records(30, 4));
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (k, f) in data::cifar::TRAIN_FILES.iter().enumerate() {
        std::fs::write(bin.join(f), train[k * 20..(k + 1) * 20].concat()).unwrap();
    }
    std::fs::write(bin.join(data::cifar::TEST_FILE), test.concat()).unwrap();
    let folder = root.join("png");
    write_pngs(&folder, "train", &train);
    write_pngs(&folder, "test", &test);

    let a = data::load(&bin, &DataOptions::default()).unwrap();
    let b = data::load(&folder, &DataOptions::default()).unwrap();
    assert_eq!(
        a.train.images, b.train.images,
        "the same images in the same order"
    );
    assert_eq!(a.train.labels, b.train.labels);
    assert_eq!(a.test.images, b.test.images);
    assert_eq!(a.classes, b.classes);

    let mut results = Vec::new();
    for (name, dir) in [("bin", &bin), ("png", &folder)] {
        let out = root.join(format!("run-{name}"));
        let (code, stdout, err) = cli(&[
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--val-size",
            "20",
            "--normalize",
            "dataset",
            "--augment",
            "crop:4,flip",
        ]);
        assert_eq!(code, 0, "{name}: {stdout}\n{err}");
        let ck = wgpu_cnn::checkpoint::load(&out.join("last.safetensors")).unwrap();
        let test: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("test.json")).unwrap()).unwrap();
        results.push((
            ck.params,
            ck.metadata.get("normalization").cloned(),
            test["accuracy"].clone(),
            test["confusion"].clone(),
        ));
    }
    assert!(results[0].1.is_some());
    assert_eq!(results[0], results[1], "binary and folder runs differ");
    // A quick test on the first images of a test split in class order says what it holds.
    let classes = |n: usize| {
        test[..n]
            .iter()
            .map(|r| r[0])
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    // The first 4 sorted records miss classes; the shortest prefix that holds them all does not.
    let all = classes(test.len());
    let covering = (1..=test.len()).find(|&n| classes(n) == all).unwrap();
    assert!(classes(4) < all && covering < test.len(), "{covering}");
    for n in [4, covering] {
        let out = root.join(format!("run-limit{n}"));
        let limit = n.to_string();
        let (code, stdout, err) = cli(&[
            "train",
            "--data",
            folder.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--test-limit",
            &limit,
        ]);
        assert_eq!(code, 0, "{stdout}\n{err}");
        let some = classes(n);
        assert_eq!(
            stdout.contains(&format!(
                "note: --test-limit {n} tests the first {n} test images, which hold {some} of the test split's {all} classes"
            )),
            some < all,
            "{stdout}"
        );
        assert_eq!(
            stdout.contains("note: --test-limit"),
            some < all,
            "{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// `wgpu-cnn export`: CIFAR-10 records → image folder → CIFAR-10 binary files give back the
/// same records (in the folder's order), and MNIST exports as one-channel PNGs.
#[test]
fn export_round_trips() {
    let root = temp_dir("export");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let recs = cifar_records(60, 8);
    for (k, f) in data::cifar::TRAIN_FILES.iter().enumerate() {
        std::fs::write(bin.join(f), recs[k * 10..(k + 1) * 10].concat()).unwrap();
    }
    std::fs::write(bin.join(data::cifar::TEST_FILE), recs[50..].concat()).unwrap();
    let png = root.join("png");
    let back = root.join("back");
    for (args, dir) in [
        (vec!["--data", bin.to_str().unwrap()], &png),
        (
            vec!["--data", png.to_str().unwrap(), "--format", "cifar10"],
            &back,
        ),
    ] {
        let mut a = vec!["export", "--out", dir.to_str().unwrap()];
        a.extend(args);
        let (code, out, err) = cli(&a);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let a = data::load(&bin, &DataOptions::default()).unwrap();
    let b = data::load(&back, &DataOptions::default()).unwrap();
    let sorted = |s: &data::Split| {
        let mut v: Vec<(u32, Vec<u8>)> = (0..s.len())
            .map(|i| (s.labels[i], s.image(i).to_vec()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&a.train), sorted(&b.train));
    assert_eq!(sorted(&a.test), sorted(&b.test));
    // The folder's order: by class.
    assert!(b.train.labels.windows(2).all(|w| w[0] <= w[1]));
    // Exporting over an existing folder is refused; MNIST writes grayscale PNGs.
    let (code, _, err) = cli(&[
        "export",
        "--data",
        bin.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let mnist = root.join("mnist");
    write_mnist(&mnist, 12, 4, false);
    let mpng = root.join("mpng");
    let (code, out, err) = cli(&[
        "export",
        "--data",
        mnist.to_str().unwrap(),
        "--out",
        mpng.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let m = data::load(
        &mpng,
        &DataOptions {
            shape: ImageShape { h: 28, w: 28, c: 1 },
            ..Default::default()
        },
    )
    .unwrap();
    let orig = data::load(&mnist, &DataOptions::default()).unwrap();
    assert_eq!(sorted(&m.test), sorted(&orig.test));
    let _ = std::fs::remove_dir_all(&root);
}
