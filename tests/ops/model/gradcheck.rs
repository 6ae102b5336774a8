//! The whole model's loss gradient against finite differences.

use crate::common::{self, check_grad, rng};
use crate::shared::randn;
use rand::Rng;
use wgpu_cnn::cpu;
use wgpu_cnn::cpu::reference;
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::plan::{Caps, Mode, Plan};

/// The whole model's loss gradient (the CPU reference of a plan, f64) against central
/// differences at sampled entries of every parameter tensor, and at each tensor's largest entry.
fn whole_model_fd(desc: &Description, n: u32, seed: u64) {
    let plan = Plan::new(desc, n, &Caps::gpu32(), Mode::Train).unwrap();
    let mut r = rng(seed);
    let mut params: Vec<Vec<f64>> = plan
        .layout
        .init(seed)
        .iter()
        .map(|t| cpu::cast(t))
        .collect();
    // Non-zero biases so their gradients are exercised away from the init.
    for (t, s) in params.iter_mut().zip(&plan.layout.specs) {
        if s.is_bias() {
            t.iter_mut().for_each(|v| *v = r.random_range(-0.1..0.1));
        }
    }
    let len = desc.input.iter().product::<u32>() as usize;
    let x = randn(&mut r, n as usize * len);
    let labels: Vec<u32> = (0..n).map(|i| (3 + 5 * i) % desc.classes).collect();
    let step = reference::loss_and_grads(&plan, &params, &x, &labels);
    assert!(step.loss.is_finite());
    let summary = desc.summary();
    for (i, spec) in plan.layout.specs.iter().enumerate() {
        let mut t = params[i].clone();
        let analytic = step.grads[i].clone();
        check_grad(
            &format!("{summary}: d{}", spec.name),
            &mut t,
            &analytic,
            6,
            &mut r,
            &mut |t| {
                let mut p = params.clone();
                p[i] = t.to_vec();
                reference::loss_in(&plan, &p, &x, &labels, reference::FIRST_STEP)
            },
        );
        // And the entry with the largest gradient, where a wrong factor shows most.
        let (imax, _) = analytic
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let fd = common::central_diff(&mut t, imax, 1e-6, &mut |t| {
            let mut p = params.clone();
            p[i] = t.to_vec();
            reference::loss_in(&plan, &p, &x, &labels, reference::FIRST_STEP)
        });
        let err = (fd - analytic[imax]).abs();
        assert!(
            err <= 1e-7 + 1e-5 * fd.abs(),
            "{summary}: d{}[{imax}]: fd {fd:e} vs {:e}",
            spec.name,
            analytic[imax]
        );
        params[i] = t;
    }
}

/// ResNet-20's structure in miniature (8x8 inputs, 4/8 channels, one block per stage): the
/// same kinds of layers and joins at a size finite differences afford.
const MINI_RESNET: &str = r#"
input = [8, 8, 3]
classes = 5
[[layer]]
type = "conv"
features = 4
kernel = 3
bias = false
[[layer]]
type = "batch_norm"
[[layer]]
type = "relu"
[[layer]]
type = "residual"
body = [ { type = "conv", features = 4, kernel = 3, bias = false }, { type = "batch_norm" }, { type = "relu" }, { type = "conv", features = 4, kernel = 3, bias = false }, { type = "batch_norm" } ]
[[layer]]
type = "relu"
[[layer]]
type = "residual"
body = [ { type = "conv", features = 8, kernel = 3, stride = 2, bias = false }, { type = "batch_norm", momentum = 0.5 }, { type = "relu" }, { type = "conv", features = 8, kernel = 3, bias = false }, { type = "batch_norm" } ]
shortcut = [ { type = "conv", features = 8, kernel = 1, stride = 2, bias = false }, { type = "batch_norm", epsilon = 1e-3 } ]
[[layer]]
type = "relu"
[[layer]]
type = "max_pool"
window = 2
[[layer]]
type = "global_avg_pool"
[[layer]]
type = "dense"
features = 5
"#;

#[test]
fn whole_model_loss_gradient_matches_finite_differences() {
    // The small presets whole; resnet20 and vgg11-bn (0.3 and 9 M parameters at 32x32) through
    // their miniature: the GPU-vs-CPU tests run the presets themselves.
    for name in ["flax-cifar10", "lenet5"] {
        whole_model_fd(&zoo::preset(name).unwrap(), 2, 1500);
    }
    whole_model_fd(&Description::parse(MINI_RESNET).unwrap(), 3, 1550);
    // Random descriptions: strides, even kernels, every padding, pools, no-bias layers.
    let mut r = rng(77);
    for i in 0..4 {
        whole_model_fd(&common::random_description(&mut r), 2, 1600 + i);
    }
}
