//! The planner without a GPU (made-up device capabilities: a subgroup-8 CPU, a 32-wide GPU, a
//! small binding limit), the description format's errors through the CLI (one `error:` line
//! naming the layer and the key, exit 1, nothing written), and checkpoints with and without a
//! model description.

mod common;

use common::{cli, random_description, rng, temp_dir};
use wgpu_cnn::checkpoint::{self, Checkpoint};
use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::plan::{Caps, Kernels, Mode, Plan, Step, TensorKind};

fn seed() -> Description {
    zoo::preset("flax-cifar10").unwrap()
}

/// Replays a plan's train schedule (then its eval schedule) tracking which tensor each buffer
/// holds: every tensor a step reads must still be in its buffer, and no step reads and writes
/// one buffer.
fn check_buffer_sharing(plan: &Plan) {
    let buffer = |t: usize| plan.tensors[t].buffer;
    let mut holds = vec![usize::MAX; plan.buffers.len()];
    for t in [plan.input, plan.labels] {
        holds[buffer(t)] = t;
    }
    let eval_loss = plan.eval_loss();
    let train: Vec<&Step> = plan.forward.iter().chain(&plan.backward).collect();
    let eval: Vec<&Step> = plan.forward.iter().chain([&eval_loss]).collect();
    for schedule in [train, eval] {
        for step in schedule {
            let writes = step.writes();
            let reads: Vec<usize> = step
                .tensors()
                .into_iter()
                .filter(|t| !writes.contains(t))
                .collect();
            for &r in &reads {
                assert_eq!(
                    holds[buffer(r)],
                    r,
                    "{}: {} reads {} but its buffer holds {}",
                    plan.desc.summary(),
                    step.layer(),
                    plan.tensors[r].name,
                    plan.tensors
                        .get(holds[buffer(r)])
                        .map_or("nothing", |t| t.name.as_str())
                );
                assert!(
                    writes.iter().all(|&w| buffer(w) != buffer(r)),
                    "{}: reads and writes one buffer",
                    step.layer()
                );
            }
            for w in writes {
                assert!(plan.buffers[buffer(w)].len >= plan.tensors[w].len);
                holds[buffer(w)] = w;
            }
        }
    }
}

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

/// The kernel family comes from capabilities only: 8-wide subgroups → subgroup kernels; other
/// CPU-type adapters → register tiles; GPUs with room for 256 invocations and 8 KiB of
/// workgroup memory → workgroup tiles (else register tiles). A forced family is honoured only
/// where the device can run it.
#[test]
fn kernel_family_follows_capabilities() {
    let gpu = Caps::gpu32();
    let lavapipe = Caps::subgroup8_cpu();
    let cpu = Caps {
        subgroup_size: None,
        ..lavapipe
    };
    assert_eq!(gpu.kernels(), Kernels::Workgroup);
    assert_eq!(lavapipe.kernels(), Kernels::Subgroup);
    assert_eq!(cpu.kernels(), Kernels::Registers);
    let small = Caps {
        workgroup_storage: 4 << 10,
        ..gpu
    };
    let narrow = Caps {
        workgroup_invocations: 128,
        ..gpu
    };
    assert_eq!(small.kernels(), Kernels::Registers);
    assert_eq!(narrow.kernels(), Kernels::Registers);
    let force = |c: Caps, k| {
        Caps {
            force: Some(k),
            ..c
        }
        .kernels()
    };
    assert_eq!(force(lavapipe, Kernels::Workgroup), Kernels::Workgroup);
    assert_eq!(force(lavapipe, Kernels::Registers), Kernels::Registers);
    assert_eq!(force(gpu, Kernels::Subgroup), Kernels::Workgroup);
    assert_eq!(force(small, Kernels::Workgroup), Kernels::Registers);

    // Every conv and dense step of the seed on a GPU names a conv2d_wg kernel; dense layers run
    // as 1×1 convolutions. The weight gradients' split-K is sized by the tile count.
    let p = Plan::new(&seed(), 128, &gpu, Mode::Train).unwrap();
    let mut wg = 0;
    for st in p.forward.iter().chain(&p.backward) {
        let k = wgpu_cnn::plan::kernel_of(&gpu, &p, st);
        match st {
            Step::Conv { .. }
            | Step::ConvBackwardInput { .. }
            | Step::ConvBackwardWeight { .. }
            | Step::Dense { .. }
            | Step::DenseBackwardInput { .. }
            | Step::DenseBackwardWeight { .. } => {
                assert!(k.contains("_wg"), "{}: {k}", st.layer());
                wg += 1;
            }
            _ => assert!(!k.contains("_wg"), "{}: {k}", st.layer()),
        }
        if let Step::ConvBackwardWeight { p, .. } = st {
            let tiles = (p.weight_rows() + 1).div_ceil(64) * p.o.div_ceil(64);
            // About 512 workgroups, at least 256 pixels per split.
            assert!(p.chunk >= 256, "{}: chunk {}", st.layer(), p.chunk);
            assert!(tiles * p.splits <= 512 + tiles, "{}", st.layer());
            assert!(
                tiles * p.splits >= 256 || p.chunk == 256,
                "{}: {tiles} tiles × {} splits",
                st.layer(),
                p.splits
            );
        }
    }
    // Conv_0, Conv_1 (forward, weight gradient; Conv_1's input gradient), Dense_0, Dense_1 (3
    // each).
    assert_eq!(wg, 11);
    check_buffer_sharing(&p);
    // On lavapipe nothing changes.
    let p = Plan::new(&seed(), 128, &lavapipe, Mode::Train).unwrap();
    for st in p.forward.iter().chain(&p.backward) {
        let k = wgpu_cnn::plan::kernel_of(&lavapipe, &p, st);
        assert!(!k.contains("_wg"), "{}: {k}", st.layer());
    }
}

/// Winograd F(4×4, 3×3) takes every direction of a 3×3 stride-1 SAME convolution with at
/// least 32 channels on each side, on the subgroup kernels only, unless turned off: the seed's
/// Conv_1 (32 → 64) but not its Conv_0 (3 → 32); ResNet-20's 32- and 64-channel layers but not
/// its 16-channel ones or its strided ones; nor maps under 8×8. The weight gradient reads the
/// forward's transformed inputs, the input gradient the weight gradient's transformed output
/// gradients; the scratch tensors are planned (and shared) like any other.
#[test]
fn winograd_convolutions_where_they_pay() {
    let lavapipe = Caps::subgroup8_cpu();
    // (forward, input gradient, weight gradient) layers on Winograd.
    let winograd_layers = |caps: &Caps, d: &wgpu_cnn::graph::Description| {
        let p = Plan::new(d, 128, caps, Mode::Train).unwrap();
        check_buffer_sharing(&p);
        let mut got: [Vec<String>; 3] = Default::default();
        for st in p.forward.iter().chain(&p.backward) {
            let k = wgpu_cnn::plan::kernel_of(caps, &p, st);
            let (i, fwd_v) = match st {
                // (nothing shared into a forward) M only where the products are not fused into
                // the output transform.
                Step::Conv {
                    winograd: Some((_, m)),
                    p,
                    layer,
                    ..
                } => {
                    assert_eq!(
                        m.is_none(),
                        wgpu_cnn::ops::conv2d::winograd::fuses_output(p),
                        "{layer}"
                    );
                    assert_eq!(k.contains("winograd_gemm_out_sg"), m.is_none(), "{k}");
                    (0, true)
                }
                // The forward of the transposed convolution (no E, nothing shared).
                Step::ConvBackwardInput {
                    winograd: Some((_, None)),
                    weight_d,
                    layer,
                    p,
                    ..
                } => {
                    assert!(!weight_d, "{layer}");
                    assert!(caps.winograd_input_as_forward(p), "{layer}");
                    assert!(k.contains("winograd_gemm_out_sg"), "{layer}: {k}");
                    (1, true)
                }
                Step::ConvBackwardInput {
                    winograd: Some(([_, d], Some(_))),
                    weight_d,
                    layer,
                    ..
                } => {
                    // D is the weight gradient's own tensor.
                    let from_weight = p.backward.iter().any(|b| {
                        matches!(b, Step::ConvBackwardWeight { winograd: Some([_, wd]), layer: l, .. }
                            if l == layer && wd == d)
                    });
                    assert_eq!(*weight_d, from_weight, "{layer}");
                    (1, *weight_d)
                }
                Step::ConvBackwardWeight {
                    winograd: Some([v, _]),
                    forward_v,
                    layer,
                    ..
                } => {
                    // V is the forward's own tensor.
                    let from_forward = p.forward.iter().any(|f| {
                        matches!(f, Step::Conv { winograd: Some(([_, fv], _)), layer: l, .. }
                            if l == layer && fv == v)
                    });
                    assert_eq!(*forward_v, from_forward, "{layer}");
                    (2, *forward_v)
                }
                _ => {
                    assert!(!k.contains("winograd"), "{}: {k}", st.layer());
                    continue;
                }
            };
            assert!(fwd_v, "{}: V recomputed", st.layer());
            assert!(k.contains("winograd_gemm"), "{}: {k}", st.layer());
            got[i].push(st.layer().to_string());
        }
        got
    };
    let [f, i, w] = winograd_layers(&lavapipe, &seed());
    // The seed's Conv_1 is its first layer with an input gradient.
    assert_eq!(
        (f, i, w),
        (
            vec!["Conv_1".to_string()],
            vec!["Conv_1".to_string()],
            vec!["Conv_1".to_string()]
        )
    );
    let off = Caps {
        winograd: false,
        ..lavapipe
    };
    assert!(winograd_layers(&off, &seed()).iter().all(|v| v.is_empty()));
    // The seed's ReLU → pool backward after Conv_1 is fused into its weight gradient's
    // output-gradient transform (from the pooled gradient and the ReLU mask), the one before
    // Conv_1 into its input gradient's last stage; without Winograd they stay steps of their
    // own.
    let pool_backwards = |caps: &Caps| {
        let p = Plan::new(&seed(), 128, caps, Mode::Train).unwrap();
        check_buffer_sharing(&p);
        let fused = p.backward.iter().any(|s| {
            matches!(s, Step::ConvBackwardWeight { layer, pool_mask: Some(_), .. } if layer == "Conv_1")
        }) && p.backward.iter().any(|s| {
            matches!(s, Step::ConvBackwardInput { layer, pool_mask: Some(_), .. } if layer == "Conv_1")
        });
        let steps: Vec<String> = p
            .backward
            .iter()
            .filter(|s| matches!(s, Step::AvgPoolBackward { .. }))
            .map(|s| s.layer().to_string())
            .collect();
        (fused, steps)
    };
    assert_eq!(pool_backwards(&lavapipe), (true, Vec::<String>::new()));
    assert_eq!(
        pool_backwards(&off),
        (
            false,
            vec!["avg_pool_5".to_string(), "avg_pool_2".to_string()]
        )
    );
    assert!(winograd_layers(&Caps::gpu32(), &seed())
        .iter()
        .all(|v| v.is_empty()));
    let r20 = zoo::preset("resnet20").unwrap();
    let [f, i, w] = winograd_layers(&lavapipe, &r20);
    let plan = Plan::new(&r20, 128, &lavapipe, Mode::Train).unwrap();
    for st in &plan.backward {
        if let Step::ConvBackwardWeight { layer, p, .. } = st {
            let want = p.kh == 3 && p.sh == 1 && p.c >= 32 && p.o >= 32 && p.h >= 8;
            assert_eq!(w.contains(layer), want, "{layer}: {p:?}");
            // The 16-channel layers' forward too (its own 16-channel kernel), and their input
            // gradient as the forward of the transposed convolution; not their weight gradient.
            let want16 = p.kh == 3 && p.sh == 1 && p.c == 16 && p.o == 16 && p.h >= 8;
            assert_eq!(f.contains(layer), want || want16, "{layer}: {p:?}");
            assert_eq!(i.contains(layer), want || want16, "{layer}: {p:?}");
        }
    }
    assert!(w.len() >= 8, "{w:?}");
    assert!(f.len() >= w.len() + 6, "{f:?}");
    // Its 16-channel layers' input gradients are forwards of the transposed convolution, the
    // other Winograd ones (and the seed's Conv_1) the forward's adjoint with the weight
    // gradient's D.
    let form = |plan: &Plan| -> Vec<(String, bool)> {
        plan.backward
            .iter()
            .filter_map(|s| match s {
                Step::ConvBackwardInput {
                    winograd: Some((_, e)),
                    layer,
                    p,
                    ..
                } => {
                    assert_eq!(e.is_none(), p.o == 16, "{layer}");
                    Some((layer.clone(), e.is_none()))
                }
                _ => None,
            })
            .collect()
    };
    let r20_forms = form(&plan);
    assert_eq!(r20_forms.iter().filter(|f| f.1).count(), 6, "{r20_forms:?}");
    assert!(r20_forms.iter().any(|f| !f.1), "{r20_forms:?}");
    let seed_plan = Plan::new(&seed(), 128, &lavapipe, Mode::Train).unwrap();
    assert_eq!(form(&seed_plan), vec![("Conv_1".to_string(), false)]);
    // vgg11-bn has Winograd layers of both forward forms: the products fused into the output
    // transform up to 128 input channels, M in memory above (both checked in winograd_layers).
    let vgg = zoo::preset("vgg11-bn").unwrap();
    let plan = Plan::new(&vgg, 32, &lavapipe, Mode::Train).unwrap();
    let forms: Vec<bool> = plan
        .forward
        .iter()
        .filter_map(|s| match s {
            Step::Conv {
                winograd: Some((_, m)),
                ..
            } => Some(m.is_none()),
            _ => None,
        })
        .collect();
    assert!(forms.contains(&true) && forms.contains(&false), "{forms:?}");
    winograd_layers(&lavapipe, &vgg);
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
        ("no classes", "input = [32, 32, 3]\n[[layer]]\ntype = \"flatten\"\n".to_string(), "missing key `classes`"),
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
        ("key on gelu", format!("{HEAD}[[layer]]\ntype = \"gelu\"\napproximate = false\n{tail}"), "layer 0 (gelu): unknown key `approximate`"),
        ("scale no factor", format!("{HEAD}[[layer]]\ntype = \"scale\"\n{tail}"), "layer 0 (scale): missing key `factor`"),
        ("scale factor text", format!("{HEAD}[[layer]]\ntype = \"scale\"\nfactor = \"a ninth\"\n{tail}"), "layer 0 (scale): key `factor` must be a number"),
        ("scale factor inf", format!("{HEAD}[[layer]]\ntype = \"scale\"\nfactor = inf\n{tail}"), "layer 0 (scale): key `factor` must be a finite number"),
    ];
    for (name, text, needle) in &cases {
        bad_description(name, text, needle);
    }
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
