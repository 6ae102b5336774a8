//! `--resume` continues a run to the same final weights, bit for bit, as an uninterrupted run:
//! from an epoch boundary (a checkpoint with the older `adam.mu` / `adam.nu` names among them),
//! and from a Ctrl-C (SIGINT) in the middle of an epoch.

mod common;

use std::path::Path;

use common::{cifar_dir, cli, gpu, temp_dir};

fn args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--train-limit",
        "600",
        "--val-size",
        "100",
        "--batch-size",
        "50",
        "--test-limit",
        "100",
        "--epochs",
        epochs,
        "--out",
        out,
    ]
}

/// The CLI with `args`, stopped as by a Ctrl-C once `step` steps are done
/// (`WGPU_CNN_INTERRUPT_AT_STEP`: at the end of the submit that reaches it).
fn interrupted_at(args: &[String], step: u32) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args(args)
        .env("WGPU_CNN_INTERRUPT_AT_STEP", step.to_string())
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .output()
        .unwrap()
}

/// Parameters, batch-norm running statistics and Adam state of a checkpoint, as bits.
fn state(path: &Path) -> Vec<u32> {
    let ck = wgpu_cnn::checkpoint::load(path).unwrap();
    let (mu, nu) = ck.opt_state.unwrap();
    ck.params
        .iter()
        .chain(&ck.batch_stats)
        .chain(&mu)
        .chain(&nu)
        .flatten()
        .map(|v| v.to_bits())
        .collect()
}

/// Rewrites a checkpoint with the Adam state under its older names (`adam.mu.*`, `adam.nu.*`,
/// as written before the optimizer slots became `opt.<slot>.*`), metadata unchanged.
fn rename_to_old_adam_names(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut renamed = 0;
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let old = n
                .replace("opt.mu.", "adam.mu.")
                .replace("opt.nu.", "adam.nu.");
            renamed += (old != n) as usize;
            (old, v)
        })
        .collect();
    assert!(renamed > 0, "no opt.mu / opt.nu tensors in {path:?}");
    let out = safetensors::serialize(views, meta.metadata().clone()).unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn resume_equals_uninterrupted_run() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("resume");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));

    let (code, out, err) = cli(&args(data, a.to_str().unwrap(), "3"));
    assert_eq!(code, 0, "{out}\n{err}");
    let want = state(&a.join("last.safetensors"));

    // Stop after one epoch, resume to three.
    let (code, out, err) = cli(&args(data, b.to_str().unwrap(), "1"));
    assert_eq!(code, 0, "{out}\n{err}");
    // A kill after the epoch's checkpoint but before its log line: the checkpoint commits the
    // epoch and carries its metrics, so the resumed log is whole again.
    std::fs::write(b.join("metrics.jsonl"), "").unwrap();
    let ck = b.join("last.safetensors");
    // … from a checkpoint whose Adam state has the older names: they still load.
    rename_to_old_adam_names(&ck);
    let (code, out, err) = cli(&["train", "--resume", ck.to_str().unwrap(), "--epochs", "3"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("epoch: 002") && !out.contains("epoch: 000"),
        "{out}"
    );
    assert!(
        out.contains("resumed from ")
            && out.contains(": epoch 1, step 0 of 12 (1 of 3 epochs done)"),
        "{out}"
    );
    assert!(
        state(&b.join("last.safetensors")) == want,
        "resumed run differs from the uninterrupted one"
    );
    let log = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, [0, 1, 2], "{log}");

    // Ctrl-C in the middle of epoch 1: a checkpoint, exit code 130, then resume.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args(args(data, c.to_str().unwrap(), "3"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for epoch 0's checkpoint, then land inside epoch 1 (12 steps of ~0.1-0.2 s).
    let first_ck = c.join("last.safetensors");
    let t0 = std::time::Instant::now();
    while !first_ck.exists() {
        assert!(t0.elapsed().as_secs() < 300, "epoch 0 never finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let ck = wgpu_cnn::checkpoint::load(&c.join("last.safetensors")).unwrap();
    if stderr.contains("interrupted at epoch 1, step ") {
        assert_eq!(ck.meta::<u32>("epoch"), Some(1));
        assert!(ck.meta::<u32>("step_in_epoch").unwrap() > 0);
    } else {
        // On a loaded machine the signal can land in epoch 1's validation instead: then the
        // run stops at the epoch boundary, with that epoch's checkpoint.
        assert!(stderr.contains("interrupted after epoch "), "{stderr}");
        assert_eq!(ck.meta::<u32>("step_in_epoch"), Some(0));
    }
    let ckp = c.join("last.safetensors");
    let (code, out, err) = cli(&["train", "--resume", ckp.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        state(&c.join("last.safetensors")) == want,
        "run resumed mid-epoch differs from the uninterrupted one"
    );
    // TensorBoard's event file holds exactly metrics.jsonl's epochs, once each, after both
    // resumes (the emptied log, the Ctrl-C), and the final test numbers.
    for run in [&a, &b, &c] {
        tensorboard_matches_metrics(run);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run folder's TensorBoard events against its metrics.jsonl: one summary per epoch line
/// with the same numbers (as f32), in order, then the test.json numbers.
fn tensorboard_matches_metrics(run: &std::path::Path) {
    use wgpu_cnn::tensorboard::{read, What, FILE_NAME};
    let events = read(&run.join(FILE_NAME)).unwrap();
    assert_eq!(
        events[0].what,
        Some(What::FileVersion("brain.Event:2".into()))
    );
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1 + lines.len() + 1, "{}", run.display());
    let scalar = |e: &wgpu_cnn::tensorboard::Event, tag: &str| -> Option<f32> {
        match &e.what {
            Some(What::Summary(s)) => s
                .value
                .iter()
                .find(|v| v.tag == tag)
                .map(|v| v.simple_value),
            _ => panic!("event {e:?} is not a summary"),
        }
    };
    for (e, l) in events[1..].iter().zip(&lines) {
        assert_eq!(e.step as u64, l["epoch"].as_u64().unwrap());
        for (tag, key) in [
            ("train/loss", "train_loss"),
            ("train/accuracy", "train_accuracy"),
            ("learning_rate", "lr"),
            ("images_per_second", "images_per_second"),
        ] {
            assert_eq!(
                scalar(e, tag),
                Some(l[key].as_f64().unwrap() as f32),
                "{tag}"
            );
        }
        assert_eq!(
            scalar(e, "val/loss"),
            l["val_loss"].as_f64().map(|v| v as f32)
        );
    }
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.step as u64, test["epoch"].as_u64().unwrap());
    assert_eq!(
        scalar(last, "test/accuracy"),
        test["accuracy"].as_f64().map(|v| v as f32)
    );
}

/// `--checkpoint-minutes`: checkpoints inside epochs leave the weights' bits alone, and a run
/// killed with SIGKILL (no handler, no Ctrl-C checkpoint) resumes from the last of them to the
/// uninterrupted run's bits.
#[test]
fn periodic_checkpoints_survive_kill_9() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("periodic");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (code, out, err) = cli(&args(data, a.to_str().unwrap(), "3"));
    assert_eq!(code, 0, "{out}\n{err}");
    let want = state(&a.join("last.safetensors"));

    // A checkpoint at every submit boundary inside an epoch (4 steps, 12 per epoch): 60 µs
    // is always due, even where a submit returns before its work is done (recording 4 steps
    // takes longer).
    let mut periodic = args(data, b.to_str().unwrap(), "3");
    periodic.extend([
        "--steps-per-submit",
        "4",
        "--checkpoint-minutes",
        "0.000001",
    ]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args(&periodic)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the checkpoint on disk is inside an epoch after the first (reads race the
    // writes: each write is a rename, so every read sees a whole checkpoint). The run is stopped
    // (SIGSTOP) before the decisive read, so the checkpoint read is the one resumed from.
    let ck = b.join("last.safetensors");
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };
    let inside = |c: &wgpu_cnn::checkpoint::Checkpoint| {
        c.meta::<u32>("epoch").unwrap() >= 1 && c.meta::<u32>("step_in_epoch").unwrap() > 0
    };
    let t0 = std::time::Instant::now();
    let (epoch, step) = loop {
        assert!(
            t0.elapsed().as_secs() < 300,
            "no checkpoint inside epoch 1 or 2"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint inside epoch 1 or 2 was seen"
        );
        if wgpu_cnn::checkpoint::load(&ck).is_ok_and(|c| inside(&c)) {
            signal("-STOP");
            let c = wgpu_cnn::checkpoint::load(&ck).unwrap();
            if inside(&c) {
                break (
                    c.meta::<u32>("epoch").unwrap(),
                    c.meta::<u32>("step_in_epoch").unwrap(),
                );
            }
            signal("-CONT");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, out, err) = cli(&[
        "train",
        "--resume",
        ck.to_str().unwrap(),
        "--checkpoint-minutes",
        "0.0001",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        state(&ck) == want,
        "run resumed from a periodic checkpoint (epoch {epoch}, step {step}) differs from the uninterrupted one"
    );
    // The log holds whole epochs only, each once, with the uninterrupted run's training loss
    // and accuracy (the killed epoch's totals so far came back from the checkpoint).
    let metrics = |dir: &Path| -> Vec<(u64, f64, f64)> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["epoch"].as_u64().unwrap(),
                    v["train_loss"].as_f64().unwrap(),
                    v["train_accuracy"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(metrics(&b), metrics(&a));
    assert_eq!(metrics(&b).len(), 3);
    for bad in ["0", "-1", "nan", "1e300"] {
        let flag = format!("--checkpoint-minutes={bad}");
        let (code, _, err) = cli(&[
            "train",
            "--resume",
            ck.to_str().unwrap(),
            "--epochs",
            "4",
            &flag,
        ]);
        assert_eq!(code, 1, "{bad}");
        assert!(
            err.starts_with("error: --checkpoint-minutes must be a positive number"),
            "{bad}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The own-model run's optimizer: SGD with Nesterov momentum and weight decay on kernels (its
/// trace is the checkpoint's `opt.trace.*`).
const SGD: [&str; 10] = [
    "--optimizer",
    "sgd",
    "--momentum",
    "0.9",
    "--nesterov",
    "--weight-decay",
    "5e-4",
    "--decay-mask",
    "kernels",
    "--lr=0.01",
];

/// A model of one's own (from a file, with batch norm, a residual block, dropout, max pooling and
/// GELU) through the whole CLI:
/// train, resume from an epoch boundary to the same bits (dropout masks follow the seed and the
/// step, both restored), then `eval` and `predict` read the model from the checkpoint alone.
#[test]
fn own_model_with_dropout_trains_resumes_evaluates_and_predicts() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("own-model");
    let model = dir.join("mine.toml");
    std::fs::write(
        &model,
        "input = [32, 32, 3]\nclasses = 10\nlayer = [\n\
         { type = \"conv\", features = 8, kernel = 3, stride = 2, bias = false },\n\
         { type = \"batch_norm\" },\n\
         { type = \"gelu\" },\n\
         { type = \"residual\", body = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\", momentum = 0.5 }, { type = \"relu\" } ] },\n\
         { type = \"max_pool\", window = 3, stride = 2, padding = \"SAME\" },\n\
         { type = \"flatten\" },\n\
         { type = \"dense\", features = 32 },\n\
         { type = \"relu\" },\n\
         { type = \"dropout\", rate = 0.5 },\n\
         { type = \"dense\", features = 10 },\n]\n",
    )
    .unwrap();
    let model = model.to_str().unwrap();
    let run = |out: &Path, epochs: &str, resume: Option<&Path>| {
        let mut a = args(data, out.to_str().unwrap(), epochs);
        match resume {
            Some(ck) => {
                // A resumed run keeps its own settings and model.
                a = vec!["train", "--data", data, "--epochs", epochs];
                a.extend(["--resume", ck.to_str().unwrap()]);
            }
            None => a.extend(["--model", model]),
        }
        if resume.is_none() {
            a.extend(SGD);
        }
        let (code, stdout, stderr) = cli(&a);
        assert_eq!(code, 0, "{a:?}\n{stdout}\n{stderr}");
        stdout
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    run(&a, "2", None);
    let want = state(&a.join("last.safetensors"));
    run(&b, "1", None);
    run(&b, "2", Some(&b.join("last.safetensors")));
    assert!(
        state(&b.join("last.safetensors")) == want,
        "resumed own-model run differs from the uninterrupted one"
    );
    // The run's own command line repeated with --resume is accepted (--epochs may grow); a flag
    // that changes a setting is refused, naming it and both values.
    let ckb = b.join("last.safetensors");
    let mut again = args(data, b.to_str().unwrap(), "2");
    again.extend(["--model", model, "--resume", ckb.to_str().unwrap()]);
    again.extend(SGD);
    let (code, stdout, stderr) = cli(&again);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (code, _, stderr) = cli(&["train", "--resume", ckb.to_str().unwrap(), "--lr", "0.5"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: --lr (0.5) conflicts with the run being resumed (0.01)"),
        "{stderr}"
    );
    let ck = wgpu_cnn::checkpoint::load(&a.join("last.safetensors")).unwrap();
    // SGD's state is its momentum trace.
    let bytes = std::fs::read(a.join("last.safetensors")).unwrap();
    let names = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>();
    assert!(
        names.iter().any(|n| n == "opt.trace.Conv_0.kernel"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("opt.nu.") || n.starts_with("adam.")),
        "{names:?}"
    );
    // The running statistics were trained and saved (means start at 0).
    assert_eq!(ck.batch_stats.len(), 4);
    assert!(ck.batch_stats[0].iter().any(|&m| m != 0.0));
    assert_eq!(
        ck.model,
        wgpu_cnn::graph::zoo::resolve(model).unwrap().0,
        "the checkpoint carries the description"
    );
    // eval and predict without --model.
    let ckp = a.join("last.safetensors");
    let (code, stdout, stderr) = cli(&[
        "eval",
        "--checkpoint",
        ckp.to_str().unwrap(),
        "--data",
        data,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("test: loss:"), "{stdout}");
    let img = dir.join("img.png");
    image::RgbImage::from_pixel(40, 24, image::Rgb([200, 30, 60]))
        .save(&img)
        .unwrap();
    let (code, stdout, stderr) = cli(&[
        "predict",
        "--checkpoint",
        ckp.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

/// Every optimizer with a learning-rate schedule, stopped by Ctrl-C during the warmup and
/// resumed, ends bit-identical (parameters, running statistics, optimizer state) to the
/// uninterrupted run: the step count, and with it the schedule's position, come back from the
/// checkpoint.
#[test]
fn every_optimizer_resumes_mid_warmup_bit_exactly() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("resume-schedules");
    // 12 steps per epoch, 2 epochs; the warmup covers 20 of the 24 steps.
    let sched = [
        "--schedule",
        "warmup-cosine",
        "--warmup-steps",
        "20",
        "--end-lr",
        "1e-5",
    ];
    let optimizers: [(&str, &[&str]); 3] = [
        ("adam", &["--lr", "2e-3"]),
        (
            "adamw",
            &[
                "--optimizer",
                "adamw",
                "--weight-decay",
                "1e-2",
                "--lr",
                "2e-3",
            ],
        ),
        ("sgd", &SGD),
    ];
    let mut cases: Vec<(&str, Vec<&str>)> = optimizers
        .iter()
        .map(|(name, opt)| (*name, [&sched[..], opt].concat()))
        .collect();
    // The other schedules, resumed across a boundary (piecewise: step 18, in epoch 1).
    cases.push((
        "adam-cosine",
        vec!["--lr", "2e-3", "--schedule", "cosine", "--end-lr", "1e-5"],
    ));
    cases.push((
        "sgd-piecewise",
        [
            &SGD[..],
            &[
                "--schedule",
                "piecewise",
                "--boundaries",
                "6,18",
                "--scales",
                "0.5,0.2",
            ],
        ]
        .concat(),
    ));
    // Parameter groups: one frozen after epoch 0 (the resumed run starts in epoch 1), one at
    // another rate and decay.
    cases.push((
        "sgd-groups",
        [
            &SGD[..],
            &[
                "--param-group",
                "Conv_0.*: frozen-from-epoch=1",
                "--param-group",
                "Dense_*.bias: lr=4, decay=0.25",
            ],
        ]
        .concat(),
    ));
    // Lookahead (slow weights and statistics in the checkpoint): syncs after updates 5, 10,
    // 15 (before the interrupt), 20, and the copy-back after 24.
    cases.push((
        "sgd-lookahead",
        [
            &SGD[..],
            &["--lookahead", "every=5, decay=0.7737809375, power=3"],
        ]
        .concat(),
    ));
    for (name, opt) in cases {
        let (a, b) = (dir.join(format!("{name}-a")), dir.join(format!("{name}-b")));
        let run = |out: &Path| -> Vec<String> {
            let mut v: Vec<String> = args(data, out.to_str().unwrap(), "2")
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.extend(
                ["--model", "lenet5", "--steps-per-submit", "4"]
                    .iter()
                    .map(|s| s.to_string()),
            );
            v.extend(opt.iter().map(|s| s.to_string()));
            v
        };
        let full = run(&a);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let (code, out, err) = cli(&full);
        assert_eq!(code, 0, "{name}: {out}\n{err}");
        let want = state(&a.join("last.safetensors"));
        if name == "sgd-lookahead" {
            let ck = wgpu_cnn::checkpoint::load(&a.join("last.safetensors")).unwrap();
            let (slow, _) = ck.lookahead.clone().expect("the slow weights are kept");
            assert!(
                slow == ck.params,
                "{name}: the run ends on the slow weights"
            );
        }
        if name == "sgd-groups" {
            let recipe = std::fs::read_to_string(a.join("recipe.toml")).unwrap();
            assert!(
                recipe.contains("param_group = [\"Conv_0.*: frozen-from-epoch=1\", \"Dense_*.bias: lr=4, decay=0.25\"]"),
                "{recipe}"
            );
            assert!(out.contains("group Conv_0.*: frozen-from-epoch=1"), "{out}");
        }

        // A Ctrl-C that lands after step 15 of 24 (the hook acts at the end of the submit
        // that reaches it: step 16, inside epoch 1 and the warmup), whatever the machine's speed.
        let output = interrupted_at(&run(&b), 15);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "{name}: {stderr}");
        assert!(
            stderr.contains("interrupted at epoch 1, step 4:"),
            "{name}: {stderr}"
        );
        let first_ck = b.join("last.safetensors");
        let ck = wgpu_cnn::checkpoint::load(&first_ck).unwrap();
        assert_eq!(ck.meta::<u32>("step"), Some(16), "{name}");
        assert!(state(&first_ck) != want, "{name}: stopped at the end");
        let (code, out, err) = cli(&["train", "--resume", first_ck.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {out}\n{err}");
        assert!(
            state(&first_ck) == want,
            "{name}: the resumed run differs from the uninterrupted one"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many steps per submit (crops and per-step uniforms copied from buffers filled once per
/// epoch) give the same bits as one submit per step (crops and uniforms written by the queue
/// before each submit): two epochs of a model with batch norm,
/// a residual block and dropout (whose per-step seeds come from the table), SGD with a schedule.
/// A streamed data set (`--stream-data`: each submit's images copied into a window) gives the
/// same bits, the same validation and test results, and resumes bit-exactly.
#[test]
fn steps_per_submit_and_streaming_do_not_change_the_weights() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("per-submit");
    let model = dir.join("m.toml");
    std::fs::write(
        &model,
        "input = [32, 32, 3]\nclasses = 10\nlayer = [ { type = \"conv\", features = 8, kernel = 3, stride = 2, bias = false }, { type = \"batch_norm\" }, { type = \"relu\" }, { type = \"residual\", body = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\" } ] }, { type = \"relu\" }, { type = \"max_pool\", window = 2 }, { type = \"flatten\" }, { type = \"dropout\", rate = 0.3 }, { type = \"dense\", features = 10 } ]\n",
    )
    .unwrap();
    let run = |name: &str, per: &str, stream: bool, interrupt: Option<&str>| {
        let out = dir.join(name);
        let mut a: Vec<String> = args(data, out.to_str().unwrap(), "2")
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(
            [
                "--model",
                model.to_str().unwrap(),
                "--steps-per-submit",
                per,
                "--schedule",
                "cosine",
            ]
            .iter()
            .chain(SGD.iter())
            .map(|s| s.to_string()),
        );
        if stream {
            a.push("--stream-data".into());
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"));
        cmd.args(&a).env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        );
        if let Some(n) = interrupt {
            cmd.env("WGPU_CNN_INTERRUPT_AT_STEP", n);
        }
        let o = cmd.output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        );
        (o.status.code(), stdout, stderr, out)
    };
    // What a run reports besides timing: losses and accuracies per epoch, the test lines.
    let results = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.starts_with("test") || l.starts_with("epoch:"))
            .map(|l| {
                let f: Vec<&str> = l.split(", ").collect();
                match l.starts_with("epoch:") {
                    true => f[..f.len().saturating_sub(2)].join(", "),
                    false => l.to_string(),
                }
            })
            .collect()
    };
    let mut states = Vec::new();
    let mut reports = Vec::new();
    for (per, stream) in [
        ("1", false),
        ("5", false),
        ("64", false),
        ("1", true),
        ("5", true),
    ] {
        let name = format!("per{per}{}", if stream { "-stream" } else { "" });
        let (code, o, e, out) = run(&name, per, stream, None);
        assert_eq!(code, Some(0), "{name}: {o}\n{e}");
        assert_eq!(
            o.contains("training images streamed: a window of"),
            stream,
            "{name}: {o}"
        );
        states.push(state(&out.join("last.safetensors")));
        reports.push(results(&o));
    }
    assert!(reports[0].len() >= 4, "{:?}", reports[0]);
    assert!(states[0] == states[1], "5 steps per submit differ from 1");
    assert!(
        states[0] == states[2],
        "a whole epoch per submit differs from 1 step"
    );
    assert!(
        states[0] == states[3],
        "streamed, 1 step per submit, differs"
    );
    assert!(
        states[0] == states[4],
        "streamed, 5 steps per submit, differs"
    );
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r, &reports[0], "run {i} reports other results");
    }
    // Streamed, interrupted inside epoch 1 and resumed, streamed again (`--stream-data` is not
    // stored with the run, as `--checkpoint-minutes`) or resident: the same bits again.
    let (code, _, e, out) = run("stream-resumed", "5", true, Some("15"));
    assert_eq!(code, Some(130), "{e}");
    let ck = out.join("last.safetensors");
    assert!(state(&ck) != states[0], "stopped at the end");
    let copy = dir.join("stream-resumed-resident");
    std::fs::create_dir_all(&copy).unwrap();
    for f in [
        "last.safetensors",
        "best.safetensors",
        "metrics.jsonl",
        "config.json",
    ] {
        std::fs::copy(out.join(f), copy.join(f)).unwrap();
    }
    for (ck, flags, streamed) in [
        (ck, &["--stream-data"][..], true),
        (copy.join("last.safetensors"), &[][..], false),
    ] {
        let mut a = vec!["train", "--resume", ck.to_str().unwrap()];
        a.extend(flags);
        let (code, o, e) = cli(&a);
        assert_eq!(code, 0, "{o}\n{e}");
        assert_eq!(o.contains("training images streamed"), streamed, "{o}");
        assert!(
            state(&ck) == states[0],
            "the resumed run (streamed: {streamed}) differs from the uninterrupted one"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--resume` with a larger `--epochs` keeps the learning-rate schedule it planned (a cosine
/// annealed to 0 does not jump back up), says so with the rate before and after, and records
/// the planned length: the run's recipe.toml repeats the resumed run bit for bit.
#[test]
fn resume_with_more_epochs_keeps_the_schedule_and_its_recipe_repeats_it() {
    gpu().expect("training runs on the GPU");
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("resume-epochs");
    let run = dir.join("run");
    let cosine = ["--optimizer", "sgd", "--lr", "0.05", "--schedule", "cosine"];
    let mut a = args(data, run.to_str().unwrap(), "1");
    a.extend_from_slice(&cosine);
    let (code, out, err) = cli(&a);
    assert_eq!(code, 0, "{out}{err}");
    let last = run.join("last.safetensors");
    let (code, out, err) = cli(&["train", "--resume", last.to_str().unwrap(), "--epochs", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    // 600 training images in batches of 50: 12 steps an epoch.
    assert!(
        out.contains(
            "learning-rate schedule kept as planned over 1 epochs (12 steps; --epochs 2 now): 0.0000e0 at step 12, 0.0000e0 from step 12 to the run's end at step 24"
        ),
        "{out}"
    );
    // metrics.jsonl: the run's steps so far and the rate of each epoch's last update.
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = metrics
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [12, 24]);
    let lr: Vec<f64> = metrics.iter().map(|m| m["lr"].as_f64().unwrap()).collect();
    // optax.cosine_decay_schedule(0.05, 12) at count 11, then held at its end (0).
    // (The base rate is the f32 the GPU holds.)
    let want = 0.05f32 as f64 * 0.5 * (1.0 + (std::f64::consts::PI * 11.0 / 12.0).cos());
    assert!((lr[0] - want).abs() < 1e-12 && lr[1] == 0.0, "{lr:?}");
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe.contains("schedule_epochs = 1"), "{recipe}");
    assert!(recipe.contains("epochs = 2"), "{recipe}");

    let again = dir.join("again");
    let (code, out, err) = cli(&[
        "train",
        "--recipe",
        run.join("recipe.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        state(&last),
        state(&again.join("last.safetensors")),
        "the recipe of a resumed run repeats it"
    );
    // Changing the planned length on resume is a setting change, refused by name.
    let (code, _, err) = cli(&[
        "train",
        "--resume",
        last.to_str().unwrap(),
        "--epochs",
        "3",
        "--schedule-epochs",
        "3",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--schedule-epochs (3) conflicts"), "{err}");
}

/// `--early-stop PATIENCE` stops when the validation accuracy has not improved for PATIENCE
/// epochs (and a resumed run stops at the same place); `--keep-every N` keeps every N-th
/// epoch's checkpoint beside last and best.
#[test]
fn early_stop_and_keep_every() {
    gpu().expect("training runs on the GPU");
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("early-stop");
    let run = dir.join("run");
    // A rate too small to change any prediction: the validation accuracy never improves on
    // epoch 0's, so patience 2 stops the run after epoch 2.
    let mut a = args(data, run.to_str().unwrap(), "6");
    a.extend_from_slice(&["--lr", "1e-12", "--early-stop", "2", "--keep-every", "2"]);
    let (code, out, err) = cli(&a);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("early stop: the validation accuracy has not improved for 2 epochs")
            && out.contains("stopping after epoch 002 of 6"),
        "{out}"
    );
    assert!(out.contains("test, last weights (epoch 002)"), "{out}");
    let epochs = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(epochs, 3);
    assert!(run.join("epoch-001.safetensors").exists());
    assert!(!run.join("epoch-000.safetensors").exists());
    assert!(!run.join("epoch-002.safetensors").exists());
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe.contains("early_stop = 2"), "{recipe}");
    // Resumed, it stops at once.
    let (code, out, err) = cli(&[
        "train",
        "--resume",
        run.join("last.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("early stop"), "{out}");
    assert!(!out.contains("epoch: 003"), "{out}");
}

/// Off a terminal the progress bar is hidden; plain lines with the running training loss come
/// instead, at most every WGPU_CNN_PROGRESS_SECONDS (default 60; 0 here: after every probe).
#[test]
fn plain_progress_lines_off_a_terminal() {
    gpu().expect("training runs on the GPU");
    let data = cifar_dir();
    let dir = temp_dir("progress-lines");
    let mut a = args(data.to_str().unwrap(), dir.to_str().unwrap(), "1");
    a.extend_from_slice(&["--steps-per-submit", "2"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args(&a)
        .env("WGPU_CNN_PROGRESS_SECONDS", "0")
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("(running)")).collect();
    assert!(!lines.is_empty(), "no progress line: {err}");
    assert!(
        lines[0].starts_with("epoch 000: ") && lines[0].contains("steps, train loss "),
        "{}",
        lines[0]
    );
}

/// Fractional epochs (`--epochs 1.5`, airbench94's 9.9): the run makes ceil(1.5 · 12) = 18
/// updates, the second epoch ending after 6 of its 12 steps, with the schedule over 18; its
/// recipe.toml says `epochs = 1.5` and repeats it bit for bit; a Ctrl-C inside the short epoch
/// resumes to the same bits.
#[test]
fn fractional_epochs_end_inside_the_last_epoch() {
    if gpu().is_none() {
        return;
    }
    let data = cifar_dir();
    let data = data.to_str().unwrap();
    let dir = temp_dir("fractional-epochs");
    let run = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> = args(data, out.to_str().unwrap(), "1.5")
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(
            [
                "--model",
                "lenet5",
                "--steps-per-submit",
                "4",
                "--schedule",
                "cosine",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    };
    let a = dir.join("a");
    let full = run(&a);
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let (code, out, err) = cli(&full);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("over 18 steps"), "{out}");
    let ck = wgpu_cnn::checkpoint::load(&a.join("last.safetensors")).unwrap();
    assert_eq!(ck.meta::<u32>("step"), Some(18));
    assert_eq!(ck.meta::<u32>("epoch"), Some(2));
    let recipe = std::fs::read_to_string(a.join("recipe.toml")).unwrap();
    assert!(recipe.contains("epochs = 1.5\n"), "{recipe}");
    let want = state(&a.join("last.safetensors"));

    let again = dir.join("again");
    let (code, out, err) = cli(&[
        "train",
        "--recipe",
        a.join("recipe.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        state(&again.join("last.safetensors")) == want,
        "the recipe repeats the run"
    );

    let b = dir.join("b");
    let output = interrupted_at(&run(&b), 13);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let first_ck = b.join("last.safetensors");
    let (code, out, err) = cli(&["train", "--resume", first_ck.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(state(&first_ck) == want, "the resumed run differs");
    let _ = std::fs::remove_dir_all(&dir);
}
