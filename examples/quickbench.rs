use std::time::Instant;
use wgpu_cnn::gpu::{Gpu, GpuOptions};
use wgpu_cnn::graph::zoo;
use wgpu_cnn::model::GpuModel;
fn main() {
    let gpu = Gpu::new(&GpuOptions {
        bounds_checks: std::env::var("CHECKS").is_ok(),
        ..Default::default()
    })
    .unwrap();
    let b = 128;
    let desc = zoo::preset(&std::env::var("MODEL").unwrap_or_else(|_| zoo::DEFAULT.into()))
        .expect("MODEL names a preset");
    let init = wgpu_cnn::plan::ParamLayout::of(&desc).unwrap().init(0);
    let mut m = GpuModel::new(&gpu, &desc, b, &init, 1e-4).unwrap();
    let x = vec![0.5f32; b as usize * desc.input.iter().product::<u32>() as usize];
    let l = vec![1u32; b as usize];
    m.upload_batch(&gpu, &x, &l);
    m.train_step(&gpu);
    gpu.wait().unwrap();
    // per-dispatch timing
    let sched = m.train_dispatches();
    for d in sched {
        let t = Instant::now();
        for _ in 0..2 {
            gpu.run(&[d]).unwrap();
        }
        let ms = t.elapsed().as_secs_f64() * 500.0;
        println!(
            "{:<32} {:<8} {:8.2} ms {:7.2} GFLOP/s",
            d.entry,
            d.layer,
            ms,
            d.flops as f64 / ms / 1e6
        );
    }
    let t = Instant::now();
    for _ in 0..3 {
        m.train_step(&gpu);
    }
    gpu.wait().unwrap();
    println!("step {:.3} s", t.elapsed().as_secs_f64() / 3.0);
}
