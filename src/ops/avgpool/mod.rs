//! Average pooling (Flax `avg_pool`, and the global average pool).

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

use super::{Padding, Window};

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

/// Whether [`backward_relu_mask`] takes this pool.
pub fn mask_fits(p: &AvgPoolParams) -> bool {
    p.is_k2() && p.c.is_multiple_of(4)
}

/// The backward's entry point: with the backward of the ReLU before the pool fused (`relu`),
/// reading that ReLU's output or, with `mask`, its sign bits ([`mask_fits`]); 2×2/2 windows of
/// whole vec4s take the `_k2` kernel, windows that tile the input the `disjoint` ones (one vec4
/// read per pixel), the rest the gather over overlapping windows.
pub fn backward_entry(p: &AvgPoolParams, relu: bool, mask: bool) -> &'static str {
    match (relu, mask) {
        (true, true) => "avgpool_backward_relu_k2_mask",
        (true, false) if p.is_k2() && p.c.is_multiple_of(4) => "avgpool_backward_relu_k2",
        (true, false) if p.is_disjoint_vec4() => "avgpool_backward_disjoint_relu",
        (true, false) => "avgpool_backward_relu",
        (false, _) if p.is_disjoint_vec4() => "avgpool_backward_disjoint",
        (false, _) => "avgpool_backward",
    }
}
