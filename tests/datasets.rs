//! The data-set readers on small files the tests write — CIFAR-100, MNIST IDX (plain and
//! gzipped), image folders (mixed sizes, grayscale, RGBA, JPEG and PNG; the cache) — their
//! errors through the CLI, and an image folder made from CIFAR-10 records training to the same
//! weights as the binary loader.

mod common;

use std::io::Write;
use std::path::Path;

use common::{assert_error, cli, rng, temp_dir};
use rand::Rng;
use wgpu_cnn::data::{self, DataOptions, ImageShape, Kind, Labels};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: u32, rows: u32, cols: u32, seed: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0803u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    let mut r = rng(seed);
    v.extend((0..n * rows * cols).map(|_| r.random::<u8>()));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0801u32, labels.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

/// An MNIST-style folder: `n_train`/`n_test` images of 28×28, labels i % 10.
fn write_mnist(dir: &Path, n_train: u32, n_test: u32, gzipped: bool) {
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

/// (what, how the files are damaged, what the error says).
type Damage = (&'static str, Box<dyn Fn(&Path)>, &'static str);

#[test]
fn mnist_idx_files_plain_and_gzipped() {
    let root = temp_dir("mnist");
    for gzipped in [false, true] {
        let dir = root.join(if gzipped { "gz" } else { "plain" });
        write_mnist(&dir, 30, 12, gzipped);
        assert_eq!(data::detect(&dir).unwrap(), Kind::Mnist);
        let ds = data::load(&dir, &DataOptions::default()).unwrap();
        assert_eq!(ds.shape(), ImageShape { h: 28, w: 28, c: 1 });
        assert_eq!((ds.train.len(), ds.test.len()), (30, 12));
        assert_eq!(ds.train.labels[13], 3);
        assert_eq!(
            ds.classes,
            (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(ds.name, "MNIST");
        let raw = idx_images(30, 28, 28, 1);
        assert_eq!(ds.train.image(7), &raw[16 + 7 * 784..16 + 8 * 784]);
    }
    // Fashion-MNIST: recognised from the folder's name, its class names.
    let fashion = root.join("fashion-mnist");
    write_mnist(&fashion, 20, 10, true);
    let ds = data::load(&fashion, &DataOptions::default()).unwrap();
    assert_eq!(ds.name, "Fashion-MNIST");
    assert_eq!(ds.classes[9], "Ankle boot");

    // Broken files: one clear error each.
    let bad = root.join("bad");
    let cases: Vec<Damage> = vec![
        (
            "wrong magic",
            Box::new(|d: &Path| {
                let mut b = idx_images(20, 28, 28, 1);
                b[3] = 0x01;
                std::fs::write(d.join("train-images-idx3-ubyte"), b).unwrap();
            }),
            "magic number 0x00000801",
        ),
        (
            "sizes disagree with the header",
            Box::new(|d: &Path| {
                let mut b = idx_images(20, 28, 28, 1);
                b.truncate(b.len() - 5);
                std::fs::write(d.join("train-images-idx3-ubyte"), b).unwrap();
            }),
            "the header promises 20 images of 28x28",
        ),
        (
            "labels and images of different lengths",
            Box::new(|d: &Path| {
                std::fs::write(d.join("train-labels-idx1-ubyte"), idx_labels(&[1; 19])).unwrap();
            }),
            "holds 19 labels but",
        ),
        (
            "not gzip",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
                std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), b"not gzip").unwrap();
            }),
            "not a readable gzip file",
        ),
    ];
    for (what, damage, says) in cases {
        let _ = std::fs::remove_dir_all(&bad);
        write_mnist(&bad, 20, 10, false);
        damage(&bad);
        let err = format!(
            "{:#}",
            data::load(&bad, &DataOptions::default()).unwrap_err()
        );
        assert!(err.contains(says), "{what}: {err}");
        let out = root.join("run");
        assert_error(
            &[
                "train",
                "--data",
                bad.to_str().unwrap(),
                "--model",
                "lenet5",
                "--out",
                out.to_str().unwrap(),
            ],
            says,
        );
        assert!(!out.exists(), "{what}: a failed run left {out:?} behind");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// CIFAR-100 records: coarse label i % 20, fine label i % 100, random image.
fn cifar100_records(n: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut v = Vec::new();
    for i in 0..n {
        v.push((i % 20) as u8);
        v.push((i % 100) as u8);
        v.extend((0..3072).map(|_| r.random::<u8>()));
    }
    v
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let dir = temp_dir("cifar100");
    std::fs::write(dir.join("train.bin"), cifar100_records(130, 1)).unwrap();
    std::fs::write(dir.join("test.bin"), cifar100_records(20, 2)).unwrap();
    assert_eq!(data::detect(&dir).unwrap(), Kind::Cifar100);
    let ds = data::load(&dir, &DataOptions::default()).unwrap();
    assert_eq!(
        (ds.train.len(), ds.test.len(), ds.classes.len()),
        (130, 20, 100)
    );
    assert_eq!(ds.train.labels[117], 17);
    assert_eq!(ds.classes[5], "class 5");
    let names: Vec<String> = (0..20).map(|i| format!("super{i}")).collect();
    std::fs::write(dir.join("coarse_label_names.txt"), names.join("\n") + "\n").unwrap();
    let coarse = DataOptions {
        labels: Labels::Coarse,
        ..Default::default()
    };
    let ds = data::load(&dir, &coarse).unwrap();
    assert_eq!(ds.classes.len(), 20);
    assert_eq!(ds.train.labels[117], 117 % 20);
    assert_eq!(ds.classes[3], "super3");
    // Interleaved HWC from the planar record.
    let rec = &cifar100_records(130, 1)[3 * 3074..4 * 3074];
    assert_eq!(ds.train.image(3)[3 * 10 + 2], rec[2 + 2 * 1024 + 10]);

    // `--labels` reaches the loader through the CLI: the seed model's 10 classes against the
    // 20 superclasses. Coarse labels of a data set other than CIFAR-100 are refused.
    let run = dir.join("run");
    let train = |data: &Path, labels: &str| {
        vec![
            "train".to_string(),
            "--data".into(),
            data.to_str().unwrap().into(),
            "--out".into(),
            run.to_str().unwrap().into(),
            "--labels".into(),
            labels.into(),
        ]
    };
    let args = train(&dir, "coarse");
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_error(&a, "the model has 10 classes, the data has 20");
    assert!(!run.exists());
    let ten = temp_dir("cifar10-labels");
    for i in 1..=5 {
        std::fs::write(ten.join(format!("data_batch_{i}.bin")), vec![0u8; 3073 * 2]).unwrap();
    }
    std::fs::write(ten.join("test_batch.bin"), vec![0u8; 3073]).unwrap();
    let args = train(&ten, "coarse");
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_error(&a, "only CIFAR-100 has coarse labels");
    assert!(!run.exists());
    let _ = std::fs::remove_dir_all(&ten);

    // A file of the wrong size.
    std::fs::write(dir.join("test.bin"), &cifar100_records(2, 2)[..5000]).unwrap();
    let err = format!(
        "{:#}",
        data::load(&dir, &DataOptions::default()).unwrap_err()
    );
    assert!(
        err.contains("not a multiple of the 3074-byte CIFAR-100 record"),
        "{err}"
    );
    assert_error(
        &[
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--out",
            dir.join("run").to_str().unwrap(),
        ],
        "3074-byte CIFAR-100 record",
    );
    assert!(!run.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `img` to `path` as PNG or JPEG (by extension).
fn save(img: image::DynamicImage, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

fn noise_rgb(w: u32, h: u32, seed: u64) -> image::RgbImage {
    let mut r = rng(seed);
    image::RgbImage::from_fn(w, h, |_, _| {
        image::Rgb([r.random(), r.random(), r.random()])
    })
}

/// A folder of 3 classes with mixed sizes and colour types, PNG and JPEG.
fn mixed_folder(root: &Path) {
    for (k, class) in ["cat", "dog", "emu"].iter().enumerate() {
        for i in 0..6u64 {
            let seed = k as u64 * 100 + i;
            let dir = root.join(class);
            let img = noise_rgb(20 + i as u32 * 3, 17 + k as u32, seed);
            match i % 4 {
                0 => save(
                    image::DynamicImage::ImageRgb8(img),
                    &dir.join(format!("{i}.png")),
                ),
                1 => save(
                    image::DynamicImage::ImageRgb8(img).grayscale(),
                    &dir.join(format!("{i}.png")),
                ),
                2 => save(
                    image::DynamicImage::ImageRgba8(image::DynamicImage::ImageRgb8(img).to_rgba8()),
                    &dir.join(format!("{i}.png")),
                ),
                _ => save(
                    image::DynamicImage::ImageRgb8(img),
                    &dir.join(format!("sub/{i}.jpg")),
                ),
            }
        }
    }
}

#[test]
fn image_folders_of_mixed_images() {
    let root = temp_dir("folder-mixed");
    let imgs = root.join("pets");
    mixed_folder(&imgs);
    std::fs::write(imgs.join("cat/.DS_Store"), b"hidden files are ignored").unwrap();
    assert_eq!(data::detect(&imgs).unwrap(), Kind::Folder);
    let shape = ImageShape { h: 12, w: 10, c: 3 };
    let opts = DataOptions {
        shape,
        test_size: Some(data::SplitSize::Count(4)),
        ..Default::default()
    };
    let ds = data::load(&imgs, &opts).unwrap();
    assert_eq!(ds.classes, ["cat", "dog", "emu"]);
    assert_eq!((ds.train.len(), ds.test.len()), (14, 4));
    assert_eq!(ds.train.images.len(), 14 * shape.bytes());
    // The same listing, the same seed: the same split; another seed, another.
    let again = data::load(&imgs, &opts).unwrap();
    assert!(
        again.notes.iter().any(|n| n.contains("cache")),
        "{:?}",
        again.notes
    );
    assert_eq!(again.train.images, ds.train.images);
    assert_eq!(again.test.labels, ds.test.labels);
    let other = data::load(
        &imgs,
        &DataOptions {
            seed: 7,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_ne!(other.test.images, ds.test.images);

    // Decoding: a grayscale PNG becomes equal RGB channels; an image of the target size is
    // not resampled; one channel is luma.
    let gray =
        data::folder::decode(&imgs.join("cat/1.png"), ImageShape { h: 17, w: 23, c: 3 }).unwrap();
    assert!(gray.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let exact =
        data::folder::decode(&imgs.join("cat/0.png"), ImageShape { h: 17, w: 20, c: 3 }).unwrap();
    assert_eq!(exact, noise_rgb(20, 17, 0).into_raw());
    let luma =
        data::folder::decode(&imgs.join("dog/2.png"), ImageShape { h: 5, w: 5, c: 1 }).unwrap();
    assert_eq!(luma.len(), 25);

    // A changed file invalidates the cache.
    save(
        image::DynamicImage::ImageRgb8(noise_rgb(9, 9, 999)),
        &imgs.join("emu/0.png"),
    );
    let changed = data::load(&imgs, &opts).unwrap();
    assert!(
        !changed.notes.iter().any(|n| n.contains("cache")),
        "{:?}",
        changed.notes
    );

    // train/val/test subfolders.
    let split = root.join("split");
    for (sub, n) in [("train", 4u64), ("val", 2), ("test", 3)] {
        for class in ["a", "b"] {
            for i in 0..n {
                save(
                    image::DynamicImage::ImageRgb8(noise_rgb(8, 8, i)),
                    &split.join(format!("{sub}/{class}/{i}.png")),
                );
            }
        }
    }
    let ds = data::load(
        &split,
        &DataOptions {
            shape: ImageShape { h: 8, w: 8, c: 3 },
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (
            ds.train.len(),
            ds.val.as_ref().map(|v| v.len()),
            ds.test.len()
        ),
        (8, Some(4), 6)
    );
    assert_eq!(ds.test.labels, [0, 0, 0, 1, 1, 1]);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_image_folders_give_one_clear_error() {
    let root = temp_dir("folder-bad");
    let run = root.join("run");
    let run_s = run.to_str().unwrap().to_string();
    let model = root.join("three.toml");
    std::fs::write(
        &model,
        "input = [32, 32, 3]\nclasses = 3\n\n[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\n\n[[layer]]\ntype = \"relu\"\n\n[[layer]]\ntype = \"global_avg_pool\"\n\n[[layer]]\ntype = \"dense\"\nfeatures = 3\n",
    )
    .unwrap();
    let model_s = model.to_str().unwrap().to_string();
    let train = |dir: &Path, extra: &[&str]| {
        let mut v = vec![
            "train".to_string(),
            "--data".into(),
            dir.to_str().unwrap().into(),
            "--out".into(),
            run_s.clone(),
            "--model".into(),
            model_s.clone(),
            "--epochs".into(),
            "1".into(),
            "--batch-size".into(),
            "4".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |args: Vec<String>, says: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_error(&a, says);
        assert!(!run.exists(), "a failed run left {run:?} behind");
    };
    // An empty folder.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    check(
        train(&empty, &["--dataset", "folder"]),
        "holds no class folders",
    );
    // A class folder with no images.
    let hollow = root.join("hollow");
    mixed_folder(&hollow);
    std::fs::create_dir_all(hollow.join("fox")).unwrap();
    check(train(&hollow, &[]), "class folder holds no images");
    // A file that is not an image: named, or skipped and counted with --skip-bad-images.
    let junk = root.join("junk");
    mixed_folder(&junk);
    std::fs::write(junk.join("dog/notes.txt"), b"not an image").unwrap();
    check(train(&junk, &[]), "notes.txt: not a readable image");
    // … into a --cache folder that does not exist yet, with given normalisation values.
    let cache_dir = root.join("caches/new");
    let a = train(
        &junk,
        &[
            "--skip-bad-images",
            "--image-size",
            "32",
            "--val-size",
            "2",
            "--test-size",
            "3",
            "--cache",
            cache_dir.to_str().unwrap(),
            "--normalize",
            "0.5,0.25,0.125/0.2,0.3,0.4",
        ],
    );
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, out, err) = cli(&a);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("skipped 1 files"), "{out}");
    assert!(!err.contains("warning"), "{err}");
    let shape32 = ImageShape { h: 32, w: 32, c: 3 };
    assert!(data::folder::cache_path(&junk, shape32, Some(&cache_dir)).is_file());
    assert!(!data::folder::cache_path(&junk, shape32, None).exists());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let norm: data::Normalization =
        serde_json::from_value(config["normalization"].clone()).unwrap();
    assert_eq!(norm.mean, [0.5, 0.25, 0.125], "{config}");
    assert_eq!(norm.std, [0.2, 0.3, 0.4], "{config}");
    // The second run reads the cache.
    let _ = std::fs::remove_dir_all(&run);
    let (code, out, err) = cli(&a);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("cache"), "{out}");
    let _ = std::fs::remove_dir_all(&run);
    // The model's input must fit the data's images: refused before any image is decoded, so
    // no cache is written at the size the model cannot take.
    check(
        train(&junk, &["--skip-bad-images", "--image-size", "28"]),
        "does not match the data's 28x28x3 images",
    );
    let shape28 = ImageShape { h: 28, w: 28, c: 3 };
    assert!(!data::folder::cache_path(&junk, shape28, None).exists());
    // Unknown kinds and augmentations, bad sizes.
    let junk = root.join("clean");
    mixed_folder(&junk);
    check(
        train(&junk, &["--dataset", "imagenet"]),
        "unknown --dataset `imagenet`",
    );
    check(
        train(&junk, &["--augment", "mixup"]),
        "unknown augmentation `mixup`",
    );
    check(
        train(&junk, &["--val-size", "1.5"]),
        "--val-size must be a count",
    );
    check(
        train(&junk, &["--normalize", "0.5/0.2"]),
        "1 means and 1 stds for images with 3 channels",
    );
    check(
        train(&junk, &["--image-size", "0x9"]),
        "--image-size must be between 1 and 4096",
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// CIFAR-10 records (label i % 10 for record i) as `n_train` + `n_test` binary records.
fn cifar_records(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut r = rng(seed);
    (0..n)
        .map(|i| {
            let mut rec = vec![(i * 7 % 10) as u8];
            rec.extend((0..3072).map(|_| r.random::<u8>()));
            rec
        })
        .collect()
}

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

#[test]
fn eval_and_predict_use_the_checkpoint_data_set() {
    // MNIST-shaped data with a LeNet for 28×28×1 written as a description file.
    let root = temp_dir("mnist-run");
    let dir = root.join("fashion");
    write_mnist(&dir, 64, 16, true);
    let model = root.join("lenet-mnist.toml");
    std::fs::write(
        &model,
        "input = [28, 28, 1]\nclasses = 10\n\n[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 5\n\n[[layer]]\ntype = \"relu\"\n\n[[layer]]\ntype = \"max_pool\"\nwindow = 2\n\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\ntype = \"dense\"\nfeatures = 10\n",
    )
    .unwrap();
    let out = root.join("run");
    let (code, stdout, err) = cli(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--val-size",
        "16",
        "--augment",
        "translate:2",
        "--tta",
        "flip",
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(
        stdout.contains("Fashion-MNIST") && stdout.contains("Ankle boot"),
        "{stdout}"
    );
    let ck = out.join("last.safetensors");
    let (code, ev, err) = cli(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--tta",
        "flip",
    ]);
    assert_eq!(code, 0, "{ev}\n{err}");
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("test"))
            .map(|l| l.split(": ").skip(1).collect::<Vec<_>>().join(": "))
    };
    let trained = stdout
        .lines()
        .find(|l| l.starts_with("test, last weights"))
        .unwrap()
        .to_string();
    assert!(
        trained.ends_with(&line(&ev).unwrap()),
        "eval {ev} vs train {trained}"
    );
    // The flip TTA result of `eval` is the one `train --tta flip` printed at its end.
    let after = |s: &str, prefix: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
    };
    let tta_eval = after(&ev, "test, test-time augmentation (flip): ");
    assert!(tta_eval.is_some(), "{ev}");
    assert_eq!(
        tta_eval,
        after(
            &stdout,
            "test, last weights, test-time augmentation (flip): "
        ),
        "eval {ev} vs train {stdout}"
    );
    // predict: a PNG of any size, converted to one channel, named with Fashion's classes.
    let png = root.join("shirt.png");
    save(image::DynamicImage::ImageRgb8(noise_rgb(40, 30, 5)), &png);
    let (code, pred, err) = cli(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{pred}\n{err}");
    let names = data::mnist::FASHION_NAMES;
    assert!(names.iter().any(|n| pred.contains(n)), "{pred}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Test-time augmentation on the GPU against the CPU reference: the mean softmax of each image
/// and its mirror, its loss and predictions.
#[test]
fn tta_matches_the_cpu_reference() {
    let Some(gpu) = common::gpu() else { return };
    let desc = wgpu_cnn::graph::Description::parse(
        "input = [9, 7, 3]\nclasses = 4\n\n[[layer]]\ntype = \"conv\"\nfeatures = 5\nkernel = 3\n\n[[layer]]\ntype = \"relu\"\n\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\ntype = \"dense\"\nfeatures = 4\n",
    )
    .unwrap();
    let shape = ImageShape { h: 9, w: 7, c: 3 };
    let n = 13;
    let mut r = rng(21);
    let split = data::Split {
        shape,
        images: (0..n * shape.bytes()).map(|_| r.random::<u8>()).collect(),
        labels: (0..n as u32).map(|i| i % 4).collect(),
    };
    let params = wgpu_cnn::plan::ParamLayout::of(&desc).unwrap().init(3);
    let norm = data::Normalization::cifar10();
    let mut runner = wgpu_cnn::train::Runner::inference(gpu, &desc, 5, &params).unwrap();
    let ds = data::GpuDataset::upload(gpu, &split, "tta", None).unwrap();
    let aug = runner.augment_from(gpu, &ds, &norm);
    let idx: Vec<u32> = (0..n as u32).collect();
    let feed = wgpu_cnn::train::Feed {
        aug: &aug,
        data: &ds,
        host: &split,
    };
    let got = runner.evaluate_tta(gpu, feed, &idx, &split.labels).unwrap();
    // The same pass over a streamed copy (each batch of 5 copied into a window): the same bits.
    let streamed = data::GpuDataset::upload(
        gpu,
        &split,
        "tta.streamed",
        Some(data::Streaming {
            force: true,
            ..data::Streaming::when_needed(5, 1)
        }),
    )
    .unwrap();
    assert_eq!(streamed.window, Some(5));
    let aug_s = runner.augment_from(gpu, &streamed, &norm);
    let feed_s = wgpu_cnn::train::Feed {
        aug: &aug_s,
        data: &streamed,
        host: &split,
    };
    let got_s = runner
        .evaluate_tta(gpu, feed_s, &idx, &split.labels)
        .unwrap();
    assert_eq!(got_s.loss.to_bits(), got.loss.to_bits());
    assert_eq!(got_s.confusion, got.confusion);

    let plan = wgpu_cnn::plan::Plan::new(
        &desc,
        n as u32,
        &gpu.caps(),
        wgpu_cnn::plan::Mode::Inference,
    )
    .unwrap();
    let p64: Vec<Vec<f64>> = params.iter().map(|p| wgpu_cnn::cpu::cast(p)).collect();
    let logits = |flip: bool| -> Vec<f64> {
        let mut x = vec![0f32; n * shape.bytes()];
        for i in 0..n {
            let crop = data::Crop {
                flip,
                ..data::Crop::identity(i as u32, shape)
            };
            wgpu_cnn::ops::augment::cpu::augment_image(
                split.image(i),
                shape,
                &norm,
                &crop,
                &mut x[i * shape.bytes()..(i + 1) * shape.bytes()],
            );
        }
        let mut stats = wgpu_cnn::cpu::reference::initial_stats::<f64>(&plan);
        let outs = wgpu_cnn::cpu::reference::forward_with(
            &plan,
            &p64,
            &mut stats,
            &wgpu_cnn::cpu::cast::<f32, f64>(&x),
            wgpu_cnn::cpu::reference::Phase::Eval,
        );
        outs.last().unwrap().clone()
    };
    let (a, b) = (logits(false), logits(true));
    assert_ne!(a, b, "the mirror must change the logits");
    let softmax = |row: &[f64]| {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect::<Vec<_>>()
    };
    let (mut loss, mut confusion) = (0.0, vec![vec![0u64; 4]; 4]);
    for i in 0..n {
        let p: Vec<f64> = softmax(&a[i * 4..i * 4 + 4])
            .iter()
            .zip(softmax(&b[i * 4..i * 4 + 4]))
            .map(|(x, y)| 0.5 * (x + y))
            .collect();
        let label = split.labels[i] as usize;
        loss -= p[label].ln();
        let best = (0..4).fold(0, |bst, j| if p[j] > p[bst] { j } else { bst });
        confusion[label][best] += 1;
    }
    loss /= n as f64;
    assert!(
        (got.loss - loss).abs() < 1e-5 * loss.max(1.0),
        "{} vs {loss}",
        got.loss
    );
    assert_eq!(got.confusion.as_ref().unwrap(), &confusion);
    assert_eq!(got.total, n as u64);
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

/// `models --plan --data` shows the data set's GPU memory and how it spreads over bindings.
#[test]
fn plan_shows_the_data_sets_memory() {
    let data = common::cifar_dir();
    let (code, out, err) = cli(&[
        "models",
        "lenet5",
        "--plan",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("data train: 50000 images of 32x32x3: 146.7 MiB in"),
        "{out}"
    );
    assert!(
        out.contains("data set CIFAR-10: 176.0 MiB on the GPU"),
        "{out}"
    );
}
