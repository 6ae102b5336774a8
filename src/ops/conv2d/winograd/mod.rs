//! Winograd F(4x4, 3x3) for 3x3 stride-1 SAME convolutions: where it runs, its scratch sizes,
//! launchers (`gpu`) and CPU twin (`cpu`); the shaders are `winograd.wgsl` (transforms) and
//! `winograd_gemm_sg.wgsl` (the GEMMs) beside the convolution's. Lab notes:
//! docs/notes/winograd.md.

pub mod cpu;
pub mod gpu;

use crate::caps::Caps;
use crate::ops::Conv2dParams;

/// Points of the transformed 6×6 tile: one GEMM each.
pub const POINTS: usize = 36;

/// Whether the Winograd kernels compute convolution `p` (any direction) on a device with
/// `caps`: the subgroup kernels run there, and `p` is a 3×3 stride-1 "SAME" convolution with
/// whole vec4s of channels ([`Conv2dParams::winograd_shape`]).
pub fn applies(caps: &Caps, p: &Conv2dParams) -> bool {
    caps.conv_sg(p) && p.winograd_shape()
}

/// Whether the Winograd forward can also fuse a 2×2 average pool (H, W even: a 4×4 tile holds
/// whole windows) and, with it, store the ReLU mask instead of the output (O % 32 == 0: a
/// subgroup's 8 lanes are 32 channels of one tile).
pub fn can_pool2(p: &Conv2dParams) -> bool {
    p.h.is_multiple_of(2) && p.w.is_multiple_of(2)
}

pub fn can_mask(p: &Conv2dParams) -> bool {
    can_pool2(p) && p.o.is_multiple_of(32)
}

/// Whether the forward computes the products and the output transform in one kernel
/// (`winograd_gemm_out_sg`: M stays in registers and on the stack) rather than a GEMM into the
/// scratch M and `winograd_output` after it. The fused kernel holds 24 tiles per subgroup
/// where the GEMM holds 32, and adds the transform's multiply-adds to the GEMM's. It pays while
/// the output transform's traffic (36 values per tile and output channel, stored and loaded
/// again, lane by lane on lavapipe) outweighs that. The traffic saved does not depend on the
/// input channels and the fused GEMM's extra cost grows with them; they cross above 128 input
/// channels (`examples/winograd.rs` times both forms; docs/notes/winograd.md).
pub fn fuses_output(p: &Conv2dParams) -> bool {
    p.c <= 128
}

/// The forward's GEMM entry point: with the output transform fused ([`fuses_output`]) in
/// 16-channel tiles for at most 16 output channels without a pool (lanes own 2 channels, as
/// the direct `_o16` kernels; the 32-channel tiles would leave half the lanes idle there) or in
/// 32-channel tiles, else the plain GEMM (`winograd_output` after it).
pub fn forward_gemm(p: &Conv2dParams) -> &'static str {
    if !fuses_output(p) {
        "winograd_gemm_sg"
    } else if p.o <= 16 && p.pool == 0 {
        "winograd_gemm_out_sg_o16"
    } else {
        "winograd_gemm_out_sg"
    }
}

/// Elements of the three scratch tensors of each direction: forward `[U, V, M]` (transformed
/// weights, inputs, products; no M, 0, when the forward [`fuses_output`]), input gradient `[Uᵀ, D, E]` (transposed U, transformed output
/// gradients, their products), weight gradient `[V, D, S]` (transformed inputs and output
/// gradients, the gradient in the transformed domain).
pub fn scratch_lens(p: &Conv2dParams) -> ([usize; 3], [usize; 3], [usize; 3]) {
    let t = p.winograd_tiles() as usize;
    let (c, o) = (p.c as usize, p.o as usize);
    (
        [
            POINTS * c * o,
            POINTS * t * c,
            if fuses_output(p) { 0 } else { POINTS * t * o },
        ],
        [POINTS * c * o, POINTS * t * o, POINTS * t * c],
        [POINTS * t * c, POINTS * t * o, POINTS * c * o],
    )
}

/// Where Winograd F(4x4, 3x3) runs on a device.
impl Caps {
    /// Whether convolution `p` runs as Winograd F(4×4, 3×3) in every direction (`winograd.wgsl`,
    /// the GEMMs of `winograd_gemm_sg.wgsl`): on the subgroup kernels, for a 3×3 stride-1 SAME
    /// convolution with at least 32 input and output channels (whole vec4s). There it beats the
    /// direct kernels in all three directions on lavapipe; with 16 channels its 32-channel tiles
    /// are half empty and the direct kernels win (`examples/winograd.rs` times both;
    /// docs/notes/winograd.md). Maps smaller than 8×8 (VGG's last stages) stay direct: there the
    /// 6×6 input blocks are mostly padding, and the transforms' rounding (F(4×4, 3×3) scales
    /// values by up to ~100 before the products and cancels after them) is largest against the
    /// gradients' size.
    pub fn winograd_conv(&self, p: &Conv2dParams) -> bool {
        self.winograd
            && self.winograd_fits(p)
            && self.conv_sg(p)
            && p.winograd_shape()
            && p.c >= 32
            && p.o >= 32
            && p.h >= 8
            && p.w >= 8
    }
    /// Whether the forward of convolution `p` runs as Winograd F(4×4, 3×3): where
    /// [`Caps::winograd_conv`] says, and for layers of 16 to 128 input and at most 16 output
    /// channels without a pool (ResNet-20's first stage), whose forward has its own 16-channel
    /// kernel (`winograd_gemm_out_sg_o16`, the output transform fused), faster there than the
    /// direct forward, while their gradients stay direct, where Winograd is slower
    /// (`examples/winograd.rs`; docs/notes/winograd.md).
    pub fn winograd_forward(&self, p: &Conv2dParams) -> bool {
        self.winograd_conv(p)
            || (self.winograd
                && self.winograd_fits(p)
                && self.conv_sg(p)
                && p.winograd_shape()
                && p.c >= 16
                && p.o <= 16
                && p.pool == 0
                && fuses_output(p)
                && p.h >= 8
                && p.w >= 8)
    }
    /// Whether every scratch tensor of convolution `p` on Winograd (all three directions, at
    /// its batch) fits one storage binding: where one would not, the layer runs direct, whose
    /// tensors are smaller (airbench94's 64→256 conv on 15×15 maps at batch 228 and more on
    /// lavapipe's 128 MiB bindings), so a larger batch still plans.
    pub fn winograd_fits(&self, p: &Conv2dParams) -> bool {
        let (f, i, w) = scratch_lens(p);
        let max = self.max_binding.min(self.max_buffer);
        f.iter().chain(&i).chain(&w).all(|&n| 4 * n as u64 <= max)
    }
    /// Whether the input gradient of convolution `p` runs as the Winograd forward of its
    /// transposed convolution (`ops::conv2d::winograd::gpu::backward_input_as_forward`): where the
    /// layer's gradients are not on Winograd ([`Caps::winograd_conv`]) but that forward is
    /// ([`Caps::winograd_forward`], its output transform fused): ResNet-20's 16-channel layers,
    /// where it is faster than the direct input gradient. Where the gradients are on Winograd
    /// the adjoint stays: its D comes from the weight gradient (one transform for both), so in
    /// a whole step the forward form gains nothing there (`examples/winograd.rs`;
    /// docs/notes/winograd.md).
    pub fn winograd_input_as_forward(&self, p: &Conv2dParams) -> bool {
        let q = p.winograd_transposed();
        !self.winograd_conv(p) && self.winograd_forward(&q) && fuses_output(&q)
    }
}
