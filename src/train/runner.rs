//! A model fed from GPU-resident data: the crops of each epoch, the submits that record the
//! augmentation and the train schedule, and the bound on work in flight.

use super::*;

/// The RNG of epoch `epoch`: shuffling and augmentation of that epoch only.
pub(super) fn epoch_rng(seed: u64, epoch: u32) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed.wrapping_add((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    )
}

/// The crops of every training step of `epoch`, in order (`steps · batch` of them).
pub fn epoch_crops(
    cfg: &TrainConfig,
    aug: &data::Augment,
    shape: data::ImageShape,
    train_idx: &[u32],
    epoch: u32,
    steps: usize,
) -> Vec<[u32; 8]> {
    let mut rng = epoch_rng(cfg.seed, epoch);
    let mut order = train_idx.to_vec();
    if cfg.shuffle {
        order.shuffle(&mut rng);
    }
    order[..steps * cfg.batch_size as usize]
        .iter()
        .map(|&r| aug.draw_in(&mut rng, r, shape, epoch, cfg.seed).words())
        .collect()
}

/// With more than two submits queued, waits for the oldest: the queue's staging copies (crops,
/// uniforms, a streamed data set's images) stay bounded; surfaces GPU errors.
pub(super) fn bound_in_flight(
    gpu: &Gpu,
    in_flight: &mut VecDeque<wgpu::SubmissionIndex>,
) -> Result<()> {
    if in_flight.len() > 2 {
        let idx = in_flight.pop_front();
        gpu.device
            .poll(wgpu::PollType::Wait {
                submission_index: idx,
                timeout: None,
            })
            .map_err(|e| anyhow::anyhow!("GPU error: {e}"))?;
        gpu.take_errors()?;
    }
    Ok(())
}

/// Where an evaluation pass's images come from: the augmentation dispatch made for `data`
/// (by [`Runner::augment_from`]) and the split `data` was uploaded from, which a streamed
/// data set copies each batch from.
#[derive(Clone, Copy)]
pub struct Feed<'a> {
    pub aug: &'a Dispatch,
    pub data: &'a GpuDataset,
    pub host: &'a data::Split,
}

/// A model plus the buffers and dispatches that feed it from GPU-resident data sets.
pub struct Runner {
    pub model: GpuModel,
    crops: wgpu::Buffer,
    preds: Option<wgpu::Buffer>,
}

impl Runner {
    /// A model planned for training (`desc` at batch size `batch`, Adam at rate `lr`).
    pub fn new(
        gpu: &Gpu,
        desc: &Description,
        batch: u32,
        params: &[Vec<f32>],
        lr: f32,
    ) -> Result<Self> {
        Self::with_model(gpu, GpuModel::new(gpu, desc, batch, params, lr)?)
    }

    /// A model planned for inference: eval steps only.
    pub fn inference(
        gpu: &Gpu,
        desc: &Description,
        batch: u32,
        params: &[Vec<f32>],
    ) -> Result<Self> {
        Self::with_model(gpu, GpuModel::inference(gpu, desc, batch, params)?)
    }

    fn with_model(gpu: &Gpu, model: GpuModel) -> Result<Self> {
        let crops = gpu.storage("crops", 8 * model.batch() as usize);
        Ok(Runner {
            model,
            crops,
            preds: None,
        })
    }

    /// The augmentation dispatch that fills the model's input from `data`, normalised with
    /// `norm`.
    pub fn augment_from(
        &self,
        gpu: &Gpu,
        data: &GpuDataset,
        norm: &data::Normalization,
    ) -> Dispatch {
        augment::batch(
            gpu,
            self.model.batch(),
            data,
            norm,
            (&self.crops).into(),
            (&self.model.input).into(),
            (&self.model.labels).into(),
        )
    }

    /// Bytes of GPU memory held by the model and the runner's own buffers.
    pub fn gpu_bytes(&self) -> u64 {
        self.model.gpu_bytes() + self.crops.size() + self.preds.as_ref().map_or(0, |p| p.size())
    }

    /// Records train step `index` of an epoch whose crops are in `crops_all` (one batch of
    /// crop words per step) and whose uniforms are record `index` of `table`.
    pub fn encode_train_step_from(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        aug: &Dispatch,
        crops_all: &wgpu::Buffer,
        table: &wgpu::Buffer,
        index: usize,
    ) {
        let bytes = 32 * self.model.batch() as u64;
        encoder.copy_buffer_to_buffer(crops_all, index as u64 * bytes, &self.crops, 0, bytes);
        self.model
            .encode_train_step_from(encoder, &[aug], table, index as u64);
    }

    pub fn write_crops(&self, gpu: &Gpu, crops: &[[u32; 8]]) {
        gpu.queue
            .write_buffer(&self.crops, 0, bytemuck::cast_slice(crops));
    }

    /// Loss and accuracy of the current weights on `indices` of the data set behind `aug`
    /// (unaugmented). With `labels`, also the confusion matrix (logits are gathered on the GPU
    /// and read back once).
    pub fn evaluate(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: Option<&[u32]>,
    ) -> Result<EvalResult> {
        Ok(self
            .eval_pass(gpu, feed, indices, labels, View::default())?
            .0)
    }

    /// As [`Runner::evaluate`], with the logits of every image (`[indices.len(), classes]`).
    pub fn evaluate_logits(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: &[u32],
    ) -> Result<(EvalResult, Vec<f32>)> {
        let (r, logits) = self.eval_pass(gpu, feed, indices, Some(labels), View::default())?;
        Ok((
            r,
            logits.context("an evaluation with labels reads the logits")?,
        ))
    }

    /// Test-time augmentation: each image and its horizontal mirror, the mean of their softmax
    /// probabilities (f64 on the CPU) decides the prediction; the loss is −ln of that mean at
    /// the label.
    pub fn evaluate_tta(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: &[u32],
    ) -> Result<EvalResult> {
        let (_, a) = self.eval_pass(gpu, feed, indices, Some(labels), View::default())?;
        let mirror = View {
            flip: true,
            ..View::default()
        };
        let (_, b) = self.eval_pass(gpu, feed, indices, Some(labels), mirror)?;
        let (Some(a), Some(b)) = (a, b) else {
            bail!("test-time augmentation needs the logits");
        };
        let classes = self.model.classes() as usize;
        let softmax = |row: &[f32]| -> Vec<f64> {
            let m = row.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y)) as f64;
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        };
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss, mut correct) = (0.0f64, 0u64);
        for ((ra, rb), &idx) in a
            .chunks_exact(classes)
            .zip(b.chunks_exact(classes))
            .zip(indices)
        {
            let p: Vec<f64> = softmax(ra)
                .iter()
                .zip(softmax(rb))
                .map(|(x, y)| 0.5 * (x + y))
                .collect();
            let mut best = 0;
            for (j, &v) in p.iter().enumerate() {
                if v > p[best] {
                    best = j;
                }
            }
            let label = labels[idx as usize] as usize;
            loss -= p[label].max(f64::MIN_POSITIVE).ln();
            correct += (best == label) as u64;
            confusion[label][best] += 1;
        }
        let n = indices.len().max(1) as f64;
        Ok(EvalResult {
            loss: loss / n,
            accuracy: correct as f64 / n,
            correct,
            total: indices.len() as u64,
            confusion: Some(confusion),
            classes: Vec::new(),
        })
    }

    /// The final test's augmentation: `Tta::Flip` averages the softmax over each image and
    /// its mirror ([`Runner::evaluate_tta`]); `Tta::Views` sums the views' logits with their
    /// weights, and the summed logits decide (argmax) and give the loss (cross-entropy in f64).
    pub fn evaluate_augmented(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: &[u32],
        tta: &Tta,
    ) -> Result<Option<EvalResult>> {
        let views = match tta {
            Tta::None => return Ok(None),
            Tta::Flip => return self.evaluate_tta(gpu, feed, indices, labels).map(Some),
            Tta::Views(v) => v,
        };
        let classes = self.model.classes() as usize;
        let mut sum = vec![0.0f64; indices.len() * classes];
        for &(view, w) in views {
            let (_, logits) = self.eval_pass(gpu, feed, indices, Some(labels), view)?;
            let logits = logits.context("an evaluation with labels reads the logits")?;
            for (s, &l) in sum.iter_mut().zip(&logits) {
                *s += w * l as f64;
            }
        }
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss, mut correct) = (0.0f64, 0u64);
        for (row, &idx) in sum.chunks_exact(classes).zip(indices) {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            let m = row[best];
            let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
            let label = labels[idx as usize] as usize;
            loss += lse - row[label];
            correct += (best == label) as u64;
            confusion[label][best] += 1;
        }
        let n = indices.len().max(1) as f64;
        Ok(Some(EvalResult {
            loss: loss / n,
            accuracy: correct as f64 / n,
            correct,
            total: indices.len() as u64,
            confusion: Some(confusion),
            classes: Vec::new(),
        }))
    }

    /// One pass over `indices` seen as `view`: the GPU totals, and with `labels` the
    /// confusion matrix and the logits.
    fn eval_pass(
        &mut self,
        gpu: &Gpu,
        feed: Feed,
        indices: &[u32],
        labels: Option<&[u32]>,
        view: View,
    ) -> Result<(EvalResult, Option<Vec<f32>>)> {
        let shape = data::ImageShape::of_input(self.model.plan.desc.input);
        let b = self.model.batch() as usize;
        let classes = self.model.classes() as usize;
        if labels.is_some() {
            let need = (indices.len() * classes * 4) as u64;
            if self.preds.as_ref().is_none_or(|p| p.size() < need) {
                self.preds = Some(gpu.storage("predictions", indices.len() * classes));
            }
        }
        self.model.reset_totals(gpu);
        // At most three submits queued: the staging copies of crops (and of a streamed data
        // set's images) stay bounded however long the split.
        let mut in_flight: VecDeque<wgpu::SubmissionIndex> = VecDeque::new();
        for (i, chunk) in indices.chunks(b).enumerate() {
            // A partial last batch is padded with its first image; the loss counts only the
            // real rows.
            let mut crops: Vec<[u32; 8]> = (0..b)
                .map(|j| {
                    let record = *chunk.get(j).unwrap_or(&chunk[0]);
                    if view == View::default() {
                        Crop::identity(record, shape).words()
                    } else {
                        view.crop(record, shape).words()
                    }
                })
                .collect();
            feed.data.stage(gpu, feed.host, &mut crops)?;
            self.write_crops(gpu, &crops);
            if chunk.len() < b {
                self.model.set_eval_rows(gpu, chunk.len() as u32);
            }
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            self.model.encode_eval_step(&mut enc, &[feed.aug]);
            if let (Some(p), Some(_)) = (&self.preds, labels) {
                let bytes = (chunk.len() * classes * 4) as u64;
                enc.copy_buffer_to_buffer(
                    &self.model.logits,
                    0,
                    p,
                    (i * b * classes * 4) as u64,
                    bytes,
                );
            }
            in_flight.push_back(gpu.queue.submit([enc.finish()]));
            if chunk.len() < b {
                self.model.set_eval_rows(gpu, b as u32);
            }
            bound_in_flight(gpu, &mut in_flight)?;
        }
        gpu.wait()?;
        let t = self.model.read_totals(gpu)?;
        let mut r = EvalResult {
            loss: t.loss_sum as f64 / t.count.max(1.0) as f64,
            accuracy: t.correct as f64 / t.count.max(1.0) as f64,
            correct: t.correct as u64,
            total: t.count as u64,
            confusion: None,
            classes: Vec::new(),
        };
        if let (Some(p), Some(labels)) = (&self.preds, labels) {
            let logits: Vec<f32> = gpu.read(crate::gpu::BufSlice {
                buffer: p,
                offset: 0,
                size: (indices.len() * classes * 4) as u64,
            })?;
            let mut m = vec![vec![0u64; classes]; classes];
            for (row, &idx) in logits.chunks_exact(classes).zip(indices) {
                m[labels[idx as usize] as usize][argmax(row)] += 1;
            }
            r.confusion = Some(m);
            return Ok((r, Some(logits)));
        }
        Ok((r, None))
    }
}

/// Index of the first maximum (as jnp.argmax and the shader).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}
