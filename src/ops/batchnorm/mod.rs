//! Batch normalisation (Flax `nn.BatchNorm`), with the residual add and ReLU it can fuse.

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// Batch normalisation (Flax `nn.BatchNorm`) over `rows` rows of `c` channels: an NHWC activation
/// is N·H·W rows, a flat `[N, F]` one N rows of F. Training reduces each channel over all rows
/// in `chunks` chunks of `chunk` rows (the last one may be shorter): a partial kernel per
/// (chunk, channel), then a fixed-order combination per channel, so the result is the same bits
/// every run and no float atomics are needed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BatchNormParams {
    pub rows: u32,
    pub c: u32,
    /// Rows per partial-reduction chunk.
    pub chunk: u32,
    /// `ceil(rows / chunk)`: no chunk is empty.
    pub chunks: u32,
    /// Running statistics: `running = momentum·running + decay·batch` (Flax's form).
    pub momentum: f32,
    pub epsilon: f32,
    /// 1: ReLU fused into the forward's output (and the backward masks with it).
    pub relu: u32,
    /// `1 − momentum`, rounded to f32 once from the decimal momentum (see [`decimal`]): the
    /// factor Flax's update gives the batch statistic, where `1 − 0.99f` would be 1e-6 off.
    pub decay: f32,
    /// 0: no trainable scale (`nn.BatchNorm(use_scale=False)`): the kernels multiply by 1,
    /// and the backward keeps Σ g·x̂ (which the input gradient needs) in its scratch's tail.
    pub use_scale: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// The decimal a user wrote for an f32 setting (its shortest round-trip form: 0.99f → 0.99),
/// so that `1 − momentum` is computed as Flax computes it from the Python float.
pub fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

impl BatchNormParams {
    /// Flax's defaults.
    pub const MOMENTUM: f32 = 0.99;
    pub const EPSILON: f32 = 1e-5;
    /// Partial-reduction invocations (chunks × channels) to aim for: enough to fill a GPU.
    const TARGET_INVOCATIONS: u32 = 8192;
    /// Fewest rows per chunk: each invocation does real work, and the scratch stays at most
    /// 1/16 of the activation.
    const MIN_CHUNK: u32 = 32;

    pub fn new(rows: u32, c: u32, momentum: f32, epsilon: f32) -> Self {
        assert!(rows > 0 && c > 0, "batchnorm needs rows, c > 0");
        // The element-wise kernels step an index past the end by up to rows·c / 8: keep the
        // whole range within u32.
        assert!(
            (rows as u64) * (c as u64) <= 1 << 31,
            "batchnorm: rows·c must be at most 2^31"
        );
        let want = Self::TARGET_INVOCATIONS.div_ceil(c);
        let chunks = want.min(rows.div_ceil(Self::MIN_CHUNK)).max(1);
        let chunk = rows.div_ceil(chunks);
        Self {
            rows,
            c,
            chunk,
            chunks: rows.div_ceil(chunk),
            momentum,
            epsilon,
            relu: 0,
            decay: (1.0 - decimal(momentum)) as f32,
            use_scale: 1,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }
    /// The same layer without a trainable scale (`use_scale=False`).
    pub fn without_scale(mut self) -> Self {
        self.use_scale = 0;
        self
    }
    /// The same layer with ReLU fused into the forward's output.
    pub fn with_relu(mut self) -> Self {
        self.relu = 1;
        self
    }
    /// Elements of the activation: `rows·c`.
    pub fn count(&self) -> usize {
        self.rows as usize * self.c as usize
    }
    /// f32 elements of the reduction scratch: two values per (chunk, channel).
    pub fn partials_len(&self) -> usize {
        2 * self.chunks as usize * self.c as usize
    }
    /// The backward's scratch: the partials, then (without a scale) Σ g·x̂ per channel.
    pub fn backward_scratch_len(&self) -> usize {
        self.partials_len()
            + if self.use_scale == 0 {
                self.c as usize
            } else {
                0
            }
    }
}

/// Whether the element-wise kernels run four channels per invocation (`*_vec4`).
pub fn vec4(p: &BatchNormParams) -> bool {
    p.c.is_multiple_of(4)
}

/// The element-wise entry points for `p`: (train forward, eval forward, backward input).
pub fn select(p: &BatchNormParams) -> [&'static str; 3] {
    if vec4(p) {
        [
            "batchnorm_forward_vec4",
            "batchnorm_forward_eval_vec4",
            "batchnorm_backward_input_vec4",
        ]
    } else {
        [
            "batchnorm_forward",
            "batchnorm_forward_eval",
            "batchnorm_backward_input",
        ]
    }
}

/// The forward entry points (train, eval) for `p`, with the residual add fused or not.
pub fn forward_entries(p: &BatchNormParams, residual: bool) -> [&'static str; 2] {
    match (vec4(p), residual) {
        (true, false) => ["batchnorm_forward_vec4", "batchnorm_forward_eval_vec4"],
        (false, false) => ["batchnorm_forward", "batchnorm_forward_eval"],
        (true, true) => [
            "batchnorm_forward_add_vec4",
            "batchnorm_forward_eval_add_vec4",
        ],
        (false, true) => ["batchnorm_forward_add", "batchnorm_forward_eval_add"],
    }
}

/// The statistics pass of the train forward (per chunk and channel).
pub fn stats_entry(p: &BatchNormParams) -> &'static str {
    if vec4(p) {
        "batchnorm_stats_vec4"
    } else {
        "batchnorm_stats"
    }
}

/// The backward's reduction pass (Σdy and Σdy·x̂ per chunk and channel).
pub fn backward_stats_entry(p: &BatchNormParams) -> &'static str {
    if vec4(p) {
        "batchnorm_backward_stats_vec4"
    } else {
        "batchnorm_backward_stats"
    }
}

/// The per-channel combination of the statistics' partial sums in chunk order (train forward),
/// and of the backward's (dscale, dbias).
pub const STATS_FINALIZE: &str = "batchnorm_stats_finalize";
pub const BACKWARD_FINALIZE: &str = "batchnorm_backward_finalize";
