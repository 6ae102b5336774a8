//! `wgpu-cnn train`: its flags over a recipe, the run's settings, the resume check.

use std::path::{Path, PathBuf};

use anyhow::Context;
use wgpu_cnn::settings::Settings;
use wgpu_cnn::train::{self, TrainConfig};

use super::DeviceArgs;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
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
        let (mut r, _) = wgpu_cnn::recipe::Recipe::resolve(name)?;
        if let Some(base) = Path::new(name)
            .is_file()
            .then(|| Path::new(name).parent())
            .flatten()
        {
            r.rebase(base);
        }
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
            param_groups: s.param_group.as_deref().unwrap_or_default(),
        }
    }

    /// With `--resume`: every setting given (as a flag or by `--recipe`) must equal the resumed
    /// run's, compared as the runs' recipes write them; only how much and where (`epochs`,
    /// `data`, `test_limit`) and how it runs (`steps_per_submit`, `stream_data`) may change.
    /// Names the first conflict.
    fn check_resume_flags(&self, saved: &TrainConfig, cfg: &TrainConfig) -> anyhow::Result<()> {
        const MAY_CHANGE: [&str; 6] = [
            "epochs",
            "data",
            "test_limit",
            "steps_per_submit",
            "stream_data",
            "keep_every",
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
                "--{} ({}) conflicts with the run being resumed ({}): a resumed run keeps its settings; only --epochs, --data, --out and --test-limit may change (and how it runs: --steps-per-submit, --stream-data, --checkpoint-minutes, --keep-every)",
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
                wgpu_cnn::graph::zoo::resolve_draft(v)?;
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
            cfg.tta = wgpu_cnn::data::Tta::parse(v)?;
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
            cfg.epochs = v.0.ceil() as u32;
            cfg.epochs_exact = (v.0.fract() != 0.0).then_some(v.0);
        }
        if let Some(v) = set.batch_size {
            cfg.batch_size = v;
        }
        if let Some(v) = set.lr {
            cfg.lr = v;
        }
        let schedule_flags = set.warmup_steps.is_some()
            || set.warmup_epochs.is_some()
            || set.warmup_fraction.is_some()
            || set.end_lr.is_some()
            || set.boundaries.is_some()
            || set.scales.is_some();
        if set.schedule.is_some() || schedule_flags {
            cfg.schedule = wgpu_cnn::schedule::Schedule::from_flags(
                set.schedule.as_deref().unwrap_or("constant"),
                set.warmup_steps,
                set.warmup_epochs,
                set.warmup_fraction,
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
        if let Some(v) = &set.lookahead {
            cfg.lookahead = Some(wgpu_cnn::optim::Lookahead::parse(v)?);
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
        if set.keep_every.is_some() {
            cfg.keep_every = set.keep_every;
        }
        if set.early_stop.is_some() {
            cfg.early_stop = set.early_stop;
        }
        if let Some(v) = set.init_skip_mismatch {
            cfg.init_skip_mismatch = v;
        }
        if cfg.init_skip_mismatch && cfg.init.is_none() {
            anyhow::bail!("--init-skip-mismatch applies to --init FILE, which is not given");
        }
        if let Some(v) = &self.out {
            cfg.out = v.clone();
        }
        if let Some(v) = set.schedule_epochs {
            cfg.schedule_epochs = Some(v);
        }
        // A resumed run given another --epochs keeps the schedule it planned (the rate it was
        // annealing does not jump back up); the planned length is recorded, so recipe.toml
        // repeats the resumed run. Training prints the rate before and after.
        if resuming
            && (cfg.epochs, cfg.epochs_exact) != (saved.epochs, saved.epochs_exact)
            && cfg.schedule_epochs.is_none()
            && cfg.schedule != wgpu_cnn::schedule::Schedule::Constant
        {
            cfg.schedule_epochs = Some(saved.epochs);
        }
        // Paths are stored absolute, so that the run's config, checkpoints and recipe.toml
        // work from any folder (`eval --checkpoint other/runs/x/best.safetensors`).
        cfg.absolute_paths();
        if resuming {
            let mut saved = saved.clone();
            saved.absolute_paths();
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

/// `wgpu-cnn train`: a run, with a checkpoint written on Ctrl-C.
pub fn train(mut args: Box<TrainArgs>) -> anyhow::Result<()> {
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
