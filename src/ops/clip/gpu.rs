//! Launcher for `clip.wgsl`: optax.clip_by_global_norm over the flat gradient buffer.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::ClipParams;

const SHADER: &str = "clip";

/// [partial sums of squares, the norm (`norm` = one float), the scaling of `grad` in place].
/// `partials` holds `p.chunks` floats.
pub fn clip_by_global_norm(
    gpu: &Gpu,
    p: &ClipParams,
    grad: BufSlice<'_>,
    partials: BufSlice<'_>,
    norm: BufSlice<'_>,
) -> Vec<Dispatch> {
    let u = gpu.uniform("clip.params", p);
    let n = p.count as u64;
    vec![
        Dispatch::new(
            gpu,
            SHADER,
            "clip_partial",
            &u,
            &[(1, grad), (2, partials)],
            grid(p.chunks),
            2 * n,
            4 * n,
        ),
        Dispatch::new(
            gpu,
            SHADER,
            "clip_finalize",
            &u,
            &[(6, partials), (3, norm)],
            [1, 1, 1],
            p.chunks as u64,
            4 * p.chunks as u64,
        ),
        Dispatch::new(
            gpu,
            SHADER,
            "clip_scale",
            &u,
            &[(4, grad), (5, norm)],
            grid(p.count),
            2 * n,
            8 * n,
        ),
    ]
}
