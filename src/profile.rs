//! `wgpu-cnn profile`: per-kernel GPU time of training steps from timestamp queries around
//! every dispatch (each dispatch in its own compute pass), with FLOP and byte counts from the
//! launchers. Falls back to wall time per dispatch (submit + wait each) when the adapter has
//! no timestamp queries, and says so. Profiled time includes the per-pass overhead the
//! profiler adds; it is never reported as benchmark time (that is `wgpu-cnn bench`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::gpu::{Dispatch, Gpu};

/// One dispatch's measured interval (ns from the first timestamp of the run).
#[derive(Clone, Debug)]
pub struct Span {
    pub step: usize,
    pub entry: &'static str,
    pub layer: String,
    pub start_ns: f64,
    pub dur_ns: f64,
    pub flops: u64,
    pub bytes: u64,
}

/// Whether times came from GPU timestamps or from the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Timestamps,
    WallTime,
}

/// Times every dispatch of `steps` repetitions of `schedule`; `before_step` runs before each
/// repetition (e.g. to advance Adam's step).
pub fn profile(
    gpu: &Gpu,
    schedule: &[&Dispatch],
    steps: usize,
    mut before_step: impl FnMut(&Gpu),
) -> Result<(Vec<Span>, Clock)> {
    let mut spans = Vec::new();
    if !gpu
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        let t0 = Instant::now();
        for step in 0..steps {
            before_step(gpu);
            for d in schedule {
                let t = Instant::now();
                gpu.run(&[d])?;
                spans.push(span(
                    step,
                    d,
                    (t - t0).as_nanos() as f64,
                    t.elapsed().as_nanos() as f64,
                ));
            }
        }
        return Ok((spans, Clock::WallTime));
    }
    let count = 2 * schedule.len() as u32;
    let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("profile"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile.resolve"),
        size: 8 * count as u64,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let period = gpu.queue.get_timestamp_period() as f64;
    let mut origin: Option<u64> = None;
    for step in 0..steps {
        before_step(gpu);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (i, d) in schedule.iter().enumerate() {
            // Outside the timed pass: the texture copies are not the kernel's time.
            for t in &d.textures {
                t.record_refresh(&mut enc);
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(d.entry),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            d.record(&mut pass);
        }
        enc.resolve_query_set(&queries, 0..count, &resolve, 0);
        gpu.queue.submit([enc.finish()]);
        let ticks: Vec<u64> = gpu
            .read::<u32>((&resolve).into())?
            .chunks_exact(2)
            .map(|c| c[0] as u64 | (c[1] as u64) << 32)
            .collect();
        let base = *origin.get_or_insert(ticks[0]);
        for (i, d) in schedule.iter().enumerate() {
            let (a, b) = (ticks[2 * i], ticks[2 * i + 1]);
            let start = a.saturating_sub(base) as f64 * period;
            spans.push(span(step, d, start, b.saturating_sub(a) as f64 * period));
        }
    }
    Ok((spans, Clock::Timestamps))
}

fn span(step: usize, d: &Dispatch, start_ns: f64, dur_ns: f64) -> Span {
    Span {
        step,
        entry: d.entry,
        layer: d.layer.clone(),
        start_ns,
        dur_ns,
        flops: d.flops,
        bytes: d.bytes,
    }
}

/// Per-kernel table: kernel, layer, dispatches, total ms, share, GFLOP/s, GB/s.
pub fn table(spans: &[Span], clock: Clock) -> String {
    let mut rows: BTreeMap<(String, &'static str), (usize, f64, u64, u64)> = BTreeMap::new();
    for s in spans {
        let r = rows.entry((s.layer.clone(), s.entry)).or_default();
        r.0 += 1;
        r.1 += s.dur_ns;
        r.2 += s.flops;
        r.3 += s.bytes;
    }
    let total: f64 = rows.values().map(|r| r.1).sum();
    let steps = spans.iter().map(|s| s.step).max().map_or(0, |m| m + 1);
    let mut sorted: Vec<_> = rows.into_iter().collect();
    sorted.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let mut out = format!(
        "{:<32} {:<8} {:>6} {:>10} {:>7} {:>9} {:>8}\n",
        "kernel", "layer", "calls", "total ms", "share", "GFLOP/s", "GB/s"
    );
    for ((layer, entry), (n, ns, flops, bytes)) in &sorted {
        out += &format!(
            "{:<32} {:<8} {:>6} {:>10.2} {:>6.1}% {:>9.2} {:>8.2}\n",
            entry,
            layer,
            n,
            ns / 1e6,
            100.0 * ns / total.max(1.0),
            *flops as f64 / ns.max(1.0),
            *bytes as f64 / ns.max(1.0),
        );
    }
    out += &format!(
        "{} steps, {:.2} ms per step summed over kernels ({})\n",
        steps,
        total / 1e6 / steps.max(1) as f64,
        match clock {
            Clock::Timestamps => "GPU timestamp queries, one compute pass per dispatch",
            Clock::WallTime =>
                "no timestamp queries on this adapter: wall time of each dispatch submitted alone",
        }
    );
    out
}

/// Chrome / Perfetto trace (`traceEvents`, complete events in µs), one row per step.
pub fn write_trace(spans: &[Span], path: &Path) -> Result<()> {
    let events: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.entry,
                "cat": s.layer,
                "ph": "X",
                "ts": s.start_ns / 1e3,
                "dur": s.dur_ns / 1e3,
                "pid": 0,
                "tid": 0,
                "args": { "layer": s.layer, "step": s.step, "flops": s.flops, "bytes": s.bytes },
            })
        })
        .collect();
    let doc = serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" });
    crate::io::write_atomic(path, serde_json::to_string(&doc)?.as_bytes())
}

/// Profiles `steps` training steps at batch `batch` on synthetic CIFAR-shaped data; returns
/// the spans, the clock used and the adapter's description.
pub fn profile_training(
    device: &crate::gpu::GpuOptions,
    desc: &crate::graph::Description,
    batch: u32,
    steps: usize,
) -> Result<(Vec<Span>, Clock, String)> {
    use rand::SeedableRng;
    let gpu = Gpu::new(device)?;
    let split = crate::bench::synthetic_split(desc, 1024.max(batch as usize), 7);
    let layout = crate::plan::ParamLayout::of(desc)?;
    let mut runner = crate::train::Runner::new(&gpu, desc, batch, &layout.init(0), 1e-4)?;
    let ds = crate::data::GpuDataset::upload(&gpu, &split, "synthetic", None)?;
    let aug = runner.augment_from(&gpu, &ds, &crate::bench::synthetic_norm(&split));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut crops =
        move || -> Vec<[u32; 8]> { crate::bench::synthetic_crops(&mut rng, &split, batch) };
    // Warm-up step: pipelines compiled, caches filled.
    runner.write_crops(&gpu, &crops());
    runner.model.train_step(&gpu);
    gpu.wait()?;
    // Adam's step count stays fixed while profiling: it changes two scalars, not the work.
    let schedule: Vec<&Dispatch> = std::iter::once(&aug)
        .chain(runner.model.train_dispatches())
        .collect();
    let (spans, clock) = profile(&gpu, &schedule, steps, |gpu| {
        runner.write_crops(gpu, &crops())
    })?;
    Ok((spans, clock, gpu.describe()))
}
