//! First-dispatch time of each dispatch of the Winograd forward at a small shape: lavapipe
//! compiles a pipeline at its first dispatch, so this is the compile time a fresh machine pays
//! (why the fused `winograd_gemm_out_sg` keeps one copy of its epilogue, not one per tile:
//! docs/notes/winograd.md).
//! `MESA_SHADER_CACHE_DISABLE=true cargo run --release --example first_dispatch`.
use std::time::Instant;
use wgpu_cnn::gpu::{Gpu, GpuOptions};
use wgpu_cnn::ops::conv2d::winograd::gpu as winograd;
use wgpu_cnn::ops::{Conv2dParams, Padding};

fn main() {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    for (c, o) in [(32, 32), (16, 16)] {
        let p = Conv2dParams::new(1, 8, 8, c, o, 3, Padding::Same).without_bias();
        let x = gpu.storage("x", p.input_len());
        let w = gpu.storage("w", p.weight_len());
        let y = gpu.storage("y", p.output_len());
        let (fl, _, _) = wgpu_cnn::ops::conv2d::winograd::scratch_lens(&p);
        let s = fl.map(|n| gpu.storage("s", n));
        let ds = winograd::forward(
            &gpu,
            &p,
            (&x).into(),
            (&w).into(),
            None,
            (&y).into(),
            None,
            winograd::Scratch::of(&s),
        );
        for d in &ds {
            let t = Instant::now();
            gpu.run(&[d]).unwrap();
            println!(
                "{c} -> {o}: {}: {:.1} s",
                d.entry,
                t.elapsed().as_secs_f64()
            );
        }
    }
}
