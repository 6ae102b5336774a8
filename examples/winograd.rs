//! Winograd F(4×4, 3×3) (`winograd.wgsl` + the GEMMs of `winograd_gemm_sg.wgsl`) against the direct
//! subgroup kernels, each direction alone (and the input gradient as the forward of the
//! transposed convolution), on the 3×3 SAME layers of the seed, ResNet-20 (batch 128) and VGG
//! (batch 32): median ms of 7 alternated runs and the largest difference between the two.
//! `cargo run --release --example winograd` (a device with 8-wide subgroups: lavapipe).
use std::time::Instant;
use wgpu_cnn::gpu::{Dispatch, Gpu, GpuOptions};
use wgpu_cnn::ops::conv2d::gpu as conv2d;
use wgpu_cnn::ops::conv2d::winograd::gpu as winograd;
use wgpu_cnn::ops::{Conv2dParams, Padding};

fn time(gpu: &Gpu, ds: &[Dispatch]) -> f64 {
    let refs: Vec<&Dispatch> = ds.iter().collect();
    let t = Instant::now();
    gpu.run(&refs).expect("run");
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn max_diff(gpu: &Gpu, a: &wgpu::Buffer, b: &wgpu::Buffer) -> f32 {
    let (a, b) = (
        gpu.read_f32(a).expect("read"),
        gpu.read_f32(b).expect("read"),
    );
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn main() {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.info.name);
    for (name, h, c, o) in [
        ("seed Conv_1", 16, 32, 64),
        ("resnet20 stage 1", 32, 16, 16),
        ("resnet20 stage 2", 16, 32, 32),
        ("resnet20 stage 3", 8, 64, 64),
        ("vgg 16x16 128", 16, 128, 128),
        ("vgg 8x8 256", 8, 256, 256),
    ] {
        let p = Conv2dParams::new(
            if c >= 128 { 32 } else { 128 },
            h,
            h,
            c,
            o,
            3,
            Padding::Same,
        );
        assert!(
            wgpu_cnn::ops::conv2d::winograd::applies(&gpu.caps(), &p),
            "no 8-wide subgroups here"
        );
        let data = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 * 1e-3 - 0.5)
                .collect()
        };
        let x = gpu.storage_from("x", &data(p.input_len(), 1));
        let w = gpu.storage_from("w", &data(p.weight_len(), 2));
        let b = gpu.storage_from("b", &data(p.o as usize, 3));
        let dy = gpu.storage_from("dy", &data(p.output_len(), 4));
        let out = |len| (gpu.storage("d", len), gpu.storage("w", len));
        let (y_d, y_w) = out(p.output_len());
        let (dx_d, dx_w) = out(p.input_len());
        let (dw_d, dw_w) = out(p.weight_len());
        let (db_d, db_w) = out(p.o as usize);
        let part = gpu.storage("partials", p.partials_len());
        let (fl, il, wl) = wgpu_cnn::ops::conv2d::winograd::scratch_lens(&p);
        let scratch = |l: [usize; 3]| l.map(|len| gpu.storage("scratch", len));
        let (fs, is, ws) = (scratch(fl), scratch(il), scratch(wl));
        let scr = winograd::Scratch::of;
        let direct: [Vec<Dispatch>; 4] = [
            vec![conv2d::forward(
                &gpu,
                &p,
                (&x).into(),
                (&w).into(),
                Some((&b).into()),
                (&y_d).into(),
            )],
            vec![conv2d::backward_input(
                &gpu,
                &p,
                (&dy).into(),
                (&w).into(),
                (&dx_d).into(),
            )],
            conv2d::backward_weight(
                &gpu,
                &p,
                (&x).into(),
                (&dy).into(),
                (&part).into(),
                (&dw_d).into(),
                Some((&db_d).into()),
            )
            .into(),
            vec![conv2d::backward_input(
                &gpu,
                &p,
                (&dy).into(),
                (&w).into(),
                (&dx_d).into(),
            )],
        ];
        let q = p.winograd_transposed();
        let (qu, qv) = (
            gpu.storage(
                "u",
                wgpu_cnn::ops::conv2d::winograd::POINTS * (c * o) as usize,
            ),
            gpu.storage("v", wgpu_cnn::ops::conv2d::winograd::scratch_lens(&q).0[1]),
        );
        let wino: [Vec<Dispatch>; 4] = [
            winograd::forward(
                &gpu,
                &p,
                (&x).into(),
                (&w).into(),
                Some((&b).into()),
                (&y_w).into(),
                None,
                scr(&fs),
            ),
            winograd::backward_input(
                &gpu,
                &p,
                Some((&dy).into()),
                (&w).into(),
                winograd::Dinput::Full((&dx_w).into()),
                scr(&is),
            ),
            winograd::backward_weight(
                &gpu,
                &p,
                Some((&x).into()),
                winograd::Dout::Full((&dy).into()),
                (&dw_w).into(),
                Some((&db_w).into()),
                scr(&ws),
            ),
            // (Only where the transposed convolution's forward is fused.)
            if wgpu_cnn::ops::conv2d::winograd::fuses_output(&q) {
                winograd::backward_input_as_forward(
                    &gpu,
                    &p,
                    (&dy).into(),
                    (&w).into(),
                    (&dx_w).into(),
                    winograd::Scratch {
                        a: (&qu).into(),
                        b: (&qv).into(),
                        c: (&qv).into(),
                    },
                )
            } else {
                Vec::new()
            },
        ];
        let flops = p.flops_forward() as f64;
        println!("{name}: 128x{h}x{h}x{c} -> {o}, 3x3");
        for (k, dir) in [
            "forward",
            "input gradient",
            "weight gradient",
            "input as forward",
        ]
        .iter()
        .enumerate()
        {
            if wino[k].is_empty() {
                continue;
            }
            time(&gpu, &direct[k]);
            time(&gpu, &wino[k]);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                a.push(time(&gpu, &direct[k]));
                b.push(time(&gpu, &wino[k]));
            }
            // Each Winograd stage: the median time of the stages up to it less that of the
            // stages before it (a stage alone could not run again: winograd_adjoint works in
            // place).
            let mut before = 0.0;
            let stages: Vec<String> = (0..wino[k].len())
                .map(|i| {
                    let v: Vec<f64> = (0..5).map(|_| time(&gpu, &wino[k][..=i])).collect();
                    let upto = median(v);
                    let s = format!("{} {:.2}", wino[k][i].entry, upto - before);
                    before = upto;
                    s
                })
                .collect();
            time(&gpu, &wino[k]);
            let (a, b) = (median(a), median(b));
            let diff = match k {
                0 => max_diff(&gpu, &y_d, &y_w),
                1 | 3 => max_diff(&gpu, &dx_d, &dx_w),
                _ => max_diff(&gpu, &dw_d, &dw_w).max(max_diff(&gpu, &db_d, &db_w)),
            };
            println!(
                "  {dir:16} direct {a:7.2} ms ({:5.1} GFLOP/s)  winograd {b:7.2} ms ({:5.1} effective)  {:.2}x  max diff {diff:.2e}\n    {}",
                flops / a / 1e6,
                flops / b / 1e6,
                a / b,
                stages.join(", ")
            );
        }
    }
}
