//! Times kernel variants side by side (same run, same conditions) on the seed's shapes at
//! batch 128: `cargo run --release --example variants [filter]`.
use std::time::Instant;
use wgpu_cnn::gpu::dispatch::grid;
use wgpu_cnn::gpu::{BufSlice, Dispatch, Gpu, GpuOptions};
use wgpu_cnn::ops::*;

/// Entry point, bindings, tiles.
type Case<'a> = (&'static str, Vec<(u32, BufSlice<'a>)>, u32);

fn time(gpu: &Gpu, d: &Dispatch, reps: usize) -> f64 {
    gpu.run(&[d]).unwrap();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            gpu.run(&[d]).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[reps / 2]
}

fn main() {
    let gpu = Gpu::new(&GpuOptions::default()).unwrap();
    let splits: u32 = std::env::var("SPLITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let filter: Vec<String> = std::env::args().skip(1).collect();
    let want = |e: &str| filter.is_empty() || filter.iter().any(|f| e.contains(f.as_str()));
    let report = |name: &str, entry: &str, ms: f64, flops: u64| {
        println!(
            "{name:<8} {entry:<32} {ms:8.2} ms {:6.2} GFLOP/s",
            flops as f64 / ms / 1e6
        )
    };
    for (name, p) in [
        (
            "Conv_1",
            Conv2dParams::new(128, 16, 16, 32, 64, 3, Padding::Same).with_splits(splits),
        ),
        (
            "Conv_0",
            Conv2dParams::new(128, 32, 32, 3, 32, 3, Padding::Same).with_splits(splits),
        ),
        // ResNet-20's first stage.
        (
            "R20_s1",
            Conv2dParams::new(128, 32, 32, 16, 16, 3, Padding::Same).with_splits(splits),
        ),
        // Dense_0 as the 1×1 convolution the subgroup kernels run it as (one split).
        ("Dense_0", DenseParams::new(128, 4096, 256).as_conv()),
    ] {
        let x = gpu.storage("x", p.input_len());
        let w = gpu.storage("w", p.weight_len());
        let b = gpu.storage("b", p.o as usize);
        let y = gpu.storage("y", p.output_len());
        let part = gpu.storage("part", p.partials_len());
        let u = gpu.uniform("p", &p);
        let nopool = gpu.storage("nopool", 4);
        fn s(b: &wgpu::Buffer) -> BufSlice<'_> {
            b.into()
        }
        let rows = p.weight_rows() + 1;
        let cases: Vec<Case<'_>> = vec![
            (
                "conv2d_forward",
                vec![(1, s(&x)), (2, s(&w)), (3, s(&b)), (4, s(&y))],
                p.o.div_ceil(4) * p.pixels().div_ceil(4),
            ),
            (
                "conv2d_forward_vec4",
                vec![(1, s(&x)), (10, s(&w)), (3, s(&b)), (4, s(&y))],
                p.o.div_ceil(8) * p.pixels().div_ceil(4),
            ),
            (
                "conv2d_forward_sg",
                vec![
                    (1, s(&x)),
                    (10, s(&w)),
                    (3, s(&b)),
                    (14, s(&y)),
                    (18, s(&nopool)),
                    (19, s(&nopool)),
                ],
                p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8,
            ),
            (
                "conv2d_forward_sg_c3",
                vec![
                    (1, s(&x)),
                    (10, s(&w)),
                    (3, s(&b)),
                    (14, s(&y)),
                    (18, s(&nopool)),
                    (19, s(&nopool)),
                ],
                p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8,
            ),
            (
                "conv2d_forward_sg_c4",
                vec![
                    (12, s(&x)),
                    (10, s(&w)),
                    (3, s(&b)),
                    (14, s(&y)),
                    (18, s(&nopool)),
                    (19, s(&nopool)),
                ],
                p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8,
            ),
            (
                "conv2d_forward_sg_c4_o16",
                vec![(12, s(&x)), (10, s(&w)), (3, s(&b)), (21, s(&y))],
                p.o.div_ceil(16) * p.pixels().div_ceil(32) * 8,
            ),
            (
                "conv2d_backward_input",
                vec![(5, s(&y)), (2, s(&w)), (6, s(&x))],
                p.c.div_ceil(4) * p.input_phase_tiles(4),
            ),
            (
                "conv2d_backward_input_vec4",
                vec![(11, s(&y)), (10, s(&w)), (6, s(&x))],
                p.c.div_ceil(8) * p.input_phase_tiles(4),
            ),
            (
                "conv2d_backward_input_sg",
                vec![(11, s(&y)), (10, s(&w)), (16, s(&x))],
                p.c.div_ceil(32) * p.input_phase_tiles(32) * 8,
            ),
            (
                "conv2d_backward_weight_sg",
                vec![(1, s(&x)), (11, s(&y)), (17, s(&part))],
                p.o.div_ceil(32) * rows.div_ceil(32) * p.splits * 8,
            ),
            (
                "conv2d_backward_weight_sg_c4",
                vec![(12, s(&x)), (11, s(&y)), (17, s(&part))],
                p.o.div_ceil(32) * rows.div_ceil(32) * p.splits * 8,
            ),
            (
                "conv2d_backward_weight_sg_o16",
                vec![(1, s(&x)), (11, s(&y)), (24, s(&part))],
                p.o.div_ceil(16) * rows.div_ceil(32) * p.splits * 8,
            ),
            (
                "conv2d_backward_weight_sg_o16_c4",
                vec![(12, s(&x)), (11, s(&y)), (24, s(&part))],
                p.o.div_ceil(16) * rows.div_ceil(32) * p.splits * 8,
            ),
            (
                "conv2d_backward_weight",
                vec![(1, s(&x)), (5, s(&y)), (7, s(&part))],
                p.o.div_ceil(4) * rows.div_ceil(4) * p.splits,
            ),
            (
                "conv2d_backward_weight_vec4",
                vec![(1, s(&x)), (11, s(&y)), (7, s(&part))],
                p.o.div_ceil(8) * rows.div_ceil(4) * p.splits,
            ),
            (
                "conv2d_backward_weight_c4",
                vec![(12, s(&x)), (11, s(&y)), (7, s(&part))],
                p.o.div_ceil(8) * (rows / 4 + 1) * p.splits,
            ),
        ];
        for (entry, binds, tiles) in cases {
            if !want(entry)
                || ((entry.contains("_c4") || entry == "conv2d_backward_input_sg") && p.c % 4 != 0)
                || (entry.ends_with("_c3") && p.c != 3)
                || (entry.contains("_o16") && p.o > 16)
            {
                continue;
            }
            // The subgroup kernels read their weights (and the weight gradient its dout)
            // through the launchers' textures.
            let d = if entry.contains("_sg") {
                let rg = entry.contains("_o16");
                let texture = if entry.contains("backward_weight") {
                    (11, if rg { 33 } else { 31 })
                } else {
                    (10, if rg { 32 } else { 30 })
                };
                let rest: Vec<_> = binds
                    .iter()
                    .copied()
                    .filter(|(b, _)| *b != texture.0)
                    .collect();
                let t: Vec<_> = binds
                    .iter()
                    .filter(|(b, _)| *b == texture.0)
                    .map(|(_, v)| (texture.1, *v))
                    .collect();
                Dispatch::with_textures(
                    &gpu,
                    wgpu_cnn::ops::conv2d::sg_shader(entry),
                    entry,
                    &u,
                    &rest,
                    &t,
                    grid(tiles),
                    p.flops_forward(),
                    0,
                )
            } else {
                Dispatch::new(
                    &gpu,
                    if entry.contains("_sg") {
                        wgpu_cnn::ops::conv2d::sg_shader(entry)
                    } else {
                        "conv2d"
                    },
                    entry,
                    &u,
                    &binds,
                    grid(tiles),
                    p.flops_forward(),
                    0,
                )
            };
            report(name, entry, time(&gpu, &d, reps), p.flops_forward());
        }
        if want("reduce") {
            let dw = gpu.storage("dw", p.weight_len());
            let d = Dispatch::new(
                &gpu,
                "conv2d",
                "conv2d_backward_weight_reduce",
                &u,
                &[(7, s(&part)), (8, s(&dw)), (9, s(&b))],
                grid(rows * p.o),
                0,
                0,
            );
            println!(
                "{name:<8} reduce ({} splits) {:8.2} ms",
                p.splits,
                time(&gpu, &d, 5)
            );
        }
    }
    let p = DenseParams::new(128, 4096, 256);
    let (x, w, b, y) = (
        gpu.storage("x", 128 * 4096),
        gpu.storage("w", 4096 * 256),
        gpu.storage("b", 256),
        gpu.storage("y", 128 * 256),
    );
    let u = gpu.uniform("p", &p);
    fn s(b: &wgpu::Buffer) -> BufSlice<'_> {
        b.into()
    }
    let cases: Vec<Case<'_>> = vec![
        (
            "dense_forward",
            vec![(1, s(&x)), (2, s(&w)), (3, s(&b)), (4, s(&y))],
            p.n.div_ceil(4) * p.m.div_ceil(4),
        ),
        (
            "dense_forward_vec4",
            vec![(1, s(&x)), (10, s(&w)), (3, s(&b)), (4, s(&y))],
            p.n.div_ceil(8) * p.m.div_ceil(4),
        ),
        (
            "dense_backward_input",
            vec![(5, s(&y)), (2, s(&w)), (6, s(&x))],
            p.k.div_ceil(4) * p.m.div_ceil(4),
        ),
        (
            "dense_backward_input_vec4",
            vec![(11, s(&y)), (10, s(&w)), (6, s(&x))],
            p.k.div_ceil(8) * p.m.div_ceil(4),
        ),
        (
            "dense_backward_weight",
            vec![(1, s(&x)), (5, s(&y)), (7, s(&w))],
            p.n.div_ceil(4) * p.k.div_ceil(4),
        ),
        (
            "dense_backward_weight_vec4",
            vec![(1, s(&x)), (11, s(&y)), (7, s(&w))],
            p.n.div_ceil(8) * p.k.div_ceil(4),
        ),
    ];
    for (entry, binds, tiles) in cases {
        if !want(entry)
            || (entry.ends_with("vec4")
                && wgpu_cnn::gpu::shaders::source("dense").is_some_and(|s| !s.contains(entry)))
        {
            continue;
        }
        let d = Dispatch::new(
            &gpu,
            "dense",
            entry,
            &u,
            &binds,
            grid(tiles),
            p.flops_forward(),
            0,
        );
        report("Dense_0", entry, time(&gpu, &d, 5), p.flops_forward());
    }
}
