//! The data set on the GPU: its images packed as bytes (resident, or streamed through a window),
//! the labels, and the layout the augmentation shader reads.

use super::*;

/// Image bytes as the augmentation shader reads them: byte i in bits 8·(i mod 4) of word i / 4
/// (the last word zero-padded).
pub(super) fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| c.iter().rev().fold(0u32, |acc, &b| (acc << 8) | b as u32))
        .collect()
}

/// Storage bindings the augmentation shader reads images from.
pub const IMAGE_BINDINGS: usize = 4;

/// How a caller can take a data set that is streamed rather than resident: each stage (one
/// submit's images) holds at least `min` images (one batch) and at most `want` (the images
/// of the steps one submit records); `force` streams even a data set that would fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streaming {
    pub min: usize,
    pub want: usize,
    pub force: bool,
}

impl Streaming {
    /// Streams only what does not fit; a stage of `batch` to `batch · steps` images.
    pub fn when_needed(batch: usize, steps: usize) -> Self {
        Streaming {
            min: batch,
            want: batch * steps.max(1),
            force: false,
        }
    }
}

/// Where a split's images live on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// All of them, uploaded once: `per_binding` whole images in each of `bindings` bindings.
    Resident { per_binding: usize, bindings: usize },
    /// A window of `window` images (in as many bindings as it needs, each as full as the
    /// limit allows) that each submit refills from host memory.
    Streamed { window: usize },
}

/// A data set on the GPU: packed image bytes across up to [`IMAGE_BINDINGS`] storage
/// bindings (whole images in each), labels as u32. Resident, the whole split is there and
/// crops name its records; streamed, the bindings (as many as the window needs) and `labels`
/// hold a window that [`GpuDataset::stage`] fills with the records a submit's crops name.
pub struct GpuDataset {
    pub chunks: Vec<wgpu::Buffer>,
    /// Images per binding (the last holds the rest), resident or streamed.
    pub chunk_images: u32,
    pub labels: wgpu::Buffer,
    pub len: usize,
    pub shape: ImageShape,
    /// Streamed: the images one stage holds at most; `None`: resident.
    pub window: Option<u32>,
}

impl GpuDataset {
    /// Bytes one binding may hold on `gpu`.
    pub fn binding_bytes(gpu: &Gpu) -> u64 {
        gpu.limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size)
    }

    /// Uploads `split` under the adapter's limits: resident when its images fit in the
    /// bindings (and streaming is not forced), else streamed where `streaming` allows it, else
    /// an error naming the sizes.
    pub fn upload(
        gpu: &Gpu,
        split: &Split,
        label: &str,
        streaming: Option<Streaming>,
    ) -> Result<Self> {
        Self::upload_within(gpu, split, label, Self::binding_bytes(gpu), streaming)
    }

    /// Where `n` images of `shape` go with bindings of at most `max_binding` bytes.
    pub fn layout(
        label: &str,
        n: usize,
        shape: ImageShape,
        max_binding: u64,
        streaming: Option<Streaming>,
    ) -> Result<Layout> {
        let image = shape.bytes();
        // Whole words: a binding's buffer is its images' bytes rounded up to 4.
        let fit = (max_binding as usize & !3) / image;
        let per_binding = fit.min(n.max(1));
        let resident = per_binding > 0 && per_binding * IMAGE_BINDINGS >= n;
        match streaming {
            Some(s) if s.force || !resident => {
                if fit * IMAGE_BINDINGS < s.min.max(1) {
                    bail!(
                        "{label}: one batch of {} images of {} ({:.1} MiB) does not fit in the {IMAGE_BINDINGS} storage bindings of {} MiB this adapter allows; use a smaller --batch-size or --image-size",
                        s.min,
                        shape.describe(),
                        (s.min * image) as f64 / 1048576.0,
                        max_binding >> 20
                    );
                }
                Ok(Layout::Streamed {
                    window: s.want.max(s.min).max(1).min(fit * IMAGE_BINDINGS),
                })
            }
            _ if resident => Ok(Layout::Resident {
                per_binding,
                bindings: n.div_ceil(per_binding).max(1),
            }),
            _ => bail!(
                "{label}: {n} images of {} ({} MiB) do not fit in the {IMAGE_BINDINGS} storage bindings of {} MiB this adapter allows; use a smaller --image-size",
                shape.describe(),
                (n * image) as u64 >> 20,
                max_binding >> 20
            ),
        }
    }

    /// `upload` with bindings of at most `max_binding` bytes (tests use small ones to
    /// exercise the split and the streaming on any adapter).
    pub fn upload_within(
        gpu: &Gpu,
        split: &Split,
        label: &str,
        max_binding: u64,
        streaming: Option<Streaming>,
    ) -> Result<Self> {
        let image = split.shape.bytes();
        let max_binding = max_binding.min(Self::binding_bytes(gpu));
        let layout = Self::layout(label, split.len(), split.shape, max_binding, streaming)?;
        let pack = |bytes: &[u8]| -> Vec<u32> {
            let mut v = pack_bytes(bytes);
            if v.is_empty() {
                v.push(0);
            }
            v
        };
        match layout {
            Layout::Resident { per_binding, .. } => {
                let chunks = (0..IMAGE_BINDINGS)
                    .map(|k| {
                        let from = (k * per_binding).min(split.len());
                        let to = ((k + 1) * per_binding).min(split.len());
                        gpu.storage_from(
                            &format!("{label}.images{k}"),
                            &pack(&split.images[from * image..to * image]),
                        )
                    })
                    .collect();
                let labels = gpu.storage_from(&format!("{label}.labels"), &split.labels);
                Ok(GpuDataset {
                    chunks,
                    chunk_images: per_binding as u32,
                    labels,
                    len: split.len(),
                    shape: split.shape,
                    window: None,
                })
            }
            Layout::Streamed { window } => {
                let per = window.min(max_binding as usize / image).max(1);
                let chunks = (0..IMAGE_BINDINGS)
                    .map(|k| {
                        let slots = window.saturating_sub(k * per).min(per);
                        gpu.storage(&format!("{label}.window{k}"), (slots * image).div_ceil(4))
                    })
                    .collect();
                Ok(GpuDataset {
                    chunks,
                    chunk_images: per as u32,
                    labels: gpu.storage(&format!("{label}.window.labels"), window),
                    len: split.len(),
                    shape: split.shape,
                    window: Some(window as u32),
                })
            }
        }
    }

    /// Before a submit whose crops are `crops`: a streamed data set copies the images and
    /// labels they name from `host` (the split it was made from) into its window, in order,
    /// and renames each crop's record to its slot there; a resident one has nothing to do.
    /// The copy is ordered by the queue: submits already made read the window as it was.
    pub fn stage(&self, gpu: &Gpu, host: &Split, crops: &mut [[u32; 8]]) -> Result<()> {
        let Some(window) = self.window else {
            return Ok(());
        };
        if crops.is_empty() {
            return Ok(());
        }
        if crops.len() > window as usize {
            bail!(
                "a stage of {} images does not fit in the window of {window}",
                crops.len()
            );
        }
        let image = self.shape.bytes();
        let mut labels = Vec::with_capacity(crops.len());
        for c in crops.iter() {
            let r = c[0] as usize;
            match host.labels.get(r) {
                Some(&l) if (r + 1) * image <= host.images.len() => labels.push(l),
                _ => bail!("record {r} is not in the data set ({} images)", host.len()),
            }
        }
        // Slot s lives in binding s / chunk_images, as a resident record would. The images go
        // straight into the queue's staging memory, packed as `upload` packs them (on a
        // little-endian host that is the bytes as they are).
        let per = self.chunk_images.max(1) as usize;
        for (k, part) in crops.chunks(per).enumerate() {
            let len = part.len() * image;
            let Some(size) = wgpu::BufferSize::new(len.next_multiple_of(4) as u64) else {
                continue;
            };
            let Some(mut view) = gpu.queue.write_buffer_with(&self.chunks[k], 0, size) else {
                bail!(
                    "cannot stage {} images of {}",
                    part.len(),
                    self.shape.describe()
                );
            };
            if cfg!(target_endian = "little") {
                for (slot, c) in part.iter().enumerate() {
                    let r = c[0] as usize;
                    view.slice(slot * image..(slot + 1) * image)
                        .copy_from_slice(&host.images[r * image..(r + 1) * image]);
                }
                view.slice(len..)
                    .copy_from_slice(&[0u8; 3][..size.get() as usize - len]);
            } else {
                let mut bytes = Vec::with_capacity(len);
                for c in part {
                    let r = c[0] as usize;
                    bytes.extend_from_slice(&host.images[r * image..(r + 1) * image]);
                }
                view.copy_from_slice(bytemuck::cast_slice(&pack_bytes(&bytes)));
            }
        }
        for (slot, c) in crops.iter_mut().enumerate() {
            c[0] = slot as u32;
        }
        gpu.queue
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(&labels));
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|b| b.size()).sum::<u64>() + self.labels.size()
    }

    /// Bindings that hold images.
    pub fn bindings_used(&self) -> usize {
        let images = self.window.map_or(self.len, |w| w as usize);
        images.div_ceil(self.chunk_images.max(1) as usize).max(1)
    }

    /// Where the images are, for the run's log: the bindings, or the streaming window.
    pub fn describe(&self, gpu: &Gpu) -> String {
        match self.window {
            Some(w) => format!(
                "streamed: a window of {w} images ({:.1} MiB in {} storage binding{}) refilled from host memory before each submit",
                (w as usize * self.shape.bytes()) as f64 / 1048576.0,
                self.bindings_used(),
                if self.bindings_used() == 1 { "" } else { "s" }
            ),
            None => format!(
                "in {} of {IMAGE_BINDINGS} storage bindings of at most {} MiB",
                self.bindings_used(),
                Self::binding_bytes(gpu) >> 20
            ),
        }
    }
}
