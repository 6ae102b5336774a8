//! Launcher for `batchnorm.wgsl` (Flax `nn.BatchNorm`). Training runs three dispatches
//! forward (partial statistics, finalize, normalise) and up to three backward (partial sums,
//! finalize, dx); `partials` is the scratch of `p.partials_len()` elements both share.

use super::{backward_stats_entry, forward_entries, select, stats_entry, vec4};
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::BatchNormParams;

const SHADER: &str = "batchnorm";

/// The tensors of a batch-norm forward: `x` and `y` hold `p.count()` values, the rest `p.c`.
/// `running_mean` and `running_var` are updated in place by a training forward and only read by
/// an evaluation forward. With `residual` (`p.count()` values) the forward adds it to the
/// normalised value before the ReLU: a residual block's add fused into the batch norm that
/// produces one of its operands (`*_add` entry points).
#[derive(Clone, Copy, Debug)]
pub struct BatchNormBuffers<'a> {
    pub x: BufSlice<'a>,
    pub residual: Option<BufSlice<'a>>,
    pub scale: BufSlice<'a>,
    pub bias: BufSlice<'a>,
    pub running_mean: BufSlice<'a>,
    pub running_var: BufSlice<'a>,
    pub y: BufSlice<'a>,
}

/// The tensors of a batch-norm backward. With `p.relu = 1` the gradient is masked by the fused
/// ReLU, whose input the kernels recompute from `x`, `saved`, `scale` and `bias` with the
/// forward's roundings; `saved` is the training forward's [mean | invstd] (`2·p.c` values);
/// `dscale` and `dbias` may be slices of one gradient buffer; `dx` is skipped when `None`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormBackwardBuffers<'a> {
    pub dout: BufSlice<'a>,
    pub x: BufSlice<'a>,
    pub scale: BufSlice<'a>,
    pub bias: BufSlice<'a>,
    pub saved: BufSlice<'a>,
    pub dscale: BufSlice<'a>,
    pub dbias: BufSlice<'a>,
    pub dx: Option<BufSlice<'a>>,
}

/// The element-wise forward's bindings: x, y and (when given) the residual.
fn forward_io<'a>(p: &BatchNormParams, b: &BatchNormBuffers<'a>) -> Vec<(u32, BufSlice<'a>)> {
    let [xb, yb, rb] = if vec4(p) { [17, 18, 25] } else { [1, 9, 24] };
    let mut io = vec![(xb, b.x), (yb, b.y)];
    io.extend(b.residual.map(|r| (rb, r)));
    io
}

/// Rows each invocation of the element-wise kernels handles (`ROWS_PER` in the shader).
const ROWS_PER: u32 = 8;

fn elementwise_threads(p: &BatchNormParams) -> u32 {
    let width = if vec4(p) { p.c / 4 } else { p.c };
    p.rows.div_ceil(ROWS_PER) * width
}

/// Training forward: [partial statistics, finalize (`saved` =, running statistics updated in
/// place), `y` = normalised (+ReLU)].
pub fn forward_train(
    gpu: &Gpu,
    p: &BatchNormParams,
    b: &BatchNormBuffers<'_>,
    partials: BufSlice<'_>,
    saved: BufSlice<'_>,
) -> Vec<Dispatch> {
    let u = gpu.uniform("batchnorm.params", p);
    let (n, c, pl) = (p.count() as u64, p.c as u64, p.partials_len() as u64);
    let entry = stats_entry(p);
    let (bindings, threads) = if vec4(p) {
        ([(17, b.x), (26, partials)], p.chunks * p.c / 4)
    } else {
        ([(1, b.x), (4, partials)], p.chunks * p.c)
    };
    let stats = Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(threads),
        4 * n,
        // Two passes over x (the second mostly from cache) and the partials.
        4 * (2 * n + pl),
    );
    let finalize = Dispatch::new(
        gpu,
        SHADER,
        super::STATS_FINALIZE,
        &u,
        &[
            (4, partials),
            (5, saved),
            (7, b.running_mean),
            (8, b.running_var),
        ],
        grid(p.c),
        8 * pl,
        4 * (pl + 6 * c),
    );
    let entry = forward_entries(p, b.residual.is_some())[0];
    let res = b.residual.is_some() as u64;
    let mut bindings = forward_io(p, b);
    bindings.extend([(2, b.scale), (3, b.bias), (6, saved)]);
    let normalise = Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &bindings,
        grid(elementwise_threads(p)),
        (3 + res + p.relu as u64) * n,
        4 * ((2 + res) * n + 4 * c),
    );
    vec![stats, finalize, normalise]
}

/// Evaluation forward: `y` = normalised with the running statistics (+ residual) (+ReLU) (=).
pub fn forward_eval(gpu: &Gpu, p: &BatchNormParams, b: &BatchNormBuffers<'_>) -> Dispatch {
    let u = gpu.uniform("batchnorm.params", p);
    let n = p.count() as u64;
    let res = b.residual.is_some() as u64;
    let mut bindings = forward_io(p, b);
    bindings.extend([
        (2, b.scale),
        (3, b.bias),
        (22, b.running_mean),
        (23, b.running_var),
    ]);
    Dispatch::new(
        gpu,
        SHADER,
        forward_entries(p, b.residual.is_some())[1],
        &u,
        &bindings,
        grid(elementwise_threads(p)),
        (3 + res + p.relu as u64) * n,
        4 * ((2 + res) * n + 4 * p.c as u64),
    )
}

/// Training backward: [partial sums of g and g·(x − mean), finalize (`dscale`, `dbias` =),
/// `dx` (=; only when `b.dx` is given)].
pub fn backward(
    gpu: &Gpu,
    p: &BatchNormParams,
    b: &BatchNormBackwardBuffers<'_>,
    partials: BufSlice<'_>,
) -> Vec<Dispatch> {
    let u = gpu.uniform("batchnorm.params", p);
    let (n, c, pl) = (p.count() as u64, p.c as u64, p.partials_len() as u64);
    let reads = 2;
    let entry = backward_stats_entry(p);
    let ([dout_b, x_b, part_b], threads) = if vec4(p) {
        ([19, 17, 26], p.chunks * p.c / 4)
    } else {
        ([10, 1, 4], p.chunks * p.c)
    };
    let stats = Dispatch::new(
        gpu,
        SHADER,
        entry,
        &u,
        &[
            (dout_b, b.dout),
            (x_b, b.x),
            (2, b.scale),
            (3, b.bias),
            (6, b.saved),
            (part_b, partials),
        ],
        grid(threads),
        4 * n,
        4 * (reads * n + pl),
    );
    let finalize = Dispatch::new(
        gpu,
        SHADER,
        super::BACKWARD_FINALIZE,
        &u,
        &[(4, partials), (6, b.saved), (12, b.dscale), (13, b.dbias)],
        grid(p.c),
        pl,
        4 * (pl + 3 * c),
    );
    let mut out = vec![stats, finalize];
    if let Some(dx) = b.dx {
        let [dout_b, x_b, dx_b] = if vec4(p) { [19, 17, 21] } else { [10, 1, 16] };
        out.push(Dispatch::new(
            gpu,
            SHADER,
            select(p)[2],
            &u,
            &[
                (dout_b, b.dout),
                (x_b, b.x),
                (2, b.scale),
                (3, b.bias),
                (6, b.saved),
                (14, b.dscale),
                (15, b.dbias),
                (dx_b, dx),
            ],
            grid(elementwise_threads(p)),
            8 * n,
            4 * ((reads + 1) * n + 5 * c),
        ));
    }
    out
}
