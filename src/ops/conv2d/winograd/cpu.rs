//! Reference for `winograd.wgsl` and the Winograd GEMMs of `winograd_gemm_sg.wgsl`: a 3×3,
//! stride-1, pad-1 convolution by Winograd's F(4×4, 3×3) (Lavin & Gray 2016), the same
//! transforms in the same order as the shaders. Its tests check it against the direct
//! convolution of `ops::conv2d::cpu` (in f64: the transforms are exact up to rounding), which is
//! how the matrices below are known to be right; tests/ops/conv2d/gpu_vs_cpu.rs checks the
//! shaders against the direct reference.
//! Layouts (channels fastest): U[ξ][c][o], V[t][ξ][c], M[t][ξ][o], D[t][ξ][o], S[ξ][c][o], ξ the
//! 36 points of the 6×6 transformed tile, t = (n, ty, tx) the 4×4 output blocks.

use crate::ops::Conv2dParams;
use crate::ops::Real;

const P: usize = 36;

/// Bᵀ d (6 → 6), the data transform.
fn bt6<T: Real>(d: [T; 6]) -> [T; 6] {
    let k = |x: f64| T::of(x);
    [
        k(4.0) * d[0] - k(5.0) * d[2] + d[4],
        k(-4.0) * d[1] - k(4.0) * d[2] + d[3] + d[4],
        k(4.0) * d[1] - k(4.0) * d[2] - d[3] + d[4],
        k(-2.0) * d[1] - d[2] + k(2.0) * d[3] + d[4],
        k(2.0) * d[1] - d[2] - k(2.0) * d[3] + d[4],
        k(4.0) * d[1] - k(5.0) * d[3] + d[5],
    ]
}

/// G g (3 → 6), the filter transform.
fn g3<T: Real>(g: [T; 3]) -> [T; 6] {
    let k = |x: f64| T::of(x);
    [
        g[0] * k(0.25),
        (g[0] + g[1] + g[2]) * k(-1.0 / 6.0),
        (g[0] - g[1] + g[2]) * k(-1.0 / 6.0),
        g[0] * k(1.0 / 24.0) + g[1] * k(1.0 / 12.0) + g[2] * k(1.0 / 6.0),
        g[0] * k(1.0 / 24.0) - g[1] * k(1.0 / 12.0) + g[2] * k(1.0 / 6.0),
        g[2],
    ]
}

/// Aᵀ m (6 → 4), the output transform.
fn at6<T: Real>(m: [T; 6]) -> [T; 4] {
    let k = |x: f64| T::of(x);
    [
        m[0] + m[1] + m[2] + m[3] + m[4],
        m[1] - m[2] + k(2.0) * (m[3] - m[4]),
        m[1] + m[2] + k(4.0) * (m[3] + m[4]),
        m[1] - m[2] + k(8.0) * (m[3] - m[4]) + m[5],
    ]
}

/// A f (4 → 6), the output gradient's transform.
fn a4<T: Real>(f: [T; 4]) -> [T; 6] {
    let k = |x: f64| T::of(x);
    [
        f[0],
        f[0] + f[1] + f[2] + f[3],
        f[0] - f[1] + f[2] - f[3],
        f[0] + k(2.0) * f[1] + k(4.0) * f[2] + k(8.0) * f[3],
        f[0] - k(2.0) * f[1] + k(4.0) * f[2] - k(8.0) * f[3],
        f[3],
    ]
}

/// Gᵀ s (6 → 3), back to taps.
fn gt6<T: Real>(s: [T; 6]) -> [T; 3] {
    let k = |x: f64| T::of(x);
    [
        s[0] * k(0.25) - (s[1] + s[2]) * k(1.0 / 6.0) + (s[3] + s[4]) * k(1.0 / 24.0),
        (s[2] - s[1]) * k(1.0 / 6.0) + (s[3] - s[4]) * k(1.0 / 12.0),
        (s[3] + s[4] - s[1] - s[2]) * k(1.0 / 6.0) + s[5],
    ]
}

/// Applies `row` to each row of `x` (R rows of I) and then `col` to each column of the result.
fn separable<T: Real, const R: usize, const I: usize, const J: usize, const K: usize>(
    x: [[T; I]; R],
    row: impl Fn([T; I]) -> [T; J],
    col: impl Fn([T; R]) -> [T; K],
) -> [[T; J]; K] {
    let r: [[T; J]; R] = x.map(&row);
    let mut out = [[T::zero(); J]; K];
    for j in 0..J {
        let c = col(std::array::from_fn(|i| r[i][j]));
        for (k, v) in c.into_iter().enumerate() {
            out[k][j] = v;
        }
    }
    out
}

/// (n, ty, tx) of tile t.
fn tile(p: &Conv2dParams, t: usize) -> (usize, usize, usize) {
    let (th, tw) = (p.h.div_ceil(4) as usize, p.w.div_ceil(4) as usize);
    (t / (th * tw), (t / tw) % th, t % tw)
}

/// U[ξ][c][o] = (G g Gᵀ)[ξ] of weight (c, o) (HWIO).
pub fn weight_transform<T: Real>(p: &Conv2dParams, weight: &[T]) -> Vec<T> {
    let (c, o) = (p.c as usize, p.o as usize);
    let mut u = vec![T::zero(); P * c * o];
    for ci in 0..c {
        for oi in 0..o {
            let g: [[T; 3]; 3] = std::array::from_fn(|ky| {
                std::array::from_fn(|kx| weight[((ky * 3 + kx) * c + ci) * o + oi])
            });
            let t = separable(g, g3, g3);
            for (xi, v) in t.iter().flatten().enumerate() {
                u[(xi * c + ci) * o + oi] = *v;
            }
        }
    }
    u
}

/// V[t][ξ][c] = (Bᵀ d B)[ξ], d the 6×6 input block of tile t at (4ty − 1, 4tx − 1).
pub fn input_transform<T: Real>(p: &Conv2dParams, input: &[T]) -> Vec<T> {
    let (h, w, c) = (p.h as usize, p.w as usize, p.c as usize);
    let tiles = p.winograd_tiles() as usize;
    let mut v = vec![T::zero(); P * tiles * c];
    for t in 0..tiles {
        let (n, ty, tx) = tile(p, t);
        for ci in 0..c {
            let d: [[T; 6]; 6] = std::array::from_fn(|dy| {
                std::array::from_fn(|dx| {
                    let (iy, ix) = ((4 * ty + dy).wrapping_sub(1), (4 * tx + dx).wrapping_sub(1));
                    if iy < h && ix < w {
                        input[((n * h + iy) * w + ix) * c + ci]
                    } else {
                        T::zero()
                    }
                })
            });
            let r = separable(d, bt6, bt6);
            for (xi, val) in r.iter().flatten().enumerate() {
                v[(t * P + xi) * c + ci] = *val;
            }
        }
    }
    v
}

/// M[·][ξ] = V[·][ξ] · U[ξ] (tiles × C times C × O), channels summed in order.
pub fn gemm<T: Real>(p: &Conv2dParams, v: &[T], u: &[T]) -> Vec<T> {
    let (c, o) = (p.c as usize, p.o as usize);
    let tiles = p.winograd_tiles() as usize;
    let mut m = vec![T::zero(); P * tiles * o];
    for xi in 0..P {
        for t in 0..tiles {
            let row = &v[(t * P + xi) * c..][..c];
            let out = &mut m[(t * P + xi) * o..][..o];
            for (ci, &a) in row.iter().enumerate() {
                for (acc, &b) in out.iter_mut().zip(&u[(xi * c + ci) * o..][..o]) {
                    *acc = *acc + a * b;
                }
            }
        }
    }
    m
}

/// output = `transform`(M's 6×6 points of a tile and channel) + bias, the pixels inside the
/// image.
fn output_tiles<T: Real>(
    p: &Conv2dParams,
    m: &[T],
    bias: &[T],
    output: &mut [T],
    transform: impl Fn([[T; 6]; 6]) -> [[T; 4]; 4],
) {
    let (h, w, o) = (p.h as usize, p.w as usize, p.o as usize);
    let tiles = p.winograd_tiles() as usize;
    for t in 0..tiles {
        let (n, ty, tx) = tile(p, t);
        for oi in 0..o {
            let x: [[T; 6]; 6] =
                std::array::from_fn(|y| std::array::from_fn(|x| m[(t * P + y * 6 + x) * o + oi]));
            let b = if p.bias != 0 { bias[oi] } else { T::zero() };
            for (dy, row) in transform(x).iter().enumerate() {
                for (dx, v) in row.iter().enumerate() {
                    let (y, xx) = (4 * ty + dy, 4 * tx + dx);
                    if y < h && xx < w {
                        output[((n * h + y) * w + xx) * o + oi] = *v + b;
                    }
                }
            }
        }
    }
}

/// output = Aᵀ M A (+ bias), the pixels inside the image.
pub fn output_transform<T: Real>(p: &Conv2dParams, m: &[T], bias: &[T], output: &mut [T]) {
    output_tiles(p, m, bias, output, |x| separable(x, at6, at6));
}

/// Column k of Aᵀ: (1, k̂, k̂², k̂³) for the finite points k̂ = 0, 1, −1, 2, −2, (0, 0, 0, 1)
/// for ∞ (`at_col` of `winograd_gemm_sg.wgsl`).
fn at_col<T: Real>(k: usize) -> [T; 4] {
    if k == 5 {
        return [T::zero(), T::zero(), T::zero(), T::of(1.0)];
    }
    let s = T::of(k.div_ceil(2) as f64 * if k % 2 == 1 { 1.0 } else { -1.0 });
    [T::of(1.0), s, s * s, s * s * s]
}

/// The same as [`output_transform`] in the order of the forward that fuses it into its GEMM
/// (`winograd_gemm_out_sg`): per row a of M its 4 row sums r[j] = Σ_b Aᵀ[j][b] M[a][b], then
/// y[i][j] += Aᵀ[i][a] r[j], every coefficient applied (zeros and ones included).
pub fn output_transform_rows<T: Real>(p: &Conv2dParams, m: &[T], bias: &[T], output: &mut [T]) {
    output_tiles(p, m, bias, output, |x| {
        let mut y = [[T::zero(); 4]; 4];
        for (a, row) in x.iter().enumerate() {
            let mut r = [T::zero(); 4];
            for (b, v) in row.iter().enumerate() {
                let k = at_col::<T>(b);
                for j in 0..4 {
                    r[j] = r[j] + k[j] * *v;
                }
            }
            let k = at_col::<T>(a);
            for i in 0..4 {
                for j in 0..4 {
                    y[i][j] = y[i][j] + k[i] * r[j];
                }
            }
        }
        y
    });
}

/// The forward (bias, no epilogue) through the four stages, the output transform in the order
/// of the GPU's forward at this shape (`ops::conv2d::winograd::fuses_output`).
pub fn forward<T: Real>(p: &Conv2dParams, input: &[T], weight: &[T], bias: &[T], output: &mut [T]) {
    let u = weight_transform(p, weight);
    let v = input_transform(p, input);
    let m = gemm(p, &v, &u);
    if crate::ops::conv2d::winograd::fuses_output(p) {
        output_transform_rows(p, &m, bias, output);
    } else {
        output_transform(p, &m, bias, output);
    }
}

/// dinput as the forward of the transposed convolution (`winograd_weight_flip_t` +
/// `winograd_input` + the fused GEMM of the transposed problem): the forward of `dout` (O
/// channels in, C out) with the taps rotated by 180° and the channels swapped.
pub fn backward_input_as_forward<T: Real>(
    p: &Conv2dParams,
    dout: &[T],
    weight: &[T],
    dinput: &mut [T],
) {
    let q = p.winograd_transposed();
    let (c, o) = (p.c as usize, p.o as usize);
    let mut rotated = vec![T::zero(); weight.len()];
    for k in 0..9 {
        for ci in 0..c {
            for oi in 0..o {
                rotated[(k * o + oi) * c + ci] = weight[((8 - k) * c + ci) * o + oi];
            }
        }
    }
    forward(&q, dout, &rotated, &[], dinput);
}

/// B e (6 → 6), the adjoint of the data transform.
fn b6<T: Real>(e: [T; 6]) -> [T; 6] {
    let k = |x: f64| T::of(x);
    [
        k(4.0) * e[0],
        k(-4.0) * e[1] + k(4.0) * e[2] - k(2.0) * e[3] + k(2.0) * e[4] + k(4.0) * e[5],
        k(-5.0) * e[0] - k(4.0) * e[1] - k(4.0) * e[2] - e[3] - e[4],
        e[1] - e[2] + k(2.0) * e[3] - k(2.0) * e[4] - k(5.0) * e[5],
        e[0] + e[1] + e[2] + e[3] + e[4],
        e[5],
    ]
}

/// dinput by the forward's adjoint: E[t][ξ][c] = Σ_o D[t][ξ][o] U[ξ][c][o], P = B E Bᵀ per tile
/// and channel (the gradient of the tile's 6×6 input block), the overlapping blocks added up
/// per pixel (tile above / left first, as the shader).
pub fn backward_input<T: Real>(p: &Conv2dParams, dout: &[T], weight: &[T], dinput: &mut [T]) {
    let (h, w, c, o) = (p.h as usize, p.w as usize, p.c as usize, p.o as usize);
    let tiles = p.winograd_tiles() as usize;
    let (th, tw) = (p.h.div_ceil(4) as usize, p.w.div_ceil(4) as usize);
    let d = dout_transform(p, dout);
    let u = weight_transform(p, weight);
    let mut blocks = vec![T::zero(); tiles * P * c];
    for t in 0..tiles {
        for ci in 0..c {
            let e: [[T; 6]; 6] = std::array::from_fn(|y| {
                std::array::from_fn(|x| {
                    let xi = y * 6 + x;
                    (0..o).fold(T::zero(), |acc, oi| {
                        acc + d[(t * P + xi) * o + oi] * u[(xi * c + ci) * o + oi]
                    })
                })
            });
            let b = separable(e, b6, b6);
            for (k, v) in b.iter().flatten().enumerate() {
                blocks[(t * P + k) * c + ci] = *v;
            }
        }
    }
    for n in 0..p.n as usize {
        for y in 0..h {
            for x in 0..w {
                // Tiles holding the pixel: (tile row, block row) pairs, above first.
                let along = |v: usize, tiles: usize| {
                    let (t, r) = (v / 4, v % 4);
                    let mut k = Vec::new();
                    if r == 0 && t > 0 {
                        k.push((t - 1, 5));
                    }
                    k.push((t, r + 1));
                    if r == 3 && t + 1 < tiles {
                        k.push((t + 1, 0));
                    }
                    k
                };
                for ci in 0..c {
                    let mut sum = T::zero();
                    for &(ty, py) in &along(y, th) {
                        for &(tx, px) in &along(x, tw) {
                            let t = (n * th + ty) * tw + tx;
                            sum = sum + blocks[(t * P + py * 6 + px) * c + ci];
                        }
                    }
                    dinput[((n * h + y) * w + x) * c + ci] = sum;
                }
            }
        }
    }
}

/// D[t][ξ][o] = (A f Aᵀ)[ξ], f the 4×4 output-gradient block of tile t.
pub fn dout_transform<T: Real>(p: &Conv2dParams, dout: &[T]) -> Vec<T> {
    let (h, w, o) = (p.h as usize, p.w as usize, p.o as usize);
    let tiles = p.winograd_tiles() as usize;
    let mut d = vec![T::zero(); P * tiles * o];
    for t in 0..tiles {
        let (n, ty, tx) = tile(p, t);
        for oi in 0..o {
            let f: [[T; 4]; 4] = std::array::from_fn(|dy| {
                std::array::from_fn(|dx| {
                    let (y, x) = (4 * ty + dy, 4 * tx + dx);
                    if y < h && x < w {
                        dout[((n * h + y) * w + x) * o + oi]
                    } else {
                        T::zero()
                    }
                })
            });
            let r = separable(f, a4, a4);
            for (xi, val) in r.iter().flatten().enumerate() {
                d[(t * P + xi) * o + oi] = *val;
            }
        }
    }
    d
}

/// S[ξ] = Σ_t V[t][ξ]ᵀ D[t][ξ] (C × O), tiles summed in order.
pub fn gemm_weight<T: Real>(p: &Conv2dParams, v: &[T], d: &[T]) -> Vec<T> {
    let (c, o) = (p.c as usize, p.o as usize);
    let tiles = p.winograd_tiles() as usize;
    let mut s = vec![T::zero(); P * c * o];
    for xi in 0..P {
        for t in 0..tiles {
            let dr = &d[(t * P + xi) * o..][..o];
            for ci in 0..c {
                let a = v[(t * P + xi) * c + ci];
                for (acc, &g) in s[(xi * c + ci) * o..][..o].iter_mut().zip(dr) {
                    *acc = *acc + a * g;
                }
            }
        }
    }
    s
}

/// dweight = Gᵀ S G per (c, o); dbias[o] = Σ_t D[(1, 1)][t][o] (each tile's sum) with a bias.
pub fn backward_weight<T: Real>(
    p: &Conv2dParams,
    input: &[T],
    dout: &[T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let (c, o) = (p.c as usize, p.o as usize);
    let tiles = p.winograd_tiles() as usize;
    let v = input_transform(p, input);
    let d = dout_transform(p, dout);
    let s = gemm_weight(p, &v, &d);
    for ci in 0..c {
        for oi in 0..o {
            let x: [[T; 6]; 6] = std::array::from_fn(|y| {
                std::array::from_fn(|x| s[((y * 6 + x) * c + ci) * o + oi])
            });
            let g = separable(x, gt6, gt6);
            for (ky, row) in g.iter().enumerate() {
                for (kx, val) in row.iter().enumerate() {
                    dweight[((ky * 3 + kx) * c + ci) * o + oi] = *val;
                }
            }
        }
    }
    if p.bias != 0 {
        for (oi, db) in dbias[..o].iter_mut().enumerate() {
            *db = (0..tiles).fold(T::zero(), |acc, t| acc + d[(t * P + 7) * o + oi]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv2d::cpu as conv2d;
    use crate::ops::Padding;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// Odd shapes: partial tiles at the right and bottom edges, one-tile images, several images.
    fn shapes() -> Vec<Conv2dParams> {
        [
            (2, 5, 7, 4, 8),
            (1, 4, 4, 8, 4),
            (3, 9, 6, 4, 12),
            (1, 1, 3, 8, 4),
            (2, 8, 8, 12, 36),
        ]
        .into_iter()
        .map(|(n, h, w, c, o)| Conv2dParams::new(n, h, w, c, o, 3, Padding::Same))
        .collect()
    }

    #[test]
    fn winograd_is_the_direct_convolution_in_f64() {
        for (i, p) in shapes().into_iter().enumerate() {
            assert!(p.winograd_shape(), "{p:?}");
            let x = random(p.input_len(), 1 + i as u64);
            let w = random(p.weight_len(), 100 + i as u64);
            let b = random(p.o as usize, 200 + i as u64);
            let dy = random(p.output_len(), 300 + i as u64);
            let (mut yd, mut yw) = (vec![0.0; p.output_len()], vec![0.0; p.output_len()]);
            conv2d::conv2d_forward(&p, &x, &w, &b, &mut yd);
            forward(&p, &x, &w, &b, &mut yw);
            assert!(
                max_diff(&yd, &yw) < 1e-12,
                "forward {p:?}: {}",
                max_diff(&yd, &yw)
            );
            let (mut dxd, mut dxw) = (vec![0.0; p.input_len()], vec![0.0; p.input_len()]);
            conv2d::conv2d_backward_input(&p, &dy, &w, &mut dxd);
            backward_input(&p, &dy, &w, &mut dxw);
            assert!(
                max_diff(&dxd, &dxw) < 1e-12,
                "dinput {p:?}: {}",
                max_diff(&dxd, &dxw)
            );
            backward_input_as_forward(&p, &dy, &w, &mut dxw);
            assert!(
                max_diff(&dxd, &dxw) < 1e-12,
                "dinput as forward {p:?}: {}",
                max_diff(&dxd, &dxw)
            );
            let (mut dwd, mut dbd) = (vec![0.0; p.weight_len()], vec![0.0; p.o as usize]);
            let (mut dww, mut dbw) = (vec![0.0; p.weight_len()], vec![0.0; p.o as usize]);
            conv2d::conv2d_backward_weight(&p, &x, &dy, &mut dwd, &mut dbd);
            backward_weight(&p, &x, &dy, &mut dww, &mut dbw);
            assert!(
                max_diff(&dwd, &dww) < 1e-10,
                "dweight {p:?}: {}",
                max_diff(&dwd, &dww)
            );
            assert!(
                max_diff(&dbd, &dbw) < 1e-12,
                "dbias {p:?}: {}",
                max_diff(&dbd, &dbw)
            );
        }
    }

    #[test]
    fn both_output_transform_orders_agree() {
        for (i, p) in shapes().into_iter().enumerate() {
            let m = random(
                P * p.winograd_tiles() as usize * p.o as usize,
                400 + i as u64,
            );
            let b = random(p.o as usize, 500 + i as u64);
            let (mut a, mut r) = (vec![0.0; p.output_len()], vec![0.0; p.output_len()]);
            output_transform(&p, &m, &b, &mut a);
            output_transform_rows(&p, &m, &b, &mut r);
            assert!(max_diff(&a, &r) < 1e-12, "{p:?}: {}", max_diff(&a, &r));
        }
        // And the forward on both sides of the rule that picks the order.
        for c in [128, 132] {
            let p = Conv2dParams::new(1, 5, 6, c, 8, 3, Padding::Same);
            let x = random(p.input_len(), 600 + c as u64);
            let w = random(p.weight_len(), 700 + c as u64);
            let b = random(p.o as usize, 800);
            let (mut yd, mut yw) = (vec![0.0; p.output_len()], vec![0.0; p.output_len()]);
            conv2d::conv2d_forward(&p, &x, &w, &b, &mut yd);
            forward(&p, &x, &w, &b, &mut yw);
            assert!(max_diff(&yd, &yw) < 1e-11, "c{c}: {}", max_diff(&yd, &yw));
        }
    }

    #[test]
    fn winograd_f32_error_is_small() {
        // F(4×4, 3×3) in f32 rounds more than the direct sum; bound it on a seed-like layer.
        let p = Conv2dParams::new(2, 16, 16, 32, 64, 3, Padding::Same);
        let x = random(p.input_len(), 7);
        let w = random(p.weight_len(), 8);
        let b = random(p.o as usize, 9);
        let mut y64 = vec![0.0; p.output_len()];
        conv2d::conv2d_forward(&p, &x, &w, &b, &mut y64);
        let (x32, w32, b32) = (
            crate::ops::cast(&x),
            crate::ops::cast(&w),
            crate::ops::cast(&b),
        );
        let mut y32 = vec![0f32; p.output_len()];
        forward(&p, &x32, &w32, &b32, &mut y32);
        let err = max_diff(&y64, &crate::ops::cast(&y32));
        let scale = y64.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(err < 2e-5 * scale, "f32 error {err} at scale {scale}");
    }
}
