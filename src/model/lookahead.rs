//! Lookahead on the GPU model ([`crate::optim::Lookahead`]): slow copies of the parameters and
//! of the batch-norm running statistics, synchronised after the updates the spec names, inside
//! the recorded train steps (so many steps per submit keep working).

use super::*;
use crate::ops::LookaheadParams;

pub(super) struct LookaheadState {
    spec: crate::optim::Lookahead,
    /// The run's updates (T of the weight's ramp; its last update copies the slow ones back).
    total: u64,
    slow_params: wgpu::Buffer,
    slow_stats: wgpu::Buffer,
    /// The synchronisations: the parameters, then the statistics when the model has any.
    sync: Vec<Dispatch>,
    counts: Vec<u32>,
}

impl GpuModel {
    /// Trains with lookahead over a run of `total` updates: the slow copies start as the
    /// current weights and statistics. Call before training (after the weights are loaded).
    pub fn set_lookahead(
        &mut self,
        gpu: &Gpu,
        spec: crate::optim::Lookahead,
        total: u64,
    ) -> Result<(), GpuError> {
        let slow_params = gpu.storage("lookahead.params", adam::padded_len(self.layout.total));
        let slow_stats = gpu.storage("lookahead.batch_stats", self.plan.stats.total.max(1));
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.params, 0, &slow_params, 0, self.params.size());
        encoder.copy_buffer_to_buffer(
            &self.batch_stats,
            0,
            &slow_stats,
            0,
            self.batch_stats.size(),
        );
        gpu.queue.submit([encoder.finish()]);
        let mut counts = vec![self.layout.total as u32];
        let mut sync = vec![adam::lookahead(
            gpu,
            &LookaheadParams::new(counts[0], 0.0),
            (&slow_params).into(),
            (&self.params).into(),
        )
        .in_layer("lookahead")];
        if self.plan.stats.total > 0 {
            counts.push(self.plan.stats.total as u32);
            sync.push(
                adam::lookahead(
                    gpu,
                    &LookaheadParams::new(counts[1], 0.0),
                    (&slow_stats).into(),
                    (&self.batch_stats).into(),
                )
                .in_layer("lookahead"),
            );
        }
        self.buffers.push(slow_params.clone());
        self.buffers.push(slow_stats.clone());
        self.lookahead = Some(LookaheadState {
            spec,
            total,
            slow_params,
            slow_stats,
            sync,
            counts,
        });
        gpu.take_errors()
    }

    /// The slow parameters and statistics, when training with lookahead.
    #[allow(clippy::type_complexity)]
    pub fn read_lookahead(
        &self,
        gpu: &Gpu,
    ) -> Result<Option<(Vec<Vec<f32>>, Vec<Vec<f32>>)>, GpuError> {
        let Some(la) = &self.lookahead else {
            return Ok(None);
        };
        let params = self.layout.unflatten(&gpu.read_f32(&la.slow_params)?);
        let stats = self.plan.stats.unflatten(&gpu.read_f32(&la.slow_stats)?);
        Ok(Some((params, stats)))
    }

    /// Replaces the slow parameters and statistics (a resumed run's).
    pub fn write_lookahead(&self, gpu: &Gpu, params: &[Vec<f32>], stats: &[Vec<f32>]) {
        if let Some(la) = &self.lookahead {
            gpu.queue.write_buffer(
                &la.slow_params,
                0,
                bytemuck::cast_slice(&self.layout.flatten(params)),
            );
            gpu.queue.write_buffer(
                &la.slow_stats,
                0,
                bytemuck::cast_slice(&self.plan.stats.flatten(stats)),
            );
        }
    }

    /// Bytes of the lookahead's part of a step record (one uniform per synchronisation).
    pub(super) fn lookahead_record_bytes(&self) -> u64 {
        self.lookahead.as_ref().map_or(0, |la| {
            (la.sync.len() * std::mem::size_of::<LookaheadParams>()) as u64
        })
    }

    /// The lookahead's uniforms after update `step` (weight 0 when none is due).
    pub(super) fn lookahead_record(&self, step: u32) -> Vec<u8> {
        let Some(la) = &self.lookahead else {
            return Vec::new();
        };
        let w = la.spec.weight(step as u64, la.total).unwrap_or(0.0);
        la.counts
            .iter()
            .flat_map(|&c| bytemuck::bytes_of(&LookaheadParams::new(c, w)).to_vec())
            .collect()
    }

    /// Writes the uniforms of the synchronisation after update `self.step` by the queue (one
    /// step per submit; [`GpuModel::encode_lookahead`] with no table then records it).
    pub(super) fn write_lookahead_uniforms(&self, gpu: &Gpu) {
        let Some(la) = &self.lookahead else { return };
        let size = std::mem::size_of::<LookaheadParams>();
        let rec = self.lookahead_record(self.step);
        for (k, d) in la.sync.iter().enumerate() {
            gpu.queue
                .write_buffer(&d.uniform, 0, &rec[k * size..(k + 1) * size]);
        }
    }

    /// Records the synchronisation due after update `self.step`, if any; its uniforms are
    /// copied from `table` at byte `at` (a step record), or were written by the queue.
    pub(super) fn encode_lookahead(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        table: Option<(&wgpu::Buffer, u64)>,
    ) {
        let Some(la) = &self.lookahead else { return };
        if la.spec.weight(self.step as u64, la.total).is_none() {
            return;
        }
        if let Some((table, at)) = table {
            let size = std::mem::size_of::<LookaheadParams>() as u64;
            for (k, d) in la.sync.iter().enumerate() {
                encoder.copy_buffer_to_buffer(table, at + k as u64 * size, &d.uniform, 0, size);
            }
        }
        record(encoder, "lookahead", &[], &la.sync);
    }
}
