//! CIFAR-100 records: fine and coarse labels.

use std::path::Path;

use crate::common::{assert_error, rng, temp_dir};
use rand::Rng;
use wgpu_cnn::data::{self, DataOptions, Kind, Labels};

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

    // `--labels` reaches the loader through the CLI: a description of one's own with the seed
    // model's 10 classes against the 20 superclasses (a preset would adapt its head). Coarse
    // labels of a data set other than CIFAR-100 are refused.
    let run = dir.join("run");
    let own = dir.join("seed.toml");
    std::fs::write(&own, wgpu_cnn::graph::zoo::text("flax-cifar10").unwrap()).unwrap();
    let train = |data: &Path, labels: &str| {
        vec![
            "train".to_string(),
            "--model".into(),
            own.to_str().unwrap().into(),
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
    assert_error(
        &a,
        "the model has 10 classes, the data has 20: set `classes = 20` in its description",
    );
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
