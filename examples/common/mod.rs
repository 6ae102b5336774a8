//! What the generated-kernel experiments share (`examples/unroll_loops.rs`, `examples/rowreuse.rs`):
//! a convolution with deterministic data and its CPU reference, and a generated forward kernel
//! (entry point `main`, bindings 0 params, 3 bias, 10 weights, 12 input vec4s, 14 output
//! vec4s) bound to it and checked against the reference.
use std::time::Instant;
use wgpu_cnn::gpu::{Dispatch, Gpu};
use wgpu_cnn::ops::Conv2dParams;

pub struct Problem {
    pub p: Conv2dParams,
    want: Vec<f32>,
    x: wgpu::Buffer,
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    u: wgpu::Buffer,
}

/// A kernel of the experiment: its dispatch, its largest error against the CPU reference
/// (relative to 1 + |reference|), and how long its first run took (compilation included).
pub struct Kernel {
    pub d: Dispatch,
    pub err: f32,
    pub first_run_s: f64,
}

impl Problem {
    pub fn new(gpu: &Gpu, p: Conv2dParams) -> Self {
        let data = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 * 1e-3 - 0.5)
                .collect()
        };
        let (x, w, b) = (
            data(p.input_len(), 1),
            data(p.weight_len(), 2),
            data(p.o as usize, 3),
        );
        let mut want = vec![0.0f32; p.output_len()];
        wgpu_cnn::ops::conv2d::cpu::conv2d_forward(&p, &x, &w, &b, &mut want);
        Problem {
            p,
            want,
            x: gpu.storage_from("x", &x),
            w: gpu.storage_from("w", &w),
            b: gpu.storage_from("b", &b),
            u: gpu.uniform("p", &p),
        }
    }

    /// `kernel` (WGSL after conv2d_common.wgsl) over `tiles` subgroups of 8, 8 per workgroup.
    pub fn kernel(&self, gpu: &Gpu, label: &'static str, kernel: &str, tiles: u32) -> Kernel {
        let src = include_str!("../../src/ops/conv2d/conv2d_common.wgsl").to_string() + kernel;
        let t0 = Instant::now();
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let y = gpu.storage("y", self.p.output_len());
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                entry(0, self.u.as_entire_binding()),
                entry(3, self.b.as_entire_binding()),
                entry(10, self.w.as_entire_binding()),
                entry(12, self.x.as_entire_binding()),
                entry(14, y.as_entire_binding()),
            ],
        });
        let groups = tiles.div_ceil(8);
        let gx = groups.min(65535);
        let d = Dispatch {
            entry: "main",
            layer: String::new(),
            pipeline,
            bind_group,
            workgroups: [gx, groups.div_ceil(gx), 1],
            flops: self.p.flops_forward(),
            bytes: 0,
            uniform: self.u.clone(),
            textures: Vec::new(),
        };
        gpu.run(&[&d]).expect("run");
        let first_run_s = t0.elapsed().as_secs_f64();
        let err = gpu
            .read_f32(&y)
            .expect("read")
            .iter()
            .zip(&self.want)
            .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
            .fold(0.0f32, f32::max);
        Kernel {
            d,
            err,
            first_run_s,
        }
    }

    /// One line: median of `times` (ms), GFLOP/s, error and first run.
    pub fn report(&self, name: &str, label: &str, k: &Kernel, mut times: Vec<f64>) {
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        println!(
            "{name:<8} {label:<6} {ms:8.2} ms {:7.2} GFLOP/s  err {:.1e}  first run {:.1} s",
            self.p.flops_forward() as f64 / ms / 1e6,
            k.err,
            k.first_run_s
        );
    }
}

/// Milliseconds of one run of `d`.
pub fn time_ms(gpu: &Gpu, d: &Dispatch) -> f64 {
    let t = Instant::now();
    gpu.run(&[d]).expect("run");
    t.elapsed().as_secs_f64() * 1e3
}
