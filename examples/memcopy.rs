//! How fast lavapipe moves vec4s per lane through each path: storage-buffer loads and stores
//! against texture loads (`textureLoad` of an rgba32float texture) and storage-texture stores
//! (`textureStore`), in a kernel that copies 1M vec4s (16 MiB) with one invocation per vec4.
//! The Winograd transforms (`winograd.wgsl`) are such copies with arithmetic in between.
//! `cargo run --release --example memcopy`.
use std::time::Instant;
use wgpu_cnn::gpu::{Gpu, GpuOptions};

const SRC: &str = r#"
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> b: array<vec4<f32>>;
@group(0) @binding(2) var ta: texture_2d<f32>;
@group(0) @binding(3) var tb: texture_storage_2d<rgba32float, write>;
const N: u32 = 1048576u;
fn at(i: u32) -> vec2<u32> { return vec2<u32>(i % 4096u, i / 4096u); }
fn id(g: vec3<u32>, n: vec3<u32>) -> u32 { return g.x + g.y * n.x * 64u; }
@compute @workgroup_size(64)
fn buf_buf(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id(g, n); if (i >= N) { return; } b[i] = a[i] * 2.0;
}
@compute @workgroup_size(64)
fn tex_buf(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id(g, n); if (i >= N) { return; } b[i] = textureLoad(ta, at(i), 0) * 2.0;
}
@compute @workgroup_size(64)
fn buf_tex(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id(g, n); if (i >= N) { return; } textureStore(tb, at(i), a[i] * 2.0);
}
@compute @workgroup_size(64)
fn tex_tex(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let i = id(g, n); if (i >= N) { return; } textureStore(tb, at(i), textureLoad(ta, at(i), 0) * 2.0);
}
"#;

fn main() {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.info.name);
    let n = 1usize << 20;
    let a = gpu.storage_from("a", &vec![1.0f32; 4 * n]);
    let b = gpu.storage("b", 4 * n);
    let tex = |usage| {
        gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size: wgpu::Extent3d {
                width: 4096,
                height: 256,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage,
            view_formats: &[],
        })
    };
    let ta = tex(wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST);
    let tb = tex(wgpu::TextureUsages::STORAGE_BINDING);
    let (va, vb) = (
        ta.create_view(&Default::default()),
        tb.create_view(&Default::default()),
    );
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(SRC.into()),
        });
    for entry in [
        "buf_buf", "tex_buf", "buf_tex", "tex_tex", "buf_buf", "tex_buf", "buf_tex", "tex_tex",
    ] {
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        let layout = pipeline.get_bind_group_layout(0);
        let mut entries = Vec::new();
        if entry.starts_with("buf") {
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: a.as_entire_binding(),
            });
        } else {
            entries.push(wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::TextureView(&va),
            });
        }
        if entry.ends_with("buf") {
            entries.push(wgpu::BindGroupEntry {
                binding: 1,
                resource: b.as_entire_binding(),
            });
        } else {
            entries.push(wgpu::BindGroupEntry {
                binding: 3,
                resource: wgpu::BindingResource::TextureView(&vb),
            });
        }
        let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        let mut times = Vec::new();
        for _ in 0..7 {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(4096, 4, 1);
            }
            let t = Instant::now();
            gpu.queue.submit([enc.finish()]);
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{entry}: {:.2} ms for 1M vec4 ({:.1} GB/s moved)",
            times[3],
            32.0 * n as f64 / times[3] / 1e6
        );
    }
    // A buffer → texture copy of the same 16 MiB (what a texture mirror's refresh records).
    let mut times = Vec::new();
    for _ in 0..7 {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: &a,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4096 * 16),
                    rows_per_image: None,
                },
            },
            wgpu::TexelCopyTextureInfo {
                texture: &ta,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::Extent3d {
                width: 4096,
                height: 256,
                depth_or_array_layers: 1,
            },
        );
        let t = Instant::now();
        gpu.queue.submit([enc.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!("buffer -> texture copy: {:.2} ms for 16 MiB", times[3]);
}
