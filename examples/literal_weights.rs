//! Prototype: a convolution forward whose weight loads have compile-time constant addresses.
//! lavapipe loads a storage element lane by lane unless the address is a constant; a constant
//! address becomes one scalar load broadcast to the 8 lanes. So here a lane owns one output
//! pixel and all O channels, the tap and channel loops are unrolled in the generated WGSL, and
//! every weight is read at a literal index. Same sums in the same order as
//! `conv2d_forward_sg_c4` (taps outer, 4 input channels per accumulator update), so the outputs
//! must be bitwise equal. `cargo run --release --example literal_weights [shape]`: by default only
//! ResNet-20's first-stage shape, the one whose pipeline compiles in reasonable time (`Conv_1`,
//! the seed's 32→64 with 4,608 literal weight loads, does not). A negative result, kept as the
//! record of it: slower than `conv2d_forward_sg_c4_o16` (docs/notes/subgroup-kernels.md).
use std::fmt::Write;
use std::time::Instant;
use wgpu_cnn::gpu::dispatch::grid;
use wgpu_cnn::gpu::{Dispatch, Gpu, GpuOptions};
use wgpu_cnn::ops::*;

/// WGSL for one shape (stride 1, "SAME" padding, no bias, C % 4 == 0, O % 4 == 0);
/// `px` pixels per lane.
fn generate(n: u32, h: u32, w: u32, c: u32, o: u32, k: u32, px: u32) -> String {
    let (c4, o4, pad) = (c / 4, o / 4, (k - 1) / 2);
    let m = n * h * w;
    let mut s = String::new();
    writeln!(
        s,
        "@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;"
    )
    .unwrap();
    writeln!(
        s,
        "@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;"
    )
    .unwrap();
    writeln!(
        s,
        "@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;"
    )
    .unwrap();
    writeln!(s, "@compute @workgroup_size(64)").unwrap();
    writeln!(s, "fn fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{").unwrap();
    writeln!(s, "  let t = gid.x + gid.y * nwg.x * 64u;").unwrap();
    writeln!(s, "  let z = vec4<f32>(0.0);").unwrap();
    for p in 0..px {
        // Pixel p of this lane: the lanes of a workgroup's px blocks are 64 apart.
        writeln!(
            s,
            "  let m{p} = (t / 64u) * {} + {p}u * 64u + t % 64u;",
            64 * px
        )
        .unwrap();
        writeln!(s, "  let mc{p} = min(m{p}, {}u);", m - 1).unwrap();
        writeln!(s, "  let n{p} = i32(mc{p} / {}u);", h * w).unwrap();
        writeln!(s, "  let y{p} = i32((mc{p} / {w}u) % {h}u);").unwrap();
        writeln!(s, "  let x{p} = i32(mc{p} % {w}u);").unwrap();
        for j in 0..o4 {
            writeln!(s, "  var a{p}_{j} = z;").unwrap();
        }
    }
    for ky in 0..k {
        for kx in 0..k {
            let t = ky * k + kx;
            for p in 0..px {
                writeln!(s, "  let iy{p}_{t} = y{p} + {};", ky as i32 - pad as i32).unwrap();
                writeln!(s, "  let ix{p}_{t} = x{p} + {};", kx as i32 - pad as i32).unwrap();
                writeln!(s, "  let ok{p}_{t} = iy{p}_{t} >= 0 && iy{p}_{t} < {h} && ix{p}_{t} >= 0 && ix{p}_{t} < {w};").unwrap();
                writeln!(s, "  let off{p}_{t} = select(0u, u32(((n{p} * {h} + iy{p}_{t}) * {w} + ix{p}_{t}) * {c4}), ok{p}_{t});").unwrap();
            }
            for cq in 0..c4 {
                for p in 0..px {
                    writeln!(
                        s,
                        "  let v{p}_{t}_{cq} = select(z, x4[off{p}_{t} + {cq}u], ok{p}_{t});"
                    )
                    .unwrap();
                }
                for j in 0..o4 {
                    let wi = |i: u32| (t * c + 4 * cq + i) * o4 + j;
                    for p in 0..px {
                        let v = format!("v{p}_{t}_{cq}");
                        writeln!(
                            s,
                            "  a{p}_{j} = a{p}_{j} + {v}.x * w4[{}u] + {v}.y * w4[{}u] + {v}.z * w4[{}u] + {v}.w * w4[{}u];",
                            wi(0), wi(1), wi(2), wi(3)
                        )
                        .unwrap();
                    }
                }
            }
        }
    }
    for p in 0..px {
        writeln!(s, "  if (m{p} < {m}u) {{").unwrap();
        for j in 0..o4 {
            writeln!(s, "    y4[m{p} * {o4}u + {j}u] = a{p}_{j};").unwrap();
        }
        writeln!(s, "  }}").unwrap();
    }
    writeln!(s, "}}").unwrap();
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.describe());
    let shapes: [(&str, u32, u32, u32, u32, u32); 4] = [
        ("Conv_1", 128, 16, 32, 64, 3),
        ("R20_s1", 128, 32, 16, 16, 3),
        ("R20_s2", 128, 16, 32, 32, 3),
        ("R20_s3", 128, 8, 64, 64, 3),
    ];
    let filter: Vec<String> = std::env::args().skip(1).collect();
    for (name, n, hw, c, o, k) in shapes {
        let wanted = if filter.is_empty() {
            name == "R20_s1"
        } else {
            filter.iter().any(|f| name.contains(f.as_str()))
        };
        if !wanted {
            continue;
        }
        let p = Conv2dParams::new(n, hw, hw, c, o, k, Padding::Same);
        let data = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 * 1e-3 - 0.5)
                .collect()
        };
        let (x, w) = (data(p.input_len(), 1), data(p.weight_len(), 2));
        let xs = gpu.storage_from("x", &x);
        let ws = gpu.storage_from("w", &w);
        let b = gpu.storage("b", p.o as usize);
        let y_ref = gpu.storage("y_ref", p.output_len());
        let nopool = gpu.storage("nopool", 4);
        let u = gpu.uniform("p", &p);
        let (entry, tiles) = if o <= 16 {
            (
                "conv2d_forward_sg_c4_o16",
                p.o.div_ceil(16) * p.pixels().div_ceil(32) * 8,
            )
        } else {
            (
                "conv2d_forward_sg_c4",
                p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8,
            )
        };
        let out_binding = if o <= 16 { 21 } else { 14 };
        let mut binds = vec![
            (12, (&xs).into()),
            (3, (&b).into()),
            (out_binding, (&y_ref).into()),
        ];
        if o > 16 {
            binds.push((18, (&nopool).into()));
            binds.push((19, (&nopool).into()));
        }
        let today = Dispatch::with_textures(
            &gpu,
            wgpu_cnn::ops::conv2d::sg_shader(entry),
            entry,
            &u,
            &binds,
            &[(if o <= 16 { 32 } else { 30 }, (&ws).into())],
            grid(tiles),
            p.flops_forward(),
            0,
        );
        let time = |d: &Dispatch| {
            gpu.run(&[d]).expect("run");
            median(
                (0..reps)
                    .map(|_| {
                        let t = Instant::now();
                        gpu.run(&[d]).expect("run");
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            )
        };
        gpu.run(&[&today]).expect("run");
        let reference = gpu.read_f32(&y_ref).ok();
        let t_today = time(&today);
        let gflops = |ms: f64| p.flops_forward() as f64 / ms / 1e6;
        println!(
            "{name:<7} {entry:<26} {t_today:8.2} ms {:6.2} GFLOP/s",
            gflops(t_today)
        );
        for px in [1u32, 2] {
            let src = generate(n, hw, hw, c, o, k, px);
            let t0 = Instant::now();
            // SAFETY: every load index is in range (clamped pixel, literal weight indices).
            let module = unsafe {
                gpu.device.create_shader_module_trusted(
                    wgpu::ShaderModuleDescriptor {
                        label: Some("unrolled"),
                        source: wgpu::ShaderSource::Wgsl(src.clone().into()),
                    },
                    wgpu::ShaderRuntimeChecks::unchecked(),
                )
            };
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("fwd"),
                    layout: None,
                    module: &module,
                    entry_point: Some("fwd"),
                    compilation_options: Default::default(),
                    cache: None,
                });
            let y = gpu.storage("y", p.output_len());
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("fwd"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: xs.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: ws.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: y.as_entire_binding(),
                    },
                ],
            });
            let d = Dispatch {
                entry: "fwd",
                layer: String::new(),
                pipeline,
                bind_group,
                workgroups: grid(p.pixels().div_ceil(64 * px) * 64),
                flops: p.flops_forward(),
                bytes: 0,
                uniform: u.clone(),
                textures: Vec::new(),
            };
            gpu.run(&[&d]).expect("run");
            let compile = t0.elapsed().as_secs_f64();
            let out = gpu.read_f32(&y).expect("read");
            let same = reference.as_ref().map(|r| {
                r.iter()
                    .zip(&out)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count()
            });
            let ms = time(&d);
            println!(
                "{name:<7} unrolled px={px} ({} KiB WGSL) {ms:8.2} ms {:6.2} GFLOP/s  compile+1st run {compile:.1} s, {:?} of {} differ bitwise",
                src.len() / 1024,
                gflops(ms),
                same,
                out.len()
            );
        }
    }
}
