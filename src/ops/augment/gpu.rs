//! Launcher for `augment.wgsl`.

use crate::data::{GpuDataset, Normalization};
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::AugmentParams;

/// Builds `batch` inputs (NHWC f32) and labels from `data` and the crops in `crops`
/// (`8·batch` u32, see `data::Crop::words`), normalised with `norm`.
pub fn batch(
    gpu: &Gpu,
    batch: u32,
    data: &GpuDataset,
    norm: &Normalization,
    crops: BufSlice<'_>,
    input: BufSlice<'_>,
    labels: BufSlice<'_>,
) -> Dispatch {
    let p = AugmentParams::new(batch, data.chunk_images, data.shape, norm);
    let u = gpu.uniform("augment.params", &p);
    let pixels = batch * data.shape.h * data.shape.w;
    let c = data.shape.c as u64;
    Dispatch::new(
        gpu,
        "augment",
        "augment_batch",
        &u,
        &[
            (1, (&data.chunks[0]).into()),
            (2, (&data.chunks[1]).into()),
            (3, (&data.chunks[2]).into()),
            (4, (&data.chunks[3]).into()),
            (5, (&data.labels).into()),
            (6, crops),
            (7, input),
            (8, labels),
        ],
        grid(pixels),
        // C channels × (bilinear 8 + normalise 2) per pixel.
        10 * c * pixels as u64,
        (pixels as u64) * (4 * c + 4 * c) + 32 * batch as u64,
    )
}
