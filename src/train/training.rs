//! One training run in progress: its settings, position, data, model and schedules, and the
//! epoch loop that trains, evaluates and checkpoints it.

use super::*;

/// One training run: its settings, position, data, model and schedules.
pub(super) struct Training {
    pub(super) cfg: TrainConfig,
    pub(super) pos: Position,
    pub(super) history: Vec<EpochMetrics>,
    pub(super) progress: bool,
    pub(super) gpu: Gpu,
    pub(super) adapter: String,
    pub(super) ds: data::Dataset,
    pub(super) norm: data::Normalization,
    pub(super) aug: data::Augment,
    pub(super) train_idx: Vec<u32>,
    pub(super) val_idx: Vec<u32>,
    pub(super) steps: usize,
    pub(super) runner: Runner,
    /// The model description's text (checkpoint metadata `model`).
    pub(super) model_text: String,
    pub(super) train_data: GpuDataset,
    pub(super) test_data: GpuDataset,
    pub(super) aug_train: Dispatch,
    pub(super) aug_test: Dispatch,
    pub(super) probe: TotalsProbe,
    /// The epoch's crop words, one batch per step (filled once per epoch).
    pub(super) crops_all: wgpu::Buffer,
    /// The epoch's per-step uniforms (`GpuModel::step_records`).
    pub(super) step_table: wgpu::Buffer,
}

impl Training {
    /// Checks the settings and the output folder, loads the data, opens the GPU, builds the
    /// model (from the seed, `--init` or the checkpoint being resumed) and uploads the data.
    pub(super) fn start(
        mut cfg: TrainConfig,
        resume: Option<&Path>,
        device: &GpuOptions,
    ) -> Result<Training> {
        cfg.validate()?;
        let progress = std::io::stderr().is_terminal();
        let resumed = resume.map(checkpoint::load).transpose()?;
        // The model: the resumed checkpoint's, else `--model`.
        let (draft, mut model_text) = match &resumed {
            Some(ck) => (Draft::from(ck.model.clone()), ck.model_text.clone()),
            None => cfg.description()?,
        };
        // A preset (not a description of one's own, not a resumed run) adapts its input and
        // head to the data; the same data adapts it the same way, so recipe.toml repeats it.
        let adaptable =
            resumed.is_none() && cfg.model_text.is_none() && zoo::text(&cfg.model).is_some();
        // A description that fixes its input and classes is checked before the data loads; one
        // that leaves them to the data, once the data is known.
        let fixed = match draft.open_keys() {
            None => {
                let desc = draft.described()?;
                check_model_and_out(&desc, &cfg, true)?;
                Some(desc)
            }
            Some(_) => None,
        };

        // The images' shape as the model asks for it; a description without `input` takes
        // CIFAR's and MNIST's own, and an image folder's `--image-size` in colour.
        let input = data::ImageShape::of_input(draft.input.unwrap_or([32, 32, 3]));
        let opts = data::DataOptions {
            kind: cfg.dataset,
            labels: cfg.labels,
            shape: match cfg.image_size {
                Some([h, w]) => data::ImageShape { h, w, c: input.c },
                None => input,
            },
            test_size: cfg.test_size,
            seed: cfg.seed,
            cache: cfg.cache.clone(),
            skip_bad_images: cfg.skip_bad_images,
            progress,
        };
        // An image folder is resized to `--image-size`: a size the model cannot take is refused
        // before any image is decoded (or the folder's cache written). Other kinds ignore it.
        let folder = opts.kind.or_else(|| data::detect(&cfg.data).ok()) == Some(data::Kind::Folder);
        if folder && draft.input.is_none() && cfg.image_size.is_none() {
            bail!(
                "the model leaves `input` out and {} is an image folder: give --image-size H W (every image is resized to it), or set `input = [H, W, C]` in the description",
                cfg.data.display()
            );
        }
        if let Some(desc) = fixed.as_ref().filter(|_| folder && !adaptable) {
            if opts.shape != input {
                check_model_fits_data(desc, opts.shape, desc.classes as usize)?;
            }
        }
        let mut ds = load_dataset(&cfg.data, &opts)?;
        if cfg.labels == data::Labels::Coarse && ds.kind != data::Kind::Cifar100 {
            bail!(
                "--labels coarse: only CIFAR-100 has coarse labels; {} is {}",
                cfg.data.display(),
                ds.name
            );
        }
        let shape = ds.shape();
        let mut adapted = None;
        let mut desc = match fixed {
            Some(desc) => desc,
            None => {
                let (desc, line) = complete_from_data(&draft, &cfg.model, shape, ds.classes.len())?;
                model_text = format!("# {}\n{}", line, desc.to_toml());
                check_model_and_out(&desc, &cfg, true)?;
                adapted = Some(line);
                desc
            }
        };
        if adaptable {
            adapted = adapt_preset(&cfg.model, &mut desc, shape, ds.classes.len());
            if let Some(line) = &adapted {
                model_text = format!("# {}\n{}", line, desc.to_toml());
                check_model_and_out(&desc, &cfg, false)?;
            }
        }
        let layout = ParamLayout::of(&desc)?;
        check_model_fits_data(&desc, shape, ds.classes.len())?;
        // Parameter groups that name no tensor of this model fail before the GPU opens.
        cfg.optimizer.with_epoch_length(1).groups(&layout.specs)?;
        let aug = cfg.augment.parsed()?;
        aug.check(ds.shape())?;
        cfg.tta.check(ds.shape())?;
        let (train_idx, val_idx, steps) = split_training_set(&cfg, &mut ds)?;
        let norm = resolve_normalization(&cfg, &ds, &train_idx, resumed.as_ref())?;
        let data_line = format!(
            "data: {}, {} images, {} classes; {} training, {} validation, {} test; normalisation {}; augmentation {}",
            ds.name,
            ds.shape().describe(),
            ds.classes.len(),
            train_idx.len(),
            val_idx.len(),
            ds.test.len(),
            norm.describe(),
            aug.canonical()
        );

        let gpu = Gpu::new(device)?;
        let adapter = gpu.describe();
        say!("adapter: {adapter}");
        for n in &ds.notes {
            say!("{n}");
        }
        say!("{data_line}");
        if let Some(line) = &adapted {
            say!("{line}");
        }
        if let Some(n) = cfg.test_limit.filter(|&n| n < ds.test.len()) {
            let classes = |labels: &[u32]| {
                labels
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            };
            let (some, all) = (
                classes(&ds.test.labels[..n.max(1)]),
                classes(&ds.test.labels),
            );
            if some < all {
                say!(
                    "note: --test-limit {n} tests the first {n} test images, which hold {some} of the test split's {all} classes (an image folder's test/ is in class order)"
                );
            }
        }

        // The parameters that start as a fresh initialisation (all of them without `--init`).
        let mut fresh: Option<Vec<String>> = None;
        let (mut init, stats, pos) = match &resumed {
            Some(ck) => {
                let pos = Position {
                    epoch: ck.meta("epoch").unwrap_or(0),
                    step_in_epoch: ck.meta("step_in_epoch").unwrap_or(0),
                    totals: ck.metadata.get("totals").and_then(|s| Totals::from_meta(s)),
                    best_val_accuracy: ck.meta("best_val_accuracy"),
                    best_epoch: ck.meta("best_epoch"),
                };
                (ck.params.clone(), ck.batch_stats.clone(), pos)
            }
            None => match &cfg.init {
                Some(path) if cfg.init_skip_mismatch => {
                    let mut params = layout.init(cfg.seed);
                    let mut stats = ParamLayout::stats_of(&desc)?.init(0);
                    let notes = checkpoint::load_matching(path, &desc, &mut params, &mut stats)?;
                    for (_, n) in &notes {
                        say!("{n}");
                    }
                    fresh = Some(notes.into_iter().map(|(name, _)| name).collect());
                    (params, stats, Position::default())
                }
                Some(path) => {
                    let ck = checkpoint::load_as(path, Some((&desc, &model_text)))?;
                    warn_unknown(path, &ck);
                    if ParamLayout::of(&ck.model)?.specs != layout.specs {
                        bail!(
                            "{}: its model ({}) is not the one being trained ({}); --init needs the same parameters (--init-skip-mismatch initialises the differing ones afresh, e.g. a new head)",
                            path.display(),
                            ck.model.summary(),
                            desc.summary()
                        );
                    }
                    (ck.params, ck.batch_stats, Position::default())
                }
                None => (
                    layout.init(cfg.seed),
                    ParamLayout::stats_of(&desc)?.init(0),
                    Position::default(),
                ),
            },
        };
        if let Some(ck) = &resumed {
            let shown = resume.unwrap_or(Path::new("")).display().to_string();
            check_resume(ck, &shown, &pos, train_idx.len(), steps)?;
        }
        // Whitening kernels come from the data where no checkpoint gave them.
        if resumed.is_none() && (cfg.init.is_none() || fresh.is_some()) {
            let given = |name: &str| fresh.as_ref().is_some_and(|f| !f.iter().any(|n| n == name));
            for line in whitening::fill(
                &layout.specs,
                &mut init,
                &given,
                &ds.train,
                &train_idx,
                &norm,
            ) {
                say!("{line}");
            }
        }
        let mut runner = Runner::new(&gpu, &desc, cfg.batch_size, &init, cfg.lr as f32)?;
        runner.model.write_batch_stats(&gpu, &stats);
        runner
            .model
            .set_label_smoothing(&gpu, cfg.label_smoothing as f32);
        if cfg.optimizer != crate::optim::Optimizer::default() {
            runner
                .model
                .set_optimizer(&gpu, cfg.optimizer.with_epoch_length(steps as u64))?;
            say!("optimizer: {}", cfg.optimizer.describe());
        }
        if let Some(c) = cfg.clip_grad_norm {
            runner.model.clip_grad_norm(&gpu, c as f32)?;
        }
        // Dropout masks follow the run's seed (and the step, which a resumed run restores).
        runner.model.dropout_seed = (cfg.seed ^ (cfg.seed >> 32)) as u32;
        let planned = plan_schedule(&mut cfg, steps, &pos)?;
        runner.model.schedule = cfg.schedule.clone();
        runner.model.total_steps = planned;
        if let Some(la) = cfg.lookahead {
            // The slow copy starts as the initial weights (a resumed run's comes below).
            runner.model.set_lookahead(&gpu, la, planned)?;
            say!("lookahead: {} over {planned} updates", la.spec());
            if let Some(ck) = &resumed {
                let Some((params, stats)) = &ck.lookahead else {
                    bail!(
                        "{}: has no lookahead weights (lookahead.*), cannot resume a run with lookahead from it",
                        resume.unwrap_or(Path::new("")).display()
                    );
                };
                runner.model.write_lookahead(&gpu, params, stats);
            }
        }
        if let Some(ck) = &resumed {
            let Some((mu, nu)) = &ck.opt_state else {
                bail!(
                    "{}: has no optimizer state (opt.mu.* and opt.nu.*, or opt.trace.*), cannot resume from it",
                    resume.unwrap_or(Path::new("")).display()
                );
            };
            runner
                .model
                .write_opt_state(&gpu, mu, nu, ck.meta("step").unwrap_or(0));
        }
        let b = cfg.batch_size as usize;
        let train_data = GpuDataset::upload(
            &gpu,
            &ds.train,
            "train",
            Some(data::Streaming {
                force: cfg.stream_data,
                ..data::Streaming::when_needed(b, cfg.steps_per_submit as usize)
            }),
        )?;
        let test_data = GpuDataset::upload(
            &gpu,
            &ds.test,
            "test",
            Some(data::Streaming {
                force: cfg.stream_data,
                ..data::Streaming::when_needed(b, 1)
            }),
        )?;
        say!(
            "GPU memory: model {:.1} MiB, data {:.1} MiB (training images {})",
            runner.gpu_bytes() as f64 / 1048576.0,
            (train_data.bytes() + test_data.bytes()) as f64 / 1048576.0,
            train_data.describe(&gpu),
        );
        if let Some(path) = resume {
            say!(
                "resumed from {}: epoch {}, step {} of {steps} ({} of {} epochs done)",
                path.display(),
                pos.epoch,
                pos.step_in_epoch,
                pos.epoch,
                cfg.epochs
            );
        }
        let aug_train = runner.augment_from(&gpu, &train_data, &norm);
        let aug_test = runner.augment_from(&gpu, &test_data, &norm);
        let probe = TotalsProbe::new(&gpu);
        let crops_all = gpu.storage("crops.epoch", steps * 8 * cfg.batch_size as usize);
        let step_table = gpu.storage(
            "steps.table",
            steps * runner.model.step_record_bytes() as usize / 4,
        );
        gpu.take_errors()?;

        crate::io::write_atomic(
            &cfg.out.join("config.json"),
            serde_json::to_string_pretty(&serde_json::json!({
                "config": &cfg,
                "adapter": &adapter,
                "version": env!("CARGO_PKG_VERSION"),
                "data": {
                    "kind": ds.kind,
                    "name": &ds.name,
                    "shape": ds.shape(),
                    "classes": &ds.classes,
                    "test_images": ds.test.len(),
                },
                "normalization": &norm,
                "augmentation": aug.canonical(),
                "train_images": train_idx.len(),
                "val_images": val_idx.len(),
                "steps_per_epoch": steps,
                "gpu_bytes": runner.gpu_bytes() + train_data.bytes() + test_data.bytes(),
            }))?
            .as_bytes(),
        )?;
        crate::io::write_atomic(
            &cfg.out.join("recipe.toml"),
            cfg.recipe()?
                .to_toml("every setting of this run: `wgpu-cnn train --recipe recipe.toml --out DIR` repeats it")?
                .as_bytes(),
        )?;
        // A resumed run keeps the metrics of the epochs its checkpoint includes: the
        // checkpoint's own copy (older checkpoints: metrics.jsonl), written back to the log.
        let mut history = match &resumed {
            Some(ck) => match ck.metadata.get("history") {
                Some(h) => h
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect(),
                None => read_history(&cfg.out.join("metrics.jsonl")),
            },
            None => Vec::new(),
        };
        history.retain(|m: &EpochMetrics| m.epoch < pos.epoch);
        if resumed.is_some() {
            write_history(&cfg.out.join("metrics.jsonl"), &history)?;
            crate::tensorboard::write(&cfg.out, &history, None)?;
        }
        Ok(Training {
            cfg,
            pos,
            history,
            progress,
            gpu,
            adapter,
            ds,
            norm,
            aug,
            train_idx,
            val_idx,
            steps,
            runner,
            model_text,
            train_data,
            test_data,
            aug_train,
            aug_test,
            probe,
            crops_all,
            step_table,
        })
    }

    /// What checkpoints record about the data: class names, normalisation, the data set.
    pub(super) fn data_meta(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![
            ("classes", serde_json::to_string(&self.ds.classes)?),
            ("normalization", serde_json::to_string(&self.norm)?),
            ("data", self.ds.name.clone()),
        ])
    }

    /// The training steps of the current epoch, from `pos.step_in_epoch`. Returns false when
    /// Ctrl-C stopped it (a checkpoint of the exact position is then written).
    pub(super) fn train_epoch(&mut self) -> Result<bool> {
        let (gpu, cfg) = (&self.gpu, &self.cfg);
        let (epoch, b) = (self.pos.epoch, cfg.batch_size as usize);
        // The epoch's crops are drawn for every step (the same random stream whatever the
        // run's length); the last of fractional epochs runs only its first steps.
        let (full, steps) = (self.steps, cfg.steps_in_epoch(epoch, self.steps));
        let crops = epoch_crops(
            cfg,
            &self.aug,
            self.ds.shape(),
            &self.train_idx,
            epoch,
            full,
        );
        match self.pos.totals.take() {
            Some(t) if self.pos.step_in_epoch > 0 => self.runner.model.write_totals(gpu, t),
            _ => self.runner.model.reset_totals(gpu),
        }
        let bar = if self.progress {
            indicatif::ProgressBar::new(steps as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "epoch {epoch:03} {{bar:30}} {{pos}}/{{len}} steps, {{per_sec}}, eta {{eta}}{{msg}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(self.pos.step_in_epoch as u64);
        let mut in_flight: VecDeque<wgpu::SubmissionIndex> = VecDeque::new();
        // The epoch's crops and per-step uniforms go to the GPU once; each submit then records
        // `steps_per_submit` steps that copy theirs into place.
        // A streamed data set refills its window before each submit: as many steps as it holds.
        let first = self.pos.step_in_epoch as usize;
        let streamed = self.train_data.window;
        let chunk = match streamed {
            Some(w) => (cfg.steps_per_submit as usize).min(w as usize / b).max(1),
            None => cfg.steps_per_submit as usize,
        };
        if chunk > 1 {
            if streamed.is_none() {
                gpu.queue.write_buffer(
                    &self.crops_all,
                    (first * b * 32) as u64,
                    bytemuck::cast_slice(&crops[first * b..steps * b]),
                );
            }
            gpu.queue.write_buffer(
                &self.step_table,
                first as u64 * self.runner.model.step_record_bytes(),
                &self.runner.model.step_records(steps - first),
            );
        }
        let every = cfg.checkpoint_minutes.map(|m| {
            std::time::Duration::try_from_secs_f64(m * 60.0).unwrap_or(std::time::Duration::MAX)
        });
        let mut last_save = Instant::now();
        // Plain progress lines off a terminal: every minute (WGPU_CNN_PROGRESS_SECONDS).
        let line_every = std::time::Duration::from_secs_f64(
            std::env::var("WGPU_CNN_PROGRESS_SECONDS")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(60.0),
        );
        let (epoch_start, mut last_line) = (Instant::now(), Instant::now());
        let mut s = first;
        while s < steps {
            let end = (s + chunk).min(steps);
            let mut staged;
            let mut these = &crops[s * b..end * b];
            if streamed.is_some() {
                staged = these.to_vec();
                self.train_data.stage(gpu, &self.ds.train, &mut staged)?;
                these = &staged;
                if chunk > 1 {
                    gpu.queue.write_buffer(
                        &self.crops_all,
                        (s * b * 32) as u64,
                        bytemuck::cast_slice(these),
                    );
                }
            }
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            for j in s..end {
                if chunk == 1 {
                    // One submit per step: crops and uniforms written by the queue.
                    self.runner.write_crops(gpu, these);
                    self.runner
                        .model
                        .encode_train_step(gpu, &mut enc, &[&self.aug_train]);
                } else {
                    self.runner.encode_train_step_from(
                        &mut enc,
                        &self.aug_train,
                        &self.crops_all,
                        &self.step_table,
                        j,
                    );
                }
            }
            // After every submit whose probe is free, a copy of the epoch's loss totals comes
            // back asynchronously (16 bytes; the GPU never waits for the CPU): the progress bar
            // shows the running training loss and accuracy, and a diverged run stops within a
            // submit or two.
            let probe_now = self.probe.idle();
            if probe_now {
                self.probe.encode(&mut enc, &self.runner.model.totals);
            }
            in_flight.push_back(gpu.queue.submit([enc.finish()]));
            if probe_now {
                self.probe.start();
            }
            // Few submits queued: bounds staging memory and drives the progress bar.
            bound_in_flight(gpu, &mut in_flight)?;
            bar.set_position(end as u64);
            if let Some(t) = self.probe.take() {
                check_finite(&t, epoch, &cfg.out)?;
                if t.count > 0.0 {
                    let running = format!(
                        "train loss {:.4}, accuracy {:.4}",
                        t.loss_sum / t.count,
                        t.correct / t.count
                    );
                    bar.set_message(format!(", {running}"));
                    // Off a terminal (a log file, a pipe) the bar is hidden: a plain line now
                    // and then instead, so a long epoch still shows how it goes.
                    if !self.progress && last_line.elapsed() >= line_every {
                        // The totals are a submit or two behind `end`: name the steps they hold.
                        let done = (t.count as usize).div_ceil(b);
                        say_err!(
                            "epoch {epoch:03}: {done}/{steps} steps, {running} (running), {:.1} steps/s",
                            (end - first) as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9)
                        );
                        last_line = Instant::now();
                    }
                }
            }
            s = end;
            let interrupted = (INTERRUPTED.load(Ordering::SeqCst)
                || interrupt_for_test(epoch as u64 * full as u64 + end as u64))
                && end < steps;
            let due = end < steps && every.is_some_and(|d| last_save.elapsed() >= d);
            if interrupted || due {
                gpu.wait()?;
                self.pos.step_in_epoch = end as u32;
                let totals = self.runner.model.read_totals(gpu)?;
                // Never replace the last good checkpoint with diverged weights.
                check_finite(&totals, epoch, &cfg.out)?;
                self.pos.totals = Some(totals);
                let path = self.save_last()?;
                // The totals so far belong to this checkpoint only; the epoch's own stay on
                // the GPU.
                self.pos.totals = None;
                if interrupted {
                    bar.finish_and_clear();
                    say_err!(
                        "interrupted at epoch {epoch}, step {}: checkpoint written to {} (continue with --resume {})",
                        end,
                        path.display(),
                        path.display()
                    );
                    return Ok(false);
                }
                last_save = Instant::now();
            }
        }
        gpu.wait()?;
        bar.finish_and_clear();
        Ok(true)
    }

    /// Writes `last.safetensors` at the run's position (atomically) and returns its path.
    pub(super) fn save_last(&self) -> Result<PathBuf> {
        let path = self.cfg.out.join("last.safetensors");
        checkpoint::save(
            &path,
            &checkpoint_of(
                &self.gpu,
                &self.runner.model,
                &self.model_text,
                &self.cfg,
                self.pos,
                &self.adapter,
                (self.train_idx.len(), self.steps),
                &self.history,
                &self.data_meta()?,
            )?,
        )?;
        Ok(path)
    }

    /// After an epoch's steps (the first of them `first`, started at `t0`): loss and accuracy,
    /// validation, the log line, metrics.jsonl, last and best checkpoints.
    pub(super) fn finish_epoch(&mut self, first: usize, t0: Instant) -> Result<()> {
        let (gpu, cfg, epoch) = (&self.gpu, &self.cfg, self.pos.epoch);
        let t = self.runner.model.read_totals(gpu)?;
        check_finite(&t, epoch, &cfg.out)?;
        let train_loss = t.loss_sum as f64 / t.count as f64;
        let train_acc = t.correct as f64 / t.count as f64;
        let seconds_train = t0.elapsed().as_secs_f64();
        let val = if self.val_idx.is_empty() {
            None
        } else {
            Some(self.runner.evaluate(
                gpu,
                Feed {
                    aug: &self.aug_train,
                    data: &self.train_data,
                    host: &self.ds.train,
                },
                &self.val_idx,
                None,
            )?)
        };
        let seconds = t0.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch,
            train_loss,
            train_accuracy: train_acc,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().map(|v| v.accuracy),
            seconds,
            images_per_second: ((cfg.steps_in_epoch(epoch, self.steps) - first)
                * cfg.batch_size as usize) as f64
                / seconds_train,
            rss_bytes: report::rss_bytes(),
            gpu_bytes: Some(
                self.runner.gpu_bytes() + self.train_data.bytes() + self.test_data.bytes(),
            ),
            live_buffers: gpu.live_buffers(),
            // The run's optimizer steps so far, and the rate its last update used (optax's
            // count is the updates before it).
            step: Some(self.runner.model.step as u64),
            lr: {
                let m = &self.runner.model;
                let count = (m.step as u64).saturating_sub(1);
                Some(m.schedule.lr(m.lr as f64, count, m.total_steps))
            },
            wall_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64()),
        };
        let val_text = match &val {
            Some(v) => format!(", val loss: {:.4}, val accuracy: {:.4}", v.loss, v.accuracy),
            None => String::new(),
        };
        let line = format!(
            "epoch: {epoch:03}, train loss: {train_loss:.4}, train accuracy: {train_acc:.4}{val_text}, \
             {seconds:.1} s, {:.0} images/s",
            m.images_per_second
        );
        self.history.push(m);

        self.pos.epoch += 1;
        self.pos.step_in_epoch = 0;
        let score = val.as_ref().map(|v| v.accuracy).unwrap_or(train_acc);
        let is_best = self.pos.best_val_accuracy.is_none_or(|b| score > b);
        if is_best {
            self.pos.best_val_accuracy = Some(score);
            self.pos.best_epoch = Some(epoch);
        }
        let ck = checkpoint_of(
            gpu,
            &self.runner.model,
            &self.model_text,
            cfg,
            self.pos,
            &self.adapter,
            (self.train_idx.len(), self.steps),
            &self.history,
            &self.data_meta()?,
        )?;
        // The checkpoint commits the epoch; only then does the log claim it.
        checkpoint::save(&cfg.out.join("last.safetensors"), &ck)?;
        if is_best {
            checkpoint::save(&cfg.out.join("best.safetensors"), &ck)?;
        }
        if cfg.keep_every.is_some_and(|n| (epoch + 1) % n == 0) {
            checkpoint::save(&cfg.out.join(format!("epoch-{epoch:03}.safetensors")), &ck)?;
        }
        write_history(&cfg.out.join("metrics.jsonl"), &self.history)?;
        crate::tensorboard::write(&cfg.out, &self.history, None)?;
        // Printed last: a reader that has gone away cannot cost the epoch.
        say!("{line}");
        Ok(())
    }

    /// `--early-stop`: the line that stops the run before the next epoch, when the best
    /// validation score is `patience` or more epochs old (checked from the position a
    /// checkpoint records, so a resumed run stops where the uninterrupted one did).
    pub(super) fn early_stop(&self) -> Option<String> {
        let patience = self.cfg.early_stop?;
        let best = self.pos.best_epoch?;
        let since = self.pos.epoch.checked_sub(best + 1)?;
        (since >= patience && self.pos.epoch < self.cfg.epochs).then(|| {
            format!(
                "early stop: the validation accuracy has not improved for {since} epochs (best {:.4} at epoch {best:03}); stopping after epoch {:03} of {}",
                self.pos.best_val_accuracy.unwrap_or(0.0),
                self.pos.epoch - 1,
                self.cfg.epochs
            )
        })
    }

    /// Test of the last weights, then of the best checkpoint: log lines, confusion matrix,
    /// test.json and confusion.png.
    pub(super) fn final_test(&mut self) -> Result<(Option<EvalResult>, Option<EvalResult>)> {
        let (gpu, cfg, test) = (&self.gpu, &self.cfg, &self.ds.test);
        let test_n = cfg.test_limit.unwrap_or(test.len()).clamp(1, test.len());
        let test_idx: Vec<u32> = (0..test_n as u32).collect();
        let feed = Feed {
            aug: &self.aug_test,
            data: &self.test_data,
            host: &self.ds.test,
        };
        let mut last = self
            .runner
            .evaluate(gpu, feed, &test_idx, Some(&test.labels))?;
        last.classes = self.ds.classes.clone();
        let last_epoch = self.pos.epoch.max(1) - 1;
        say!(
            "test, last weights (epoch {last_epoch:03}): {}",
            last.line()
        );
        {
            use std::io::Write as _;
            let _ = write!(std::io::stdout(), "{}", report::confusion_table(&last));
        }
        let tta = self
            .runner
            .evaluate_augmented(gpu, feed, &test_idx, &test.labels, &cfg.tta)?;
        let tta = tta.map(|mut r| {
            r.classes = self.ds.classes.clone();
            say!(
                "test, last weights, test-time augmentation ({}): {}",
                cfg.tta.spec(),
                r.line()
            );
            r
        });
        let best = match checkpoint::load(&cfg.out.join("best.safetensors")) {
            Ok(ck) => {
                self.runner.model.write_params(gpu, &ck.params);
                self.runner.model.write_batch_stats(gpu, &ck.batch_stats);
                let mut r = self
                    .runner
                    .evaluate(gpu, feed, &test_idx, Some(&test.labels))?;
                r.classes = self.ds.classes.clone();
                let e: u32 = ck.meta("best_epoch").unwrap_or(last_epoch);
                let what = if self.val_idx.is_empty() {
                    "best train accuracy"
                } else {
                    "best validation accuracy"
                };
                say!("test, {what} checkpoint (epoch {e:03}): {}", r.line());
                Some((r, e))
            }
            Err(e) => {
                say_err!("warning: cannot evaluate the best checkpoint: {e:#}");
                None
            }
        };
        let mut json = last.to_json();
        json["epoch"] = last_epoch.into();
        if let Some(t) = &tta {
            json[tta_key(&cfg.tta)] = t.to_json();
        }
        if let Some((r, e)) = &best {
            let mut b = r.to_json();
            b["epoch"] = (*e).into();
            json["best"] = b;
        }
        crate::io::write_atomic(
            &cfg.out.join("test.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        let scalars = crate::tensorboard::TestScalars {
            epoch: last_epoch,
            loss: last.loss,
            accuracy: last.accuracy,
            tta: tta.as_ref().map(|t| (t.loss, t.accuracy)),
        };
        crate::tensorboard::write(&cfg.out, &self.history, Some(&scalars))?;
        report::confusion_png(
            &last,
            &format!("{} test, last weights", self.ds.name),
            &cfg.out.join("confusion.png"),
        )?;
        say!("outputs in {}", cfg.out.display());
        Ok((Some(last), best.map(|b| b.0)))
    }
}
