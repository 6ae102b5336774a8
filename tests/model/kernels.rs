//! The kernels and texture mirrors the plan names (what `models --plan` prints) against those
//! the model records and runs, on every kernel family.

use crate::common::{gpu, gpu_tiled, gpu_wg, random_description, rng};
use crate::{plan, LR};
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::model::GpuModel;
use wgpu_cnn::plan::{Mode, Plan, Step};

/// The plan's memory report counts the texture mirrors of the subgroup kernels as the model
/// holds them (one texture per binding and size), so `models --plan` and `bench` agree.
#[test]
fn the_plan_counts_the_texture_mirrors_the_model_holds() {
    let Some(gpu) = gpu() else { return };
    for (name, n) in [("flax-cifar10", 6), ("resnet20", 3), ("lenet5", 5)] {
        let d = zoo::preset(name).unwrap();
        let p = plan(gpu, &d, n);
        let caps = gpu.caps();
        let estimate = p.texture_mirror_bytes(&|st| wgpu_cnn::plan::kernel_of(&caps, &p, st));
        let init = p.layout.init(3);
        let m = GpuModel::from_plan(gpu, p, &init, LR).unwrap();
        let held = wgpu_cnn::gpu::dispatch::mirror_bytes(
            m.train_dispatches().iter().chain(m.eval_dispatches()),
        );
        assert_eq!(estimate, held, "{name}");
        // On an adapter with 8-wide subgroups (lavapipe) the subgroup kernels use them.
        assert_eq!(held > 0, caps.subgroup8(), "{name}: {held} bytes");
    }
}

/// `--plan`, `profile` and the launchers name the same kernels: for every step of the train
/// schedule, the entry points its recorded dispatches run (what `profile` names) are exactly
/// `plan::kernels::entries` (what `--plan` prints), on all three kernel families, for the
/// presets and random descriptions, under Adam and SGD.
#[test]
fn plan_and_launchers_name_the_same_kernels() {
    let Some(sg) = gpu() else { return };
    let mut devices = vec![("default", sg)];
    devices.extend(gpu_tiled().map(|g| ("registers", g)));
    devices.extend(gpu_wg().map(|g| ("workgroup", g)));
    let mut r = rng(77);
    let mut models: Vec<(String, Description, u32)> = ["flax-cifar10", "resnet20", "lenet5"]
        .iter()
        .map(|n| (n.to_string(), zoo::preset(n).unwrap(), 2))
        .collect();
    for i in 0..6 {
        models.push((format!("random {i}"), random_description(&mut r), 3));
    }
    let mut checked = 0;
    for (family, gpu) in &devices {
        let caps = gpu.caps();
        for (name, desc, n) in &models {
            let p = Plan::new(desc, *n, &caps, Mode::Train).unwrap();
            let init = p.layout.init(1);
            let mut m = GpuModel::from_plan(gpu, p, &init, LR).unwrap();
            for opt in [
                wgpu_cnn::optim::Optimizer::default(),
                wgpu_cnn::optim::Optimizer::from_flags(&wgpu_cnn::optim::Flags {
                    optimizer: Some("sgd"),
                    momentum: Some(0.9),
                    ..Default::default()
                })
                .unwrap(),
            ] {
                m.set_optimizer(gpu, opt).unwrap();
                let steps: Vec<&Step> = m.plan.forward.iter().chain(&m.plan.backward).collect();
                assert_eq!(steps.len(), m.step_kernels().len(), "{family} {name}");
                for (s, ran) in steps.iter().zip(m.step_kernels()) {
                    let named = wgpu_cnn::plan::kernels::entries(&caps, &m.plan, s);
                    assert_eq!(
                        &named,
                        ran,
                        "{family} {name}: step {} ({:?}): the plan names {named:?}, the \
                         launcher ran {ran:?}",
                        s.layer(),
                        std::mem::discriminant(*s)
                    );
                    assert!(
                        wgpu_cnn::plan::kernel_of(&caps, &m.plan, s).contains(ran[0]),
                        "{family} {name}: --plan's line for {}",
                        s.layer()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked} steps checked");
}
