//! Measures what lavapipe's load path costs: `conv2d_forward_sg_c4` (storage-buffer loads,
//! which llvmpipe performs one lane and one component at a time, each with a bounds check and a
//! branch) against the same loop with its weights and inputs read through `textureLoad` from
//! rgba32float textures (llvmpipe fetches texels without per-lane branches), and with two 8-pixel
//! tiles per subgroup instead of the kernel's four. Same math, same summation order: the outputs
//! must be bitwise equal. Seed shapes at batch 128: `cargo run --release --example texfetch`
//! (`GALLIUM_OVERRIDE_CPU_CAPS=avx` makes llvmpipe generate code without AVX-512, 16 vector
//! registers). Findings in docs/notes/subgroup-kernels.md and docs/notes/lavapipe.md.
use std::time::Instant;
use wgpu_cnn::gpu::dispatch::grid;
use wgpu_cnn::gpu::{Dispatch, Gpu, GpuOptions};
use wgpu_cnn::ops::*;

/// The tiles of `conv2d_forward_sg_c4`: 8 lanes × 4 channels by 32 pixels.
const TILES: &str = "forward_tiles(4u)";
/// The tiles of the two-tile variants: 16 pixels.
const TILES2: &str = "((p.o / 4u + SG - 1u) / SG) * ((p.n * p.out_h * p.out_w + 15u) / 16u)";

/// Texels per texture row: a linear vec4 index i sits at (i % TEX_W, i / TEX_W).
const TEX_W: u32 = 4096;

/// Bindings and load helpers of the variants (beside `conv2d_sg_common.wgsl`'s own).
const EXTRA: &str = r#"
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(31) var xtex: texture_2d<f32>;
@group(0) @binding(32) var<uniform> wub: array<vec4<f32>, 4096>;
fn weight_buf(i: u32) -> vec4<f32> { return weight4[i]; }
fn weight_ubo(i: u32) -> vec4<f32> { return wub[i]; }
"#;

/// `conv2d_forward_sg_c4`'s tile function as `conv2d_sg_forward.wgsl` has it, renamed, with each
/// `(from, to)` swapped in (every `from` must occur), and an entry point that runs tile
/// `tile_id` of the grid when it is below `tiles` (a WGSL expression; no tile queue).
fn variant(src: &str, name: &str, tiles: &str, swaps: &[(&str, String)]) -> String {
    let start = src
        .find("fn conv2d_forward_sg_c4_tile(")
        .expect("conv2d_forward_sg_c4_tile in conv2d_sg_forward.wgsl");
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

/// The variants: storage-buffer weights, inputs through a texture too, weights through a
/// uniform buffer, and two 8-pixel tiles per subgroup instead of the kernel's four, with texture
/// and with storage weights.
fn variants(src: &str) -> String {
    let s = |v: &str| v.to_string();
    let mut out = String::from(EXTRA);
    out += &variant(src, "fwd_buf", TILES, &[("weight_vec4(", s("weight_buf("))]);
    let tex_inputs: Vec<(&str, String)> = ["a", "b", "c", "d"]
        .iter()
        .map(|t| {
            let from: &str = match *t {
                "a" => "input4[offa + c]",
                "b" => "input4[offb + c]",
                "c" => "input4[offc + c]",
                _ => "input4[offd + c]",
            };
            (from, format!("texel(xtex, off{t} + c)"))
        })
        .collect();
    out += &variant(src, "fwd_tex", TILES, &tex_inputs);
    out += &variant(src, "fwd_ubo", TILES, &[("weight_vec4(", s("weight_ubo("))]);
    // Two tiles: tiles c and d dropped.
    let mut two: Vec<(&str, String)> = vec![
        (
            "let g = (t / otiles) * 4u;",
            s("let g = (t / otiles) * 2u;"),
        ),
        (
            "    let wc = window(min(tile_pixel(g + 2u, lane), m_total - 1u));\n",
            s(""),
        ),
        (
            "    let wd = window(min(tile_pixel(g + 3u, lane), m_total - 1u));\n",
            s(""),
        ),
        ("    var c2 = array<vec4<f32>, 8>();\n", s("")),
        ("    var d = array<vec4<f32>, 8>();\n", s("")),
        ("            let oc = window_tap(wc, ky, kx);\n", s("")),
        ("            let od = window_tap(wd, ky, kx);\n", s("")),
        ("            let offc = u32(max(oc, 0)) / 4u;\n", s("")),
        ("            let offd = u32(max(od, 0)) / 4u;\n", s("")),
        (
            "                let xc = select(z, input4[offc + c], oc >= 0);\n",
            s(""),
        ),
        (
            "                let xd = select(z, input4[offd + c], od >= 0);\n",
            s(""),
        ),
        ("    store_output_tile(g + 2u, q, o4, c2);\n", s("")),
        ("    store_output_tile(g + 3u, q, o4, d);\n", s("")),
    ];
    let macs: Vec<String> = (0..8)
        .flat_map(|i| {
            [
                format!("                c2[{i}] = mac4(c2[{i}], subgroupBroadcast(xc, {i}u), w0, w1, w2, w3);\n"),
                format!("                d[{i}] = mac4(d[{i}], subgroupBroadcast(xd, {i}u), w0, w1, w2, w3);\n"),
            ]
        })
        .collect();
    two.extend(macs.iter().map(|m| (m.as_str(), s(""))));
    out += &variant(src, "fwd_2t", TILES2, &two);
    two.push(("weight_vec4(", s("weight_buf(")));
    out += &variant(src, "fwd_2b", TILES2, &two);
    out
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
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
    let base = wgpu_cnn::gpu::shaders::source("conv2d_sg_forward").expect("conv2d_sg_forward");
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
        let nopool = gpu.storage("nopool", 4);
        let u = gpu.uniform("p", &p);
        let tiles = p.o.div_ceil(32) * p.pixels().div_ceil(32) * 8;
        let tiles2 = p.o.div_ceil(32) * p.pixels().div_ceil(16) * 8;
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
        // (label, dispatch, output) of every variant; the first is today's kernel.
        let mut runs: Vec<(&str, Dispatch, wgpu::Buffer)> = Vec::new();
        let y = gpu.storage("y", p.output_len());
        runs.push((
            "today: 4 tiles, texture weights",
            Dispatch::with_weight_texture(
                &gpu,
                "conv2d_sg_forward",
                "conv2d_forward_sg_c4",
                &u,
                &[
                    (12, (&xs).into()),
                    (3, (&b).into()),
                    (14, (&y).into()),
                    (18, (&nopool).into()),
                    (19, (&nopool).into()),
                ],
                (&ws).into(),
                grid(tiles),
                p.flops_forward(),
                0,
            ),
            y,
        ));
        let mut custom = |label: &'static str,
                          name: &'static str,
                          weights: wgpu::BindingResource<'_>,
                          wbind: u32,
                          input: wgpu::BindingResource<'_>,
                          ibind: u32,
                          tiles: u32| {
            let y = gpu.storage(name, p.output_len());
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: None,
                    module: &module,
                    entry_point: Some(name),
                    compilation_options: Default::default(),
                    cache: None,
                });
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    entry(0, u.as_entire_binding()),
                    entry(3, b.as_entire_binding()),
                    entry(wbind, weights),
                    entry(ibind, input),
                    entry(14, y.as_entire_binding()),
                    entry(18, nopool.as_entire_binding()),
                    entry(19, nopool.as_entire_binding()),
                ],
            });
            let d = Dispatch {
                entry: name,
                layer: String::new(),
                pipeline,
                bind_group,
                workgroups: grid(tiles),
                flops: p.flops_forward(),
                bytes: 0,
                uniform: u.clone(),
                textures: Vec::new(),
            };
            runs.push((label, d, y));
        };
        let tex = |v| wgpu::BindingResource::TextureView(v);
        custom(
            "storage weights",
            "fwd_buf",
            ws.as_entire_binding(),
            10,
            xs.as_entire_binding(),
            12,
            tiles,
        );
        custom(
            "+ texture inputs",
            "fwd_tex",
            tex(&wt),
            30,
            tex(&xt),
            31,
            tiles,
        );
        if let Some(wb) = &wb {
            custom(
                "uniform weights",
                "fwd_ubo",
                wb.as_entire_binding(),
                32,
                xs.as_entire_binding(),
                12,
                tiles,
            );
        }
        custom(
            "2 tiles, texture weights",
            "fwd_2t",
            tex(&wt),
            30,
            xs.as_entire_binding(),
            12,
            tiles2,
        );
        custom(
            "2 tiles, storage weights",
            "fwd_2b",
            ws.as_entire_binding(),
            10,
            xs.as_entire_binding(),
            12,
            tiles2,
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
        // Alternate the variants so that all see the same machine load.
        let mut times = vec![Vec::new(); runs.len()];
        for _ in 0..3 {
            for (k, (_, d, _)) in runs.iter().enumerate() {
                times[k].push(time(d));
            }
        }
        let read = |y: &wgpu::Buffer| gpu.read_f32(y).expect("read");
        let reference = read(&runs[0].2);
        let gf = |ms: f64| p.flops_forward() as f64 / ms / 1e6;
        let today = median(times[0].clone());
        for (k, (label, _, y)) in runs.iter().enumerate() {
            let ms = median(times[k].clone());
            println!(
                "{name:<8} {label:<26} {ms:7.2} ms {:6.2} GFLOP/s  today {:.2}x as fast  bitwise equal: {}",
                gf(ms),
                ms / today,
                read(y) == reference
            );
        }
    }
}
