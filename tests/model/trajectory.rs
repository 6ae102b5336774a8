//! One train step and trajectories of Adam steps, GPU vs the CPU reference: the presets and
//! random descriptions on every kernel family, and a bitwise deterministic train step.

use crate::common::{gpu, gpu_tiled, gpu_wg, random_description, rng};
use crate::{batch, check_adam_steps, check_one_step, plan, seed, LR};
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::model::GpuModel;
use wgpu_cnn::plan::Step;

#[test]
fn presets_one_step_match_cpu_on_every_kernel_family() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let wg = gpu_wg();
    for name in zoo::NAMES {
        let d = zoo::preset(name).unwrap();
        // Batch norm over the 2x2 maps of vgg11-bn's last stage sees 4·batch values per
        // channel, where its gradient is ill-conditioned (x − mean cancels): at batch 2 a
        // Conv_7 kernel gradient lands either side of the tolerance with the rounding of the
        // layers below (2% over after the blocked sums of session 18, under before), so
        // models with batch norm take batches of 3 and 4.
        let bn = d.to_toml().contains("batch_norm");
        for (n, seed) in [(3usize, 1u64), (if bn { 4 } else { 1 }, 2)] {
            check_one_step(sg, &d, n, seed, 1e-5, 0.0, &format!("{name} n{n}"));
            check_one_step(tiled, &d, n, seed, 1e-5, 0.0, &format!("{name} tiled n{n}"));
            if let Some(wg) = wg {
                check_one_step(wg, &d, n, seed, 1e-5, 0.0, &format!("{name} wg n{n}"));
            }
        }
    }
}

#[test]
fn seed_ten_adam_steps_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    check_adam_steps(gpu, &d, 4, 10, 5, 0.0, "flax-cifar10");
    if let Some(tiled) = gpu_tiled() {
        check_adam_steps(tiled, &d, 4, 5, 5, 0.0, "flax-cifar10 tiled");
    }
    if let Some(wg) = gpu_wg() {
        check_adam_steps(wg, &d, 4, 5, 5, 0.0, "flax-cifar10 wg");
    }
    // The loss falls on a repeated batch.
    let p = plan(gpu, &d, 4);
    let mut m = GpuModel::from_plan(gpu, p.clone(), &p.layout.init(5), LR).unwrap();
    let (x, labels) = batch(&d, 4, 55);
    m.upload_batch(gpu, &x, &labels);
    m.train_step(gpu);
    let first = m.read_stats(gpu).unwrap().loss;
    for _ in 0..9 {
        m.train_step(gpu);
    }
    assert!(m.read_stats(gpu).unwrap().loss < first, "loss did not fall");
}

#[test]
fn lenet5_adam_steps_match_cpu_on_every_family() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let wg = gpu_wg();
    let d = zoo::preset("lenet5").unwrap();
    check_adam_steps(sg, &d, 3, 5, 6, 0.0, "lenet5");
    check_adam_steps(tiled, &d, 3, 5, 6, 0.0, "lenet5 tiled");
    if let Some(wg) = wg {
        check_adam_steps(wg, &d, 3, 5, 6, 0.0, "lenet5 wg");
    }
}

#[test]
fn random_descriptions_match_cpu_on_every_kernel_family() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let wg = gpu_wg();
    let mut r = rng(2026);
    // What the fixed-seed set covers (checked below, so a generator change cannot drop a kind).
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..24 {
        let d = random_description(&mut r);
        let text = d.to_toml();
        for k in [
            "\"batch_norm\"",
            "\"residual\"",
            "shortcut =",
            "type = \"residual\", body",
            "\"max_pool\"",
            "\"dropout\"",
            "\"gelu\"",
            "\"scale\"",
            "\"global_avg_pool\"",
        ] {
            if text.contains(k) {
                *kinds.entry(k).or_insert(0) += 1;
            }
        }
        let what = format!("random #{i} ({})", d.summary());
        // Batch norm over a handful of values is ill-conditioned (its gradient scales with
        // 1/std of a few samples): models with batch norm train on batches of 4 to 6.
        let bn = d.to_toml().contains("batch_norm");
        let n = [1usize, 2, 3][i % 3] + if bn { 3 } else { 0 };
        // The residual fusions the plans use (the batch norm's at both kernel widths; the
        // gradient sums here all hold whole vec4s, gpu_vs_cpu tests the scalar kernel).
        let pl = plan(sg, &d, n as u32);
        for s in pl.forward.iter().chain(&pl.backward) {
            let k = match s {
                Step::BatchNorm {
                    p,
                    residual: Some(_),
                    ..
                } if p.c % 4 == 0 => "batch norm + add (vec4)",
                Step::BatchNorm {
                    residual: Some(_), ..
                } => "batch norm + add",
                Step::Add {
                    p, mask: Some(_), ..
                } if p.count % 4 == 0 => "add + relu backward (vec4)",
                Step::Add { mask: Some(_), .. } => "add + relu backward",
                _ => continue,
            };
            *kinds.entry(k).or_insert(0) += 1;
        }
        check_one_step(sg, &d, n, i as u64, 2e-5, 1e-5, &what);
        check_one_step(tiled, &d, n, i as u64, 2e-5, 1e-5, &format!("{what} tiled"));
        if let Some(wg) = wg {
            check_one_step(wg, &d, n, i as u64, 2e-5, 1e-5, &format!("{what} wg"));
        }
        check_adam_steps(sg, &d, n, 5, i as u64, 1e-5, &what);
        check_adam_steps(tiled, &d, n, 5, i as u64, 1e-5, &format!("{what} tiled"));
    }
    println!("kinds in the random descriptions: {kinds:?}");
    assert!(
        kinds.values().all(|&c| c >= 2) && kinds.len() == 12,
        "{kinds:?}"
    );
}

#[test]
fn train_step_is_bitwise_deterministic() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    let p = plan(gpu, &d, 5);
    let init = p.layout.init(9);
    let (x, labels) = batch(&d, 5, 90);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
        m.upload_batch(gpu, &x, &labels);
        for _ in 0..3 {
            m.train_step(gpu);
        }
        let bits: Vec<u32> = gpu
            .read_f32(&m.params)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        runs.push(bits);
    }
    assert!(
        runs[0] == runs[1],
        "two identical runs gave different parameters"
    );
}

/// Batch norm without a trainable scale (`use_scale = false`, airbench's) in every position —
/// scalar and vec4 kernels, ReLU fused, the residual add fused, on a flat input — and the exact
/// GELU: one train step against the CPU reference on every kernel family.
#[test]
fn scale_free_batch_norm_and_exact_gelu_match_cpu() {
    let (Some(sg), Some(tiled)) = (gpu(), gpu_tiled()) else {
        return;
    };
    let text = r#"
input = [8, 8, 3]
classes = 5
[[layer]]
type = "conv"
features = 6
kernel = 3
bias = false
[[layer]]
type = "batch_norm"
use_scale = false
[[layer]]
type = "relu"
[[layer]]
type = "residual"
body = [ { type = "conv", features = 6, kernel = 3, bias = false },
         { type = "batch_norm", use_scale = false } ]
[[layer]]
type = "relu"
[[layer]]
type = "conv"
features = 12
kernel = 3
stride = 2
bias = false
[[layer]]
type = "batch_norm"
use_scale = false
[[layer]]
type = "gelu"
approximate = false
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
features = 8
bias = false
[[layer]]
type = "batch_norm"
use_scale = false
momentum = 0.6
epsilon = 1e-12
[[layer]]
type = "relu"
[[layer]]
type = "dense"
features = 5
"#;
    let d = Description::parse(text).unwrap();
    let names: Vec<String> = wgpu_cnn::plan::ParamLayout::of(&d)
        .unwrap()
        .specs
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert!(names.contains(&"BatchNorm_0.bias".to_string()));
    assert!(!names.iter().any(|n| n.ends_with(".scale")), "{names:?}");
    for (n, seed) in [(3usize, 1u64), (4, 2)] {
        check_one_step(sg, &d, n, seed, 1e-5, 0.0, &format!("scale-free n{n}"));
        check_one_step(
            tiled,
            &d,
            n,
            seed,
            1e-5,
            0.0,
            &format!("scale-free tiled n{n}"),
        );
    }
}
