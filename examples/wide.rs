//! Experiment: the subgroup forward kernel (`conv2d_forward_sg_c4`'s scheme: a lane owns 4
//! output channels, the pixels' inputs are shared with `subgroupBroadcast`) written for a
//! subgroup width `W` given at run time (8, 16, 32, ...), one tile of `W` pixels × `4W` output
//! channels per subgroup, weights from a storage buffer. On lavapipe the subgroup width is the
//! native vector width / 32: run it as
//! `LP_NATIVE_VECTOR_WIDTH=512 cargo run --release --example wide` for 16-wide subgroups on an
//! AVX-512 CPU (and without the variable for 8). Checks against the CPU reference, prints
//! GFLOP/s on the seed's Conv_1, the 32→32 shape and ResNet-20's last stage at batch 128.
//! A negative result, kept as its record: 16 lanes at 512 bits are slower than 8 lanes at 256
//! bits. `CH8=1`: every lane owns 8 output channels (two vec4s), so each broadcast input feeds
//! twice the multiply-adds but every weight load half as many; also slower. The numbers are in
//! docs/notes/lavapipe.md.
use std::time::Instant;
use wgpu_cnn::gpu::{Gpu, GpuOptions};
use wgpu_cnn::ops::*;

fn kernel(w: u32, ch8: bool) -> String {
    let macs: String = (0..w)
        .map(|i| {
            if ch8 {
                format!(
                    "            let x{i} = subgroupBroadcast(x, {i}u);\n            \
                     a[{i}] = mac4(a[{i}], x{i}, w0, w1, w2, w3);\n            \
                     b[{i}] = mac4(b[{i}], x{i}, v0, v1, v2, v3);\n"
                )
            } else {
                format!(
                    "            a[{i}] = mac4(a[{i}], subgroupBroadcast(x, {i}u), w0, w1, w2, w3);\n"
                )
            }
        })
        .collect();
    let k = if ch8 { 2 } else { 1 };
    format!(
        r#"
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> output4: array<vec4<f32>>;
const W: u32 = {w}u;
const K: u32 = {k}u; // vec4s of output channels per lane

fn mac4(acc: vec4<f32>, x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>,
        w3: vec4<f32>) -> vec4<f32> {{
    return acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
}}

fn window(m: u32) -> vec3<i32> {{
    let t = m / p.out_w;
    return vec3<i32>(i32(m % p.out_w * p.sw) - i32(p.pad_l), i32(t % p.out_h * p.sh) - i32(p.pad_t),
                     i32(t / p.out_h * p.h));
}}

fn window_tap(o: vec3<i32>, ky: u32, kx: u32) -> i32 {{
    let iy = o.y + i32(ky);
    let ix = o.x + i32(kx);
    let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
    return select(-1, ((o.z + iy) * i32(p.w) + ix) * i32(p.c), ok);
}}

fn tile(t: u32, lane: u32) {{
    let m_total = p.n * p.out_h * p.out_w;
    let o4 = p.o / 4u;
    let cq = p.c / 4u;
    let otiles = (o4 / K + W - 1u) / W;
    let q = ((t % otiles) * W + lane) * K;
    let qc = min(q, o4 - K);
    let g = t / otiles;
    let wa = window(min(g * W + lane, m_total - 1u));
    let z = vec4<f32>(0.0);
    var a = array<vec4<f32>, {w}>();
    var b = array<vec4<f32>, {w}>();
    for (var ky = 0u; ky < p.kh; ky++) {{
        for (var kx = 0u; kx < p.kw; kx++) {{
            let oa = window_tap(wa, ky, kx);
            let ok = oa >= 0;
            let off = u32(max(oa, 0)) / 4u;
            var wr = (ky * p.kw + kx) * p.c * o4 + qc;
            for (var c = 0u; c < cq; c++) {{
            let x = select(z, input4[off + c], ok);
            let w0 = weight4[wr];
            let w1 = weight4[wr + o4];
            let w2 = weight4[wr + 2u * o4];
            let w3 = weight4[wr + 3u * o4];
            let v0 = weight4[wr + select(0u, 1u, K == 2u)];
            let v1 = weight4[wr + o4 + select(0u, 1u, K == 2u)];
            let v2 = weight4[wr + 2u * o4 + select(0u, 1u, K == 2u)];
            let v3 = weight4[wr + 3u * o4 + select(0u, 1u, K == 2u)];
            wr += 4u * o4;
{macs}            }}
        }}
    }}
    if (q >= o4) {{ return; }}
    let ba = vec4<f32>(bias[4u * q], bias[4u * q + 1u], bias[4u * q + 2u], bias[4u * q + 3u]);
    let q1 = q + K - 1u;
    let bb = vec4<f32>(bias[4u * q1], bias[4u * q1 + 1u], bias[4u * q1 + 2u], bias[4u * q1 + 3u]);
    for (var i = 0u; i < W; i++) {{
        let m = g * W + i;
        if (m < m_total) {{
            output4[m * o4 + q] = a[i] + ba;
            if (K == 2u) {{ output4[m * o4 + q1] = b[i] + bb; }}
        }}
    }}
}}

@compute @workgroup_size(64)
fn wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {{
    let t = (wid.x + wid.y * nwg.x) * (64u / W) + lid / W;
    let tiles = ((p.o / 4u / K + W - 1u) / W) * ((p.n * p.out_h * p.out_w + W - 1u) / W);
    if (t < tiles) {{ tile(t, lid % W); }}
}}
"#
    )
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    let w = gpu.subgroup_size.unwrap_or(8);
    // CH8=1: every lane owns 8 output channels (two vec4s) instead of 4.
    let ch8 = std::env::var("CH8").is_ok();
    println!("adapter: {}, subgroup width {w}", gpu.describe());
    let src = include_str!("../src/ops/conv2d/conv2d_common.wgsl").to_string() + &kernel(w, ch8);
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("wide"),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("wide"),
            layout: None,
            module: &module,
            entry_point: Some("wide"),
            compilation_options: Default::default(),
            cache: None,
        });
    for (name, p) in [
        (
            "32to32",
            Conv2dParams::new(128, 16, 16, 32, 32, 3, Padding::Same),
        ),
        (
            "Conv_1",
            Conv2dParams::new(128, 16, 16, 32, 64, 3, Padding::Same),
        ),
        (
            "R20_s3",
            Conv2dParams::new(128, 8, 8, 64, 64, 3, Padding::Same),
        ),
    ] {
        let data = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 * 1e-3 - 0.5)
                .collect()
        };
        let (x, wt, b) = (
            data(p.input_len(), 1),
            data(p.weight_len(), 2),
            data(p.o as usize, 3),
        );
        let xs = gpu.storage_from("x", &x);
        let ws = gpu.storage_from("w", &wt);
        let bs = gpu.storage_from("b", &b);
        let y = gpu.storage("y", p.output_len());
        let u = gpu.uniform("p", &p);
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                entry(0, u.as_entire_binding()),
                entry(3, bs.as_entire_binding()),
                entry(10, ws.as_entire_binding()),
                entry(12, xs.as_entire_binding()),
                entry(14, y.as_entire_binding()),
            ],
        });
        let tiles = (p.o / 4 / if ch8 { 2 } else { 1 }).div_ceil(w) * p.pixels().div_ceil(w);
        let d = wgpu_cnn::gpu::Dispatch {
            entry: "wide",
            layer: String::new(),
            pipeline: pipeline.clone(),
            bind_group,
            workgroups: grid_for(tiles, 64 / w),
            flops: p.flops_forward(),
            bytes: 0,
            uniform: u.clone(),
            textures: Vec::new(),
        };
        gpu.run(&[&d]).expect("run");
        let got = gpu.read_f32(&y).expect("read");
        let mut want = vec![0.0f32; p.output_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x, &wt, &b, &mut want);
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
            .fold(0.0f32, f32::max);
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                gpu.run(&[&d]).expect("run");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let ms = times[reps / 2];
        println!(
            "{name:<8} W={w:<3} {ms:8.2} ms {:7.2} GFLOP/s  max rel err vs CPU {err:.1e}",
            p.flops_forward() as f64 / ms / 1e6
        );
    }
}

/// Workgroups of 64 for `tiles` subgroup tiles, `per_group` subgroups each.
fn grid_for(tiles: u32, per_group: u32) -> [u32; 3] {
    let groups = tiles.div_ceil(per_group);
    let x = groups.min(65535);
    [x, groups.div_ceil(x), 1]
}
