//! Image folders of mixed sizes and colour types (PNG and JPEG, grayscale, RGBA; the cache),
//! and their errors through the CLI.

use std::path::Path;

use crate::common::{assert_error, cli, temp_dir};
use crate::{noise_rgb, save};
use wgpu_cnn::data::{self, DataOptions, ImageShape, Kind};

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
    // A file that is not an image by its name is skipped with a note (as torchvision's
    // ImageFolder skips it).
    let notes = root.join("notes");
    mixed_folder(&notes);
    std::fs::write(notes.join("dog/notes.txt"), b"not an image").unwrap();
    let a = train(&notes, &["--image-size", "32"]);
    let (code, out, err) = cli(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("skipped 1 file that is not an image"), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
    std::fs::remove_dir_all(&run).unwrap();
    // An image name that does not decode: named, or skipped and counted with --skip-bad-images.
    let junk = root.join("junk");
    mixed_folder(&junk);
    std::fs::write(junk.join("dog/notes.png"), b"not an image").unwrap();
    check(train(&junk, &[]), "notes.png: not a readable image");
    // A truncated JPEG: the decoder's two-line message folded into the one error line.
    let cut = root.join("cut");
    mixed_folder(&cut);
    let jpeg = cut.join("dog/sub/3.jpg");
    let bytes = std::fs::read(&jpeg).unwrap();
    std::fs::write(&jpeg, &bytes[..bytes.len().min(400)]).unwrap();
    check(train(&cut, &[]), "3.jpg: not a readable image");
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

/// A 3-class folder of 20×20 noise images under `dir`: train/ (6 per class) and test/ (2).
fn pets3(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("pets3");
    for (k, class) in ["cat", "dog", "emu"].iter().enumerate() {
        for i in 0..8u64 {
            let split = if i < 6 { "train" } else { "test" };
            let img = noise_rgb(20, 20, k as u64 * 100 + i);
            save(
                image::DynamicImage::ImageRgb8(img),
                &data.join(format!("{split}/{class}/{i}.png")),
            );
        }
    }
    data
}

/// Fine-tuning on one's own folder: a preset adapts its input and head to the data (one line),
/// `--init` from a checkpoint of the preset's original shape loads every tensor that fits and,
/// with `--init-skip-mismatch`, initialises the others afresh (one line each; without the flag
/// the mismatch stays an error naming it); a description of one's own with a fixed `input`
/// gets an error naming the key to set.
#[test]
fn presets_adapt_to_a_folder_and_init_skips_mismatched_tensors() {
    let dir = temp_dir("finetune");
    let data = pets3(&dir);
    let data = data.to_str().unwrap();
    // A checkpoint of the preset as it is (32×32×3, 10 classes).
    let text = wgpu_cnn::graph::zoo::text("flax-cifar10").unwrap();
    let desc = wgpu_cnn::graph::Description::parse(text).unwrap();
    let params = wgpu_cnn::plan::ParamLayout::of(&desc).unwrap().init(5);
    let ck = dir.join("pretrained.safetensors");
    wgpu_cnn::checkpoint::save(
        &ck,
        &wgpu_cnn::checkpoint::Checkpoint::new(desc, text.into(), params.clone()),
    )
    .unwrap();
    let ck = ck.to_str().unwrap();
    let run = dir.join("run");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "train",
            "--data",
            data,
            "--model",
            "flax-cifar10",
            "--image-size",
            "20",
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--val-size",
            "3",
            "--init",
            ck,
            "--out",
            run.to_str().unwrap(),
            "--overwrite",
        ];
        v.extend_from_slice(extra);
        v
    };
    assert_error(&args(&[]), "--init-skip-mismatch");
    let (code, out, err) = cli(&args(&["--init-skip-mismatch"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("model: flax-cifar10 adapted to the data: input 20x20x3 (the preset's 32x32x3), 3 classes (the preset's 10)"),
        "{out}"
    );
    let fresh: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("--init: "))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    // The flattened 5×5×64 features change Dense_0's kernel; the head is Dense_1.
    assert_eq!(
        fresh,
        ["Dense_0.kernel", "Dense_1.kernel", "Dense_1.bias"],
        "{out}"
    );
    // The run's model is the adapted one, stored with its checkpoint.
    let trained = wgpu_cnn::checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert_eq!(trained.model.input, [20, 20, 3]);
    assert_eq!(trained.model.classes, 3);

    // One's own description fixes its input: the error names the key and the value.
    let own = dir.join("own.toml");
    std::fs::write(&own, text).unwrap();
    assert_error(
        &[
            "train",
            "--data",
            data,
            "--model",
            own.to_str().unwrap(),
            "--image-size",
            "20",
            "--epochs",
            "1",
        ],
        "set `input = [20, 20, 3]`",
    );
}

/// A description of one's own may leave `input` and `classes` (and its head's `features`) to
/// the data: the run says what it took, stores the completed description, and its recipe.toml
/// repeats the run bit for bit. Without `--image-size` a folder gives no input size: one line
/// names the flag; a head that fixes its width names the key to leave out.
#[test]
fn a_description_may_leave_input_and_classes_to_the_data() {
    let dir = temp_dir("open-desc");
    let data = pets3(&dir);
    let data = data.to_str().unwrap();
    let small = "[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\n\n[[layer]]\ntype = \"relu\"\n\n[[layer]]\ntype = \"global_avg_pool\"\n\n[[layer]]\ntype = \"dense\"\n";
    let own = dir.join("small.toml");
    std::fs::write(&own, small).unwrap();
    let own = own.to_str().unwrap();
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let train = |model: &str, size: Option<&'static str>| {
        let mut v = vec![
            "train",
            "--data",
            data,
            "--model",
            model,
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--val-size",
            "3",
            "--out",
            run_s,
            "--overwrite",
        ];
        if let Some(s) = size {
            v.extend_from_slice(&["--image-size", s]);
        }
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    fn as_str(v: &[String]) -> Vec<&str> {
        v.iter().map(|s| s.as_str()).collect()
    }
    assert_error(&as_str(&train(own, None)), "give --image-size H W");
    let (code, out, err) = cli(&as_str(&train(own, Some("20"))));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("model: `input` and `classes` taken from the data: input 20x20x3, 3 classes"),
        "{out}"
    );
    let trained = wgpu_cnn::checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert_eq!(
        (trained.model.input, trained.model.classes),
        ([20, 20, 3], 3)
    );
    // The stored description is complete: it loads anywhere without the data.
    let stored = wgpu_cnn::graph::Description::parse(&trained.model_text).unwrap();
    assert_eq!(stored, trained.model);
    // The run's recipe repeats it bit for bit.
    let again = dir.join("again");
    let (code, out, err) = cli(&[
        "train",
        "--recipe",
        run.join("recipe.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let repeated = wgpu_cnn::checkpoint::load(&again.join("last.safetensors")).unwrap();
    assert_eq!(repeated.params, trained.params);

    // A head of fixed width on data of another class count: the error names the fix.
    let fixed_head = dir.join("fixed-head.toml");
    std::fs::write(&fixed_head, format!("{small}features = 10\n")).unwrap();
    assert_error(
        &as_str(&train(fixed_head.to_str().unwrap(), Some("20"))),
        "leave `features` out of its last dense layer",
    );
    // `eval --model` with the same file takes the keys from the model the checkpoint stores.
    let ck = run.join("last.safetensors");
    let (code, out, err) = cli(&["eval", "--checkpoint", ck.to_str().unwrap(), "--model", own]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("test: "), "{out}");
    // Commands without data or checkpoint need the keys.
    assert_error(&["models", own], "missing key `input`");
}
