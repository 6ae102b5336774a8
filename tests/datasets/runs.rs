//! The data set of a run: `eval` and `predict` use the checkpoint's, test-time augmentation
//! against the CPU reference, and the data set's GPU memory in `models --plan --data`.

use crate::common::{self, cli, rng, temp_dir};
use crate::{noise_rgb, save, write_mnist};
use rand::Rng;
use wgpu_cnn::data::{self, ImageShape};

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

/// The float64 CPU reference's logits of every image of `split` seen as `view` (the augment
/// shader's CPU twin, then an eval-mode forward).
fn cpu_logits(
    plan: &wgpu_cnn::plan::Plan,
    p64: &[Vec<f64>],
    split: &data::Split,
    norm: &data::Normalization,
    view: data::View,
) -> Vec<f64> {
    let (shape, n) = (split.shape, split.len());
    let mut x = vec![0f32; n * shape.bytes()];
    for i in 0..n {
        wgpu_cnn::ops::augment::cpu::augment_image(
            split.image(i),
            shape,
            norm,
            &view.crop(i as u32, shape),
            &mut x[i * shape.bytes()..(i + 1) * shape.bytes()],
        );
    }
    let mut stats = wgpu_cnn::cpu::reference::initial_stats::<f64>(plan);
    let outs = wgpu_cnn::cpu::reference::forward_with(
        plan,
        p64,
        &mut stats,
        &wgpu_cnn::cpu::cast::<f32, f64>(&x),
        wgpu_cnn::cpu::reference::Phase::Eval,
    );
    outs.last().unwrap().clone()
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
    let logits = |flip: bool| {
        let view = data::View {
            flip,
            ..Default::default()
        };
        cpu_logits(&plan, &p64, &split, &norm, view)
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

/// A view is airbench94's: reflect-pad by one pixel, crop at (1 + dy, 1 + dx), then
/// mirror: the crop the shader is given shows exactly that (checked on the CPU twin).
#[test]
fn views_are_airbench_crops() {
    let shape = ImageShape { h: 5, w: 7, c: 2 };
    let img: Vec<u8> = (0..shape.bytes()).map(|i| (i * 37 % 251) as u8).collect();
    let norm = data::Normalization::none(2);
    let at = |r: i32, c: i32, ch: u32| {
        let refl = |i: i32, n: i32| {
            if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            }
        };
        let (r, c) = (refl(r, 5), refl(c, 7));
        img[((r as u32 * 7 + c as u32) * 2 + ch) as usize] as f32
    };
    for view in [
        data::View {
            flip: false,
            dy: -1,
            dx: -1,
        },
        data::View {
            flip: true,
            dy: -1,
            dx: -1,
        },
        data::View {
            flip: true,
            dy: 1,
            dx: 0,
        },
        data::View {
            flip: false,
            dy: 1,
            dx: 1,
        },
    ] {
        let mut out = vec![0.0f32; shape.bytes()];
        wgpu_cnn::ops::augment::cpu::augment_image(
            &img,
            shape,
            &norm,
            &view.crop(0, shape),
            &mut out,
        );
        for i in 0..5i32 {
            for j in 0..7i32 {
                // The shifted image, then the mirror's column.
                let jj = if view.flip { 6 - j } else { j };
                for ch in 0..2 {
                    let want = at(i + view.dy, jj + view.dx, ch) / 255.0;
                    let got = out[((i * 7 + j) * 2 + ch as i32) as usize];
                    assert!(
                        (got - want).abs() < 1e-6,
                        "{view:?} ({i},{j},{ch}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// Weighted views (airbench94's six: plain, mirror, ±1-pixel reflect shifts of both) on the
/// GPU against the CPU reference: the views' logits summed with their weights decide, and the
/// loss is the cross-entropy of the summed logits.
#[test]
fn weighted_views_match_the_cpu_reference() {
    let Some(gpu) = common::gpu() else { return };
    let desc = wgpu_cnn::graph::Description::parse(
        "input = [9, 7, 3]\nclasses = 4\n\n[[layer]]\ntype = \"conv\"\nfeatures = 5\nkernel = 3\n\n[[layer]]\ntype = \"relu\"\n\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\ntype = \"dense\"\nfeatures = 4\n",
    )
    .unwrap();
    let shape = ImageShape { h: 9, w: 7, c: 3 };
    let n = 13;
    let mut r = rng(22);
    let split = data::Split {
        shape,
        images: (0..n * shape.bytes()).map(|_| r.random::<u8>()).collect(),
        labels: (0..n as u32).map(|i| i % 4).collect(),
    };
    let params = wgpu_cnn::plan::ParamLayout::of(&desc).unwrap().init(4);
    let norm = data::Normalization::cifar10();
    let mut runner = wgpu_cnn::train::Runner::inference(gpu, &desc, 5, &params).unwrap();
    let ds = data::GpuDataset::upload(gpu, &split, "views", None).unwrap();
    let aug = runner.augment_from(gpu, &ds, &norm);
    let idx: Vec<u32> = (0..n as u32).collect();
    let feed = wgpu_cnn::train::Feed {
        aug: &aug,
        data: &ds,
        host: &split,
    };
    let tta = data::Tta::airbench();
    let got = runner
        .evaluate_augmented(gpu, feed, &idx, &split.labels, &tta)
        .unwrap()
        .unwrap();

    let plan = wgpu_cnn::plan::Plan::new(
        &desc,
        n as u32,
        &gpu.caps(),
        wgpu_cnn::plan::Mode::Inference,
    )
    .unwrap();
    let p64: Vec<Vec<f64>> = params.iter().map(|p| wgpu_cnn::cpu::cast(p)).collect();
    let logits = |view: data::View| cpu_logits(&plan, &p64, &split, &norm, view);
    let data::Tta::Views(views) = &tta else {
        unreachable!()
    };
    let mut sum = vec![0.0f64; n * 4];
    let mut distinct = Vec::new();
    for &(view, w) in views {
        let l = logits(view);
        for (s, v) in sum.iter_mut().zip(&l) {
            *s += w * v;
        }
        distinct.push(l);
    }
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "every view changes the logits");
    let (mut loss, mut confusion) = (0.0, vec![vec![0u64; 4]; 4]);
    for i in 0..n {
        let row = &sum[i * 4..i * 4 + 4];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let label = split.labels[i] as usize;
        loss += lse - row[label];
        let best = (0..4).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        confusion[label][best] += 1;
    }
    loss /= n as f64;
    assert!(
        (got.loss - loss).abs() < 1e-5 * loss.max(1.0),
        "{} vs {loss}",
        got.loss
    );
    assert_eq!(got.confusion.as_ref().unwrap(), &confusion);
    // One view of weight 1 is the plain evaluation.
    let plain = runner
        .evaluate(gpu, feed, &idx, Some(&split.labels))
        .unwrap();
    let id = runner
        .evaluate_augmented(
            gpu,
            feed,
            &idx,
            &split.labels,
            &data::Tta::parse("id=1").unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(id.confusion, plain.confusion);
    assert!((id.loss - plain.loss).abs() < 1e-5 * plain.loss.max(1.0));
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
