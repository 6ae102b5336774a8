//! `wgpu-cnn bench`: the training step at a fixed batch on synthetic CIFAR-shaped data
//! (the same dispatches as `train`: augmentation + forward + backward + Adam), warmed up, each
//! step synced, median reported; eval throughput; GPU memory; startup time.

use std::time::Instant;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::data::{self, GpuDataset, Split};
use crate::gpu::{Gpu, GpuOptions};
use crate::train::Runner;

/// Random images shaped as `desc`'s input, with labels of its classes.
pub fn synthetic_split(desc: &crate::graph::Description, n: usize, seed: u64) -> Split {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let shape = data::ImageShape::of_input(desc.input);
    Split {
        shape,
        images: (0..n * shape.bytes()).map(|_| rng.random::<u8>()).collect(),
        labels: (0..n).map(|_| rng.random_range(0..desc.classes)).collect(),
    }
}

/// The seed's augmentation (flip + RandomResizedCrop) of random records of `split`, and the
/// normalisation used with synthetic data.
pub fn synthetic_crops(rng: &mut impl Rng, split: &Split, batch: u32) -> Vec<[u32; 8]> {
    let aug = data::augment::AugmentConfig::default()
        .parsed()
        .expect("the default augmentation parses");
    (0..batch)
        .map(|_| {
            let record = rng.random_range(0..split.len() as u32);
            aug.draw(rng, record, split.shape).words()
        })
        .collect()
}

/// Normalisation for synthetic data: CIFAR-10's where it has 3 channels.
pub fn synthetic_norm(split: &Split) -> data::Normalization {
    if split.shape.c == 3 {
        data::Normalization::cifar10()
    } else {
        data::Normalization::none(split.shape.c)
    }
}

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub adapter: String,
    pub batch_size: u32,
    pub startup_s: f64,
    pub step_ms_median: f64,
    pub step_ms_min: f64,
    /// The step without its augmentation prologue (forward, backward, optimizer), median.
    pub model_step_ms_median: f64,
    /// CPU time of one synced step: writing its inputs, recording and submitting it.
    pub cpu_ms_per_step: f64,
    /// `steps` steps in one submit (train's `--steps-per-submit`): wall time per step.
    pub batched_step_ms: f64,
    /// … and the CPU time per step of uploading their inputs, recording and submitting.
    pub batched_cpu_ms_per_step: f64,
    pub steps: usize,
    pub images_per_second: f64,
    pub gflops_per_second: f64,
    pub gflop_per_step: f64,
    pub eval_images_per_second: f64,
    pub gpu_bytes: u64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs the benchmark; `launched` is when the process started (for `startup_s`).
pub fn bench(
    device: &GpuOptions,
    desc: &crate::graph::Description,
    batch: u32,
    warmup: usize,
    steps: usize,
    launched: Instant,
) -> Result<BenchResult> {
    let gpu = Gpu::new(device)?;
    let split = synthetic_split(desc, 1024.max(batch as usize), 7);
    let layout = crate::plan::ParamLayout::of(desc)?;
    let mut runner = Runner::new(&gpu, desc, batch, &layout.init(0), 1e-4)?;
    let ds = GpuDataset::upload(&gpu, &split, "synthetic", None)?;
    let aug = runner.augment_from(&gpu, &ds, &synthetic_norm(&split));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    // One synced step: (wall time, CPU time to write its inputs, record and submit it).
    let step =
        |gpu: &Gpu, runner: &mut Runner, rng: &mut rand::rngs::StdRng| -> Result<(f64, f64)> {
            let crops = synthetic_crops(rng, &split, batch);
            let t = Instant::now();
            runner.write_crops(gpu, &crops);
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            runner.model.encode_train_step(gpu, &mut enc, &[&aug]);
            gpu.queue.submit([enc.finish()]);
            let cpu = t.elapsed().as_secs_f64();
            gpu.wait()?;
            Ok((t.elapsed().as_secs_f64(), cpu))
        };
    // The same step without its augmentation prologue (the batch stays what the last
    // augmentation wrote): forward, backward and the optimizer, what a peer's jitted step on
    // ready-made batches times.
    let model_step = |gpu: &Gpu, runner: &mut Runner| -> Result<f64> {
        let t = Instant::now();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        runner.model.encode_train_step(gpu, &mut enc, &[]);
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        Ok(t.elapsed().as_secs_f64())
    };
    step(&gpu, &mut runner, &mut rng)?;
    let startup_s = launched.elapsed().as_secs_f64();
    for _ in 0..warmup {
        step(&gpu, &mut runner, &mut rng)?;
        model_step(&gpu, &mut runner)?;
    }
    // Alternated, so that both see the same machine.
    let mut timed: Vec<(f64, f64)> = Vec::with_capacity(steps);
    let mut model_times: Vec<f64> = Vec::with_capacity(steps);
    for _ in 0..steps {
        timed.push(step(&gpu, &mut runner, &mut rng)?);
        model_times.push(model_step(&gpu, &mut runner)?);
    }
    let mut times: Vec<f64> = timed.iter().map(|t| t.0).collect();
    let mut cpu_times: Vec<f64> = timed.iter().map(|t| t.1).collect();
    let step_s = median(&mut times);
    let step_min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let cpu_s = median(&mut cpu_times);
    let model_step_s = median(&mut model_times);

    // The same number of steps recorded into one submit, as `train --steps-per-submit`:
    // crops and per-step uniforms uploaded once, copied into place by the GPU.
    let crops_all = gpu.storage("crops.epoch", steps * 8 * batch as usize);
    let table = gpu.storage(
        "steps.table",
        steps * runner.model.step_record_bytes() as usize / 4,
    );
    let words: Vec<[u32; 8]> = (0..steps)
        .flat_map(|_| synthetic_crops(&mut rng, &split, batch))
        .collect();
    let t = Instant::now();
    gpu.queue
        .write_buffer(&crops_all, 0, bytemuck::cast_slice(&words));
    gpu.queue
        .write_buffer(&table, 0, &runner.model.step_records(steps));
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    for j in 0..steps {
        runner.encode_train_step_from(&mut enc, &aug, &crops_all, &table, j);
    }
    gpu.queue.submit([enc.finish()]);
    let batched_cpu_s = t.elapsed().as_secs_f64() / steps as f64;
    gpu.wait()?;
    let batched_s = t.elapsed().as_secs_f64() / steps as f64;

    // Eval: forward + loss on unaugmented images, same batch.
    let idx: Vec<u32> = (0..split.len() as u32).collect();
    let feed = crate::train::Feed {
        aug: &aug,
        data: &ds,
        host: &split,
    };
    runner.evaluate(&gpu, feed, &idx[..batch as usize], None)?;
    let mut evals: Vec<f64> = (0..steps.max(3))
        .map(|_| {
            let t = Instant::now();
            runner
                .evaluate(&gpu, feed, &idx, None)
                .map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    let eval_s = median(&mut evals);
    let flops = runner.model.plan.train_flops() as f64;
    Ok(BenchResult {
        adapter: gpu.describe(),
        batch_size: batch,
        startup_s,
        step_ms_median: step_s * 1e3,
        step_ms_min: step_min * 1e3,
        model_step_ms_median: model_step_s * 1e3,
        cpu_ms_per_step: cpu_s * 1e3,
        batched_step_ms: batched_s * 1e3,
        batched_cpu_ms_per_step: batched_cpu_s * 1e3,
        steps,
        images_per_second: batch as f64 / step_s,
        gflops_per_second: flops / step_s / 1e9,
        gflop_per_step: flops / 1e9,
        eval_images_per_second: idx.len() as f64 / eval_s,
        gpu_bytes: runner.gpu_bytes() + ds.bytes(),
    })
}
