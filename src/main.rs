use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wgpu_cnn::gpu::{context, Backend, Gpu, GpuOptions};
use wgpu_cnn::settings::Settings;
use wgpu_cnn::train::{self, TrainConfig};

/// Train convolutional networks on any GPU through wgpu, with hand-written WGSL kernels.
#[derive(Parser)]
#[command(name = "wgpu-cnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Debug)]
struct DeviceArgs {
    /// Graphics API to use.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Adapter to use: index from `wgpu-cnn devices`, or a name substring.
    #[arg(long)]
    adapter: Option<String>,
    /// Keep wgpu's runtime bounds checks in the shaders (slower; for debugging).
    #[arg(long)]
    bounds_checks: bool,
}

impl DeviceArgs {
    fn options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend,
            adapter: self.adapter.clone(),
            bounds_checks: self.bounds_checks,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, type and key limits.
    Devices {
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
    },
    /// Open the chosen adapter and print what was picked.
    Info {
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Train a model (defaults: the Flax tutorial's CNN and recipe on CIFAR-10).
    Train(Box<TrainArgs>),
    /// List the preset models, print one as TOML, or print the plan of a model on this adapter.
    Models {
        /// A preset name or a model file (TOML); without it, list the presets.
        model: Option<String>,
        /// Print the model's description (a starting point for one's own).
        #[arg(long)]
        toml: bool,
        /// Print the plan: nodes, output shapes, kernels on this adapter, fusions, buffers, memory.
        #[arg(long)]
        plan: bool,
        /// Batch size of the plan.
        #[arg(long, default_value_t = 128)]
        batch_size: u32,
        /// Plan for inference (eval and predict) instead of training.
        #[arg(long)]
        inference: bool,
        /// With --plan: the optimizer of the run (its update kernel): adam, adamw or sgd.
        #[arg(long, default_value = "adam")]
        optimizer: String,
        /// With --plan: also the GPU memory of this data set (read at the model's input size).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The kind of data set at --data [default: detected].
        #[arg(long)]
        dataset: Option<String>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Evaluate a checkpoint on the test split of a data set (normalised as it was trained).
    Eval {
        /// Checkpoint (.safetensors) to evaluate.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The data set's folder [default: the one the checkpoint's run read].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The kind of data set (cifar10, cifar100, mnist, folder) [default: detected].
        #[arg(long)]
        dataset: Option<String>,
        /// Test-time augmentation: flip also reports the mean softmax of each image and its
        /// mirror; none [default: none].
        #[arg(long)]
        tta: Option<String>,
        /// Where to write test.json and confusion.png.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 500)]
        batch_size: u32,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Classify images (PNG/JPEG of any size, resized to the model's input): top-3 classes.
    Predict {
        #[arg(long)]
        checkpoint: PathBuf,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Benchmark the training step (median of synced steps), eval throughput, memory, startup.
    Bench {
        /// A preset name or a model file (TOML).
        #[arg(long, default_value = wgpu_cnn::graph::zoo::DEFAULT)]
        model: String,
        #[arg(long, default_value_t = 128)]
        batch_size: u32,
        /// Steps run before timing.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Per-kernel GPU time of training steps (timestamp queries), GFLOP/s and GB/s per kernel.
    Profile {
        /// A preset name or a model file (TOML).
        #[arg(long, default_value = wgpu_cnn::graph::zoo::DEFAULT)]
        model: String,
        #[arg(long, default_value_t = 128)]
        batch_size: u32,
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Write a Chrome/Perfetto trace (traceEvents JSON) here.
        #[arg(long)]
        trace: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Write a data set out as an image folder (PNG, train/ test/, one subfolder per class) or
    /// as CIFAR-10 binary files, in the loader's order.
    Export {
        /// The data set's folder.
        #[arg(long)]
        data: PathBuf,
        /// The kind of data set (cifar10, cifar100, mnist, folder) [default: detected].
        #[arg(long)]
        dataset: Option<String>,
        /// CIFAR-100: fine or coarse labels [default: fine].
        #[arg(long)]
        labels: Option<String>,
        /// Image folders: the size images are read at, H or HxW [default: 32].
        #[arg(long)]
        image_size: Option<String>,
        /// Image folders: channels (1 or 3) [default: 3].
        #[arg(long, default_value_t = 3)]
        channels: u32,
        /// folder or cifar10.
        #[arg(long, default_value = "folder")]
        format: String,
        /// Where to write (must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// List the preset recipes, or print one (a starting point for one's own).
    Recipes {
        /// A preset recipe's name.
        name: Option<String>,
    },
    /// Download CIFAR-10 (binary version), verify its checksum and extract it.
    Download {
        /// Folder to extract into (creates DIR/cifar-10-batches-bin).
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Mirror URL of cifar-10-binary.tar.gz.
        #[arg(long, default_value = wgpu_cnn::data::download::URL)]
        url: String,
        /// Expected md5 of the tarball.
        #[arg(long, default_value = wgpu_cnn::data::download::MD5)]
        md5: String,
    },
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// A recipe: a preset (`wgpu-cnn recipes` lists them) or a TOML file holding any of the
    /// settings below (keys as the flags, with underscores); flags given here override it.
    #[arg(long)]
    recipe: Option<String>,
    /// Every setting of the run (the same names as a recipe's keys).
    #[command(flatten)]
    settings: Settings,
    /// Also checkpoint inside an epoch every M minutes (last.safetensors, atomically; checked
    /// between submits), so a run killed without Ctrl-C loses about that much; --resume
    /// continues it bit-exactly. Not stored with the run: give it again when resuming.
    #[arg(long, value_name = "M")]
    checkpoint_minutes: Option<f64>,
    /// No augmentation (the same as --augment none).
    #[arg(long)]
    no_augment: bool,
    /// Keep the training images in order (with --val-size 0: the files' order).
    #[arg(long)]
    no_shuffle: bool,
    /// Output folder [default: runs/<timestamp>; with --resume, the checkpoint's folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a run from its checkpoint (last.safetensors).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start a new run in an --out folder that already holds one, replacing its files.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

impl TrainArgs {
    /// Lays the flags over `--recipe`'s settings (a flag wins; `--optimizer` and `--schedule`
    /// replace the recipe's whole group; `--no-augment` and `--no-shuffle` are settings too).
    fn apply_recipe(&mut self) -> anyhow::Result<()> {
        if self.no_augment {
            if self.settings.augment.is_some() {
                anyhow::bail!("--no-augment and --augment contradict each other");
            }
            self.settings.augment = Some("none".into());
        }
        if self.no_shuffle {
            self.settings.shuffle = Some(false);
        }
        let Some(name) = &self.recipe else {
            return Ok(());
        };
        let (r, _) = wgpu_cnn::recipe::Recipe::resolve(name)?;
        self.settings = self.settings.overlay(&r)?;
        Ok(())
    }

    fn optimizer_flags(&self) -> wgpu_cnn::optim::Flags<'_> {
        let s = &self.settings;
        wgpu_cnn::optim::Flags {
            optimizer: s.optimizer.as_deref(),
            b1: s.b1,
            b2: s.b2,
            eps: s.eps,
            momentum: s.momentum,
            nesterov: s.nesterov.unwrap_or(false),
            weight_decay: s.weight_decay,
            decay_mask: s.decay_mask.as_deref(),
        }
    }

    /// With `--resume`: every setting given (as a flag or by `--recipe`) must equal the resumed
    /// run's, compared as the runs' recipes write them; only how much and where (`epochs`,
    /// `data`, `test_limit`) and how it runs (`steps_per_submit`, `stream_data`) may change.
    /// Names the first conflict.
    fn check_resume_flags(&self, saved: &TrainConfig, cfg: &TrainConfig) -> anyhow::Result<()> {
        const MAY_CHANGE: [&str; 5] = [
            "epochs",
            "data",
            "test_limit",
            "steps_per_submit",
            "stream_data",
        ];
        let (was, now) = (saved.recipe()?.to_table(), cfg.recipe()?.to_table());
        let show = |v: Option<&toml::Value>| match v {
            None => "none".to_string(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        for key in self.settings.given() {
            if MAY_CHANGE.contains(&key.as_str()) || was.get(&key) == now.get(&key) {
                continue;
            }
            anyhow::bail!(
                "--{} ({}) conflicts with the run being resumed ({}): a resumed run keeps its settings; only --epochs, --data, --out and --test-limit may change (and how it runs: --steps-per-submit, --stream-data, --checkpoint-minutes)",
                key.replace('_', "-"),
                show(now.get(&key)),
                show(was.get(&key))
            );
        }
        Ok(())
    }

    /// The run's settings: defaults (or the resumed run's), overridden by the flags given.
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let mut cfg = match &self.resume {
            Some(path) => {
                let ck = wgpu_cnn::checkpoint::load(path)?;
                let saved = ck.metadata.get("config").with_context(|| {
                    format!(
                        "{}: has no run configuration; use --init to start from its weights",
                        path.display()
                    )
                })?;
                let mut cfg: TrainConfig = serde_json::from_str(saved)
                    .with_context(|| format!("{}: unreadable run configuration", path.display()))?;
                cfg.out = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                cfg
            }
            None => TrainConfig {
                out: PathBuf::from("runs")
                    .join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string()),
                ..TrainConfig::default()
            },
        };
        let resuming = self.resume.is_some();
        // A resumed run keeps its settings: the run's own command line repeated is fine, a
        // flag that changes a setting is refused below.
        let saved = cfg.clone();
        let set = &self.settings;
        match &set.model {
            Some(wgpu_cnn::settings::ModelRef::Name(v)) => {
                // Checked here so that a bad model file fails before anything else.
                wgpu_cnn::graph::zoo::resolve(v)?;
                cfg.model = v.clone();
                cfg.model_text = None;
            }
            Some(wgpu_cnn::settings::ModelRef::Inline(t)) => {
                cfg.model = "inline".into();
                cfg.model_text = Some(toml::to_string(t).context("the recipe's [model] table")?);
                cfg.description()?;
            }
            None => {}
        }
        if let Some(v) = set.steps_per_submit {
            cfg.steps_per_submit = v;
        }
        if set.stream_data == Some(true) {
            cfg.stream_data = true;
        }
        cfg.checkpoint_minutes = self.checkpoint_minutes;
        if let Some(v) = &set.tta {
            cfg.tta = match v.as_str() {
                "flip" => true,
                "none" => false,
                _ => anyhow::bail!("--tta must be flip or none, got `{v}`"),
            };
        }
        if let Some(v) = &set.dataset {
            let kind = wgpu_cnn::data::Kind::parse(v)?;
            cfg.dataset = Some(kind);
            if set.data.is_none() && !resuming {
                cfg.data = kind.default_dir();
            }
        }
        if let Some(v) = &set.data {
            cfg.data = v.clone();
        }
        if let Some(v) = &set.labels {
            cfg.labels = wgpu_cnn::data::Labels::parse(v)?;
        }
        if let Some(v) = &set.image_size {
            let parse = |t: &str| {
                t.trim().parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("--image-size must be H or HxW in pixels, got `{v}`")
                })
            };
            cfg.image_size = Some(match v.split_once('x') {
                Some((h, w)) => [parse(h)?, parse(w)?],
                None => [parse(v)?, parse(v)?],
            });
        }
        if set.test_size.is_some() {
            cfg.test_size = set.test_size;
        }
        if let Some(v) = &set.normalize {
            cfg.normalize = Some(v.clone());
        }
        if let Some(v) = &set.augment {
            cfg.augment.list = v.clone();
        }
        if let Some(wgpu_cnn::settings::Pair([a, b])) = set.rrc_scale {
            cfg.augment.rrc_scale = (a, b);
        }
        if let Some(wgpu_cnn::settings::Pair([a, b])) = set.rrc_ratio {
            cfg.augment.rrc_ratio = (a, b);
        }
        // Stored canonical, so that the same list in another order is the same setting.
        cfg.augment.list = cfg.augment.parsed()?.canonical();
        if let Some(v) = &set.cache {
            cfg.cache = Some(v.clone());
        }
        if set.skip_bad_images == Some(true) {
            cfg.skip_bad_images = true;
        }
        if let Some(v) = set.epochs {
            cfg.epochs = v;
        }
        if let Some(v) = set.batch_size {
            cfg.batch_size = v;
        }
        if let Some(v) = set.lr {
            cfg.lr = v;
        }
        let schedule_flags = set.warmup_steps.is_some()
            || set.end_lr.is_some()
            || set.boundaries.is_some()
            || set.scales.is_some();
        if set.schedule.is_some() || schedule_flags {
            cfg.schedule = wgpu_cnn::schedule::Schedule::from_flags(
                set.schedule.as_deref().unwrap_or("constant"),
                set.warmup_steps,
                set.end_lr,
                set.boundaries.as_ref().map(|v| v.joined()).as_deref(),
                set.scales.as_ref().map(|v| v.joined()).as_deref(),
            )?;
        }
        if let Some(v) = set.label_smoothing {
            cfg.label_smoothing = v;
        }
        if set.clip_grad_norm.is_some() {
            cfg.clip_grad_norm = set.clip_grad_norm;
        }
        let opt_flags = self.optimizer_flags();
        if opt_flags.any() {
            cfg.optimizer = wgpu_cnn::optim::Optimizer::from_flags(&opt_flags)?;
        }
        if let Some(v) = set.seed {
            cfg.seed = v;
        }
        if set.val_size.is_some() {
            cfg.val_size = set.val_size;
        }
        if set.train_limit.is_some() {
            cfg.train_limit = set.train_limit;
        }
        if set.test_limit.is_some() {
            cfg.test_limit = set.test_limit;
        }
        if let Some(v) = set.shuffle {
            cfg.shuffle = v;
        }
        if set.init.is_some() {
            cfg.init = set.init.clone();
        }
        if let Some(v) = &self.out {
            cfg.out = v.clone();
        }
        if resuming {
            self.check_resume_flags(&saved, &cfg)?;
        }
        cfg.validate()?;
        let existing = cfg.out.join("last.safetensors");
        if !resuming && !self.overwrite && existing.exists() {
            anyhow::bail!(
                "{} already holds a run; continue it with --resume {}, choose another --out, \
                 or pass --overwrite to replace it",
                cfg.out.display(),
                existing.display()
            );
        }
        Ok(cfg)
    }
}

fn devices(backend: Backend) -> anyhow::Result<()> {
    let adapters = context::enumerate(backend);
    if adapters.is_empty() {
        anyhow::bail!("{}", wgpu_cnn::gpu::GpuError::NoAdapter { backend });
    }
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        println!("[{i}] {}", context::describe(&info));
        println!(
            "    max_buffer_size {} MiB, max_storage_buffer_binding_size {} MiB, \
             max_uniform_buffer_binding_size {} KiB, max_compute_workgroup_size ({}, {}, {}), invocations {}, workgroup storage {} KiB, \
             timestamps {}",
            l.max_buffer_size >> 20,
            l.max_storage_buffer_binding_size >> 20,
            l.max_uniform_buffer_binding_size >> 10,
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size >> 10,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        );
    }
    Ok(())
}

/// `wgpu-cnn models [NAME|FILE] [--toml] [--plan]`.
fn models(
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
                d.summary()
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

fn run(cli: Cli, launched: std::time::Instant) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices { backend } => devices(backend),
        Command::Info { device } => {
            let gpu = Gpu::new(&device.options())?;
            println!("adapter: {}", gpu.describe());
            Ok(())
        }
        Command::Train(mut args) => {
            args.apply_recipe()?;
            let cfg = args.config()?;
            let device = args.device.options();
            let _ = ctrlc::set_handler(|| {
                if train::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    // Second Ctrl-C: give up at once.
                    std::process::exit(130);
                }
                // Not eprintln!: a stderr whose reader the same Ctrl-C ended must not panic here.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\ninterrupt: writing a checkpoint after this step (Ctrl-C again to quit now)"
                );
            });
            let outcome = train::train(cfg, args.resume.as_deref(), &device)?;
            if outcome.interrupted {
                std::process::exit(130);
            }
            Ok(())
        }
        Command::Eval {
            checkpoint,
            data,
            dataset,
            tta,
            out,
            batch_size,
            device,
        } => {
            wgpu_cnn::infer::eval(
                &checkpoint,
                wgpu_cnn::infer::EvalData {
                    dir: data.as_deref(),
                    tta: match tta.as_deref() {
                        None | Some("none") => false,
                        Some("flip") => true,
                        Some(v) => anyhow::bail!("--tta must be flip or none, got `{v}`"),
                    },
                    kind: dataset
                        .as_deref()
                        .map(wgpu_cnn::data::Kind::parse)
                        .transpose()?,
                },
                out.as_deref(),
                batch_size,
                &device.options(),
            )?;
            Ok(())
        }
        Command::Export {
            data,
            dataset,
            labels,
            image_size,
            channels,
            format,
            out,
        } => {
            if format != "folder" && format != "cifar10" {
                anyhow::bail!("--format must be folder or cifar10, got `{format}`");
            }
            if out.exists() {
                anyhow::bail!("{}: already exists; choose a new --out", out.display());
            }
            if channels != 1 && channels != 3 {
                anyhow::bail!("--channels must be 1 or 3, got {channels}");
            }
            let [h, w] = match image_size.as_deref() {
                None => [32, 32],
                Some(v) => {
                    let p = |t: &str| {
                        t.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|&x| (1..=4096).contains(&x))
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "--image-size must be H or HxW in pixels, got `{v}`"
                                )
                            })
                    };
                    match v.split_once('x') {
                        Some((a, b)) => [p(a)?, p(b)?],
                        None => [p(v)?, p(v)?],
                    }
                }
            };
            let opts = wgpu_cnn::data::DataOptions {
                kind: dataset
                    .as_deref()
                    .map(wgpu_cnn::data::Kind::parse)
                    .transpose()?,
                labels: labels
                    .as_deref()
                    .map(wgpu_cnn::data::Labels::parse)
                    .transpose()?
                    .unwrap_or_default(),
                shape: wgpu_cnn::data::ImageShape { h, w, c: channels },
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                ..Default::default()
            };
            let ds = wgpu_cnn::data::load(&data, &opts)?;
            let res = if format == "folder" {
                wgpu_cnn::data::export::to_folder(&ds, &out)
            } else {
                wgpu_cnn::data::export::to_cifar10(&ds, &out)
            };
            if let Err(e) = res {
                let _ = std::fs::remove_dir_all(&out);
                return Err(e);
            }
            println!(
                "wrote {} ({}: {} training, {} test images) to {}",
                format,
                ds.name,
                ds.train.len() + ds.val.as_ref().map_or(0, |v| v.len()),
                ds.test.len(),
                out.display()
            );
            Ok(())
        }
        Command::Recipes { name } => {
            match name {
                None => {
                    for (n, text) in wgpu_cnn::recipe::PRESETS {
                        println!("{n:<18} {}", wgpu_cnn::recipe::summary(text));
                    }
                    println!("\nprint one with `wgpu-cnn recipes NAME`, train with `wgpu-cnn train --recipe NAME`");
                }
                Some(n) => {
                    let Some((_, text)) = wgpu_cnn::recipe::PRESETS.iter().find(|(p, _)| *p == n)
                    else {
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
        Command::Predict {
            checkpoint,
            images,
            device,
        } => {
            for p in wgpu_cnn::infer::predict(&checkpoint, &images, 3, &device.options())? {
                let top: Vec<String> = p
                    .top
                    .iter()
                    .zip(&p.names)
                    .map(|((_, prob), name)| format!("{name} {prob:.3}"))
                    .collect();
                println!("{}: {}", p.path.display(), top.join(", "));
            }
            Ok(())
        }
        Command::Models {
            model,
            toml,
            plan,
            batch_size,
            inference,
            optimizer,
            data,
            dataset,
            device,
        } => {
            let rule = wgpu_cnn::optim::Optimizer::from_flags(&wgpu_cnn::optim::Flags {
                optimizer: Some(optimizer.as_str()),
                ..Default::default()
            })?
            .rule();
            let data = match data {
                Some(d) => Some((
                    d,
                    dataset
                        .as_deref()
                        .map(wgpu_cnn::data::Kind::parse)
                        .transpose()?,
                )),
                None => None,
            };
            models(
                model.as_deref(),
                toml,
                plan,
                (batch_size, inference, rule),
                data,
                &device,
            )
        }
        Command::Bench {
            model,
            batch_size,
            warmup,
            steps,
            device,
        } => {
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
        Command::Profile {
            model,
            batch_size,
            steps,
            trace,
            device,
        } => {
            if batch_size == 0 || steps == 0 {
                anyhow::bail!("--batch-size and --steps must be at least 1");
            }
            let (desc, _) = wgpu_cnn::graph::zoo::resolve(&model)?;
            let (spans, clock, adapter) =
                wgpu_cnn::profile::profile_training(&device.options(), &desc, batch_size, steps)?;
            println!("adapter: {adapter}, batch size {batch_size}");
            print!("{}", wgpu_cnn::profile::table(&spans, clock));
            println!(
                "(profiled times include per-pass overhead; use `wgpu-cnn bench` for step time)"
            );
            if let Some(path) = trace {
                wgpu_cnn::profile::write_trace(&spans, &path)?;
                println!("trace written to {}", path.display());
            }
            Ok(())
        }
        Command::Download { dir, url, md5 } => {
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let out = wgpu_cnn::data::download::download(&url, &md5, &dir, progress)?;
            println!("CIFAR-10 is in {}", out.display());
            Ok(())
        }
    }
}

/// A command line clap refuses: help and version print as usual (exit 0); an error is one
/// line on stderr (with clap's tip folded in, e.g. the flag it suggests) and exit 1, as every
/// other error of the tool.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("error: bad command line");
    let first = if first.starts_with("error:") {
        first.to_string()
    } else {
        format!("error: {first}")
    };
    match lines.find(|l| l.starts_with("tip:")) {
        Some(tip) => eprintln!("{first} ({tip}; see --help)"),
        None => eprintln!("{first} (see --help)"),
    }
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let launched = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A reader that closes the pipe (`wgpu-cnn bench | head`) ends the process quietly, as it
    // does any Unix tool, instead of `println!` panicking on the broken pipe. Not `train`: a run
    // whose reader went away (a `| tee` that the same Ctrl-C ended) keeps training and writes
    // its checkpoints; its log lines ignore write errors (`say!` in train.rs).
    #[cfg(unix)]
    if !matches!(cli.command, Command::Train { .. }) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli, launched) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
