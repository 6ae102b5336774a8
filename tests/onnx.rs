//! ONNX export (`wgpu-cnn export --checkpoint FILE --format onnx`), run by tract (a Rust ONNX
//! runtime, a dev-dependency: these tests always run):
//! - every preset and random descriptions (the planner tests' generator: every layer kind,
//!   asymmetric padding, strides, batch norm on images and on vectors, residual blocks, dense
//!   layers on images) against the CPU reference in float64, with random running statistics;
//! - every preset end to end: the CLI's export against the CLI's `eval` on real CIFAR-10 images
//!   (the same top-1, logits within 1e-4 relative);
//! - the contract: input `images` NHWC `[N, H, W, C]`, output `logits` `[N, classes]`, class
//!   names in metadata_props.

mod common;

use common::*;
use rand::Rng;
use tract_onnx::prelude::*;
use wgpu_cnn::checkpoint::Checkpoint;
use wgpu_cnn::cpu::reference;
use wgpu_cnn::data::Normalization;
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::plan::{Caps, Mode, Plan};

/// Where to also write each compared model, its input and the float64 logits, for
/// tools/peers/onnx_check.py to run through onnxruntime and `onnx.checker`.
const CASES_VAR: &str = "WGPU_CNN_ONNX_CASES";

fn write_case(
    dir: &std::path::Path,
    what: &str,
    onnx: &[u8],
    x: &[f32],
    shape: [u32; 4],
    want: &[f64],
) {
    use safetensors::tensor::{Dtype, TensorView};
    std::fs::create_dir_all(dir).unwrap();
    let name = what.replace(' ', "-");
    std::fs::write(dir.join(format!("{name}.onnx")), onnx).unwrap();
    let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let wb: Vec<u8> = want.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let views = vec![
        (
            "images",
            TensorView::new(Dtype::F32, shape.clone(), &xb).unwrap(),
        ),
        (
            "reference",
            TensorView::new(Dtype::F64, vec![shape[0], want.len() / shape[0]], &wb).unwrap(),
        ),
    ];
    std::fs::write(
        dir.join(format!("{name}.safetensors")),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
}

thread_local! {
    /// The layer kinds (and input kinds) the reference comparisons exported.
    static COVERED: std::cell::RefCell<std::collections::BTreeSet<String>> = Default::default();
}

/// Runs an exported model on `x` (`[n, h, w, c]` pixels) with tract; the logits.
fn run_onnx(bytes: &[u8], x: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .expect("tract reads the exported model");
    let input = tract_ndarray::Array4::from_shape_vec(shape, x.to_vec()).unwrap();
    let runnable = model
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .unwrap();
    let out = runnable.run(tvec!(input.into_tensor().into())).unwrap();
    out[0]
        .to_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// A checkpoint of `desc` with random parameters and, for batch norm, random scale, bias and
/// running statistics (so that evaluation mode differs from training mode and from identity).
fn random_checkpoint(desc: &Description, text: &str, seed: u64) -> Checkpoint {
    let layout = wgpu_cnn::plan::ParamLayout::of(desc).unwrap();
    let mut params = layout.init(seed);
    let mut r = rng(seed ^ 0x5eed);
    for (s, p) in layout.specs.iter().zip(&mut params) {
        if s.name.starts_with("BatchNorm") || s.name.contains(".BatchNorm") {
            for v in p.iter_mut() {
                *v += r.random_range(-0.5..0.5);
            }
        }
    }
    let mut ck = Checkpoint::new(desc.clone(), text.to_string(), params);
    for (i, s) in ck.batch_stats.iter_mut().enumerate() {
        // Stats come in (mean, var) pairs per batch norm, in layout order.
        let var = wgpu_cnn::plan::ParamLayout::stats_of(desc).unwrap().specs[i]
            .name
            .ends_with(".var");
        for v in s.iter_mut() {
            *v = if var {
                r.random_range(0.3..2.5)
            } else {
                r.random_range(-0.7..0.7)
            };
        }
    }
    ck
}

/// `(x / 255 − mean) / std` in float64 (what the graph's first nodes compute in f32).
fn normalise(x: &[f32], norm: &Normalization) -> Vec<f64> {
    let c = norm.mean.len();
    x.iter()
        .enumerate()
        .map(|(i, &v)| (v as f64 / 255.0 - norm.mean[i % c] as f64) / norm.std[i % c] as f64)
        .collect()
}

/// Largest |got − want| of a row over the row's largest |want| (floored at 1e-3 so that a row
/// of near-zero logits is judged absolutely).
fn worst_relative(got: &[f32], want: &[f64], classes: usize) -> f64 {
    got.chunks(classes)
        .zip(want.chunks(classes))
        .map(|(g, w)| {
            let scale = w.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            g.iter()
                .zip(w)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max)
                / scale
        })
        .fold(0.0, f64::max)
}

fn class_names(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("class {i}")).collect()
}

/// Exports `ck` and compares tract's logits with the CPU reference in float64 on `n` random
/// images; returns the worst relative distance.
fn check_against_reference(what: &str, ck: &Checkpoint, n: usize, seed: u64) -> f64 {
    let desc = &ck.model;
    let [h, w, c] = desc.input;
    let norm = Normalization {
        mean: (0..c).map(|i| 0.3 + 0.1 * i as f32).collect(),
        std: (0..c).map(|i| 0.2 + 0.05 * i as f32).collect(),
    };
    let bytes = wgpu_cnn::onnx::export(ck, &norm, &class_names(desc.classes)).unwrap();
    let mut r = rng(seed);
    let len = n * (h * w * c) as usize;
    let shape4 = [n as u32, h, w, c];
    let x: Vec<f32> = (0..len).map(|_| r.random_range(0..=255u8) as f32).collect();
    let got = run_onnx(&bytes, &x, [n, h as usize, w as usize, c as usize]);

    let plan = Plan::new(desc, n as u32, &Caps::gpu32(), Mode::Inference).unwrap();
    let params: Vec<Vec<f64>> = ck.params.iter().map(|p| to_f64(p)).collect();
    let mut stats: Vec<Vec<f64>> = ck.batch_stats.iter().map(|p| to_f64(p)).collect();
    let outs = reference::forward_with(
        &plan,
        &params,
        &mut stats,
        &normalise(&x, &norm),
        reference::Phase::Eval,
    );
    for l in &plan.layers {
        let input = match l.input {
            wgpu_cnn::plan::Src::Input => "image",
            wgpu_cnn::plan::Src::Node(j) => match plan.layers[j].shape {
                wgpu_cnn::graph::Shape::Spatial { .. } => "image",
                wgpu_cnn::graph::Shape::Flat(_) => "vector",
            },
        };
        let kind = format!("{:?}", l.op);
        let kind = kind.split([' ', '{']).next().unwrap_or("");
        let kind = match (kind, l.shape) {
            ("AvgPool", wgpu_cnn::graph::Shape::Flat(_)) => "GlobalAvgPool".to_string(),
            ("Dense" | "BatchNorm" | "Flatten", _) => format!("{kind} on {input}"),
            _ => kind.to_string(),
        };
        COVERED.with(|c| c.borrow_mut().insert(kind));
    }
    let want = outs.last().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: logits shape");
    if let Ok(dir) = std::env::var(CASES_VAR) {
        write_case(std::path::Path::new(&dir), what, &bytes, &x, shape4, want);
    }
    let err = worst_relative(&got, want, desc.classes as usize);
    eprintln!("{what}: worst relative distance {err:.2e}");
    assert!(
        err <= 1e-4,
        "{what}: ONNX logits {err:.2e} from the float64 reference\n{}",
        desc.to_toml()
    );
    err
}

#[test]
fn onnx_matches_the_float64_reference_for_presets_and_random_descriptions() {
    let mut worst = 0.0f64;
    for (i, name) in zoo::NAMES.iter().enumerate() {
        let text = zoo::text(name).unwrap();
        let desc = Description::parse(text).unwrap();
        let ck = random_checkpoint(&desc, text, i as u64);
        worst = worst.max(check_against_reference(name, &ck, 2, 10 + i as u64));
    }
    // The exact GELU (nn.gelu(approximate=False)), exported through Erf, after a batch norm
    // without a trainable scale (its scale exported as ones).
    let exact = "input = [12, 12, 3]\nclasses = 4\n[[layer]]\ntype = \"conv\"\nfeatures = 8\nkernel = 3\n[[layer]]\ntype = \"batch_norm\"\nuse_scale = false\n[[layer]]\ntype = \"gelu\"\napproximate = false\n[[layer]]\ntype = \"global_avg_pool\"\n[[layer]]\ntype = \"dense\"\nfeatures = 4\n";
    let desc = Description::parse(exact).unwrap();
    let ck = random_checkpoint(&desc, exact, 77);
    worst = worst.max(check_against_reference(
        "exact gelu, scale-free batch norm",
        &ck,
        3,
        78,
    ));
    let mut r = rng(2029);
    for i in 0..12 {
        let desc = random_description(&mut r);
        let text = desc.to_toml();
        let ck = random_checkpoint(&desc, &text, 100 + i);
        worst = worst.max(check_against_reference(
            &format!("random description {i}"),
            &ck,
            3,
            200 + i,
        ));
    }
    eprintln!("worst over all models: {worst:.2e}");
    let covered = COVERED.with(|c| c.borrow().clone());
    for kind in [
        "Conv",
        "Dense on image",
        "Dense on vector",
        "BatchNorm on image",
        "BatchNorm on vector",
        "Relu",
        "Gelu",
        "Scale",
        "Dropout",
        "Flatten on image",
        "Add",
        "AvgPool",
        "GlobalAvgPool",
        "MaxPool",
    ] {
        assert!(
            covered.contains(kind),
            "no model exported a {kind}: {covered:?}"
        );
    }
}

/// The exported graph's contract, read back by tract and by our own decoder.
#[test]
fn onnx_contract_names_shapes_and_classes() {
    let text = zoo::text("lenet5").unwrap();
    let desc = Description::parse(text).unwrap();
    let ck = random_checkpoint(&desc, text, 7);
    let names: Vec<String> = wgpu_cnn::data::CLASS_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let bytes = wgpu_cnn::onnx::export(&ck, &Normalization::cifar10(), &names).unwrap();

    let model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    let inputs = model.input_outlets().unwrap();
    let outputs = model.output_outlets().unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(outputs.len(), 1);
    assert_eq!(model.node(inputs[0].node).name, "images");
    assert_eq!(model.outlet_label(outputs[0]), Some("logits"));
    // The batch is symbolic: the same file runs 1 and 5 images.
    for n in [1, 5] {
        let x = vec![128.0f32; n * 32 * 32 * 3];
        assert_eq!(run_onnx(&bytes, &x, [n, 32, 32, 3]).len(), n * 10);
    }

    let m = <wgpu_cnn::onnx::proto::ModelProto as prost::Message>::decode(&bytes[..]).unwrap();
    assert_eq!(m.opset_import[0].version, 17);
    let meta = |k: &str| {
        m.metadata_props
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.clone())
    };
    let classes: Vec<String> = serde_json::from_str(&meta("classes").unwrap()).unwrap();
    assert_eq!(classes, names);
    assert_eq!(meta("model").as_deref(), Some(text));
    let g = m.graph.unwrap();
    let dims = |v: &wgpu_cnn::onnx::proto::ValueInfoProto| -> Vec<String> {
        v.r#type
            .as_ref()
            .unwrap()
            .tensor_type
            .as_ref()
            .unwrap()
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(wgpu_cnn::onnx::proto::DimValue::DimValue(v)) => v.to_string(),
                Some(wgpu_cnn::onnx::proto::DimValue::DimParam(p)) => p.clone(),
                None => "?".into(),
            })
            .collect()
    };
    assert_eq!(dims(&g.input[0]), ["N", "32", "32", "3"]);
    assert_eq!(dims(&g.output[0]), ["N", "10"]);
    // Flax's parameter names survive as initializer names.
    assert!(g.initializer.iter().any(|t| t.name == "Conv_0.kernel"));
    assert!(g.initializer.iter().any(|t| t.name == "Dense_2.bias"));
}

/// The CLI end to end, per preset: `export` then tract on the first 100 CIFAR-10 test images,
/// against `eval --out`'s logits (the GPU's evaluation of the same checkpoint).
#[test]
fn exported_presets_agree_with_eval_on_cifar10() {
    gpu().expect("eval runs on the GPU");
    let data = cifar_dir();
    let dir = temp_dir("onnx-eval");
    let test = wgpu_cnn::data::parse_records(
        &std::fs::read(data.join("test_batch.bin")).unwrap(),
        "test_batch.bin",
    )
    .unwrap();
    let n = 100;
    let x: Vec<f32> = test.images[..n * 3072].iter().map(|&b| b as f32).collect();
    for (i, name) in zoo::NAMES.iter().enumerate() {
        let text = zoo::text(name).unwrap();
        let desc = Description::parse(text).unwrap();
        let ck = random_checkpoint(&desc, text, 40 + i as u64);
        let file = dir.join(format!("{name}.safetensors"));
        wgpu_cnn::checkpoint::save(&file, &ck).unwrap();
        let onnx = dir.join(format!("{name}.onnx"));
        let out = dir.join(format!("{name}-eval"));
        let (code, stdout, err) = cli(&[
            "export",
            "--checkpoint",
            file.to_str().unwrap(),
            "--out",
            onnx.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "export {name}: {stdout}{err}");
        assert!(stdout.contains("opset 17"), "{stdout}");
        let (code, stdout, err) = cli(&[
            "eval",
            "--checkpoint",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--test-limit",
            &n.to_string(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "eval {name}: {stdout}{err}");
        let logits_file = std::fs::read(out.join("logits.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&logits_file).unwrap();
        let t = st.tensor("logits").unwrap();
        assert_eq!(t.shape(), [n, 10]);
        let eval: Vec<f64> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect();
        let labels = st.tensor("labels").unwrap();
        let labels: Vec<i64> = labels
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(
            labels,
            test.labels[..n]
                .iter()
                .map(|&l| l as i64)
                .collect::<Vec<_>>()
        );

        let got = run_onnx(&std::fs::read(&onnx).unwrap(), &x, [n, 32, 32, 3]);
        let err = worst_relative(&got, &eval, 10);
        let argmax = |r: &[f64]| (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b });
        let mut same = 0;
        for (g, e) in got.chunks(10).zip(eval.chunks(10)) {
            let g: Vec<f64> = g.iter().map(|&v| v as f64).collect();
            same += (argmax(&g) == argmax(e)) as usize;
        }
        eprintln!("{name}: ONNX vs eval: {same}/{n} same top-1, worst relative {err:.2e}");
        assert_eq!(same, n, "{name}: top-1 differs");
        assert!(err <= 1e-4, "{name}: logits {err:.2e} apart");
    }
}
