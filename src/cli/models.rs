//! `wgpu-cnn models` (the presets, one as TOML, a plan on this adapter) and `wgpu-cnn recipes`.

use std::path::PathBuf;

use wgpu_cnn::gpu::Gpu;

use super::DeviceArgs;

/// `wgpu-cnn models [NAME|FILE] [--toml] [--plan]`.
pub fn models(
    model: Option<&str>,
    toml: bool,
    plan: bool,
    (batch, inference, rule): (u32, bool, wgpu_cnn::plan::UpdateRule),
    data: Option<(PathBuf, Option<wgpu_cnn::data::Kind>)>,
    device: &DeviceArgs,
) -> anyhow::Result<()> {
    use wgpu_cnn::graph::zoo;
    use wgpu_cnn::plan::{Mode, ParamLayout, Plan};
    let Some(model) = model else {
        if toml || plan {
            anyhow::bail!("--toml and --plan need a model: a preset name or a file");
        }
        println!(
            "{:<14} {:>10} {:>14}  layers",
            "preset", "params", "MFLOP/image"
        );
        for name in zoo::NAMES {
            let d = zoo::preset(name).expect("presets are valid");
            let params = ParamLayout::of(&d)?.count();
            let flops =
                Plan::new(&d, 1, &wgpu_cnn::plan::Caps::gpu32(), Mode::Inference)?.forward_flops();
            println!(
                "{name:<14} {params:>10} {:>14.2}  {}",
                flops as f64 / 1e6,
                wrap(&d.summary(), 42, 100)
            );
        }
        println!(
            "(`wgpu-cnn models NAME --toml` prints one as TOML; `--plan` shows how it runs here)"
        );
        return Ok(());
    };
    let (desc, text) = zoo::resolve(model)?;
    if toml {
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        if !plan {
            return Ok(());
        }
    }
    if plan {
        if batch == 0 {
            anyhow::bail!("--batch-size must be at least 1");
        }
        let gpu = Gpu::new(&device.options())?;
        println!("adapter: {}", gpu.describe());
        let caps = gpu.caps();
        let mode = if inference {
            Mode::Inference
        } else {
            Mode::Train
        };
        let mut p = Plan::new(&desc, batch, &caps, mode)?;
        p.set_update_rule(rule);
        print!("{}", p.render(&|s| wgpu_cnn::plan::kernel_of(&caps, &p, s)));
        if let Some((dir, kind)) = data {
            let opts = wgpu_cnn::data::DataOptions {
                kind,
                shape: wgpu_cnn::data::ImageShape::of_input(desc.input),
                ..Default::default()
            };
            let ds = wgpu_cnn::data::load(&dir, &opts)?;
            let max = wgpu_cnn::data::GpuDataset::binding_bytes(&gpu);
            let mut total = 0u64;
            let submit = wgpu_cnn::train::TrainConfig::default_steps_per_submit() as usize;
            for (what, split, steps) in [("train", &ds.train, submit), ("test", &ds.test, 1)] {
                let streaming = wgpu_cnn::data::Streaming::when_needed(batch as usize, steps);
                let layout = wgpu_cnn::data::GpuDataset::layout(
                    what,
                    split.len(),
                    split.shape,
                    max,
                    Some(streaming),
                )?;
                let mib = |b: u64| b as f64 / 1048576.0;
                match layout {
                    wgpu_cnn::data::Layout::Resident {
                        per_binding,
                        bindings,
                    } => {
                        let bytes = split.images.len() as u64 + 4 * split.len() as u64;
                        total += bytes;
                        println!(
                            "data {what}: {} images of {}: {:.1} MiB in {bindings} of {} storage bindings ({per_binding} images, at most {} MiB, each)",
                            split.len(),
                            split.shape.describe(),
                            mib(bytes),
                            wgpu_cnn::data::IMAGE_BINDINGS,
                            max >> 20
                        );
                    }
                    wgpu_cnn::data::Layout::Streamed { window } => {
                        let bytes = (window * (split.shape.bytes() + 4)) as u64;
                        total += bytes;
                        let per_submit = match steps {
                            1 => "one batch per submit".to_string(),
                            n => format!("up to {n} training steps per submit, the default"),
                        };
                        println!(
                            "data {what}: {} images of {}: {:.1} MiB, more than {} storage bindings of {} MiB hold: streamed through a window of {window} images ({:.1} MiB; {per_submit}) refilled before each submit",
                            split.len(),
                            split.shape.describe(),
                            mib(split.images.len() as u64),
                            wgpu_cnn::data::IMAGE_BINDINGS,
                            max >> 20,
                            mib(bytes)
                        );
                    }
                }
            }
            println!(
                "data set {}: {:.1} MiB on the GPU besides the plan",
                ds.name,
                total as f64 / 1048576.0
            );
        }
        return Ok(());
    }
    let params = ParamLayout::of(&desc)?.count();
    println!("{model}: {params} parameters; {}", desc.summary());
    Ok(())
}

/// `wgpu-cnn recipes [NAME]`.
pub fn recipes(name: Option<String>) -> anyhow::Result<()> {
    match name {
        None => {
            for (n, text) in wgpu_cnn::recipe::PRESETS {
                println!("{n:<18} {}", wgpu_cnn::recipe::summary(text));
            }
            println!("\nprint one with `wgpu-cnn recipes NAME`, train with `wgpu-cnn train --recipe NAME`");
        }
        Some(n) => {
            let Some((_, text)) = wgpu_cnn::recipe::PRESETS.iter().find(|(p, _)| *p == n) else {
                anyhow::bail!(
                    "unknown recipe `{n}` (presets: {})",
                    wgpu_cnn::recipe::PRESETS.map(|p| p.0).join(", ")
                );
            };
            print!("{text}");
        }
    }
    Ok(())
}

/// `text` broken at ` - ` separators into lines of at most `width` characters (a single part
/// longer than that stays whole), the lines after the first indented by `indent`.
fn wrap(text: &str, indent: usize, width: usize) -> String {
    let room = width.saturating_sub(indent).max(20);
    let mut lines: Vec<String> = vec![String::new()];
    for part in text.split(" - ") {
        let line = lines.last_mut().expect("one line at least");
        if line.is_empty() {
            line.push_str(part);
        } else if line.chars().count() + 3 + part.chars().count() <= room {
            line.push_str(" - ");
            line.push_str(part);
        } else {
            line.push_str(" -");
            lines.push(part.to_string());
        }
    }
    lines.join(&format!("\n{}", " ".repeat(indent)))
}
