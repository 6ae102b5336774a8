//! Measures what lavapipe's load path costs: `conv2d_forward_sg_c4` (storage-buffer loads,
//! which llvmpipe performs one lane and one component at a time, each with a bounds check and a
//! branch) against the same loop with its weights and inputs read through `textureLoad` from
//! rgba32float textures (llvmpipe fetches texels without per-lane branches). Same math, same
//! summation order: the outputs must be bitwise equal. Seed shapes at batch 128:
//! `cargo run --release --example texfetch`. Findings in docs/benchmarks.md.
use std::time::Instant;
use wgpu_cnn::gpu::dispatch::grid;
use wgpu_cnn::gpu::{Dispatch, Gpu, GpuOptions};
use wgpu_cnn::params::*;

/// The tiles of `conv2d_forward_sg_c4`: 8 lanes × 4 channels by 16 pixels.
const TILES: &str = "forward_tiles(4u)";

/// Texels per texture row: a linear vec4 index i sits at (i % TEX_W, i / TEX_W).
const TEX_W: u32 = 4096;

/// Bindings and load helpers of the variants (beside `conv2d_sg.wgsl`'s own).
const EXTRA: &str = r#"
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(31) var xtex: texture_2d<f32>;
@group(0) @binding(32) var<uniform> wub: array<vec4<f32>, 4096>;
fn weight_buf(i: u32) -> vec4<f32> { return weight4[i]; }
fn weight_ubo(i: u32) -> vec4<f32> { return wub[i]; }
"#;

/// `conv2d_forward_sg_c4`'s tile function as `conv2d_sg.wgsl` has it, renamed, with each
/// `(from, to)` swapped in (every `from` must occur), and an entry point that runs tile
/// `tile_id` of the grid when it is below `tiles` (a WGSL expression; no tile queue).
fn variant(src: &str, name: &str, tiles: &str, swaps: &[(&str, String)]) -> String {
    let start = src
        .find("fn conv2d_forward_sg_c4_tile(")
        .expect("conv2d_forward_sg_c4_tile in conv2d_sg.wgsl");
    let end = start
        + src[start..]
            .find("\n}\n")
            .expect("end of the tile function")
        + 3;
    let mut k =
        src[start..end].replace("fn conv2d_forward_sg_c4_tile(", &format!("fn {name}_tile("));
    for (from, to) in swaps {
        assert!(k.contains(from), "{name}: no `{from}` in the kernel");
        k = k.replace(from, to);
    }
    k + &format!(
        "\n@compute @workgroup_size(64)\n\
         fn {name}(@builtin(workgroup_id) wid: vec3<u32>, \
         @builtin(num_workgroups) nwg: vec3<u32>, \
         @builtin(local_invocation_index) lid: u32) {{\n    \
         let t = tile_id(wid, nwg, lid);\n    \
         if (t < {tiles}) {{ {name}_tile(t, lid % SG); }}\n}}\n"
    )
}

/// The variants: storage-buffer weights (the kernel before the textures), inputs through a
/// texture too, weights through a uniform buffer, and four 8-pixel tiles per subgroup instead
/// of two (storage weights).
fn variants(src: &str) -> String {
    let s = |v: &str| v.to_string();
    let mut out = String::from(EXTRA);
    out += &variant(src, "fwd_buf", TILES, &[("weight_vec4(", s("weight_buf("))]);
    out += &variant(
        src,
        "fwd_tex",
        TILES,
        &[
            ("input4[off + c]", s("texel(xtex, off + c)")),
            ("input4[offb + c]", s("texel(xtex, offb + c)")),
        ],
    );
    out += &variant(src, "fwd_ubo", TILES, &[("weight_vec4(", s("weight_ubo("))]);
    let macs = |acc: &str, x: &str| -> String {
        (0..8)
            .map(|i| {
                format!("                {acc}[{i}] = mac4({acc}[{i}], subgroupBroadcast({x}, {i}u), w0, w1, w2, w3);\n")
            })
            .collect()
    };
    let last = "                b[7] = mac4(b[7], subgroupBroadcast(xb, 7u), w0, w1, w2, w3);\n";
    out += &variant(
        src,
        "fwd_sg4",
        "((p.o / 4u + SG - 1u) / SG) * ((p.n * p.out_h * p.out_w + 31u) / 32u)",
        &[
            ("weight_vec4(", s("weight_buf(")),
            (
                "let g = (t / otiles) * 2u;",
                s("let g = (t / otiles) * 4u;"),
            ),
            (
                "    let wb = window(min(tile_pixel(g + 1u, lane), m_total - 1u));\n",
                s(
                    "    let wb = window(min(tile_pixel(g + 1u, lane), m_total - 1u));\n    \
                   let wc = window(min(tile_pixel(g + 2u, lane), m_total - 1u));\n    \
                   let wd = window(min(tile_pixel(g + 3u, lane), m_total - 1u));\n",
                ),
            ),
            (
                "    var b = array<vec4<f32>, 8>();\n",
                s(
                    "    var b = array<vec4<f32>, 8>();\n    var cc = array<vec4<f32>, 8>();\n    \
                   var dd = array<vec4<f32>, 8>();\n",
                ),
            ),
            (
                "            let ob = window_tap(wb, ky, kx);\n",
                s("            let ob = window_tap(wb, ky, kx);\n            \
                   let oc = window_tap(wc, ky, kx);\n            \
                   let od = window_tap(wd, ky, kx);\n"),
            ),
            (
                "                let xb = select(z, input4[offb + c], okb);\n",
                s(
                    "                let xb = select(z, input4[offb + c], okb);\n                \
                   let xc = select(z, input4[u32(max(oc, 0)) / 4u + c], oc >= 0);\n                \
                   let xd = select(z, input4[u32(max(od, 0)) / 4u + c], od >= 0);\n",
                ),
            ),
            (
                last,
                format!("{last}{}{}", macs("cc", "xc"), macs("dd", "xd")),
            ),
            (
                "    store_output_tile(g + 1u, q, o4, b);\n",
                s("    store_output_tile(g + 1u, q, o4, b);\n    \
                   store_output_tile(g + 2u, q, o4, cc);\n    \
                   store_output_tile(g + 3u, q, o4, dd);\n"),
            ),
        ],
    );
    out
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
    let base = wgpu_cnn::gpu::shaders::source("conv2d_sg").expect("conv2d_sg");
    let src = base.to_string() + &variants(base);
    // SAFETY: as the registry's shaders (gpu/context.rs): loads clamp, stores are masked.
    let module = unsafe {
        gpu.device.create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor {
                label: Some("texfetch"),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            },
            wgpu::ShaderRuntimeChecks::unchecked(),
        )
    };
    println!("adapter: {}", gpu.describe());
    for (name, p) in [
        (
            "32to32",
            Conv2dParams::new(128, 16, 16, 32, 32, 3, Padding::Same),
        ),
        (
            "Conv_1",
            Conv2dParams::new(128, 16, 16, 32, 64, 3, Padding::Same),
        ),
        ("Dense_0", DenseParams::new(128, 4096, 256).as_conv()),
    ] {
        let data = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 * 1e-3 - 0.5)
                .collect()
        };
        let (x, w) = (data(p.input_len(), 1), data(p.weight_len(), 2));
        let texture = |v: &[f32]| {
            let h = (v.len() as u32).div_ceil(4).div_ceil(TEX_W);
            let size = wgpu::Extent3d {
                width: TEX_W,
                height: h,
                depth_or_array_layers: 1,
            };
            let t = gpu.device.create_texture(&wgpu::TextureDescriptor {
                label: None,
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            let mut padded = v.to_vec();
            padded.resize((TEX_W * h * 4) as usize, 0.0);
            gpu.queue.write_texture(
                t.as_image_copy(),
                bytemuck::cast_slice(&padded),
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(TEX_W * 16),
                    rows_per_image: None,
                },
                size,
            );
            t.create_view(&Default::default())
        };
        let (xt, wt) = (texture(&x), texture(&w));
        let xs = gpu.storage_from("x", &x);
        let ws = gpu.storage_from("w", &w);
        let b = gpu.storage("b", p.o as usize);
        let y_buf = gpu.storage("y", p.output_len());
        let y_tex = gpu.storage("y_tex", p.output_len());
        let nopool = gpu.storage("nopool", 4);
        let u = gpu.uniform("p", &p);
        let tiles = p.o.div_ceil(32) * p.pixels().div_ceil(16) * 8;
        let custom = |entry: &'static str, entries: &[wgpu::BindGroupEntry<'_>]| {
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries,
            });
            Dispatch {
                entry,
                layer: String::new(),
                pipeline,
                bind_group,
                workgroups: grid(tiles),
                flops: p.flops_forward(),
                bytes: 0,
                uniform: u.clone(),
                textures: Vec::new(),
            }
        };
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let y_sg4 = gpu.storage("y_sg4", p.output_len());
        let mut sg4 = custom(
            "fwd_sg4",
            &[
                entry(0, u.as_entire_binding()),
                entry(3, b.as_entire_binding()),
                entry(10, ws.as_entire_binding()),
                entry(12, xs.as_entire_binding()),
                entry(14, y_sg4.as_entire_binding()),
                entry(18, nopool.as_entire_binding()),
            ],
        );
        sg4.workgroups = grid(p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8);
        let y_texw = gpu.storage("y_texw", p.output_len());
        // The kernel before its weights moved to a texture: storage-buffer loads throughout.
        let buf = custom(
            "fwd_buf",
            &[
                entry(0, u.as_entire_binding()),
                entry(3, b.as_entire_binding()),
                entry(10, ws.as_entire_binding()),
                entry(12, xs.as_entire_binding()),
                entry(14, y_buf.as_entire_binding()),
                entry(18, nopool.as_entire_binding()),
            ],
        );
        // Today's kernel: weights through the launcher's texture.
        let texw = Dispatch::with_weight_texture(
            &gpu,
            "conv2d_sg",
            "conv2d_forward_sg_c4",
            &u,
            &[
                (12, (&xs).into()),
                (3, (&b).into()),
                (14, (&y_texw).into()),
                (18, (&nopool).into()),
            ],
            (&ws).into(),
            grid(tiles),
            p.flops_forward(),
            0,
        );
        let tex = custom(
            "fwd_tex",
            &[
                entry(0, u.as_entire_binding()),
                entry(3, b.as_entire_binding()),
                entry(14, y_tex.as_entire_binding()),
                entry(18, nopool.as_entire_binding()),
                entry(30, wgpu::BindingResource::TextureView(&wt)),
                entry(31, wgpu::BindingResource::TextureView(&xt)),
            ],
        );
        // Weights through a uniform buffer (lavapipe gathers those with vector gathers): only
        // where they fit one 64 KiB binding.
        let y_ubo = gpu.storage("y_ubo", p.output_len());
        let wb = (w.len() <= 16384).then(|| {
            let mut padded = w.clone();
            padded.resize(16384, 0.0);
            wgpu::util::DeviceExt::create_buffer_init(
                &gpu.device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some("wub"),
                    contents: bytemuck::cast_slice(&padded),
                    usage: wgpu::BufferUsages::UNIFORM,
                },
            )
        });
        let ubo = wb.as_ref().map(|wb| {
            custom(
                "fwd_ubo",
                &[
                    entry(0, u.as_entire_binding()),
                    entry(3, b.as_entire_binding()),
                    entry(12, xs.as_entire_binding()),
                    entry(14, y_ubo.as_entire_binding()),
                    entry(18, nopool.as_entire_binding()),
                    entry(32, wb.as_entire_binding()),
                ],
            )
        });
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
        // Alternate the variants so that all see the same machine load.
        let (mut tb, mut tt, mut tu, mut t4, mut tw) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            tb.push(time(&buf));
            t4.push(time(&sg4));
            tw.push(time(&texw));
            tt.push(time(&tex));
            if let Some(d) = &ubo {
                tu.push(time(d));
            }
        }
        let read = |y: &wgpu::Buffer| gpu.read_f32(y).expect("read");
        let reference = read(&y_buf);
        let gf = |ms: f64| p.flops_forward() as f64 / ms / 1e6;
        let tb = median(tb);
        println!(
            "{name:<8} storage weights {tb:7.2} ms {:6.2} GFLOP/s",
            gf(tb)
        );
        let t4 = median(t4);
        println!(
            "{name:<8} 4 pixel tiles  {t4:8.2} ms {:6.2} GFLOP/s  {:.2}x  bitwise equal: {}",
            gf(t4),
            tb / t4,
            read(&y_sg4) == reference
        );
        let tw = median(tw);
        println!(
            "{name:<8} texture weights {tw:7.2} ms (today) {:6.2} GFLOP/s  {:.2}x  bitwise equal: {}",
            gf(tw),
            tb / tw,
            read(&y_texw) == reference
        );
        let tt = median(tt);
        println!(
            "{name:<8} + texture inputs {tt:6.2} ms {:6.2} GFLOP/s  {:.2}x  bitwise equal: {}",
            gf(tt),
            tb / tt,
            read(&y_tex) == reference
        );
        if !tu.is_empty() {
            let tu = median(tu);
            println!(
                "{name:<8} uniform weights {tu:7.2} ms {:6.2} GFLOP/s  {:.2}x  bitwise equal: {}",
                gf(tu),
                tb / tu,
                read(&y_ubo) == reference
            );
        }
    }
}
