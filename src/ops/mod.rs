//! The ops, one folder each (`<op>/mod.rs`, `gpu.rs`, `cpu.rs`, its WGSL; docs/adding-an-op.md).
//! One `#[repr(C)]` params struct per op family. Each owns the shape arithmetic of its op and is,
//! byte for byte, the uniform its shader reads (the WGSL twin sits at the top of the shader;
//! `params_structs_match_their_wgsl_twins` in tests/naga_validate.rs checks size and offsets
//! against naga's layout of that struct).
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

pub mod add;
pub mod augment;
pub mod avgpool;
pub mod batchnorm;
pub mod clip;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod gelu;
pub mod maxpool;
pub mod optimizer;
mod real;
pub mod relu;
pub mod scale;
pub mod softmax_ce;

pub use add::AddParams;
pub use augment::AugmentParams;
pub use avgpool::AvgPoolParams;
pub use batchnorm::BatchNormParams;
pub use clip::ClipParams;
pub use conv2d::Conv2dParams;
pub use dense::DenseParams;
pub use dropout::DropoutParams;
pub use gelu::GeluParams;
pub use maxpool::MaxPoolParams;
pub use optimizer::{AdamParams, LookaheadParams};
pub use real::{cast, Real};
pub use scale::ScaleParams;
pub use softmax_ce::SoftmaxCeParams;

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

/// Element-wise ops over `count` values (ReLU, GELU).
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
