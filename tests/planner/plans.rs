//! The seed's plans on a subgroup-8 CPU and a 32-wide GPU (fusions, separate pools), residual
//! adds fused into batch norms, buffers shared only between disjoint lifetimes, and the
//! binding limit (the largest batch, split-K partials that fit).

use crate::common::{random_description, rng};
use crate::{check_buffer_sharing, seed};
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::plan::{Caps, Mode, Plan, Step, TensorKind};

#[test]
fn seed_plan_on_a_subgroup8_cpu_fuses_conv_relu_pool() {
    // The direct kernels (with Winograd, Conv_1's pool backward fuses further into its weight
    // gradient: `winograd_convolutions_where_they_pay`).
    let caps = Caps {
        winograd: false,
        ..Caps::subgroup8_cpu()
    };
    let p = Plan::new(&seed(), 128, &caps, Mode::Train).unwrap();
    let fused: Vec<_> = p
        .forward
        .iter()
        .filter_map(|s| match s {
            Step::Conv {
                layer,
                fused,
                pooled,
                ..
            } => Some((layer.as_str(), fused.len(), pooled.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(fused, [("Conv_0", 2, true), ("Conv_1", 2, true)]);
    // Two convs and two dense layers: four forward steps, no standalone ReLU or pool.
    assert_eq!(p.forward.len(), 4);
    // Backward: the ReLU backward of both convs is folded into the pool backward; Conv_0 (it
    // reads the data) computes no input gradient.
    let relu_pools = p
        .backward
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::AvgPoolBackward {
                    relu_out: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(relu_pools, 2);
    // Both ReLU outputs are read only as the pool backwards' masks: the forwards store their
    // signs as bits (ceil(O/32) words per pixel) and the pool backwards read those.
    for s in &p.forward {
        if let Step::Conv {
            layer, p: cp, y, ..
        } = s
        {
            assert_eq!(cp.mask, 1, "{layer}: relu mask");
            assert_eq!(
                p.tensors[*y].len,
                cp.relu_mask_len(),
                "{layer}: mask tensor"
            );
        }
    }
    assert_eq!(
        p.backward
            .iter()
            .filter(|s| matches!(s, Step::AvgPoolBackward { mask: true, .. }))
            .count(),
        2
    );
    // Inference keeps no mask (no backward reads it).
    let inf = Plan::new(&seed(), 128, &Caps::subgroup8_cpu(), Mode::Inference).unwrap();
    assert!(inf
        .forward
        .iter()
        .all(|s| !matches!(s, Step::Conv { p, .. } if p.mask != 0)));
    assert!(!p
        .backward
        .iter()
        .any(|s| matches!(s, Step::ConvBackwardInput { layer, .. } if layer == "Conv_0")));
    assert_eq!(p.train_flops(), 5_110_628_352);
    // The split-K size of a CPU-type adapter.
    assert!(p
        .backward
        .iter()
        .any(|s| matches!(s, Step::ConvBackwardWeight { p, .. } if p.splits <= 32)));
    check_buffer_sharing(&p);
}

#[test]
fn seed_plan_on_a_32_wide_gpu_runs_pools_separately() {
    let p = Plan::new(&seed(), 128, &Caps::gpu32(), Mode::Train).unwrap();
    let pools = p
        .forward
        .iter()
        .filter(|s| matches!(s, Step::AvgPool { .. }))
        .count();
    assert_eq!(pools, 2, "no conv+pool kernel without 8-wide subgroups");
    assert!(p.forward.iter().all(|s| !matches!(
        s,
        Step::Conv {
            pooled: Some(_),
            ..
        }
    )));
    // ReLU still fused into the conv and dense epilogues.
    assert!(!p.forward.iter().any(|s| matches!(s, Step::Relu { .. })));
    assert!(p
        .backward
        .iter()
        .any(|s| matches!(s, Step::ConvBackwardWeight { p, .. } if p.splits > 32)));
    check_buffer_sharing(&p);
    // The inference plan: no gradients or scratch, and less memory.
    let inf = Plan::new(&seed(), 128, &Caps::gpu32(), Mode::Inference).unwrap();
    assert!(inf.backward.is_empty());
    assert!(inf
        .tensors
        .iter()
        .all(|t| matches!(t.kind, TensorKind::Io | TensorKind::Activation)));
    assert!(inf.gpu_bytes() < p.gpu_bytes() / 2);
    check_buffer_sharing(&inf);
}

/// A residual's add is fused into the batch norm that produces one of its operands (its ReLU
/// too), and the sum of the two gradients of a ReLU's output passes through that ReLU's
/// backward in the same step: resnet20 runs no standalone add, ReLU or ReLU backward.
#[test]
fn residual_adds_fuse_into_batch_norms_and_gradient_sums_into_relu_backwards() {
    let d = zoo::preset("resnet20").unwrap();
    for caps in [Caps::subgroup8_cpu(), Caps::gpu32()] {
        for mode in [Mode::Train, Mode::Inference] {
            let p = Plan::new(&d, 16, &caps, mode).unwrap();
            let fused: Vec<(&str, &[String])> = p
                .forward
                .iter()
                .filter_map(|s| match s {
                    Step::BatchNorm {
                        layer,
                        fused,
                        residual: Some(r),
                        ..
                    } => {
                        // The other operand: the block's input (identity shortcut) or the
                        // body's last batch norm (projection shortcut).
                        let other = &p.tensors[*r].name;
                        assert!(
                            other.starts_with("add_")
                                || other.starts_with("BatchNorm_")
                                || other == "BatchNorm_0.out",
                            "{layer}: {other}"
                        );
                        Some((layer.as_str(), fused.as_slice()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(fused.len(), 9, "{fused:?}");
            assert!(fused
                .iter()
                .all(|(_, f)| f.len() == 2 && f[0].starts_with("add_")));
            // Projection blocks: the add follows the shortcut's batch norm.
            assert!(fused.iter().any(|(l, _)| *l == "BatchNorm_9"));
            assert!(!p
                .forward
                .iter()
                .any(|s| matches!(s, Step::Add { .. } | Step::Relu { .. })));
            let masked = p
                .backward
                .iter()
                .filter(|s| matches!(s, Step::Add { mask: Some(_), .. }))
                .count();
            assert_eq!(masked, if mode == Mode::Train { 9 } else { 0 });
            assert!(!p
                .backward
                .iter()
                .any(|s| matches!(s, Step::Add { mask: None, .. } | Step::ReluBackward { .. })));
            check_buffer_sharing(&p);
        }
    }
    // A batch norm whose output something else reads as well keeps its own output.
    let d = Description::parse(
        "input = [6, 6, 3]\nclasses = 2\nlayer = [ { type = \"conv\", features = 4, kernel = 3 }, { type = \"batch_norm\" }, { type = \"residual\", body = [ { type = \"conv\", features = 4, kernel = 3 } ] }, { type = \"flatten\" }, { type = \"dense\", features = 2 } ]\n",
    )
    .unwrap();
    let p = Plan::new(&d, 4, &Caps::subgroup8_cpu(), Mode::Train).unwrap();
    assert!(p.forward.iter().all(|s| !matches!(
        s,
        Step::BatchNorm {
            residual: Some(_),
            ..
        }
    )));
    assert!(p.forward.iter().any(|s| matches!(s, Step::Add { .. })));
    check_buffer_sharing(&p);
}

#[test]
fn buffers_are_shared_only_between_disjoint_lifetimes() {
    let mut r = rng(31);
    for _ in 0..40 {
        let d = random_description(&mut r);
        for caps in [Caps::subgroup8_cpu(), Caps::gpu32()] {
            for mode in [Mode::Train, Mode::Inference] {
                check_buffer_sharing(&Plan::new(&d, 3, &caps, mode).unwrap());
            }
        }
    }
    for name in zoo::NAMES {
        let p = Plan::new(&zoo::preset(name).unwrap(), 64, &Caps::gpu32(), Mode::Train).unwrap();
        // Reuse pays: fewer buffers than tensors.
        assert!(p.buffers.len() < p.tensors.len(), "{name}");
    }
}

#[test]
fn a_small_binding_limit_names_the_layer_and_the_largest_batch() {
    let caps = Caps {
        max_binding: 6 << 20,
        ..Caps::gpu32()
    };
    let err = Plan::new(&seed(), 128, &caps, Mode::Train).unwrap_err().0;
    // Conv_0's output is 128·32·32·32 floats = 16 MiB.
    assert!(err.contains("layer 0 (conv, Conv_0)"), "{err}");
    assert!(err.contains("the largest batch that fits is"), "{err}");
    let best = Plan::max_batch(&seed(), &caps, Mode::Train).unwrap();
    assert!(Plan::new(&seed(), best, &caps, Mode::Train).is_ok());
    assert!(Plan::new(&seed(), best + 1, &caps, Mode::Train).is_err());
    assert!(err.contains(&format!("is {best}")), "{err}");
    // Parameters that cannot fit at any batch size.
    let tiny = Caps {
        max_binding: 1 << 20,
        ..Caps::gpu32()
    };
    let err = Plan::new(&seed(), 1, &tiny, Mode::Train).unwrap_err().0;
    assert!(err.contains("parameters"), "{err}");
    assert_eq!(Plan::max_batch(&seed(), &tiny, Mode::Train), None);
}

/// The weight gradient's split-K partials never outgrow one binding: vgg11-bn's 512 → 512
/// layers at batch 128 take fewer splits on a 128 MiB adapter instead of refusing the batch
/// (32 splits of 4609 × 512 floats would be 288 MiB).
#[test]
fn split_k_partials_fit_the_binding_limit() {
    let vgg = zoo::preset("vgg11-bn").unwrap();
    for caps in [
        Caps::subgroup8_cpu(),
        Caps {
            subgroup_size: None,
            ..Caps::subgroup8_cpu()
        },
        Caps {
            max_binding: 128 << 20,
            ..Caps::gpu32()
        },
    ] {
        let p = Plan::new(&vgg, 128, &caps, Mode::Train)
            .unwrap_or_else(|e| panic!("{:?}: {}", caps.kernels(), e.0));
        let mut capped = 0;
        // Every tensor fits a binding (the Winograd layers' scratch included).
        for t in &p.tensors {
            assert!(
                4 * t.len as u64 <= caps.max_binding,
                "{}: {} floats",
                t.name,
                t.len
            );
        }
        for st in &p.backward {
            // Split-K partials: the direct weight gradients (a Winograd one has none).
            if let Step::ConvBackwardWeight {
                p: cp,
                winograd: None,
                ..
            } = st
            {
                let bytes = |q: &wgpu_cnn::ops::Conv2dParams| 4 * q.partials_len() as u64;
                assert!(
                    bytes(cp) <= caps.max_binding,
                    "{}: {} bytes",
                    st.layer(),
                    bytes(cp)
                );
                if caps.cpu && cp.splits < cp.with_splits(32).splits {
                    // Capped: as many splits as fit, not fewer.
                    capped += 1;
                    assert!(
                        bytes(&cp.with_splits(cp.splits + 1)) > caps.max_binding,
                        "{}",
                        st.layer()
                    );
                }
            }
        }
        assert!(
            !caps.cpu || capped > 0,
            "{:?}: no layer needed fewer splits",
            caps.kernels()
        );
    }
    // Splits of layers that fit are unchanged: the seed keeps its 32 on lavapipe.
    let p = Plan::new(&seed(), 128, &Caps::subgroup8_cpu(), Mode::Train).unwrap();
    for st in &p.backward {
        if let Step::ConvBackwardWeight {
            p: cp,
            winograd: None,
            ..
        } = st
        {
            assert_eq!(cp.splits, cp.with_splits(32).splits, "{}", st.layer());
        }
    }
}

/// A convolution whose Winograd scratch would outgrow one binding runs direct instead, so the
/// batch is limited by the direct kernels' tensors: airbench94's Conv_3 (64 → 256 on 15×15
/// maps) at batch 512 on lavapipe's 128 MiB bindings (its products M would be 288 MiB), Winograd
/// at batch 128; the largest batch that fits is then the direct one's (545, Conv_1's output),
/// and each plan at the largest batch still builds.
#[test]
fn winograd_scratch_over_the_binding_falls_back_to_direct() {
    let caps = Caps::subgroup8_cpu();
    assert_eq!(caps.max_binding, 128 << 20);
    let d = zoo::preset("airbench94").unwrap();
    let conv3_winograd = |batch: u32| {
        let p = Plan::new(&d, batch, &caps, Mode::Train).unwrap();
        p.forward.iter().any(|s| {
            matches!(s, Step::Conv { layer, winograd, .. } if layer == "Conv_3" && winograd.is_some())
        })
    };
    assert!(conv3_winograd(128));
    assert!(!conv3_winograd(512));
    let best = Plan::max_batch(&d, &caps, Mode::Train).unwrap();
    assert_eq!(best, 545);
    assert!(Plan::new(&d, best, &caps, Mode::Train).is_ok());
    assert!(Plan::new(&d, best + 1, &caps, Mode::Train).is_err());
}
