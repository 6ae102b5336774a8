//! Experiment: conv2d_forward_sg_c4's scheme (two 8-pixel tiles × 32 channels per subgroup,
//! weights from storage) with its loops unrolled at generation time for one shape, checked
//! against the CPU reference: `cargo run --release --example unroll_loops -- loop c kx all`.
//! MODE: loop (as the kernel), c (channel loop unrolled), kx (kx and c), all (every loop).
//! `LOADS=noin|now|none` replaces the input loads, the weight loads or both by values computed
//! from the index (wrong results; timing only); `MAC=expr` replaces the multiply-add chain.
//! A negative result, kept as its record: the unrolled kernels are slower than the loop (LLVM
//! hoists the loads of the unrolled body and spills); the numbers, and those without loads, are
//! in docs/notes/subgroup-kernels.md.
mod common;

use wgpu_cnn::gpu::{Gpu, GpuOptions};
use wgpu_cnn::ops::*;

fn body(c: &str, wr: &str) -> String {
    let mode = std::env::var("LOADS").unwrap_or_default();
    let inp = if mode == "noin" || mode == "none" {
        format!("let x = select(z, (vec4<f32>(f32(off + {c})) + vec4<f32>(0.0, 1.0, 2.0, 3.0)), ok);\nlet xb = select(z, (vec4<f32>(f32(offb + {c})) + vec4<f32>(0.0, 1.0, 2.0, 3.0)), okb);\n")
    } else {
        format!("let x = select(z, input4[off + {c}], ok);\nlet xb = select(z, input4[offb + {c}], okb);\n")
    };
    let wts = if mode == "now" || mode == "none" {
        format!("let w0 = (vec4<f32>(f32({wr})) + vec4<f32>(0.0, 1.0, 2.0, 3.0));\nlet w1 = (vec4<f32>(f32({wr} + o4)) + vec4<f32>(0.0, 1.0, 2.0, 3.0));\nlet w2 = (vec4<f32>(f32({wr} + 2u * o4)) + vec4<f32>(0.0, 1.0, 2.0, 3.0));\nlet w3 = (vec4<f32>(f32({wr} + 3u * o4)) + vec4<f32>(0.0, 1.0, 2.0, 3.0));\n")
    } else {
        format!("let w0 = weight4[{wr}];\nlet w1 = weight4[{wr} + o4];\nlet w2 = weight4[{wr} + 2u * o4];\nlet w3 = weight4[{wr} + 3u * o4];\n")
    };
    let mut s = inp + &wts;
    for i in 0..8 {
        s += &format!("a[{i}] = mac4(a[{i}], subgroupBroadcast(x, {i}u), w0, w1, w2, w3);\n");
    }
    for i in 0..8 {
        s += &format!("b[{i}] = mac4(b[{i}], subgroupBroadcast(xb, {i}u), w0, w1, w2, w3);\n");
    }
    format!("{{\n{s}}}\n")
}

fn tap(ky: &str, kx: &str, cq: u32, unroll_c: bool) -> String {
    let mut s = format!(
        "{{\nlet oa = window_tap(wa, {ky}, {kx});\nlet ob = window_tap(wb, {ky}, {kx});\n\
         let ok = oa >= 0;\nlet okb = ob >= 0;\nlet off = u32(max(oa, 0)) / 4u;\nlet offb = u32(max(ob, 0)) / 4u;\n\
         let wr0 = ({ky} * KW + {kx}) * C * o4 + qc;\n"
    );
    if unroll_c {
        for c in 0..cq {
            s += &body(&format!("{c}u"), &format!("(wr0 + {}u * o4)", 4 * c));
        }
    } else {
        s += "for (var c = 0u; c < CQ; c++) {\n";
        s += &body("c", "(wr0 + 4u * c * o4)");
        s += "}\n";
    }
    s + "}\n"
}

fn kernel(p: &Conv2dParams, mode: &str) -> String {
    let cq = p.c / 4;
    let loops = match mode {
        "loop" => format!(
            "for (var ky = 0u; ky < KH; ky++) {{ for (var kx = 0u; kx < KW; kx++) {}}}",
            tap("ky", "kx", cq, false)
        ),
        "c" => format!(
            "for (var ky = 0u; ky < KH; ky++) {{ for (var kx = 0u; kx < KW; kx++) {}}}",
            tap("ky", "kx", cq, true)
        ),
        "kx" => {
            let mut s = String::from("for (var ky = 0u; ky < KH; ky++) {\n");
            for kx in 0..p.kw {
                s += &tap("ky", &format!("{kx}u"), cq, true);
            }
            s + "}\n"
        }
        _ => {
            let mut s = String::new();
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    s += &tap(&format!("{ky}u"), &format!("{kx}u"), cq, true);
                }
            }
            s
        }
    };
    format!(
        r#"
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> output4: array<vec4<f32>>;
const SG: u32 = 8u;
const KH: u32 = {kh}u;
const KW: u32 = {kw}u;
const C: u32 = {c}u;
const CQ: u32 = {cq}u;

fn mac4(acc: vec4<f32>, x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>,
        w3: vec4<f32>) -> vec4<f32> {{
    return MAC;
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
    return select(-1, ((o.z + iy) * i32(p.w) + ix) * i32(C), ok);
}}

fn store(g: u32, q: u32, o4: u32, acc: array<vec4<f32>, 8>) {{
    if (q >= o4) {{ return; }}
    let m_total = p.n * p.out_h * p.out_w;
    let b = vec4<f32>(bias[4u * q], bias[4u * q + 1u], bias[4u * q + 2u], bias[4u * q + 3u]);
    for (var i = 0u; i < SG; i++) {{
        let m = g * SG + i;
        if (m < m_total) {{ output4[m * o4 + q] = acc[i] + b; }}
    }}
}}

fn tile(t: u32, lane: u32) {{
    let m_total = p.n * p.out_h * p.out_w;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let g = (t / otiles) * 2u;
    let wa = window(min(g * SG + lane, m_total - 1u));
    let wb = window(min((g + 1u) * SG + lane, m_total - 1u));
    let z = vec4<f32>(0.0);
    if (p.n == 999999u) {{ output4[0] = input4[0] + weight4[0]; }}
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
{loops}
    store(g, q, o4, a);
    store(g + 1u, q, o4, b);
}}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {{
    let t = (wid.x + wid.y * nwg.x) * 8u + lid / SG;
    let tiles = ((p.o / 4u + SG - 1u) / SG) * ((p.n * p.out_h * p.out_w + 15u) / 16u);
    if (t < tiles) {{ tile(t, lid % SG); }}
}}
"#,
        kh = p.kh,
        kw = p.kw,
        c = p.c
    )
    .replace(
        "MAC",
        &std::env::var("MAC").unwrap_or("acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3".into()),
    )
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let modes: Vec<String> = std::env::args().skip(1).collect();
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
    ] {
        let pr = common::Problem::new(&gpu, p);
        for mode in &modes {
            let tiles = (p.o / 4).div_ceil(8) * p.pixels().div_ceil(16);
            let k = pr.kernel(&gpu, "unroll", &kernel(&p, mode), tiles);
            let times = (0..reps).map(|_| common::time_ms(&gpu, &k.d)).collect();
            pr.report(name, mode, &k, times);
        }
    }
}
