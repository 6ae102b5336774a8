//! `wgpu-cnn bench` (the training step's time, throughput, memory, startup) and
//! `wgpu-cnn profile` (per-kernel GPU time).

use std::path::PathBuf;

use super::DeviceArgs;

/// `wgpu-cnn bench`.
pub fn bench(
    model: String,
    batch_size: u32,
    warmup: usize,
    steps: usize,
    device: DeviceArgs,
    launched: std::time::Instant,
) -> anyhow::Result<()> {
    if batch_size == 0 || steps == 0 {
        anyhow::bail!("--batch-size and --steps must be at least 1");
    }
    let (desc, _) = wgpu_cnn::graph::zoo::resolve(&model)?;
    let r = wgpu_cnn::bench::bench(
        &device.options(),
        &desc,
        batch_size,
        warmup,
        steps,
        launched,
    )?;
    println!("model:                {model}");
    println!("adapter:              {}", r.adapter);
    println!("batch size:           {}", r.batch_size);
    println!(
        "startup:              {:.2} s (launch to end of first training step)",
        r.startup_s
    );
    println!(
        "train step (median):  {:.1} ms over {} steps (min {:.1} ms)",
        r.step_ms_median, r.steps, r.step_ms_min
    );
    println!(
        "  without augmentation: {:.1} ms (forward, backward, optimizer: what the peers time)",
        r.model_step_ms_median
    );
    println!(
        "CPU time per step:    {:.3} ms (write inputs, record, submit)",
        r.cpu_ms_per_step
    );
    println!(
        "{:>3} steps per submit: {:.1} ms per step, CPU {:.3} ms per step",
        r.steps, r.batched_step_ms, r.batched_cpu_ms_per_step
    );
    println!(
        "train throughput:     {:.0} images/s, {:.2} GFLOP/s ({:.4} GFLOP/step)",
        r.images_per_second, r.gflops_per_second, r.gflop_per_step
    );
    println!(
        "eval throughput:      {:.0} images/s",
        r.eval_images_per_second
    );
    println!(
        "GPU memory:           {:.1} MiB",
        r.gpu_bytes as f64 / (1 << 20) as f64
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

/// `wgpu-cnn profile`.
pub fn profile(
    model: String,
    batch_size: u32,
    steps: usize,
    trace: Option<PathBuf>,
    device: DeviceArgs,
) -> anyhow::Result<()> {
    if batch_size == 0 || steps == 0 {
        anyhow::bail!("--batch-size and --steps must be at least 1");
    }
    let (desc, _) = wgpu_cnn::graph::zoo::resolve(&model)?;
    let (spans, clock, adapter) =
        wgpu_cnn::profile::profile_training(&device.options(), &desc, batch_size, steps)?;
    println!("adapter: {adapter}, batch size {batch_size}");
    print!("{}", wgpu_cnn::profile::table(&spans, clock));
    println!("(profiled times include per-pass overhead; use `wgpu-cnn bench` for step time)");
    if let Some(path) = trace {
        wgpu_cnn::profile::write_trace(&spans, &path)?;
        println!("trace written to {}", path.display());
    }
    Ok(())
}
