//! Launcher for `softmax_ce.wgsl`.

use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::SoftmaxCeParams;

const SHADER: &str = "softmax_ce";

/// Buffers of one softmax cross-entropy: `row_stats` holds `2·n` values, `stats` and `totals` 3.
pub struct SoftmaxCeBuffers<'a> {
    pub logits: BufSlice<'a>,
    pub labels: BufSlice<'a>,
    pub row_stats: BufSlice<'a>,
    pub stats: BufSlice<'a>,
    pub totals: BufSlice<'a>,
}

fn reduce(gpu: &Gpu, p: &SoftmaxCeParams, u: &wgpu::Buffer, b: &SoftmaxCeBuffers<'_>) -> Dispatch {
    Dispatch::new(
        gpu,
        SHADER,
        super::REDUCE,
        u,
        &[(3, b.row_stats), (5, b.stats), (6, b.totals)],
        [1, 1, 1],
        2 * p.n as u64,
        8 * p.n as u64 + 24,
    )
}

/// Per-row loss and correctness, then the batch reduction: [rows, reduce].
pub fn forward(gpu: &Gpu, p: &SoftmaxCeParams, b: &SoftmaxCeBuffers<'_>) -> [Dispatch; 2] {
    let u = gpu.uniform("softmax_ce.params", p);
    let rows = Dispatch::new(
        gpu,
        SHADER,
        super::FORWARD,
        &u,
        &[(1, b.logits), (2, b.labels), (3, b.row_stats)],
        grid(p.n),
        4 * (p.n * p.classes) as u64,
        4 * (p.n * p.classes + 3 * p.n) as u64,
    );
    let red = reduce(gpu, p, &u, b);
    [rows, red]
}

/// As [`forward`], and the gradient of the mean loss w.r.t. the logits into `dlogits` (=).
pub fn backward(
    gpu: &Gpu,
    p: &SoftmaxCeParams,
    b: &SoftmaxCeBuffers<'_>,
    dlogits: BufSlice<'_>,
) -> [Dispatch; 2] {
    let u = gpu.uniform("softmax_ce.params", p);
    let rows = Dispatch::new(
        gpu,
        SHADER,
        super::BACKWARD,
        &u,
        &[(1, b.logits), (2, b.labels), (3, b.row_stats), (4, dlogits)],
        grid(p.n),
        6 * (p.n * p.classes) as u64,
        4 * (2 * p.n * p.classes + 3 * p.n) as u64,
    );
    let red = reduce(gpu, p, &u, b);
    [rows, red]
}
