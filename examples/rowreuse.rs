//! Experiment: a forward kernel for 3×3, stride 1, SAME convolutions that loads each input
//! pixel once per channel step for all the taps that use it. A subgroup computes a block of
//! 4 rows × 8 columns of output pixels (four 8-pixel tiles, one row each) × 32 channels (each
//! lane 4); per step of 4 input channels every lane loads two vec4s of each of the 6 input rows
//! the block's taps touch (columns x0 − 1 + lane and x0 + 7 + lane), 12 loads where the kernel
//! in `conv2d_sg_forward.wgsl` loads 36 (one per tap and tile), and every tap's multiply-adds
//! take their pixel from those registers with `subgroupBroadcast`. Compared with the same
//! kernel shape without the reuse ("tiles": four 8-pixel row tiles, one load per tap and
//! tile), both with weights from storage, both checked against the CPU reference:
//! `cargo run --release --example rowreuse`. Needs OW % 8 == 0 and OH % 4 == 0 here.
mod common;

use wgpu_cnn::gpu::{Gpu, GpuOptions};
use wgpu_cnn::ops::*;

const COMMON: &str = r#"
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> output4: array<vec4<f32>>;
const SG: u32 = 8u;

fn mac4(acc: vec4<f32>, x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>,
        w3: vec4<f32>) -> vec4<f32> {
    return acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
}

// Input vec4 `c` of pixel (n, y, x), zero outside the image.
fn pix(n: u32, y: i32, x: i32, c: u32) -> vec4<f32> {
    let ok = y >= 0 && y < i32(p.h) && x >= 0 && x < i32(p.w);
    let off = select(0u, ((n * p.h + u32(y)) * p.w + u32(x)) * (p.c / 4u) + c, ok);
    return select(vec4<f32>(0.0), input4[off], ok);
}

fn store_row(n: u32, y: u32, x0: u32, q: u32, o4: u32, acc: array<vec4<f32>, 8>) {
    if (q >= o4 || y >= p.out_h) { return; }
    let b = vec4<f32>(bias[4u * q], bias[4u * q + 1u], bias[4u * q + 2u], bias[4u * q + 3u]);
    for (var i = 0u; i < SG; i++) {
        output4[((n * p.out_h + y) * p.out_w + x0 + i) * o4 + q] = acc[i] + b;
    }
}
"#;

/// The kernel: `reuse` loads each input row once per channel step; otherwise once per tap.
fn kernel(reuse: bool) -> String {
    let mut body = String::new();
    if reuse {
        // Rows y0 - 1 .. y0 + 4 of the input, columns x0 - 1 + lane (a) and x0 + 7 + lane (b).
        for r in 0..6 {
            body += &format!(
                "            let a{r} = pix(n, i32(y0) + {r} - 1, i32(x0 + lane) - 1, c);\n            \
                 let b{r} = pix(n, i32(y0) + {r} - 1, i32(x0 + lane) + 7, c);\n"
            );
        }
        for ky in 0..3 {
            for kx in 0..3 {
                body += &format!(
                    "            {{\n            let wr = ({ky}u * 3u + {kx}u) * p.c * o4 + qc + 4u * c * o4;\n            \
                     let w0 = weight4[wr];\n            let w1 = weight4[wr + o4];\n            \
                     let w2 = weight4[wr + 2u * o4];\n            let w3 = weight4[wr + 3u * o4];\n"
                );
                for t in 0..4 {
                    let r = t + ky;
                    for i in 0..8 {
                        let col = i + kx; // column x0 - 1 + col
                        let src = if col < 8 {
                            format!("subgroupBroadcast(a{r}, {col}u)")
                        } else {
                            format!("subgroupBroadcast(b{r}, {}u)", col - 8)
                        };
                        body += &format!(
                            "            acc{t}[{i}] = mac4(acc{t}[{i}], {src}, w0, w1, w2, w3);\n"
                        );
                    }
                }
                body += "            }\n";
            }
        }
        body = format!("        for (var c = 0u; c < cq; c++) {{\n{body}        }}\n");
    } else {
        let mut inner = String::new();
        for t in 0..4 {
            inner += &format!(
                "                let xt{t} = pix(n, i32(y0) + {t} + i32(ky) - 1, i32(x0 + lane) + i32(kx) - 1, c);\n"
            );
        }
        inner += "                let wr = (ky * 3u + kx) * p.c * o4 + qc + 4u * c * o4;\n                \
                  let w0 = weight4[wr];\n                let w1 = weight4[wr + o4];\n                \
                  let w2 = weight4[wr + 2u * o4];\n                let w3 = weight4[wr + 3u * o4];\n";
        for t in 0..4 {
            for i in 0..8 {
                inner += &format!(
                    "                acc{t}[{i}] = mac4(acc{t}[{i}], subgroupBroadcast(xt{t}, {i}u), w0, w1, w2, w3);\n"
                );
            }
        }
        body = format!(
            "        for (var ky = 0u; ky < 3u; ky++) {{\n        for (var kx = 0u; kx < 3u; kx++) {{\n            \
             for (var c = 0u; c < cq; c++) {{\n{inner}            }}\n        }}\n        }}\n"
        );
    }
    format!(
        r#"{COMMON}
fn tile(t: u32, lane: u32) {{
    let o4 = p.o / 4u;
    let cq = p.c / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    // Block b: image n, rows y0 .. y0 + 3, columns x0 .. x0 + 7.
    let blk = t / otiles;
    let xb = p.out_w / 8u;
    let yb = p.out_h / 4u;
    let x0 = (blk % xb) * 8u;
    let y0 = ((blk / xb) % yb) * 4u;
    let n = blk / (xb * yb);
    var acc0 = array<vec4<f32>, 8>();
    var acc1 = array<vec4<f32>, 8>();
    var acc2 = array<vec4<f32>, 8>();
    var acc3 = array<vec4<f32>, 8>();
{body}
    store_row(n, y0, x0, q, o4, acc0);
    store_row(n, y0 + 1u, x0, q, o4, acc1);
    store_row(n, y0 + 2u, x0, q, o4, acc2);
    store_row(n, y0 + 3u, x0, q, o4, acc3);
}}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {{
    let t = (wid.x + wid.y * nwg.x) * 8u + lid / SG;
    let tiles = ((p.o / 4u + SG - 1u) / SG) * (p.n * p.out_h * p.out_w / 32u);
    if (t < tiles) {{ tile(t, lid % SG); }}
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
    println!("adapter: {}", gpu.describe());
    for (name, p) in [
        (
            "Conv_1",
            Conv2dParams::new(128, 16, 16, 32, 64, 3, Padding::Same),
        ),
        (
            "32to32",
            Conv2dParams::new(128, 16, 16, 32, 32, 3, Padding::Same),
        ),
        (
            "R20_s3",
            Conv2dParams::new(128, 8, 8, 64, 64, 3, Padding::Same),
        ),
    ] {
        let pr = common::Problem::new(&gpu, p);
        let tiles = (p.o / 4).div_ceil(8) * p.pixels() / 32;
        let runs = [("tiles", false), ("reuse", true)]
            .map(|(label, reuse)| (label, pr.kernel(&gpu, label, &kernel(reuse), tiles)));
        // Alternate the two so that both see the same machine load.
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (t, (_, k)) in times.iter_mut().zip(&runs) {
                t.push(common::time_ms(&gpu, &k.d));
            }
        }
        for ((label, k), t) in runs.iter().zip(times) {
            pr.report(name, label, k, t);
        }
    }
}
