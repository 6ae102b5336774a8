//! One `#[repr(C)]` params struct per op family. Each owns the shape arithmetic of its op and is,
//! byte for byte, the uniform its shader reads (the WGSL twin sits at the top of the shader; the
//! test `params_layout` checks size and alignment against naga's layout of that struct).
//!
//! Tensor layouts, written down once for the whole crate:
//! - activations: NHWC, row-major (`[n][y][x][c]`), f32;
//! - conv weights: HWIO (`[ky][kx][c][o]`), exactly Flax's `Conv.kernel`; conv bias `[o]`;
//! - dense weights: `[in][out]` (Flax's `Dense.kernel`), bias `[out]`;
//! - a flattened NHWC activation feeds a dense layer in (H, W, C) order, as `x.reshape(n, -1)` in Flax.
//!
//! Window geometry (convolutions and pools) follows `lax.conv_general_dilated` / `lax.reduce_window`:
//! output pixel `oy` reads input rows `oy·stride − pad_top + ky` for `ky < kernel`; rows outside the
//! image are padding (zero for convolutions and average pools).

use bytemuck::{Pod, Zeroable};

/// Padding of a convolution or pool along both spatial axes, as Flax accepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `lax`'s SAME: output `ceil(in / stride)`, total padding `max((out − 1)·stride + k − in, 0)`,
    /// the smaller half on top/left.
    Same,
    /// No padding: `out = (in − k) / stride + 1`.
    Valid,
    /// Explicit `[[top, bottom], [left, right]]`.
    Explicit([[u32; 2]; 2]),
}

impl Padding {
    /// (before, after) padding of one axis of length `size` with window `k` and stride `s`
    /// (`axis` 0: rows, 1: columns).
    pub fn resolve(&self, axis: usize, size: u32, k: u32, s: u32) -> (u32, u32) {
        match *self {
            Padding::Valid => (0, 0),
            Padding::Explicit(p) => (p[axis][0], p[axis][1]),
            Padding::Same => {
                let out = size.div_ceil(s);
                let total = ((out.max(1) - 1) * s + k).saturating_sub(size);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// The geometry of one sliding-window op along both axes: input size, window, stride, padding
/// (already resolved) and the output size. `None` when the padded input is smaller than the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [u32; 2],
    pub stride: [u32; 2],
    /// `[[top, bottom], [left, right]]`.
    pub pad: [[u32; 2]; 2],
    pub out: [u32; 2],
}

impl Window {
    pub fn new(
        h: u32,
        w: u32,
        kernel: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
    ) -> Option<Self> {
        let mut pad = [[0; 2]; 2];
        let mut out = [0; 2];
        for (axis, size) in [h, w].into_iter().enumerate() {
            let (k, s) = (kernel[axis], stride[axis]);
            if k == 0 || s == 0 {
                return None;
            }
            let (lo, hi) = padding.resolve(axis, size, k, s);
            let padded = size + lo + hi;
            if padded < k {
                return None;
            }
            pad[axis] = [lo, hi];
            out[axis] = (padded - k) / s + 1;
        }
        Some(Window {
            kernel,
            stride,
            pad,
            out,
        })
    }
}

/// Shape of a 2-D convolution (any kernel, stride and padding), NHWC input, HWIO weight, NHWC
/// output.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Conv2dParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub o: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    /// Padding above and left of the input (below and right follow from `out_h`, `out_w`).
    pub pad_t: u32,
    pub pad_l: u32,
    pub out_h: u32,
    pub out_w: u32,
    /// Split-K for the weight gradient: rows of the `N·OH·OW` reduction each partial sum covers.
    pub chunk: u32,
    /// Number of partial sums (`ceil(N·OH·OW / chunk)`).
    pub splits: u32,
    /// 1: the forward applies ReLU to its output (fused epilogue).
    pub relu: u32,
    /// 1: the forward also writes its output average-pooled 2×2 (fused epilogue; subgroup
    /// kernels only, see [`Conv2dParams::can_pool2`]).
    pub pool: u32,
    /// 1: the layer has a bias (forward adds it, the weight gradient writes its gradient).
    pub bias: u32,
    /// 1: the `conv2d_sg.wgsl` kernels take their tiles from the device's tile queue instead
    /// of from their place in the grid (set by the launcher on CPU-type adapters).
    pub queue: u32,
    /// 1 (with `relu` and `pool`): the forward stores the signs of its output as a bit mask
    /// (`ceil(O/32)` u32 words per pixel) instead of the output, which is then read only as the
    /// fused pool backward's ReLU mask (`conv2d_sg.wgsl` `store_output_tile`).
    pub mask: u32,
}

impl Conv2dParams {
    /// Target number of split-K partial sums for the weight gradient.
    const MAX_SPLITS: u32 = 256;
    const MIN_CHUNK: u32 = 64;

    /// A square stride-1 convolution with bias.
    pub fn new(n: u32, h: u32, w: u32, c: u32, o: u32, k: u32, padding: Padding) -> Self {
        Self::general(n, h, w, c, o, [k, k], [1, 1], padding)
            .expect("conv2d kernel larger than padded input")
    }

    /// Any kernel, stride and padding, with bias; `None` when the padded input is smaller than
    /// the kernel or a size is zero.
    #[allow(clippy::too_many_arguments)]
    pub fn general(
        n: u32,
        h: u32,
        w: u32,
        c: u32,
        o: u32,
        kernel: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
    ) -> Option<Self> {
        if n == 0 || h == 0 || w == 0 || c == 0 || o == 0 {
            return None;
        }
        let win = Window::new(h, w, kernel, stride, padding)?;
        let mut p = Self {
            n,
            h,
            w,
            c,
            o,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            pad_t: win.pad[0][0],
            pad_l: win.pad[1][0],
            out_h: win.out[0],
            out_w: win.out[1],
            chunk: 1,
            splits: 1,
            relu: 0,
            pool: 0,
            bias: 1,
            queue: 0,
            mask: 0,
        };
        let m = p.pixels();
        p.chunk = m.div_ceil(Self::MAX_SPLITS).max(Self::MIN_CHUNK);
        p.splits = m.div_ceil(p.chunk);
        Some(p)
    }
    /// The same convolution with the weight gradient's split-K set to about `splits` partial
    /// sums (each at least 64 pixels): more keeps a big GPU busy, fewer saves a CPU-type
    /// adapter the partials' memory traffic.
    pub fn with_splits(mut self, splits: u32) -> Self {
        let m = self.pixels();
        self.chunk = m.div_ceil(splits.max(1)).max(Self::MIN_CHUNK);
        self.splits = m.div_ceil(self.chunk);
        self
    }
    /// The same convolution with ReLU fused into the forward's output.
    pub fn with_relu(mut self) -> Self {
        self.relu = 1;
        self
    }
    /// The same convolution without a bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = 0;
        self
    }
    /// The same convolution whose forward also writes the 2×2 average pool of its output.
    pub fn with_pool2(mut self) -> Self {
        self.pool = 1;
        self
    }
    /// The same pooled convolution storing its output's signs as a bit mask instead of the
    /// output (see `mask`).
    pub fn with_relu_mask(mut self) -> Self {
        self.mask = 1;
        self
    }
    /// u32 words of the ReLU mask: `ceil(O/32)` per output pixel.
    pub fn relu_mask_len(&self) -> usize {
        self.pixels() as usize * self.o.div_ceil(32) as usize
    }
    /// Whether a 2×2 pool fits the subgroup kernels' 2×4-pixel tiles exactly.
    pub fn can_pool2(&self) -> bool {
        self.out_h.is_multiple_of(2) && self.out_w.is_multiple_of(4)
    }
    /// Elements of the pooled output (`[N, OH/2, OW/2, O]`).
    pub fn pooled_len(&self) -> usize {
        self.n as usize * (self.out_h / 2) as usize * (self.out_w / 2) as usize * self.o as usize
    }
    pub fn input_len(&self) -> usize {
        self.n as usize * self.h as usize * self.w as usize * self.c as usize
    }
    /// Rows of the weight matrix: `KH·KW·C`.
    pub fn weight_rows(&self) -> u32 {
        self.kh * self.kw * self.c
    }
    pub fn weight_len(&self) -> usize {
        self.weight_rows() as usize * self.o as usize
    }
    pub fn output_len(&self) -> usize {
        self.pixels() as usize * self.o as usize
    }
    /// Output pixels, the M of the implicit GEMM.
    pub fn pixels(&self) -> u32 {
        self.n * self.out_h * self.out_w
    }
    /// Tiles of `tile` input pixels of the input-gradient kernels of `conv2d_sg.wgsl` (16)
    /// and `conv2d_wg.wgsl` (64), `conv2d.wgsl` (4): the pixels are tiled per stride phase
    /// ((y + pad_t) mod SH, (x + pad_l) mod SW), each phase's pixels (N images of at most
    /// ceil(H/SH) × ceil(W/SW)) on their own tiles (`phase_tile` in the shaders). Unstrided:
    /// one phase, `ceil(N·H·W / tile)` tiles as without phases.
    pub fn input_phase_tiles(&self, tile: u32) -> u32 {
        let sub = self.h.div_ceil(self.sh) * self.w.div_ceil(self.sw);
        self.sh * self.sw * (self.n * sub).div_ceil(tile)
    }
    /// Length of the split-K scratch buffer of the weight gradient: `[splits][KH·KW·C + 1][O]`,
    /// the extra row holding the bias gradient (unused without a bias).
    pub fn partials_len(&self) -> usize {
        self.splits as usize * (self.weight_rows() as usize + 1) * self.o as usize
    }
    /// Multiply-adds of the forward pass counted over every kernel tap, padding taps included
    /// (the convention of the 3×-forward FLOP rule): 2·N·OH·OW·O·KH·KW·C.
    pub fn flops_forward(&self) -> u64 {
        2 * self.pixels() as u64 * self.o as u64 * self.weight_rows() as u64
    }
    /// Whether Winograd F(4×4, 3×3) computes this convolution (`winograd.wgsl`): a 3×3 kernel,
    /// stride 1, one pixel of padding on every side (output the input's size), whole vec4s of
    /// input and output channels.
    pub fn winograd_shape(&self) -> bool {
        self.kh == 3
            && self.kw == 3
            && self.sh == 1
            && self.sw == 1
            && self.pad_t == 1
            && self.pad_l == 1
            && self.out_h == self.h
            && self.out_w == self.w
            && self.c.is_multiple_of(4)
            && self.o.is_multiple_of(4)
    }
    /// Winograd tiles (4×4 output blocks): `N·ceil(H/4)·ceil(W/4)`.
    pub fn winograd_tiles(&self) -> u32 {
        self.n * self.h.div_ceil(4) * self.w.div_ceil(4)
    }
    /// The input gradient's GEMM and transforms (`gpu::ops::winograd::backward_input`): the
    /// output gradient's O channels in, C out, `c` and `o` swapped, no epilogue.
    pub fn winograd_transposed(&self) -> Self {
        Conv2dParams {
            c: self.o,
            o: self.c,
            relu: 0,
            pool: 0,
            bias: 0,
            mask: 0,
            ..*self
        }
    }
}

/// Average pooling (Flax `avg_pool`): any window, stride and padding; the sum over the window
/// (padding counts as zeros) divided by the full window size, as Flax's default
/// `count_include_pad=True`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AvgPoolParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_t: u32,
    pub pad_l: u32,
    pub out_h: u32,
    pub out_w: u32,
}

impl AvgPoolParams {
    /// Window = stride = `k`, no padding (Flax's `avg_pool(x, (k, k), (k, k))`).
    pub fn new(n: u32, h: u32, w: u32, c: u32, k: u32) -> Self {
        Self::general(n, h, w, c, [k, k], [k, k], Padding::Valid)
            .unwrap_or_else(|| panic!("avgpool window {k} larger than {h}x{w}"))
    }
    /// Any window, stride and padding; `None` when the padded input is smaller than the window.
    pub fn general(
        n: u32,
        h: u32,
        w: u32,
        c: u32,
        window: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
    ) -> Option<Self> {
        if n == 0 || h == 0 || w == 0 || c == 0 {
            return None;
        }
        let win = Window::new(h, w, window, stride, padding)?;
        Some(Self {
            n,
            h,
            w,
            c,
            kh: window[0],
            kw: window[1],
            sh: stride[0],
            sw: stride[1],
            pad_t: win.pad[0][0],
            pad_l: win.pad[1][0],
            out_h: win.out[0],
            out_w: win.out[1],
        })
    }
    /// Whether this is the 2×2, stride-2, unpadded pool of even sizes with whole vec4s of
    /// channels, which has straight-line kernels.
    pub fn is_k2(&self) -> bool {
        self.kh == 2
            && self.kw == 2
            && self.sh == 2
            && self.sw == 2
            && self.pad_t == 0
            && self.pad_l == 0
            && self.h.is_multiple_of(2)
            && self.w.is_multiple_of(2)
    }
    /// Whether the windows tile the input exactly (stride = window, no padding, every row and
    /// column in one window: global average pooling is one) with whole vec4s of channels,
    /// which has straight-line backward kernels.
    pub fn is_disjoint_vec4(&self) -> bool {
        self.sh == self.kh
            && self.sw == self.kw
            && self.pad_t == 0
            && self.pad_l == 0
            && self.h == self.out_h * self.kh
            && self.w == self.out_w * self.kw
            && self.c.is_multiple_of(4)
    }
    pub fn input_len(&self) -> usize {
        self.n as usize * self.h as usize * self.w as usize * self.c as usize
    }
    pub fn output_len(&self) -> usize {
        self.n as usize * self.out_h as usize * self.out_w as usize * self.c as usize
    }
}

/// Max pooling (Flax `max_pool`) has the same window geometry as average pooling; its shader
/// reads the same uniform (`PoolParams` in `maxpool.wgsl`).
pub type MaxPoolParams = AvgPoolParams;

/// Dense layer `y[M,N] = x[M,K] · w[K,N] + b[N]` (M = batch, K = inputs, N = outputs).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct DenseParams {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    /// 1: the forward applies ReLU to its output (fused epilogue).
    pub relu: u32,
    /// 1: the layer has a bias.
    pub bias: u32,
    pub _pad: [u32; 3],
}

impl DenseParams {
    pub fn new(m: u32, k: u32, n: u32) -> Self {
        assert!(m > 0 && k > 0 && n > 0, "dense needs m, k, n > 0");
        Self {
            m,
            k,
            n,
            relu: 0,
            bias: 1,
            _pad: [0; 3],
        }
    }
    /// The same layer with ReLU fused into the forward's output.
    pub fn with_relu(mut self) -> Self {
        self.relu = 1;
        self
    }
    /// The same layer without a bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = 0;
        self
    }
    pub fn flops_forward(&self) -> u64 {
        2 * self.m as u64 * self.k as u64 * self.n as u64
    }
    /// The same layer as a 1×1 convolution over M images of 1×1 pixels with K channels (the
    /// weight gradient unsplit: one split of M rows), for kernels shared with conv2d.
    pub fn as_conv(&self) -> Conv2dParams {
        let mut c =
            Conv2dParams::new(self.m, 1, 1, self.k, self.n, 1, Padding::Valid).with_splits(1);
        c.relu = self.relu;
        c.bias = self.bias;
        c
    }
}

/// Element-wise ops over `count` values (ReLU).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ElementwiseParams {
    pub count: u32,
    pub _pad0: [u32; 3],
}

impl ElementwiseParams {
    pub fn new(count: u32) -> Self {
        Self {
            count,
            _pad0: [0; 3],
        }
    }
}

/// Inverted dropout over `count` values (`dropout.wgsl`): the mask of element `i` is a hash of
/// (seed, layer, step, i).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct DropoutParams {
    pub count: u32,
    pub rate: f32,
    /// `1 / (1 − rate)`.
    pub scale: f32,
    pub seed: u32,
    /// The train step (Adam's 1-based count): a new mask every step.
    pub step: u32,
    /// The layer's index in the description: a different mask per layer.
    pub layer: u32,
    /// 1: training (mask and scale); 0: evaluation (identity).
    pub train: u32,
    pub _pad0: u32,
}

impl DropoutParams {
    pub fn new(count: u32, rate: f32, layer: u32) -> Self {
        assert!((0.0..1.0).contains(&rate), "dropout rate in [0, 1)");
        DropoutParams {
            count,
            rate,
            scale: 1.0 / (1.0 - rate),
            seed: 0,
            step: 1,
            layer,
            train: 1,
            _pad0: 0,
        }
    }
    /// The same layer at train step `step` of a run seeded `seed`.
    pub fn at(mut self, seed: u32, step: u32) -> Self {
        self.seed = seed;
        self.step = step;
        self
    }
    /// The same layer in evaluation mode (identity).
    pub fn eval(mut self) -> Self {
        self.train = 0;
        self
    }
}

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
    /// Running statistics: `running = momentum·running + (1 − momentum)·batch` (Flax's form).
    pub momentum: f32,
    pub epsilon: f32,
    /// 1: ReLU fused into the forward's output (and the backward masks with it).
    pub relu: u32,
    pub _pad: u32,
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
            _pad: 0,
        }
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
}

/// Element-wise `y = a + b` over `count` values, optionally followed by ReLU (residual
/// connections, gradient accumulation).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AddParams {
    pub count: u32,
    /// 1: `y = max(a + b, 0)`.
    pub relu: u32,
    pub _pad: [u32; 2],
}

impl AddParams {
    pub fn new(count: u32) -> Self {
        Self {
            count,
            relu: 0,
            _pad: [0; 2],
        }
    }
    /// The same sum followed by ReLU.
    pub fn with_relu(mut self) -> Self {
        self.relu = 1;
        self
    }
}

/// Softmax cross-entropy over `n` rows of `classes` logits with integer labels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct SoftmaxCeParams {
    pub n: u32,
    pub classes: u32,
    /// `1 / n`, the scale of the mean loss and of its gradient.
    pub inv_n: f32,
    /// Label smoothing α (optax.smooth_labels): targets `(1 − α)·onehot + α/classes`.
    pub smoothing: f32,
}

impl SoftmaxCeParams {
    pub fn new(n: u32, classes: u32) -> Self {
        assert!(n > 0 && classes > 0);
        Self {
            n,
            classes,
            inv_n: 1.0 / n as f32,
            smoothing: 0.0,
        }
    }
    /// The same loss against smoothed targets (training with `--label-smoothing`).
    pub fn with_smoothing(mut self, alpha: f32) -> Self {
        self.smoothing = alpha;
        self
    }
}

/// optax.clip_by_global_norm over `count` gradient values (`clip.wgsl`): the sum of squares in
/// `chunks` chunks of `chunk` values, then a fixed-order reduction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct ClipParams {
    pub count: u32,
    pub chunk: u32,
    pub chunks: u32,
    pub max_norm: f32,
}

impl ClipParams {
    /// Values per partial sum.
    pub const CHUNK: u32 = 1024;

    pub fn new(count: u32, max_norm: f32) -> Self {
        Self {
            count,
            chunk: Self::CHUNK,
            chunks: count.div_ceil(Self::CHUNK).max(1),
            max_norm,
        }
    }
}

/// One optimizer step over `count` parameters (`adam.wgsl`): Adam (optax defaults unless set;
/// `bc1 = 1 - b1^t`, `bc2 = 1 - b2^t`), AdamW's decoupled weight decay `wd`, or SGD with a
/// momentum trace (`sgd_update`); `masked = 1`: the decay of element i is scaled by the decay mask.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct AdamParams {
    pub count: u32,
    pub lr: f32,
    pub b1: f32,
    pub b2: f32,
    pub eps: f32,
    pub bc1: f32,
    pub bc2: f32,
    pub wd: f32,
    pub masked: u32,
    pub momentum: f32,
    pub nesterov: u32,
    pub _pad0: u32,
}

impl AdamParams {
    pub const B1: f32 = 0.9;
    pub const B2: f32 = 0.999;
    pub const EPS: f32 = 1e-8;

    /// Parameters of step `t` (1-based, as optax counts after its increment).
    pub fn new(count: u32, lr: f32, t: u32) -> Self {
        let t = t.clamp(1, i32::MAX as u32) as i32;
        Self {
            count,
            lr,
            b1: Self::B1,
            b2: Self::B2,
            eps: Self::EPS,
            bc1: 1.0 - Self::B1.powi(t),
            bc2: 1.0 - Self::B2.powi(t),
            wd: 0.0,
            masked: 0,
            momentum: 0.0,
            nesterov: 0,
            _pad0: 0,
        }
    }
}

/// Building one batch of inputs from the GPU-resident data set (`augment.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct AugmentParams {
    pub batch: u32,
    /// Images held by each image binding (the last holds the rest).
    pub chunk_images: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    /// Bytes of one image (`h·w·c`).
    pub image_bytes: u32,
    pub _pad: [u32; 2],
    /// Per channel (up to 4; unused lanes 0).
    pub mean: [f32; 4],
    /// `1 / std` per channel.
    pub inv_std: [f32; 4],
}

impl AugmentParams {
    pub fn new(
        batch: u32,
        chunk_images: u32,
        shape: crate::data::ImageShape,
        norm: &crate::data::Normalization,
    ) -> Self {
        let mut mean = [0.0; 4];
        let mut inv_std = [0.0; 4];
        for c in 0..(shape.c as usize).min(4) {
            mean[c] = norm.mean[c];
            inv_std[c] = 1.0 / norm.std[c];
        }
        Self {
            batch,
            chunk_images: chunk_images.max(1),
            h: shape.h,
            w: shape.w,
            c: shape.c,
            image_bytes: shape.bytes() as u32,
            _pad: [0; 2],
            mean,
            inv_std,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_covers_every_pixel_once() {
        for (n, h, w, splits) in [
            (1, 1, 1, 1),
            (3, 7, 5, 256),
            (128, 16, 16, 32),
            (128, 32, 32, 256),
            (2, 9, 9, 7),
        ] {
            let p = Conv2dParams::new(n, h, w, 3, 4, 3, Padding::Same).with_splits(splits);
            let m = p.pixels();
            assert!(p.chunk >= 1 && p.splits >= 1);
            assert!(p.splits * p.chunk >= m, "{p:?}");
            assert!((p.splits - 1) * p.chunk < m, "an empty split: {p:?}");
        }
    }

    #[test]
    fn padding_gives_the_expected_output_size() {
        let same = Conv2dParams::new(2, 7, 9, 3, 4, 5, Padding::Same);
        assert_eq!(
            (same.out_h, same.out_w, same.pad_t, same.pad_l),
            (7, 9, 2, 2)
        );
        let valid = Conv2dParams::new(2, 7, 9, 3, 4, 5, Padding::Valid);
        assert_eq!((valid.out_h, valid.out_w, valid.pad_t), (3, 5, 0));
        let pool = AvgPoolParams::new(1, 7, 8, 3, 2);
        assert_eq!((pool.out_h, pool.out_w), (3, 4));
        // lax SAME: out = ceil(in / s), the smaller half of the padding on top/left.
        let even = Conv2dParams::general(1, 7, 8, 3, 4, [2, 4], [2, 3], Padding::Same).unwrap();
        assert_eq!((even.out_h, even.out_w), (4, 3));
        // rows: total (4-1)·2+2-7 = 1 -> (0, 1); cols: (3-1)·3+4-8 = 2 -> (1, 1)
        assert_eq!((even.pad_t, even.pad_l), (0, 1));
        let explicit = Padding::Explicit([[2, 0], [1, 3]]);
        let e = Conv2dParams::general(1, 5, 5, 1, 1, [3, 3], [2, 1], explicit).unwrap();
        assert_eq!((e.out_h, e.out_w, e.pad_t, e.pad_l), (3, 7, 2, 1));
        assert!(Conv2dParams::general(1, 2, 2, 1, 1, [5, 5], [1, 1], Padding::Valid).is_none());
        let p = AvgPoolParams::general(1, 5, 5, 2, [3, 3], [2, 2], Padding::Same).unwrap();
        assert_eq!((p.out_h, p.out_w, p.pad_t, p.pad_l), (3, 3, 1, 1));
    }

    #[test]
    fn batchnorm_chunks_cover_every_row_once() {
        for (rows, c) in [
            (1, 1),
            (70, 3),
            (70, 1),
            (9, 37),
            (969, 5),
            (128 * 32 * 32, 16),
            (128 * 8 * 8, 64),
            (128, 4096),
            (1 << 20, 1),
        ] {
            let p = BatchNormParams::new(rows, c, 0.99, 1e-5);
            assert!(p.chunk >= 1 && p.chunks >= 1, "{p:?}");
            assert!(p.chunks * p.chunk >= rows, "{p:?}");
            assert!((p.chunks - 1) * p.chunk < rows, "an empty chunk: {p:?}");
            assert!(
                p.partials_len() <= 2 * (8192 + c as usize).max(p.count() / 16),
                "{p:?}"
            );
        }
        let p = BatchNormParams::new(128 * 32 * 32, 16, 0.99, 1e-5);
        assert!(p.chunks * p.c >= 4096, "too few invocations: {p:?}");
    }

    /// Input-gradient tiles by stride phase: unstrided layers (dense ones as 1×1 convs on 1×1
    /// images included) keep ceil(N·H·W / tile) tiles, strided ones cover every phase's pixels
    /// with at most one partial tile per phase.
    #[test]
    fn input_phase_tiles_cover_the_pixels_without_waste() {
        let dense = DenseParams::new(128, 4096, 256).as_conv();
        assert_eq!(dense.input_phase_tiles(16), 8);
        for (p, tile) in [
            (Conv2dParams::new(128, 16, 16, 32, 64, 3, Padding::Same), 16),
            (Conv2dParams::new(3, 9, 7, 5, 8, 3, Padding::Valid), 4),
        ] {
            assert_eq!(p.input_phase_tiles(tile), (p.n * p.h * p.w).div_ceil(tile));
        }
        for (stride, tile) in [([2, 2], 16), ([3, 2], 64), ([2, 3], 4), ([1, 2], 16)] {
            let p =
                Conv2dParams::general(128, 32, 31, 16, 32, [3, 3], stride, Padding::Same).unwrap();
            let tiles = p.input_phase_tiles(tile);
            // Every pixel's slot in its phase (the shaders' layout: images of ceil(H/SH) ×
            // ceil(W/SW), row-major) falls inside that phase's share of the tiles.
            let (hq, wq) = (p.h.div_ceil(p.sh), p.w.div_ceil(p.sw));
            let per = tiles / (p.sh * p.sw);
            for n in 0..p.n {
                for y in 0..p.h {
                    for x in 0..p.w {
                        // The first row (column) of this pixel's phase, then its index there.
                        let y0 = ((y + p.pad_t) % p.sh + p.sh - p.pad_t % p.sh) % p.sh;
                        let x0 = ((x + p.pad_l) % p.sw + p.sw - p.pad_l % p.sw) % p.sw;
                        let slot = (n * hq + (y - y0) / p.sh) * wq + (x - x0) / p.sw;
                        assert!(slot < per * tile, "{stride:?}: pixel {n},{y},{x}");
                    }
                }
            }
            assert!(tiles * tile >= p.n * p.h * p.w, "{stride:?}: too few lanes");
            assert!(
                (tiles * tile) as f64 <= 1.25 * (p.n * p.h * p.w) as f64,
                "{stride:?}: {tiles} tiles of {tile} for {} pixels",
                p.n * p.h * p.w
            );
        }
    }

    #[test]
    fn adam_bias_corrections_follow_the_step() {
        let p = AdamParams::new(10, 1e-3, 1);
        assert!((p.bc1 - 0.1).abs() < 1e-6 && (p.bc2 - 0.001).abs() < 1e-6);
        let p = AdamParams::new(10, 1e-3, 1000);
        assert!((p.bc1 - 1.0).abs() < 1e-6 && (p.bc2 - (1.0 - 0.999f32.powi(1000))).abs() < 1e-6);
    }
}
