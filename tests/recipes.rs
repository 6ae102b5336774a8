//! Recipes: the presets parse and build, `--recipe flax-cifar10` trains exactly as plain
//! `train`, a run's recipe.toml reproduces it bit for bit, flags override a recipe, and bad
//! recipes give one clear error.

mod common;

use std::path::Path;

use common::{assert_error, cifar_dir, cli, cli_in, temp_dir};
use wgpu_cnn::recipe::{Recipe, PRESETS};

/// The first `n` records of each real CIFAR-10 file.
fn data_slice(dir: &Path, n: usize) -> String {
    let src = cifar_dir();
    std::fs::create_dir_all(dir).unwrap();
    for f in wgpu_cnn::data::cifar::TRAIN_FILES
        .iter()
        .chain([&wgpu_cnn::data::cifar::TEST_FILE])
    {
        let bytes = std::fs::read(src.join(f)).unwrap();
        std::fs::write(dir.join(f), &bytes[..n * wgpu_cnn::data::RECORD_BYTES]).unwrap();
    }
    dir.to_str().unwrap().to_string()
}

fn train(args: &[&str]) -> String {
    let mut v = vec!["train"];
    v.extend_from_slice(args);
    let (code, out, err) = cli(&v);
    assert_eq!(code, 0, "{v:?}\n{out}\n{err}");
    out
}

fn params(run: &Path) -> Vec<Vec<f32>> {
    let ck = wgpu_cnn::checkpoint::load(&run.join("last.safetensors")).unwrap();
    let mut p = ck.params;
    p.extend(ck.batch_stats);
    p
}

#[test]
fn presets_parse_and_their_models_build() {
    assert_eq!(PRESETS.len(), 5);
    for (name, text) in PRESETS {
        let (r, _) = Recipe::resolve(name).unwrap();
        assert!(!wgpu_cnn::recipe::summary(text).is_empty(), "{name}");
        let desc = match (&r.model, r.model_text().unwrap()) {
            (_, Some(t)) => wgpu_cnn::graph::Description::parse(&t).unwrap(),
            (Some(wgpu_cnn::recipe::ModelRef::Name(n)), None) => {
                wgpu_cnn::graph::zoo::resolve(n).unwrap().0
            }
            _ => panic!("{name}: no model"),
        };
        let classes = match r.dataset.as_deref() {
            Some("cifar100") => 100,
            _ => 10,
        };
        assert_eq!(desc.classes, classes, "{name}");
        let caps = wgpu_cnn::plan::Caps::subgroup8_cpu();
        wgpu_cnn::plan::Plan::new(&desc, 8, &caps, wgpu_cnn::plan::Mode::Train).unwrap();
    }
    let (code, out, _) = cli(&["recipes"]);
    assert_eq!(code, 0);
    for (name, _) in PRESETS {
        assert!(out.contains(name), "{out}");
    }
    let (code, out, _) = cli(&["recipes", "cifar10-resnet20"]);
    assert_eq!(code, 0);
    assert!(out.contains("nesterov = true"), "{out}");
}

#[test]
fn flax_cifar10_recipe_is_plain_train() {
    let root = temp_dir("recipe-seed");
    let data = data_slice(&root.join("data"), 300);
    let common = [
        "--data",
        &data,
        "--epochs",
        "2",
        "--train-limit",
        "192",
        "--batch-size",
        "32",
        "--val-size",
        "200",
        "--test-limit",
        "100",
    ];
    let (a, b) = (root.join("plain"), root.join("recipe"));
    let mut args = vec!["--out", a.to_str().unwrap()];
    args.extend(common);
    train(&args);
    let mut args = vec!["--recipe", "flax-cifar10", "--out", b.to_str().unwrap()];
    args.extend(common);
    train(&args);
    assert_eq!(
        params(&a),
        params(&b),
        "--recipe flax-cifar10 differs from plain train"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_runs_recipe_toml_reproduces_it() {
    let root = temp_dir("recipe-repro");
    let data = data_slice(&root.join("data"), 300);
    let a = root.join("a");
    // A small residual model, SGD with a schedule, crop augmentation, smoothing, clipping.
    let model = root.join("model.toml");
    std::fs::write(
        &model,
        "input = [32, 32, 3]\nclasses = 10\n\n[[layer]]\ntype = \"conv\"\nfeatures = 8\nkernel = 3\nstride = 2\nbias = false\n\n[[layer]]\ntype = \"batch_norm\"\n\n[[layer]]\ntype = \"relu\"\n\n[[layer]]\ntype = \"residual\"\nbody = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\" }, { type = \"relu\" } ]\n\n[[layer]]\ntype = \"global_avg_pool\"\n\n[[layer]]\ntype = \"dense\"\nfeatures = 10\n",
    )
    .unwrap();
    train(&[
        "--data",
        &data,
        "--model",
        model.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--val-size",
        "0.2",
        "--train-limit",
        "160",
        "--test-limit",
        "64",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--nesterov",
        "--weight-decay",
        "5e-4",
        "--decay-mask",
        "kernels",
        "--lr",
        "0.05",
        "--schedule",
        "warmup-cosine",
        "--warmup-steps",
        "3",
        "--label-smoothing",
        "0.1",
        "--clip-grad-norm",
        "2.5",
        "--augment",
        "crop:4:reflect,flip",
        "--normalize",
        "dataset",
        "--seed",
        "7",
        "--tta",
        "flip",
    ]);
    let recipe = a.join("recipe.toml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(text.contains("augment = \"flip,crop:4:reflect\""), "{text}");
    // The recipe holds the run's settings: the same TrainConfig again.
    let b = root.join("b");
    train(&[
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        params(&a),
        params(&b),
        "recipe.toml did not reproduce the run"
    );
    let cfg = |run: &Path| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        v["config"]["out"] = serde_json::Value::Null;
        v["config"].clone()
    };
    assert_eq!(cfg(&a), cfg(&b));
    // An inline model round-trips too: b's recipe.toml names the file; write one inline.
    let inline = root.join("inline.toml");
    let model_text = std::fs::read_to_string(&model).unwrap();
    let body = text
        .lines()
        .filter(|l| !l.starts_with("model ="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        &inline,
        format!(
            "{body}\n\n[model]\n{}",
            model_text.replace("[[layer]]", "[[model.layer]]")
        ),
    )
    .unwrap();
    let c = root.join("c");
    train(&[
        "--recipe",
        inline.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
    ]);
    assert_eq!(
        params(&a),
        params(&c),
        "the inline model trained differently"
    );
    let c_recipe = std::fs::read_to_string(c.join("recipe.toml")).unwrap();
    assert!(
        c_recipe.contains("[model]") || c_recipe.contains("[[model.layer]]"),
        "{c_recipe}"
    );
    let d = root.join("d");
    train(&[
        "--recipe",
        c.join("recipe.toml").to_str().unwrap(),
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(params(&a), params(&d));

    // A flag overrides the recipe.
    let e = root.join("e");
    train(&[
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        e.to_str().unwrap(),
        "--seed",
        "8",
    ]);
    assert_ne!(params(&a), params(&e));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_recipes_give_one_clear_error() {
    let root = temp_dir("recipe-bad");
    let data = cifar_dir();
    let check = |text: &str, says: &str| {
        let f = root.join("r.toml");
        std::fs::write(&f, text).unwrap();
        let out = root.join("out");
        assert_error(
            &[
                "train",
                "--recipe",
                f.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            says,
        );
        assert!(!out.exists(), "{text}");
    };
    check(
        "epochs = 2\nlearning_rate = 0.1\n",
        "unknown recipe key `learning_rate`",
    );
    check(
        "optimizer = \"lamb\"\n",
        "--optimizer must be adam, adamw or sgd",
    );
    check("schedule = \"linear\"\n", "--schedule must be constant");
    check("augment = \"cutout\"\n", "unknown augmentation `cutout`");
    check(
        "optimizer = \"sgd\"\nweight_decay = -1.0\n",
        "--weight-decay must be a non-negative",
    );
    check(
        "epochs = 1\nschedule = \"warmup-cosine\"\nwarmup_steps = 100000000\n",
        "--warmup-steps 100000000 is longer than the run",
    );
    check("epochs = \"ten\"\n", "epochs");
    check(
        "[model]\ninput = [28, 28, 1]\nclasses = 10\n\n[[model.layer]]\ntype = \"flatten\"\n\n[[model.layer]]\ntype = \"dense\"\nfeatures = 10\n",
        "does not match the data's 32x32x3 images",
    );
    let (code, _, err) = cli(&["train", "--recipe", "no-such-recipe"]);
    assert_eq!(code, 1);
    assert!(err.contains("neither a preset"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A preset recipe smoke-tests on a slice for one epoch: its warmup is a fraction of the run,
/// so it shrinks with it, and the run's recipe.toml keeps the fraction.
#[test]
fn presets_smoke_test_on_a_slice() {
    let dir = temp_dir("recipe-smoke");
    let data = data_slice(&dir.join("data"), 200);
    let run = dir.join("run");
    let out = train(&[
        "--recipe",
        "cifar10-resnet20",
        "--data",
        &data,
        "--train-limit",
        "128",
        "--val-size",
        "64",
        "--test-limit",
        "16",
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.contains("warmup 0.05 of the run (0 steps), then cosine to 0 from 0.1 over 1 steps"),
        "{out}"
    );
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe.contains("warmup_fraction = 0.05"), "{recipe}");
    assert!(!recipe.contains("warmup_steps"), "{recipe}");
}

/// A recipe's relative paths resolve against its own folder (a recipe beside its model file and
/// data runs from anywhere); a run stores absolute paths, so its checkpoint evaluates from any
/// folder; a missing folder's hint fits the kind of data.
#[test]
fn paths_resolve_against_the_recipe_and_runs_work_from_anywhere() {
    let dir = temp_dir("recipe-paths");
    let proj = dir.join("proj");
    data_slice(&proj.join("data"), 200);
    std::fs::write(
        proj.join("small.toml"),
        wgpu_cnn::graph::zoo::text("lenet5").unwrap(),
    )
    .unwrap();
    std::fs::write(
        proj.join("recipe.toml"),
        "model = \"small.toml\"\ndata = \"data\"\nepochs = 1\nbatch_size = 32\ntrain_limit = 64\nval_size = 32\ntest_limit = 16\n",
    )
    .unwrap();
    // From the parent folder: the recipe's model and data are found beside it.
    let (code, out, err) = cli_in(
        &dir,
        &["train", "--recipe", "proj/recipe.toml", "--out", "run"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let cfg = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    let stored = |k: &str| {
        cfg["config"][k]
            .as_str()
            .map(String::from)
            .or(cfg[k].as_str().map(String::from))
            .unwrap()
    };
    assert_eq!(Path::new(&stored("data")), proj.join("data"), "{cfg}");
    assert_eq!(
        Path::new(&stored("model")),
        proj.join("small.toml"),
        "{cfg}"
    );

    // A relative --data from inside the project, evaluated from elsewhere without --data.
    let (code, out, err) = cli_in(
        &proj,
        &[
            "train",
            "--model",
            "small.toml",
            "--data",
            "data",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--train-limit",
            "64",
            "--val-size",
            "32",
            "--test-limit",
            "16",
            "--out",
            "runs/a",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let ck = proj.join("runs/a/last.safetensors");
    let (code, out, err) = cli_in(
        Path::new("/"),
        &[
            "eval",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--test-limit",
            "8",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("test: "), "{out}");

    // Hints fit the data set: none for an image folder, the download for CIFAR-10.
    let (code, _, err) = cli(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        "/nonexistent/pets3",
        "--dataset",
        "folder",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no such folder") && !err.contains("CIFAR-10"),
        "{err}"
    );
    let (code, _, err) = cli(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        "/nonexistent/cifar-10-batches-bin",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("wgpu-cnn download"), "{err}");
}
