//! End to end on a slice of the real CIFAR-10: `train` makes the loss fall and beats chance and
//! writes every output; the checkpoint has Flax's names and shapes and round-trips exactly;
//! `eval` and `predict` work on it.

mod common;

use common::{cifar_dir, cli, gpu, temp_dir};
use wgpu_cnn::checkpoint;
use wgpu_cnn::model::GpuModel;
use wgpu_cnn::report::EpochMetrics;

#[test]
fn train_eval_predict_on_a_slice_of_cifar10() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let out = temp_dir("e2e");
    let run = out.join("run");
    let (code, stdout, stderr) = cli(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--train-limit",
        "2000",
        "--val-size",
        "500",
        "--epochs",
        "3",
        "--batch-size",
        "50",
        "--lr",
        "5e-4",
        "--test-limit",
        "2000",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "train failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    assert!(stdout.starts_with("adapter: "), "{stdout}");
    assert!(stdout.contains("epoch: 000, train loss: "), "{stdout}");
    assert!(
        stdout.contains("test, last weights (epoch 002): loss: "),
        "{stdout}"
    );
    assert!(stdout.contains("confusion matrix"), "{stdout}");
    for f in [
        "config.json",
        "metrics.jsonl",
        "test.json",
        "confusion.png",
        "curves.png",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }

    // Loss falls, accuracy beats chance (0.1).
    let history: Vec<EpochMetrics> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(history.len(), 3);
    assert!(history[2].train_loss < history[0].train_loss, "{history:?}");
    assert!(history[2].val_accuracy.unwrap() > 0.2, "{history:?}");
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert!(test["accuracy"].as_f64().unwrap() > 0.2, "{test}");
    assert_eq!(test["total"], 2000);
    assert_eq!(test["confusion"].as_array().unwrap().len(), 10);
    assert!(test["best"]["accuracy"].as_f64().is_some(), "{test}");

    // The checkpoint: Flax names and shapes, Adam state, run position in the metadata.
    let bytes = std::fs::read(run.join("last.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, shape) in [
        ("Conv_0.kernel", vec![3, 3, 3, 32]),
        ("Conv_0.bias", vec![32]),
        ("Conv_1.kernel", vec![3, 3, 32, 64]),
        ("Conv_1.bias", vec![64]),
        ("Dense_0.kernel", vec![4096, 256]),
        ("Dense_0.bias", vec![256]),
        ("Dense_1.kernel", vec![256, 10]),
        ("Dense_1.bias", vec![10]),
    ] {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        assert_eq!(
            st.tensor(&format!("opt.mu.{name}")).unwrap().shape(),
            shape.as_slice()
        );
        assert_eq!(
            st.tensor(&format!("opt.nu.{name}")).unwrap().shape(),
            shape.as_slice()
        );
    }
    let ck = checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert_eq!(ck.meta::<u32>("step"), Some(3 * 40));
    assert_eq!(ck.meta::<u32>("epoch"), Some(3));
    assert_eq!(ck.meta::<u64>("seed"), Some(42));

    // Round trip: save → load → identical logits on the GPU.
    let gpu = gpu().unwrap();
    let copy = out.join("copy.safetensors");
    checkpoint::save(&copy, &ck).unwrap();
    let ck2 = checkpoint::load(&copy).unwrap();
    assert_eq!(ck.params, ck2.params);
    assert_eq!(ck.opt_state, ck2.opt_state);
    let mut r = common::rng(1);
    let x = common::uniform(&mut r, 4 * 32 * 32 * 3, 2.0);
    assert_eq!(ck2.model, ck.model);
    let logits = |params: &[Vec<f32>]| {
        let m = GpuModel::inference(gpu, &ck2.model, 4, params).unwrap();
        m.upload_batch(gpu, &x, &[0, 1, 2, 3]);
        m.eval_step(gpu);
        m.read_logits(gpu).unwrap()
    };
    let (a, b) = (logits(&ck.params), logits(&ck2.params));
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));

    // eval on the same weights: the same correct count on the same images as train's test.
    let eval_dir = out.join("eval");
    let (code, stdout, stderr) = cli(&[
        "eval",
        "--checkpoint",
        run.join("last.safetensors").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        eval_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "eval failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("test: loss: ") && stdout.contains("/10000)"),
        "{stdout}"
    );
    assert!(eval_dir.join("test.json").is_file() && eval_dir.join("confusion.png").is_file());
    let ev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_dir.join("test.json")).unwrap())
            .unwrap();
    let conf = ev["confusion"].as_array().unwrap();
    let total: u64 = conf
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10000);

    // predict: RGB of another size, grayscale and RGBA are all accepted.
    let img_rgb = out.join("a.png");
    image::RgbImage::from_fn(50, 40, |x, y| image::Rgb([x as u8 * 5, y as u8 * 6, 128]))
        .save(&img_rgb)
        .unwrap();
    let img_gray = out.join("b.png");
    image::GrayImage::from_fn(20, 20, |x, _| image::Luma([x as u8 * 10]))
        .save(&img_gray)
        .unwrap();
    let img_rgba = out.join("c.png");
    image::RgbaImage::from_fn(32, 32, |x, y| {
        image::Rgba([x as u8 * 8, 200, y as u8 * 8, 255])
    })
    .save(&img_rgba)
    .unwrap();
    let (code, stdout, stderr) = cli(&[
        "predict",
        "--checkpoint",
        run.join("last.safetensors").to_str().unwrap(),
        img_rgb.to_str().unwrap(),
        img_gray.to_str().unwrap(),
        img_rgba.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "predict failed:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for l in lines {
        let probs: Vec<f64> = l
            .split(", ")
            .map(|p| p.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(probs.len(), 3, "{l}");
        assert!(
            probs[0] >= probs[1] && probs[1] >= probs[2] && probs.iter().sum::<f64>() <= 1.0 + 1e-6,
            "{l}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `--init` starts from a checkpoint's parameters *and* its batch-norm running statistics.
/// With a learning rate too small to move any weight (1e-30), the running statistics after k
/// steps are momentum^k · (initial ones) + the same batch terms, so two runs initialised with
/// the same weights and different statistics must differ by exactly momentum^k times the
/// difference of their initial statistics, per batch-norm layer (momenta 0.8, 0.9 and 0.99 in
/// this model).
#[test]
fn init_reads_parameters_and_batch_statistics() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let out = temp_dir("init-stats");
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools/peers/models/residual-bn.toml");
    let train = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--train-limit",
            "64",
            "--val-size",
            "32",
            "--test-limit",
            "32",
            "--batch-size",
            "32",
            "--epochs",
            "1",
            "--out",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = cli(&args);
        assert_eq!(code, 0, "train failed:\n{stdout}\n{stderr}");
        checkpoint::load(&dir.join("last.safetensors")).unwrap()
    };
    // A checkpoint with trained weights and statistics, and a copy whose statistics differ.
    let a = train(&out.join("a"), &[]);
    let mut c = checkpoint::load(&out.join("a/last.safetensors")).unwrap();
    assert_eq!(c.batch_stats.len(), 8, "4 batch norms: mean and var each");
    for (i, t) in c.batch_stats.iter_mut().enumerate() {
        for v in t.iter_mut() {
            *v = if i % 2 == 0 { *v + 0.25 } else { *v * 1.5 };
        }
    }
    let c_path = out.join("c.safetensors");
    checkpoint::save(&c_path, &c).unwrap();
    let a_path = out.join("a/last.safetensors");
    let b = train(
        &out.join("b"),
        &["--init", a_path.to_str().unwrap(), "--lr", "1e-30"],
    );
    let d = train(
        &out.join("d"),
        &["--init", c_path.to_str().unwrap(), "--lr", "1e-30"],
    );
    // The weights are the init's (two Adam steps of at most 1e-30 each).
    for (pa, pb) in a.params.iter().zip(&b.params) {
        for (x, y) in pa.iter().zip(pb) {
            assert!((x - y).abs() <= 1e-25, "weights moved: {x} -> {y}");
        }
    }
    assert_eq!(b.params, d.params, "same init weights, same steps");
    // 64 images in batches of 32: two updates of the running statistics.
    let mut found = Vec::new();
    for (i, (((sa, sc), sb), sd)) in a
        .batch_stats
        .iter()
        .zip(&c.batch_stats)
        .zip(&b.batch_stats)
        .zip(&d.batch_stats)
        .enumerate()
    {
        let ratios: Vec<f64> = (0..sa.len())
            .map(|j| (sd[j] as f64 - sb[j] as f64) / (sc[j] as f64 - sa[j] as f64))
            .collect();
        let momentum = [0.8f64, 0.9, 0.99]
            .into_iter()
            .find(|m| (ratios[0] - m * m).abs() < 1e-3)
            .unwrap_or_else(|| panic!("stats tensor {i}: ratio {} is no momentum²", ratios[0]));
        for (j, r) in ratios.iter().enumerate() {
            assert!(
                (r - momentum * momentum).abs() < 2e-3,
                "stats tensor {i} element {j}: {r} vs {momentum}²"
            );
        }
        found.push(momentum);
    }
    // Per batch norm (mean, var): BatchNorm_0 0.8, BatchNorm_2 0.99, the others the default.
    assert_eq!(
        found,
        [0.8, 0.8, 0.9, 0.9, 0.99, 0.99, 0.9, 0.9],
        "{found:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// `bench` reports the step (with and without its augmentation), its CPU time and the batched
/// submit; `profile` names every kernel of the step and writes its trace.
#[test]
fn bench_and_profile_report_the_step() {
    if gpu().is_none() {
        return;
    }
    let (code, out, err) = cli(&[
        "bench",
        "--model",
        "lenet5",
        "--batch-size",
        "8",
        "--warmup",
        "1",
        "--steps",
        "3",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    for k in [
        "step_ms_median",
        "step_ms_min",
        "model_step_ms_median",
        "cpu_ms_per_step",
        "batched_step_ms",
        "batched_cpu_ms_per_step",
        "images_per_second",
        "gflops_per_second",
        "gflop_per_step",
        "eval_images_per_second",
        "gpu_bytes",
    ] {
        assert!(num(k) > 0.0, "{k} in {r}");
    }
    // A synced step's CPU part (write inputs, record, submit) is part of its wall time.
    assert!(num("cpu_ms_per_step") < num("step_ms_median"), "{r}");
    assert!(num("step_ms_min") <= num("step_ms_median"), "{r}");
    assert_eq!(r["batch_size"], 8);
    assert_eq!(r["steps"], 3);
    assert!(out.contains("without augmentation:"), "{out}");

    let dir = temp_dir("profile");
    let trace = dir.join("trace.json");
    let (code, out, err) = cli(&[
        "profile",
        "--model",
        "lenet5",
        "--batch-size",
        "8",
        "--steps",
        "2",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    for kernel in ["augment_batch", "softmax_ce_backward", "adam_update"] {
        assert!(out.contains(kernel), "{kernel} missing:\n{out}");
    }
    assert!(out.contains("2 steps, "), "{out}");
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    assert!(events.len() > 10, "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A whitening conv (`kernel_init = "whitening"`) gets its kernel from the first training
/// images of the run, normalised as the run normalises them, before the first step; frozen by
/// a parameter group it ends the run as it started. A description that puts it after another
/// layer, or with the wrong number of filters, is one error line.
#[test]
fn whitening_init_comes_from_the_first_training_images() {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("whitening");
    let data = cifar_dir();
    let model = dir.join("w.toml");
    let head = "input = [32, 32, 3]\nclasses = 10\n";
    let tail = "[[layer]]\ntype = \"gelu\"\napproximate = false\n[[layer]]\ntype = \"max_pool\"\nwindow = 31\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 10\n";
    std::fs::write(
        &model,
        format!("{head}[[layer]]\ntype = \"conv\"\nfeatures = 24\nkernel = 2\npadding = \"VALID\"\nkernel_init = \"whitening\"\n{tail}"),
    )
    .unwrap();
    let out = dir.join("run");
    let args = |model: &str| {
        vec![
            "train".to_string(),
            "--data".into(),
            data.to_str().unwrap().into(),
            "--model".into(),
            model.into(),
            "--train-limit".into(),
            "300".into(),
            "--val-size".into(),
            "0".into(),
            "--batch-size".into(),
            "50".into(),
            "--epochs".into(),
            "1".into(),
            "--test-limit".into(),
            "50".into(),
            "--param-group".into(),
            "Conv_0.kernel: frozen".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--overwrite".into(),
        ]
    };
    let a = args(model.to_str().unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, stdout, err) = cli(&a);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(
        stdout.contains(
            "whitening: Conv_0.kernel from the 2x2 patches of the first 300 training images"
        ),
        "{stdout}"
    );
    let ck = checkpoint::load(&out.join("last.safetensors")).unwrap();
    // The first 300 images of data_batch_1, normalised as CIFAR-10 runs are by default.
    let ds = wgpu_cnn::data::load(&data, &Default::default()).unwrap();
    let norm = wgpu_cnn::data::Normalization::cifar10();
    let images: Vec<&[u8]> = (0..300).map(|i| ds.train.image(i)).collect();
    let want = wgpu_cnn::train::whitening::kernel(&images, ds.shape(), &norm, 2, 2, 5e-4);
    assert!(
        ck.params[0] == want,
        "Conv_0.kernel is the whitening of the first images, frozen"
    );
    assert!(ck.params[1].iter().any(|&b| b != 0.0), "the bias trained");

    // Fine-tuning from a file without the whitening kernel computes it as a fresh run does.
    let partial = dir.join("partial.safetensors");
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (b1, b3) = (bytes(&ck.params[1]), bytes(&ck.params[2]));
    let views = vec![
        (
            "Conv_0.bias".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![24], &b1).unwrap(),
        ),
        (
            "Dense_0.kernel".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![24, 10], &b3)
                .unwrap(),
        ),
    ];
    std::fs::write(&partial, safetensors::serialize(views, None).unwrap()).unwrap();
    let mut a = args(model.to_str().unwrap());
    a.extend([
        "--init".to_string(),
        partial.to_str().unwrap().to_string(),
        "--init-skip-mismatch".to_string(),
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, stdout, err) = cli(&a);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(
        stdout.contains("--init: Conv_0.kernel initialised afresh"),
        "{stdout}"
    );
    assert!(stdout.contains("whitening: Conv_0.kernel from"), "{stdout}");
    let tuned = checkpoint::load(&out.join("last.safetensors")).unwrap();
    assert!(
        tuned.params[0] == want,
        "the whitening kernel is computed afresh"
    );

    for (bad, why) in [
        (
            format!("{head}[[layer]]\ntype = \"conv\"\nfeatures = 20\nkernel = 2\npadding = \"VALID\"\nkernel_init = \"whitening\"\n{tail}"),
            "makes 2·KH·KW·C = 24 filters",
        ),
        (
            format!("{head}[[layer]]\ntype = \"scale\"\nfactor = 2.0\n[[layer]]\ntype = \"conv\"\nfeatures = 24\nkernel = 2\npadding = \"VALID\"\nkernel_init = \"whitening\"\n{tail}"),
            "only a conv that reads the input",
        ),
    ] {
        std::fs::write(&model, bad).unwrap();
        let a = args(model.to_str().unwrap());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, stdout, err) = cli(&a);
        assert_eq!(code, 1, "{stdout}");
        assert!(err.contains(why) && err.lines().count() == 1, "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
