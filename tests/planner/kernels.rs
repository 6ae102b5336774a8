//! The kernel family from the device's capabilities, and where Winograd convolutions run.

use crate::{check_buffer_sharing, seed};
use wgpu_cnn::graph::zoo;
use wgpu_cnn::plan::{Caps, Kernels, Mode, Plan, Step};

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
