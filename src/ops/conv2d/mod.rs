//! 2-D convolution (any kernel, stride, padding; NHWC input, HWIO weight): the uniform and
//! its shape arithmetic, the kernel choice, and beside it the launchers (`gpu`), the CPU twin
//! (`cpu`), Winograd F(4x4, 3x3) (`winograd`) and the shaders: `conv2d.wgsl` (register tiles),
//! `conv2d_wg.wgsl` (workgroup tiles), the subgroup kernels by direction
//! (`conv2d_sg_{forward,backward_input,backward_weight}.wgsl`, Winograd's GEMMs in
//! `winograd_gemm_sg.wgsl`, all after `conv2d_sg_common.wgsl`) and `winograd.wgsl` (transforms);
//! `conv2d_common.wgsl` goes in front of each. Lab notes: docs/notes/subgroup-kernels.md,
//! docs/notes/winograd.md, docs/notes/workgroup-kernels.md.

pub mod cpu;
pub mod gpu;
pub mod winograd;

use bytemuck::{Pod, Zeroable};

use super::{Padding, Window};
use crate::caps::Caps;

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
    /// 1: the subgroup kernels ([`sg_shader`]) take their tiles from the device's tile queue
    /// instead of from their place in the grid (set by the launcher on CPU-type adapters).
    pub queue: u32,
    /// 1 (with `relu` and `pool`): the forward stores the signs of its output as a bit mask
    /// (`ceil(O/32)` u32 words per pixel) instead of the output, which is then read only as the
    /// fused pool backward's ReLU mask (`conv2d_sg_forward.wgsl` `store_output_tile`).
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
    /// Tiles of `tile` input pixels of the input-gradient kernels of
    /// `conv2d_sg_backward_input.wgsl` (32), `conv2d_wg.wgsl` (64) and `conv2d.wgsl` (4): the
    /// pixels are tiled per stride phase ((y + pad_t) mod SH, (x + pad_l) mod SW), each phase's
    /// pixels (N images of at most ceil(H/SH) × ceil(W/SW)) on their own tiles (`stride_phase`
    /// in `conv2d_common.wgsl`). Unstrided: one phase, `ceil(N·H·W / tile)` tiles as without
    /// phases.
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
    /// The input gradient's GEMM and transforms (`ops::conv2d::winograd::gpu::backward_input`): the
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

/// The forward kernel for `p` on a device with `caps` (pure: the planner prints it, the
/// launcher binds it).
pub fn select_forward(caps: &Caps, p: &Conv2dParams) -> &'static str {
    if caps.workgroup_tiled() {
        return if p.c.is_multiple_of(4) && vec4(p) {
            "conv2d_forward_wg_vec4"
        } else {
            "conv2d_forward_wg"
        };
    }
    match (caps.conv_sg(p), p.c.is_multiple_of(4), vec4(p)) {
        // At most 16 output channels: 16-channel tiles (the 2×2-pool path keeps 32).
        (true, true, _) if p.o <= 16 && p.pool == 0 => "conv2d_forward_sg_c4_o16",
        (true, true, _) => "conv2d_forward_sg_c4",
        (true, false, _) if p.c == 3 => "conv2d_forward_sg_c3",
        (true, false, _) => "conv2d_forward_sg",
        (false, _, true) => "conv2d_forward_vec4",
        (false, _, false) => "conv2d_forward",
    }
}

/// The input-gradient kernel.
pub fn select_backward_input(caps: &Caps, p: &Conv2dParams) -> &'static str {
    if caps.workgroup_tiled() {
        if vec4(p) {
            "conv2d_backward_input_wg_vec4"
        } else {
            "conv2d_backward_input_wg"
        }
    } else if caps.conv_sg(p) && p.c.is_multiple_of(4) && p.c <= 16 {
        // 16-channel tiles: the 32-channel ones would leave half the lanes idle or more.
        "conv2d_backward_input_sg_c16"
    } else if caps.conv_sg(p) && p.c.is_multiple_of(4) {
        "conv2d_backward_input_sg"
    } else if vec4(p) && p.c >= 8 {
        // With few input channels the 8-wide channel tiles are mostly idle: keep 4×4 there.
        "conv2d_backward_input_vec4"
    } else {
        "conv2d_backward_input"
    }
}

/// The split-K kernel of the weight gradient (then `conv2d_backward_weight_reduce`).
pub fn select_backward_weight(caps: &Caps, p: &Conv2dParams) -> &'static str {
    if caps.workgroup_tiled() {
        if p.c.is_multiple_of(4) && vec4(p) {
            "conv2d_backward_weight_wg_vec4"
        } else {
            "conv2d_backward_weight_wg"
        }
    } else if caps.conv_sg(p) && p.o <= 16 && p.c.is_multiple_of(4) {
        "conv2d_backward_weight_sg_o16_c4"
    } else if caps.conv_sg(p) && p.o <= 16 {
        "conv2d_backward_weight_sg_o16"
    } else if caps.conv_sg(p) && p.c.is_multiple_of(4) {
        "conv2d_backward_weight_sg_c4"
    } else if caps.conv_sg(p) {
        "conv2d_backward_weight_sg"
    } else if vec4(p) && p.c.is_multiple_of(4) {
        "conv2d_backward_weight_c4"
    } else if vec4(p) {
        "conv2d_backward_weight_vec4"
    } else {
        "conv2d_backward_weight"
    }
}

/// The shader module that holds subgroup entry point `entry` (a `select_*` choice for a device
/// where [`Caps::conv_sg`] holds, or a Winograd GEMM): the subgroup kernels are one shader per
/// direction, each after `conv2d_common.wgsl` and `conv2d_sg_common.wgsl` (gpu/shaders.rs).
pub fn sg_shader(entry: &str) -> &'static str {
    if entry.starts_with("winograd_gemm") {
        "winograd_gemm_sg"
    } else if entry.starts_with("conv2d_forward_sg") {
        "conv2d_sg_forward"
    } else if entry.starts_with("conv2d_backward_input_sg") {
        "conv2d_sg_backward_input"
    } else if entry.starts_with("conv2d_backward_weight_sg") {
        "conv2d_sg_backward_weight"
    } else {
        panic!("{entry} is not a subgroup convolution entry point")
    }
}

/// The vec4 variants need the output channels in whole vec4s.
pub(crate) fn vec4(p: &Conv2dParams) -> bool {
    p.o.is_multiple_of(4)
}

/// The convolution rules of a device (split-K, the subgroup kernels, the fused 2x2 pool).
impl Caps {
    /// Split-K partial sums of the conv weight gradients: a CPU-type adapter has few lanes to
    /// fill and pays for the partials' traffic (both the split-K kernel and the reduction get
    /// slower with more splits on lavapipe; docs/notes/planner.md); a GPU wants many
    /// independent sums.
    /// The workgroup-tiled kernels size the split by their tile count: enough splits for
    /// about 512 workgroups (4 per SM of the largest GPUs), each split at least 256 output
    /// pixels (16 K-slices) so the partials' traffic stays small beside the multiply-adds.
    /// Never more splits than fit one storage binding (`[splits][KH·KW·C + 1][O]` floats): a
    /// wide layer (VGG's 512 → 512) then takes fewer splits instead of failing to plan.
    pub fn conv_splits(&self, p: &Conv2dParams) -> u32 {
        let per_split = 4 * (p.weight_rows() as u64 + 1) * p.o as u64;
        let fit = (self.max_binding / per_split).clamp(1, u32::MAX as u64) as u32;
        self.preferred_conv_splits(p).min(fit)
    }
    fn preferred_conv_splits(&self, p: &Conv2dParams) -> u32 {
        if self.workgroup_tiled() {
            let tiles = (p.weight_rows() + 1).div_ceil(64) * p.o.div_ceil(64);
            crate::caps::WG_TARGET_GROUPS
                .div_ceil(tiles)
                .min(p.pixels().div_ceil(256))
                .max(1)
        } else if self.cpu {
            32
        } else {
            256
        }
    }
    /// Whether the subgroup conv kernels run this convolution (whole vec4s of output channels).
    pub fn conv_sg(&self, p: &Conv2dParams) -> bool {
        self.subgroup8() && p.o.is_multiple_of(4)
    }
    /// Whether conv → 2×2 pool runs as one kernel (subgroup kernels, 2×4-pixel tiles fit).
    pub fn conv_pool2(&self, p: &Conv2dParams) -> bool {
        self.conv_sg(p) && p.can_pool2()
    }
}
