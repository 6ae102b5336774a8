//! Launcher for `shaders/augment.wgsl`.

use crate::data::GpuDataset;
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::params::AugmentParams;

/// Builds `batch` inputs (NHWC f32) and labels from `data` and the crops in `crops`
/// (`8·batch` u32, see `data::Crop::words`).
pub fn batch(
    gpu: &Gpu,
    batch: u32,
    data: &GpuDataset,
    crops: BufSlice<'_>,
    input: BufSlice<'_>,
    labels: BufSlice<'_>,
) -> Dispatch {
    let p = AugmentParams::new(batch, data.chunk_images);
    let u = gpu.uniform("augment.params", &p);
    let pixels = batch * 32 * 32;
    Dispatch::new(
        gpu,
        "augment",
        "augment_batch",
        &u,
        &[
            (1, (&data.chunks[0]).into()),
            (2, (&data.chunks[1]).into()),
            (3, (&data.labels).into()),
            (4, crops),
            (5, input),
            (6, labels),
        ],
        grid(pixels),
        // 3 channels × (bilinear 8 + normalise 2) per pixel.
        30 * pixels as u64,
        (pixels as u64) * (12 + 12) + 32 * batch as u64,
    )
}
