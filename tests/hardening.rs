//! Bad input gets one clear error line and a non-zero exit, never a panic; long runs stay flat.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_error, cifar_dir, cli, gpu, rng, temp_dir};
use rand::Rng;
use wgpu_cnn::checkpoint::{self, Checkpoint};
use wgpu_cnn::data::{self, RECORD_BYTES};

/// A data folder holding the first `n` records of each real file.
fn data_slice(dir: &Path, n: usize) -> PathBuf {
    let src = cifar_dir();
    std::fs::create_dir_all(dir).unwrap();
    for f in data::cifar::TRAIN_FILES
        .iter()
        .chain([&data::cifar::TEST_FILE])
    {
        let bytes = std::fs::read(src.join(f)).unwrap();
        std::fs::write(dir.join(f), &bytes[..n * RECORD_BYTES]).unwrap();
    }
    dir.to_path_buf()
}

fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["train", "--data", data, "--out", out];
    v.extend_from_slice(extra);
    // Small defaults unless the case sets them.
    for (flag, value) in [
        ("--epochs", "1"),
        ("--batch-size", "10"),
        ("--val-size", "10"),
    ] {
        if !extra.iter().any(|a| a.starts_with(flag)) {
            v.extend([flag, value]);
        }
    }
    v
}

/// What a case expects in the error, and how it damages a data folder.
type BreakData<'a> = (&'a str, &'a dyn Fn(&Path));

#[test]
fn bad_data_files_are_named() {
    let dir = temp_dir("bad-data");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    assert_error(
        &train_args("/nonexistent/cifar", out, &[]),
        "wgpu-cnn download",
    );

    let cases: [BreakData<'_>; 5] = [
        ("missing", &|d| {
            std::fs::remove_file(d.join("data_batch_3.bin")).unwrap()
        }),
        ("not a multiple", &|d| {
            let p = d.join("data_batch_2.bin");
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() - 100]).unwrap();
        }),
        ("label byte 200", &|d| {
            let p = d.join("data_batch_4.bin");
            let mut b = std::fs::read(&p).unwrap();
            b[3 * RECORD_BYTES] = 200;
            std::fs::write(&p, b).unwrap();
        }),
        ("empty", &|d| {
            std::fs::write(d.join("test_batch.bin"), b"").unwrap()
        }),
        ("is a directory", &|d| {
            std::fs::remove_file(d.join("data_batch_1.bin")).unwrap();
            std::fs::create_dir(d.join("data_batch_1.bin")).unwrap();
        }),
    ];
    for (i, (needle, break_it)) in cases.iter().enumerate() {
        let d = data_slice(&dir.join(format!("d{i}")), 30);
        break_it(&d);
        assert_error(&train_args(d.to_str().unwrap(), out, &[]), needle);
    }
    // The record is named too.
    let d = data_slice(&dir.join("rec"), 30);
    let p = d.join("data_batch_4.bin");
    let mut b = std::fs::read(&p).unwrap();
    b[7 * RECORD_BYTES] = 10;
    std::fs::write(&p, b).unwrap();
    assert_error(
        &train_args(d.to_str().unwrap(), out, &[]),
        "data_batch_4.bin: record 7",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_are_rejected() {
    let dir = temp_dir("bad-flags");
    let d = data_slice(&dir.join("data"), 30);
    let d = d.to_str().unwrap();
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    // A refused run leaves no output folder.
    let assert_error = |args: &[&str], needle: &str| {
        assert_error(args, needle);
        assert!(!Path::new(out).exists(), "{args:?} left {out} behind");
    };
    assert_error(&train_args(d, out, &["--batch-size", "0"]), "--batch-size");
    assert_error(&train_args(d, out, &["--lr", "0"]), "--lr");
    assert_error(&train_args(d, out, &["--lr=-1"]), "--lr");
    assert_error(&train_args(d, out, &["--lr", "NaN"]), "--lr");
    assert_error(&train_args(d, out, &["--epochs", "0"]), "--epochs");
    assert_error(
        &train_args(d, out, &["--label-smoothing", "1"]),
        "--label-smoothing must be in [0, 1)",
    );
    assert_error(
        &train_args(d, out, &["--optimizer", "lamb"]),
        "--optimizer must be adam, adamw or sgd",
    );
    assert_error(
        &train_args(d, out, &["--momentum", "0.9"]),
        "--momentum and --nesterov are SGD's",
    );
    assert_error(
        &train_args(d, out, &["--optimizer", "sgd", "--nesterov"]),
        "--nesterov needs a --momentum above 0",
    );
    assert_error(
        &train_args(d, out, &["--weight-decay", "0.1"]),
        "--weight-decay needs --optimizer adamw",
    );
    assert_error(
        &train_args(d, out, &["--optimizer", "adamw", "--b2", "1"]),
        "--b2 must be in [0, 1)",
    );
    assert_error(
        &train_args(d, out, &["--clip-grad-norm", "0"]),
        "--clip-grad-norm must be a positive finite number",
    );
    assert_error(&train_args(d, out, &["--val-size", "150"]), "--val-size");
    assert_error(
        &train_args(d, out, &["--train-limit", "100000"]),
        "--train-limit",
    );
    assert_error(
        &train_args(d, out, &["--adapter", "no-such-gpu"]),
        "no-such-gpu",
    );
    assert_error(
        &train_args(
            d,
            out,
            &[
                "--batch-size",
                "100000",
                "--val-size",
                "0",
                "--train-limit",
                "150",
            ],
        ),
        "fewer than one batch",
    );
    if gpu().is_some() {
        // Larger than one storage binding: the error says the limit and the largest batch.
        let d2 = data_slice(&dir.join("big"), 2000);
        assert_error(
            &train_args(
                d2.to_str().unwrap(),
                out,
                &["--batch-size", "5000", "--val-size", "0"],
            ),
            "the largest batch that fits is",
        );
    }
    if gpu().is_some() {
        // A huge learning rate: the run stops, naming the epoch and the step (it ran, so its
        // folder stays, without a checkpoint of diverged weights).
        common::assert_error(
            &train_args(
                d,
                out,
                &["--lr", "1e30", "--batch-size", "5", "--val-size", "0"],
            ),
            "non-finite loss at epoch 0, step",
        );
        assert!(!Path::new(out).join("last.safetensors").exists());
        std::fs::remove_dir_all(out).unwrap();
    }
    // A command line clap refuses is one error line and exit code 1, as README promises.
    assert_error(
        &["devices", "--backend", "quantum"],
        "invalid value 'quantum'",
    );
    assert_error(
        &["train", "--lrr", "1"],
        "a similar argument exists: '--lr'",
    );
    // An output folder that cannot be created: an error before any training.
    assert_error(
        &train_args(d, "/proc/version/run", &[]),
        "/proc/version/run",
    );
    if gpu().is_some() {
        // A folder that holds a run is not overwritten silently: --resume or --overwrite.
        let run = dir.join("run");
        let run = run.to_str().unwrap();
        let small = ["--batch-size", "10", "--test-limit", "10"];
        let (code, o, e) = cli(&train_args(d, run, &small));
        assert_eq!(code, 0, "{o}\n{e}");
        let before = std::fs::read(dir.join("run/last.safetensors")).unwrap();
        assert_error(&train_args(d, run, &small), "already holds a run");
        assert_eq!(
            std::fs::read(dir.join("run/last.safetensors")).unwrap(),
            before
        );
        let mut again = small.to_vec();
        again.extend(["--overwrite", "--seed", "7"]);
        let (code, o, e) = cli(&train_args(d, run, &again));
        assert_eq!(code, 0, "{o}\n{e}");
        assert_ne!(
            std::fs::read(dir.join("run/last.safetensors")).unwrap(),
            before
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn save_raw(path: &Path, tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>) {
    save_with(path, tensors, None);
}

/// Raw tensors as a safetensors file, with one metadata entry when given (as another tool
/// would write them).
fn save_with(
    path: &Path,
    tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    meta: Option<(&str, &str)>,
) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, shape, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = meta.map(|(k, v)| std::collections::HashMap::from([(k.to_string(), v.to_string())]));
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

fn seed_layout() -> wgpu_cnn::plan::ParamLayout {
    wgpu_cnn::plan::ParamLayout::of(&wgpu_cnn::graph::zoo::preset("flax-cifar10").unwrap()).unwrap()
}

fn seed_checkpoint(params: Vec<Vec<f32>>) -> Checkpoint {
    let text = wgpu_cnn::graph::zoo::text("flax-cifar10").unwrap();
    Checkpoint::new(
        wgpu_cnn::graph::Description::parse(text).unwrap(),
        text.to_string(),
        params,
    )
}

type RawTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// `params` as raw f32 tensors under `layout`'s names and shapes.
fn layout_raw(layout: &wgpu_cnn::plan::ParamLayout, params: &[Vec<f32>]) -> Vec<RawTensor> {
    layout
        .specs
        .iter()
        .zip(params)
        .map(|(s, t)| {
            (
                s.name.to_string(),
                safetensors::Dtype::F32,
                s.shape.clone(),
                t.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect()
}

fn params_raw(params: &[Vec<f32>]) -> Vec<RawTensor> {
    layout_raw(&seed_layout(), params)
}

#[test]
fn bad_checkpoints_and_images_are_named() {
    let dir = temp_dir("bad-ck");
    let img = dir.join("img.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]))
        .save(&img)
        .unwrap();
    let img = img.to_str().unwrap();
    let good = dir.join("good.safetensors");
    let params = seed_layout().init(1);
    checkpoint::save(&good, &seed_checkpoint(params.clone())).unwrap();
    let predict = |ck: &Path, needle: &str| {
        assert_error(
            &["predict", "--checkpoint", ck.to_str().unwrap(), img],
            needle,
        )
    };

    let p = dir.join("random.safetensors");
    std::fs::write(&p, b"definitely not safetensors").unwrap();
    predict(&p, "not a valid safetensors file");
    let bytes = std::fs::read(&good).unwrap();
    let p = dir.join("truncated.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    predict(&p, "not a valid safetensors file");
    let p = dir.join("missing.safetensors");
    let mut t = params_raw(&params);
    t.remove(3);
    save_raw(&p, t);
    predict(&p, "tensor Conv_1.bias is missing");
    let p = dir.join("shape.safetensors");
    let mut t = params_raw(&params);
    t[6].2 = vec![10, 256];
    save_raw(&p, t);
    predict(&p, "Dense_1.kernel has shape [10, 256], expected [256, 10]");
    let p = dir.join("dtype.safetensors");
    let mut t = params_raw(&params);
    t[1] = (
        "Conv_0.bias".into(),
        safetensors::Dtype::F64,
        vec![16],
        vec![0u8; 128],
    );
    save_raw(&p, t);
    predict(&p, "Conv_0.bias has dtype F64");
    let p = dir.join("nan.safetensors");
    let mut bad = params.clone();
    bad[4][77] = f32::NAN;
    save_raw(&p, params_raw(&bad));
    predict(&p, "Dense_0.kernel holds a non-finite value");
    predict(&dir, "is a directory");
    predict(&dir.join("nope.safetensors"), "cannot read checkpoint");

    // Extra tensors: a warning, and it still works.
    let p = dir.join("extra.safetensors");
    let mut t = params_raw(&params);
    t.push((
        "batch_stats.mean".into(),
        safetensors::Dtype::F32,
        vec![2],
        vec![0u8; 8],
    ));
    save_raw(&p, t);
    let (code, out, err) = cli(&["predict", "--checkpoint", p.to_str().unwrap(), img]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("warning") && err.contains("batch_stats.mean"),
        "{err}"
    );

    // Images: not an image, truncated, zero-sized.
    let g = good.to_str().unwrap();
    let txt = dir.join("notes.png");
    std::fs::write(&txt, b"hello").unwrap();
    assert_error(
        &["predict", "--checkpoint", g, txt.to_str().unwrap()],
        "not a readable image",
    );
    let png = std::fs::read(img).unwrap();
    let cut = dir.join("cut.png");
    std::fs::write(&cut, &png[..png.len() / 2]).unwrap();
    assert_error(
        &["predict", "--checkpoint", g, cut.to_str().unwrap()],
        "cut.png",
    );
    let mut zero = png.clone();
    zero[16..24].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // IHDR width and height = 0
    let z = dir.join("zero.png");
    std::fs::write(&z, zero).unwrap();
    assert_error(
        &["predict", "--checkpoint", g, z.to_str().unwrap()],
        "zero.png",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn disk_full_at_checkpoint_time_is_an_error_and_keeps_nothing_half_written() {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("disk-full");
    let d = data_slice(&dir.join("data"), 30);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    // The checkpoint's temporary file lands on /dev/full: every write fails with ENOSPC, as
    // on a full disk.
    std::os::unix::fs::symlink("/dev/full", run.join("last.safetensors.tmp")).unwrap();
    assert_error(
        &train_args(d.to_str().unwrap(), run.to_str().unwrap(), &[]),
        "last.safetensors",
    );
    assert!(
        !run.join("last.safetensors").exists(),
        "a half-written checkpoint was left"
    );
    assert!(
        !run.join("last.safetensors.tmp").exists(),
        "the temporary file was left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupted_files_give_errors_never_panics() {
    let mut r = rng(99);
    let records: Vec<u8> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(i as u8);
            v.extend((0..3072).map(|_| r.random::<u8>()));
        }
        v
    };
    let mut errors = 0;
    for i in 0..300 {
        let mut b = records.clone();
        let breaks_format = match i % 3 {
            0 => {
                let n = r.random_range(0..b.len());
                b.truncate(n);
                true
            }
            1 => {
                let k = r.random_range(0..4) * RECORD_BYTES;
                b[k] = r.random_range(10..=255);
                true
            }
            _ => {
                let at = r.random_range(0..b.len());
                b.insert(at, r.random());
                true
            }
        };
        let res = std::panic::catch_unwind(|| data::parse_records(&b, "fuzz.bin").map(|s| s.len()));
        let res = res.expect("parse_records panicked");
        if breaks_format {
            assert!(res.is_err(), "corruption {i} was accepted");
        }
        errors += res.is_err() as u32;
    }
    assert_eq!(errors, 300);

    let dir = temp_dir("fuzz-ck");
    let good = dir.join("good.safetensors");
    let params = seed_layout().init(2);
    checkpoint::save(&good, &seed_checkpoint(params.clone())).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let p = dir.join("c.safetensors");
    let mut rejected = 0;
    for i in 0..300 {
        let mut b = bytes.clone();
        match i % 3 {
            // Header damage: parse errors, wrong names, shapes, dtypes, offsets.
            0 => {
                let k = r.random_range(0..header);
                b[k] = r.random();
            }
            1 => b.truncate(r.random_range(0..b.len())),
            // Data damage: NaN/Inf patterns in a tensor.
            _ => {
                let k = r.random_range(header..b.len() - 4) & !3;
                b[k..k + 4].copy_from_slice(&[0x00, 0x00, 0xc0, 0x7f]);
            }
        }
        std::fs::write(&p, &b).unwrap();
        let res =
            std::panic::catch_unwind(|| checkpoint::load(&p)).expect("checkpoint::load panicked");
        match res {
            Err(_) => rejected += 1,
            // A header byte flip can keep the file valid (e.g. inside a number's digits that
            // stay in range, or in padding); whatever loads must still be a sound model.
            Ok(ck) => {
                assert_eq!(ck.params.len(), 8);
                assert!(ck.params.iter().flatten().all(|v| v.is_finite()));
            }
        }
    }
    assert!(
        rejected >= 250,
        "only {rejected} of 300 corrupted checkpoints were rejected"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn long_run_memory_stays_flat() {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("flat");
    let d = data_slice(&dir.join("data"), 100);
    let run = dir.join("run");
    let (code, out, err) = cli(&[
        "train",
        "--data",
        d.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "6",
        "--batch-size",
        "25",
        "--val-size",
        "50",
        "--test-limit",
        "50",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let history: Vec<wgpu_cnn::report::EpochMetrics> =
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(history.len(), 6);
    let gpu_bytes: Vec<u64> = history.iter().map(|m| m.gpu_bytes.unwrap()).collect();
    assert!(
        gpu_bytes.windows(2).all(|w| w[0] == w[1]),
        "GPU bytes changed: {gpu_bytes:?}"
    );
    let live: Vec<usize> = history.iter().map(|m| m.live_buffers.unwrap()).collect();
    assert!(
        live.windows(2).all(|w| w[0] == w[1]),
        "live wgpu buffers changed: {live:?}"
    );
    let rss: Vec<u64> = history.iter().map(|m| m.rss_bytes.unwrap()).collect();
    // After the first epoch (allocator and driver warm-up) resident memory stays within 16 MiB.
    let growth = rss[5] as i64 - rss[1] as i64;
    assert!(
        growth < 16 << 20,
        "resident memory grew by {} MiB over 4 epochs: {rss:?}",
        growth >> 20
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader that has closed the pipe ends the process as it does any Unix tool (SIGPIPE),
/// without a panic message; `train` instead goes on to the end of its run.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .arg("recipes")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run wgpu-cnn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(13),
        "status {:?}, stderr {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `train` whose stdout and stderr readers are gone keeps training and checkpoints.
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("closed-stdout");
    let d = data_slice(&dir.join("data"), 30);
    let run = dir.join("run");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let (ereader, ewriter) = std::io::pipe().expect("pipe");
    drop(ereader);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args(train_args(
            d.to_str().unwrap(),
            run.to_str().unwrap(),
            &["--epochs", "2", "--test-limit", "10"],
        ))
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .stdout(writer)
        .stderr(ewriter)
        .status()
        .expect("run wgpu-cnn");
    assert!(status.success(), "{status:?}");
    let ck = checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert_eq!(ck.meta::<u32>("epoch"), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checkpoints written by other tools (a Flax or JAX script): a `model` metadata entry of free
/// text is ignored with a one-line note and the seed's tensors evaluate as the seed; a non-seed
/// model's tensors without a description need `--model`, which the error names; `--model`
/// (a preset or a file) wins over the file's own description; a tensor of the wrong shape for
/// the named model is an error naming it and both shapes.
#[test]
fn foreign_checkpoints_load_with_model() {
    let dir = temp_dir("foreign-ck");
    let img = dir.join("img.png");
    image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 8) as u8, 90])
    })
    .save(&img)
    .unwrap();
    let img = img.to_str().unwrap();
    let predict = |ck: &Path, model: Option<&str>| {
        let mut args = vec!["predict", "--checkpoint", ck.to_str().unwrap(), img];
        if let Some(m) = model {
            args.extend(["--model", m]);
        }
        cli(&args)
    };

    // The seed's tensors with free-text metadata: a note, and the seed's predictions.
    let params = seed_layout().init(1);
    let good = dir.join("seed.safetensors");
    checkpoint::save(&good, &seed_checkpoint(params.clone())).unwrap();
    // `eval --test-limit N`: the first N test images (issue 31's smoke test of a checkpoint).
    let data = cifar_dir();
    let ev = |limit: &str| {
        cli(&[
            "eval",
            "--checkpoint",
            good.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--test-limit",
            limit,
        ])
    };
    let (code, out, err) = ev("37");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the first 37 of 10000 test images") && out.contains("/37)"),
        "{out}"
    );
    let (code, _, err) = ev("0");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error:") && err.contains("--test-limit"),
        "{err}"
    );
    let (code, want, _) = predict(&good, None);
    assert_eq!(code, 0);
    let free = dir.join("free-text.safetensors");
    save_with(
        &free,
        params_raw(&params),
        Some(("model", "flax tutorial CNN")),
    );
    let (code, out, err) = predict(&free, None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is not a model description: ignored"), "{err}");
    assert_eq!(
        out.replace(free.to_str().unwrap(), ""),
        want.replace(good.to_str().unwrap(), "")
    );
    // A broken description is still an error, not a note.
    let broken = dir.join("broken.safetensors");
    save_with(
        &broken,
        params_raw(&params),
        Some(("model", "input = [32, 32, 3]\n[[layer]]\ntype = \"nope\"\n")),
    );
    assert_error(
        &["predict", "--checkpoint", broken.to_str().unwrap(), img],
        "its model description",
    );

    // lenet5's tensors, no description: the error names --model; with it, lenet5's answer.
    let lenet = wgpu_cnn::graph::zoo::preset("lenet5").unwrap();
    let layout = wgpu_cnn::plan::ParamLayout::of(&lenet).unwrap();
    let lp = layout.init(2);
    let raw = |ps: &[Vec<f32>]| layout_raw(&layout, ps);
    let bare = dir.join("lenet-bare.safetensors");
    save_with(&bare, raw(&lp), None);
    let (code, _, err) = predict(&bare, None);
    assert_eq!(code, 1);
    assert!(err.contains("--model") && err.lines().count() == 1, "{err}");
    let with_desc = dir.join("lenet.safetensors");
    let text = wgpu_cnn::graph::zoo::text("lenet5").unwrap();
    checkpoint::save(
        &with_desc,
        &Checkpoint::new(lenet.clone(), text.into(), lp.clone()),
    )
    .unwrap();
    let (code, want, _) = predict(&with_desc, None);
    assert_eq!(code, 0);
    let (code, out, err) = predict(&bare, Some("lenet5"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.replace(bare.to_str().unwrap(), ""),
        want.replace(with_desc.to_str().unwrap(), "")
    );
    // A model file works as well as a preset name.
    let file = dir.join("lenet5.toml");
    std::fs::write(&file, text).unwrap();
    let (code, out, _) = predict(&bare, Some(file.to_str().unwrap()));
    assert_eq!(code, 0);
    assert_eq!(
        out.replace(bare.to_str().unwrap(), ""),
        want.replace(with_desc.to_str().unwrap(), "")
    );
    // --model wins over the file's own description.
    let (code, _, err) = predict(&with_desc, Some("flax-cifar10"));
    assert_eq!(code, 1);
    assert!(err.contains("tensor Conv_0.kernel has shape"), "{err}");
    // A tensor of the wrong shape for the named model.
    let mut t = raw(&lp);
    let wrong: Vec<usize> = t[0].2.iter().rev().copied().collect();
    assert_ne!(wrong, t[0].2);
    t[0].2 = wrong.clone();
    let shaped = dir.join("lenet-shape.safetensors");
    save_with(&shaped, t, None);
    let (code, _, err) = predict(&shaped, Some("lenet5"));
    assert_eq!(code, 1);
    let named = format!(
        "tensor {} has shape {wrong:?}, expected {:?}",
        layout.specs[0].name, layout.specs[0].shape
    );
    assert!(err.contains(&named), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checkpoints compressed with xz or gzip load as they are (recognised by their magic bytes),
/// the shipped ResNet-20 among them; a truncated one is one clear error.
#[test]
fn compressed_checkpoints_load_directly() {
    let dir = temp_dir("compressed-ck");
    let mut r = rng(31);
    let params: Vec<Vec<f32>> = seed_layout()
        .specs
        .iter()
        .map(|s| (0..s.len()).map(|_| r.random_range(-1.0..1.0)).collect())
        .collect();
    let plain = dir.join("seed.safetensors");
    checkpoint::save(&plain, &seed_checkpoint(params.clone())).unwrap();
    let bytes = std::fs::read(&plain).unwrap();

    let xz = dir.join("seed.safetensors.xz");
    let mut packed = Vec::new();
    lzma_rs::xz_compress(&mut &bytes[..], &mut packed).unwrap();
    std::fs::write(&xz, &packed).unwrap();
    let gz = dir.join("seed.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &bytes).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    for f in [&xz, &gz] {
        assert_eq!(
            checkpoint::load(f).unwrap().params,
            params,
            "{}",
            f.display()
        );
    }
    std::fs::write(&xz, &packed[..packed.len() / 2]).unwrap();
    assert_error(
        &["eval", "--checkpoint", xz.to_str().unwrap()],
        "broken xz file",
    );

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("checkpoints/cifar10-resnet20/resnet20-cifar10-40ep.safetensors.xz");
    let ck = checkpoint::load(&shipped).unwrap();
    assert_eq!(
        ck.model.layers.len(),
        wgpu_cnn::graph::zoo::preset("resnet20")
            .unwrap()
            .layers
            .len()
    );
    assert_eq!(ck.params.len(), ck.specs().len());
}
