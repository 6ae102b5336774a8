//! MNIST IDX files, plain and gzipped, and their errors.

use std::path::Path;

use crate::common::{assert_error, temp_dir};
use crate::{idx_images, idx_labels, write_mnist};
use wgpu_cnn::data::{self, DataOptions, ImageShape, Kind};

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
