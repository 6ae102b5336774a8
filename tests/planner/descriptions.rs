//! Descriptions: checkpoints with and without one, the format's errors through the CLI (one
//! `error:` line naming the layer and the key, exit 1, nothing written), and `models`.

use crate::common::{self, cli, temp_dir};
use crate::seed;
use wgpu_cnn::checkpoint::{self, Checkpoint};
use wgpu_cnn::graph::{zoo, Description};

#[test]
fn checkpoints_carry_their_description_and_old_ones_load_as_the_seed() {
    let dir = temp_dir("planner-ck");
    let lenet_text = zoo::text("lenet5").unwrap();
    let lenet = Description::parse(lenet_text).unwrap();
    let layout = wgpu_cnn::plan::ParamLayout::of(&lenet).unwrap();
    let path = dir.join("lenet.safetensors");
    checkpoint::save(
        &path,
        &Checkpoint::new(lenet.clone(), lenet_text.to_string(), layout.init(1)),
    )
    .unwrap();
    let ck = checkpoint::load(&path).unwrap();
    assert_eq!(ck.model, lenet);
    assert_eq!(ck.params, layout.init(1));

    // A checkpoint written before descriptions existed: tensors only, no `model` metadata.
    let seed_layout = wgpu_cnn::plan::ParamLayout::of(&seed()).unwrap();
    let params = seed_layout.init(2);
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|t| t.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = seed_layout
        .specs
        .iter()
        .zip(&bytes)
        .map(|(s, b)| {
            (
                s.name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let old = dir.join("old.safetensors");
    std::fs::write(&old, safetensors::serialize(views, None).unwrap()).unwrap();
    let ck = checkpoint::load(&old).unwrap();
    assert_eq!(ck.model, seed());
    assert_eq!(ck.params, params);

    // Tensors that do not match the description: an error naming the tensor.
    let bad = dir.join("mismatch.safetensors");
    // Written by hand: lenet's description over the seed's tensors.
    let mut meta = std::collections::HashMap::new();
    meta.insert("model".to_string(), lenet_text.to_string());
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = seed_layout
        .specs
        .iter()
        .zip(&bytes)
        .map(|(s, b)| {
            (
                s.name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(&bad, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    let err = format!("{:#}", checkpoint::load(&bad).unwrap_err());
    assert!(err.contains("Conv_0.kernel has shape"), "{err}");
    let (code, _, stderr) = cli(&["eval", "--checkpoint", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("Conv_0.kernel")),
        "{stderr}"
    );
}

/// `wgpu-cnn models FILE` and `train --model FILE` on a bad description: exit 1, one error line
/// with `needle`, no panic, no run folder.
fn bad_description(name: &str, text: &str, needle: &str) {
    let dir = temp_dir(&format!("bad-desc-{name}"));
    let file = dir.join("model.toml");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("run");
    for args in [
        vec!["models", file.to_str().unwrap()],
        vec![
            "train",
            "--model",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let (code, stdout, stderr) = cli(&args);
        assert_eq!(code, 1, "{name}: {args:?}\n{stdout}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{name}: {stderr}");
        assert!(
            errors[0].contains(needle),
            "{name}: {:?} lacks {needle:?}",
            errors[0]
        );
        assert!(!out.exists(), "{name}: wrote a run folder");
    }
}

const HEAD: &str = "input = [32, 32, 3]\nclasses = 10\n";

#[test]
fn bad_descriptions_get_one_error_line_naming_layer_and_key() {
    let tail = "[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 10\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("syntax", format!("{HEAD}[[layer]]\ntype = \"conv\nfeatures = 3\n"), "line 4"),
        ("unknown type", format!("{HEAD}[[layer]]\ntype = \"convolution\"\n{tail}"), "layer 0: unknown layer type \"convolution\""),
        ("unknown key", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\nkernal = 3\n{tail}"), "layer 0 (conv): unknown key `kernal`"),
        ("missing features", format!("{HEAD}[[layer]]\ntype = \"conv\"\nkernel = 3\n{tail}"), "layer 0 (conv): missing key `features`"),
        ("zero features", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 0\nkernel = 3\n{tail}"), "layer 0 (conv): key `features` must be positive"),
        ("negative kernel", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = -3\n{tail}"), "layer 0 (conv): key `kernel` must be positive"),
        ("zero stride", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\nstride = [1, 0]\n{tail}"), "layer 0 (conv): key `stride` must be positive"),
        ("missing window", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\n[[layer]]\ntype = \"avg_pool\"\n{tail}"), "layer 1 (avg_pool): missing key `window`"),
        ("bad padding", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\npadding = \"FULL\"\n{tail}"), "layer 0 (conv): key `padding`"),
        ("shrinks to zero", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 40\npadding = \"VALID\"\n{tail}"), "layer 0 (conv): key `kernel`"),
        ("pool shrinks", format!("{HEAD}[[layer]]\ntype = \"avg_pool\"\nwindow = 64\n{tail}"), "layer 0 (avg_pool): key `window`"),
        ("max pool shrinks", format!("{HEAD}[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\n[[layer]]\ntype = \"max_pool\"\nwindow = 33\n{tail}"), "layer 1 (max_pool): key `window`"),
        ("last layer", format!("{HEAD}[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 7\n"), "layer 1 (dense): the last layer must output `classes` = 10"),
        ("conv after flatten", format!("{HEAD}[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 1\n{tail}"), "layer 1 (conv): needs an [H, W, C] input"),
        ("no classes, an inner dense without features", "input = [32, 32, 3]\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\n[[layer]]\ntype = \"dense\"\nfeatures = 4\n".to_string(), "layer 1 (dense): missing key `features`"),
        ("no layers", HEAD.to_string(), "no layers"),
        ("wrong type", format!("{HEAD}[[layer]]\ntype = \"dense\"\nfeatures = \"ten\"\n"), "layer 0 (dense): key `features` must be a positive integer"),
        ("residual shapes", format!("{HEAD}[[layer]]\ntype = \"residual\"\nbody = [ {{ type = \"conv\", features = 4, kernel = 3, stride = 2 }}, {{ type = \"batch_norm\" }}, {{ type = \"relu\" }}, {{ type = \"conv\", features = 4, kernel = 3 }} ]\n{tail}"), "layer 0 (residual): the body ends in a 16x16x4 output (layer 0 (residual) body[3] (conv)) but the shortcut in a 32x32x3 one (the identity shortcut)"),
        ("residual projection shapes", format!("{HEAD}[[layer]]\ntype = \"residual\"\nbody = [ {{ type = \"conv\", features = 4, kernel = 3, stride = 2 }} ]\nshortcut = [ {{ type = \"conv\", features = 4, kernel = 1 }}, {{ type = \"batch_norm\" }} ]\n{tail}"), "but the shortcut in a 32x32x4 one (layer 0 (residual) shortcut[1] (batch_norm))"),
        ("nested path", format!("{HEAD}[[layer]]\ntype = \"residual\"\nbody = [ {{ type = \"relu\" }}, {{ type = \"residual\", body = [ {{ type = \"conv\", features = 3, kernel = 40, padding = \"VALID\" }} ] }} ]\n{tail}"), "layer 0 (residual) body[1] (residual) body[0] (conv): key `kernel`"),
        ("nested unknown key", format!("{HEAD}[[layer]]\ntype = \"residual\"\nbody = [ {{ type = \"conv\", features = 3, kernel = 3, kernal = 1 }} ]\n{tail}"), "layer 0 (residual) body[0] (conv): unknown key `kernal`"),
        ("empty body", format!("{HEAD}[[layer]]\ntype = \"residual\"\nbody = []\n{tail}"), "layer 0 (residual): key `body` must hold at least one layer"),
        ("body not a list", format!("{HEAD}[[layer]]\ntype = \"residual\"\nbody = 3\n{tail}"), "layer 0 (residual): key `body` must be an array of layer tables"),
        ("bn momentum", format!("{HEAD}[[layer]]\ntype = \"batch_norm\"\nmomentum = 2\n{tail}"), "layer 0 (batch_norm): key `momentum` must be in [0, 1]"),
        ("bn epsilon", format!("{HEAD}[[layer]]\ntype = \"batch_norm\"\nepsilon = 0\n{tail}"), "layer 0 (batch_norm): key `epsilon` must be positive"),
        ("bn unknown key", format!("{HEAD}[[layer]]\ntype = \"batch_norm\"\nuse_running_average = true\n{tail}"), "layer 0 (batch_norm): unknown key `use_running_average`"),
        ("max_pool all padding", format!("{HEAD}[[layer]]\ntype = \"max_pool\"\nwindow = 2\npadding = [[2, 0], [0, 0]]\n{tail}"), "layer 0 (max_pool): key `padding`"),
        ("global pool of flat", format!("{HEAD}[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"global_avg_pool\"\n{tail}"), "layer 1 (global_avg_pool): needs an [H, W, C] input"),
        ("dropout rate 1", format!("{HEAD}[[layer]]\ntype = \"dropout\"\nrate = 1.0\n{tail}"), "layer 0 (dropout): key `rate` must be in [0, 1)"),
        ("dropout rate negative", format!("{HEAD}[[layer]]\ntype = \"dropout\"\nrate = -0.1\n{tail}"), "layer 0 (dropout): key `rate` must be in [0, 1)"),
        ("dropout no rate", format!("{HEAD}[[layer]]\ntype = \"dropout\"\n{tail}"), "layer 0 (dropout): missing key `rate`"),
        ("key on gelu", format!("{HEAD}[[layer]]\ntype = \"gelu\"\napproximation = false\n{tail}"), "layer 0 (gelu): unknown key `approximation`"),
        ("gelu approximate text", format!("{HEAD}[[layer]]\ntype = \"gelu\"\napproximate = \"no\"\n{tail}"), "layer 0 (gelu): key `approximate` must be true or false"),
        ("bn use_scale text", format!("{HEAD}[[layer]]\ntype = \"batch_norm\"\nuse_scale = 0\n{tail}"), "layer 0 (batch_norm): key `use_scale` must be true or false"),
        ("scale no factor", format!("{HEAD}[[layer]]\ntype = \"scale\"\n{tail}"), "layer 0 (scale): missing key `factor`"),
        ("scale factor text", format!("{HEAD}[[layer]]\ntype = \"scale\"\nfactor = \"a ninth\"\n{tail}"), "layer 0 (scale): key `factor` must be a number"),
        ("scale factor inf", format!("{HEAD}[[layer]]\ntype = \"scale\"\nfactor = inf\n{tail}"), "layer 0 (scale): key `factor` must be a finite number"),
        ("repeat zero times", format!("{HEAD}[[layer]]\ntype = \"repeat\"\ntimes = 0\nbody = [ {{ type = \"relu\" }} ]\n{tail}"), "layer 0 (repeat): key `times` must be positive"),
        ("repeat no times", format!("{HEAD}[[layer]]\ntype = \"repeat\"\nbody = [ {{ type = \"relu\" }} ]\n{tail}"), "layer 0 (repeat): missing key `times`"),
        ("repeat empty body", format!("{HEAD}[[layer]]\ntype = \"repeat\"\ntimes = 2\nbody = []\n{tail}"), "layer 0 (repeat): key `body` must hold at least one layer"),
        ("repeat unknown key", format!("{HEAD}[[layer]]\ntype = \"repeat\"\ntimes = 2\ncount = 3\nbody = [ {{ type = \"relu\" }} ]\n{tail}"), "layer 0 (repeat): unknown key `count`"),
        ("repeat nested error", format!("{HEAD}[[layer]]\ntype = \"repeat\"\ntimes = 2\nbody = [ {{ type = \"conv\", features = 3 }} ]\n{tail}"), "layer 0 (repeat) body[0] (conv): missing key `kernel`"),
    ];
    for (name, text, needle) in &cases {
        bad_description(name, text, needle);
    }
    // Without `classes` only `train` completes a description (from the data); commands without
    // data name the key.
    let dir = temp_dir("no-classes");
    let file = dir.join("model.toml");
    std::fs::write(
        &file,
        "input = [32, 32, 3]\n[[layer]]\ntype = \"flatten\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = cli(&["models", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("missing key `classes`") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// Batch norm over one value per channel (a flat input at batch size 1) is refused when planning
/// a train step, naming the layer; evaluation plans accept it.
#[test]
fn batch_norm_on_a_one_element_batch_is_an_error() {
    let dir = temp_dir("bn-batch-1");
    let file = dir.join("model.toml");
    let text = format!(
        "{HEAD}[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 8\n[[layer]]\ntype = \"batch_norm\"\n[[layer]]\ntype = \"dense\"\nfeatures = 10\n"
    );
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let out = dir.join("run");
    for args in [
        vec!["models", f, "--plan", "--batch-size", "1"],
        vec![
            "train",
            "--model",
            f,
            "--batch-size",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let (code, _, stderr) = cli(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains("layer 2 (batch_norm): batch norm over a single value per channel"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!out.exists());
    let (code, stdout, stderr) = cli(&["models", f, "--plan", "--batch-size", "1", "--inference"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("batch_norm"), "{stdout}");
    let (code, _, stderr) = cli(&["models", f, "--plan", "--batch-size", "2"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn model_flags_and_data_mismatch_are_errors() {
    let (code, _, err) = cli(&["train", "--model", "no-such-model"]);
    assert_eq!(code, 1);
    assert!(err.contains("neither a preset"), "{err}");
    let (code, _, err) = cli(&["models", "no-such-model", "--toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("neither a preset"), "{err}");
    // A valid description whose input is not the data's 32x32x3.
    let dir = temp_dir("mnist-shaped");
    let file = dir.join("m.toml");
    std::fs::write(
        &file,
        "input = [28, 28, 1]\nclasses = 10\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 10\n",
    )
    .unwrap();
    let out = dir.join("run");
    let data = common::cifar_dir();
    let (code, _, err) = cli(&[
        "train",
        "--model",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not match the data"), "{err}");
    assert!(!out.exists());
}

#[test]
fn models_lists_prints_and_plans() {
    let (code, out, _) = cli(&["models"]);
    assert_eq!(code, 0);
    assert!(out.contains("flax-cifar10") && out.contains("1070794") && out.contains("lenet5"));
    // The presets' parameter counts (Flax's: kernels, biases, batch-norm scales and biases;
    // He et al.'s ResNet-20 has 0.27 M).
    let count = |name: &str| -> String {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        line.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(count("resnet20 "), "272474", "{out}");
    assert_eq!(count("vgg11-bn "), "9228362", "{out}");
    let (code, out, _) = cli(&["models", "lenet5", "--toml"]);
    assert_eq!(code, 0);
    assert_eq!(
        Description::parse(&out).unwrap(),
        zoo::preset("lenet5").unwrap()
    );
    let (code, out, err) = cli(&["models", "flax-cifar10", "--plan", "--batch-size", "16"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "Conv_0",
        "avg_pool_2",
        "buffers:",
        "total",
        "largest batch",
        "adam",
    ] {
        assert!(out.contains(needle), "plan lacks {needle}:\n{out}");
    }
}

/// `type = "repeat"` is its body written `times` times: ResNet-20 with repeated stages (the
/// preset) is the same model as the unrolled file, with the same Flax parameter names, and
/// trains to the same bits.
#[test]
fn repeat_is_the_unrolled_description() {
    let unrolled_text = include_str!("../fixtures/resnet20-unrolled.toml");
    let repeated = Description::parse(zoo::text("resnet20").unwrap()).unwrap();
    let unrolled = Description::parse(unrolled_text).unwrap();
    assert!(zoo::text("resnet20").unwrap().contains("type = \"repeat\""));
    assert_eq!(repeated, unrolled);
    let names = |d: &Description| -> Vec<String> {
        wgpu_cnn::plan::ParamLayout::of(d)
            .unwrap()
            .specs
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(names(&repeated), names(&unrolled));
    // 19 3×3 convolutions, 2 projections: Conv_0 … Conv_20.
    assert!(names(&repeated).contains(&"Conv_20.kernel".to_string()));
    assert!(!names(&repeated).iter().any(|n| n.starts_with("Conv_21")));
    assert!(
        repeated
            .summary()
            .contains("relu - 3× (residual(conv3x3 16"),
        "{}",
        repeated.summary()
    );

    common::gpu().expect("training runs on the GPU");
    let dir = temp_dir("repeat");
    let file = dir.join("unrolled.toml");
    std::fs::write(&file, unrolled_text).unwrap();
    let data = common::cifar_dir();
    let mut weights = Vec::new();
    for (name, model) in [("a", "resnet20"), ("b", file.to_str().unwrap())] {
        let out = dir.join(name);
        let (code, stdout, stderr) = cli(&[
            "train",
            "--model",
            model,
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--train-limit",
            "32",
            "--val-size",
            "16",
            "--test-limit",
            "8",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let ck = checkpoint::load(&out.join("last.safetensors")).unwrap();
        let bits: Vec<u32> = ck
            .params
            .iter()
            .chain(&ck.batch_stats)
            .flatten()
            .map(|v| v.to_bits())
            .collect();
        weights.push(bits);
    }
    assert_eq!(weights[0], weights[1], "repeat and unrolled train alike");
}

/// `kernel_init` / `bias_init` (Flax's argument names): `pytorch` draws uniform in ±1/√fan_in
/// (PyTorch's Conv2d/Linear default), `dirac` makes a conv's first `c_in` filters the identity
/// (airbench's init); both round-trip through the TOML writer; dirac on a dense is an error.
#[test]
fn pytorch_and_dirac_inits() {
    let text = "input = [6, 5, 3]\nclasses = 4\n\
        [[layer]]\ntype = \"conv\"\nfeatures = 8\nkernel = 3\nkernel_init = \"dirac\"\n\
        [[layer]]\ntype = \"conv\"\nfeatures = 8\nkernel = 3\nkernel_init = \"pytorch\"\nbias_init = \"pytorch\"\n\
        [[layer]]\ntype = \"flatten\"\n\
        [[layer]]\ntype = \"dense\"\nfeatures = 4\nkernel_init = \"pytorch\"\n";
    let desc = Description::parse(text).unwrap();
    assert_eq!(Description::parse(&desc.to_toml()).unwrap(), desc);
    let layout = wgpu_cnn::plan::ParamLayout::of(&desc).unwrap();
    let params = layout.init(3);
    let names: Vec<&str> = layout.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Conv_0.kernel",
            "Conv_0.bias",
            "Conv_1.kernel",
            "Conv_1.bias",
            "Dense_0.kernel",
            "Dense_0.bias"
        ]
    );
    // Uniform within ±1/√fan_in, with the spread of a uniform (variance bound²/3).
    for (i, fan_in) in [(2usize, 72usize), (3, 72), (4, 6 * 5 * 8)] {
        let b = (1.0 / fan_in as f64).sqrt();
        let v = &params[i];
        assert!(v.iter().all(|&x| (x as f64).abs() <= b), "{}", names[i]);
        let var = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            (var / (b * b / 3.0) - 1.0).abs() < 0.35,
            "{}: variance {var}",
            names[i]
        );
    }
    assert!(
        params[1].iter().all(|&x| x == 0.0),
        "bias_init defaults to zeros"
    );
    assert!(params[5].iter().all(|&x| x == 0.0));
    // Dirac: Conv_0's first 3 outputs are its input (SAME padding, zero bias); the other 5
    // filters keep the uniform draw.
    let plan = wgpu_cnn::plan::Plan::new(
        &desc,
        2,
        &wgpu_cnn::plan::Caps::gpu32(),
        wgpu_cnn::plan::Mode::Inference,
    )
    .unwrap();
    let mut r = common::rng(9);
    let x = common::uniform(&mut r, 2 * 6 * 5 * 3, 1.0);
    let outs = wgpu_cnn::cpu::reference::forward(&plan, &params, &x);
    for (pix, (xin, y)) in x.chunks(3).zip(outs[0].chunks(8)).enumerate() {
        assert_eq!(&y[..3], xin, "pixel {pix}");
        assert!(y[3..].iter().any(|&v| v != 0.0));
    }
    let bad = "input = [4, 4, 1]\nclasses = 2\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 2\nkernel_init = \"dirac\"\n";
    let e = Description::parse(bad).unwrap_err().to_string();
    assert!(
        e.contains("layer 1 (dense): key `kernel_init` must be lecun_normal or pytorch"),
        "{e}"
    );
}
