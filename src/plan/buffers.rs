//! Buffers and limits: which buffer each tensor lives in (by lifetime), whether every tensor
//! fits the device, the largest batch that does, and the memory a plan needs.

use super::*;

impl Plan {
    pub(super) fn assign_buffers(&mut self) {
        let steps: Vec<Vec<TensorId>> = self
            .forward
            .iter()
            .chain(&self.backward)
            .map(|s| s.tensors())
            .collect();
        let mut first = vec![usize::MAX; self.tensors.len()];
        let mut last = vec![0; self.tensors.len()];
        for (i, ts) in steps.iter().enumerate() {
            for &t in ts {
                first[t] = first[t].min(i);
                last[t] = last[t].max(i);
            }
        }
        // The eval loss reads the logits after the forward.
        let end = steps.len();
        let mut order: Vec<TensorId> = (0..self.tensors.len()).collect();
        order.sort_by_key(|&t| (first[t], t));
        // Buffers with the step after which they are free.
        let mut free_after: Vec<usize> = Vec::new();
        for t in order {
            let tensor = &self.tensors[t];
            if tensor.kind == TensorKind::Io || first[t] == usize::MAX {
                self.buffers.push(Buffer {
                    label: tensor.name.clone(),
                    len: tensor.len,
                    tensors: vec![t],
                });
                free_after.push(usize::MAX);
                self.tensors[t].buffer = self.buffers.len() - 1;
                continue;
            }
            // Activations are bound to their producer's output for the eval schedule too,
            // which is a prefix of the train schedule: lifetimes from the train order hold.
            let candidates: Vec<usize> = (0..self.buffers.len())
                .filter(|&b| free_after[b] < first[t])
                .collect();
            let fit = candidates
                .iter()
                .copied()
                .filter(|&b| self.buffers[b].len >= tensor.len)
                .min_by_key(|&b| self.buffers[b].len)
                .or_else(|| {
                    candidates
                        .iter()
                        .copied()
                        .max_by_key(|&b| self.buffers[b].len)
                });
            let b = match fit {
                Some(b) => {
                    let buf = &mut self.buffers[b];
                    buf.len = buf.len.max(tensor.len);
                    buf.tensors.push(t);
                    buf.label = format!("{} | {}", buf.label, tensor.name);
                    b
                }
                None => {
                    self.buffers.push(Buffer {
                        label: tensor.name.clone(),
                        len: tensor.len,
                        tensors: vec![t],
                    });
                    free_after.push(0);
                    self.buffers.len() - 1
                }
            };
            free_after[b] = if self.tensors[t].kind == TensorKind::Io {
                end
            } else {
                last[t]
            };
            self.tensors[t].buffer = b;
        }
    }

    /// Every buffer within the adapter's storage-binding and buffer-size limits.
    pub(super) fn check_limits(&self) -> Result<(), PlanError> {
        let max = self.caps.max_binding.min(self.caps.max_buffer);
        let params = 4 * self.layout.total as u64;
        if params > max {
            return Err(PlanError(format!(
                "the model's {} parameters need a {} MiB buffer, over this adapter's {} MiB storage binding limit",
                self.layout.count(),
                params >> 20,
                max >> 20
            )));
        }
        for t in &self.tensors {
            let bytes = 4 * t.len as u64;
            if bytes > max {
                let fits = Plan::max_batch(&self.desc, &self.caps, self.mode);
                return Err(PlanError(format!(
                    "{}: batch size {} needs a {} MiB buffer ({}), over this adapter's {} MiB storage binding limit; {}",
                    self.layer_of(t),
                    self.batch,
                    bytes >> 20,
                    t.name,
                    max >> 20,
                    match fits {
                        Some(b) => format!("the largest batch that fits is {b}"),
                        None => "no batch size fits".into(),
                    }
                )));
            }
        }
        Ok(())
    }

    /// `layer 3 (conv)` for a tensor named after a layer.
    pub(super) fn layer_of(&self, t: &Tensor) -> String {
        let stem = t.name.split('.').next().unwrap_or("");
        match self.layers.iter().find(|l| l.name == stem) {
            Some(l) => format!(
                "layer {} ({}, {})",
                l.index,
                self.desc.layers[l.index].kind(),
                l.name
            ),
            None => format!("tensor {}", t.name),
        }
    }

    /// The largest batch size whose plan fits the adapter's limits (`None`: not even 1).
    pub fn max_batch(desc: &Description, caps: &Caps, mode: Mode) -> Option<u32> {
        let fits = |b: u32| {
            let mut p = match Plan::new_unchecked(desc, b, caps, mode) {
                Some(p) => p,
                None => return false,
            };
            p.buffers.clear();
            p.check_limits_quiet()
        };
        if !fits(1) {
            return None;
        }
        let (mut lo, mut hi) = (1u32, 2u32);
        while hi < (1 << 24) && fits(hi) {
            lo = hi;
            hi *= 2;
        }
        if hi >= (1 << 24) && fits(hi) {
            return Some(hi);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    pub(super) fn new_unchecked(
        desc: &Description,
        batch: u32,
        caps: &Caps,
        mode: Mode,
    ) -> Option<Plan> {
        // With the adapter's limits: kernel choices that depend on them (Winograd's scratch)
        // are the ones the real plan makes.
        Plan::build(desc, batch, caps, mode).ok()
    }

    pub(super) fn check_limits_quiet(&self) -> bool {
        let max = self.caps.max_binding.min(self.caps.max_buffer);
        4 * self.layout.total as u64 <= max && self.tensors.iter().all(|t| 4 * t.len as u64 <= max)
    }

    /// Bytes of GPU memory: every buffer, the parameters (and in train plans gradients and
    /// Adam's two moments), the loss statistics.
    pub fn gpu_bytes(&self) -> u64 {
        let bufs: u64 = self.buffers.iter().map(|b| 4 * b.len as u64).sum();
        let copies = if self.mode == Mode::Train { 4 } else { 1 };
        bufs + copies * 4 * self.layout.total as u64 + 4 * (2 * self.batch as u64 + 3 + 4)
    }

    /// Bytes of the textures through which the subgroup kernels (`ops/conv2d/conv2d_sg_*.wgsl`) read their per-lane
    /// operand (the weights, or the weight gradient's dout; `gpu::dispatch::TextureMirror`):
    /// one texture per binding and size, shared by the steps; `kernel` names each step's kernel
    /// on the device as in [`Plan::render`]. Staging copies of unaligned slices not counted.
    pub fn texture_mirror_bytes(&self, kernel: &dyn Fn(&Step) -> String) -> u64 {
        use crate::caps::{mirror_texel_bytes, TEXTURE_ROW};
        let row = TEXTURE_ROW as u64;
        let rows = |binding: u32, floats: usize| {
            (4 * floats as u64)
                .div_ceil(mirror_texel_bytes(binding))
                .div_ceil(row)
                .max(1)
        };
        let mut seen = std::collections::BTreeSet::new();
        for st in self.forward.iter().chain(&self.backward) {
            let name = kernel(st);
            if !name.contains("_sg") {
                continue;
            }
            // The 16-output-channel-tile kernels read vec2 mirrors (rg32float, bindings 32
            // and 33).
            let rg = name.contains("_o16");
            let (binding, floats) = match st {
                Step::Conv {
                    p,
                    winograd: Some(_),
                    ..
                }
                | Step::ConvBackwardInput {
                    p,
                    winograd: Some(_),
                    ..
                } => (30, 36 * (p.c * p.o) as usize),
                Step::Conv { p, .. } | Step::ConvBackwardInput { p, .. } => (30, p.weight_len()),
                Step::ConvBackwardWeight {
                    p,
                    winograd: Some(_),
                    ..
                } => (31, crate::ops::conv2d::winograd::scratch_lens(p).2[1]),
                Step::ConvBackwardWeight { p, .. } => (31, p.output_len()),
                Step::Dense { p, .. } | Step::DenseBackwardInput { p, .. } => {
                    (30, p.as_conv().weight_len())
                }
                Step::DenseBackwardWeight { p, .. } => (31, p.as_conv().output_len()),
                _ => continue,
            };
            let binding = if rg { binding + 2 } else { binding };
            seen.insert((binding, rows(binding, floats)));
        }
        seen.iter()
            .map(|&(b, r)| r * row * mirror_texel_bytes(b))
            .sum()
    }
}
