//! airbench94's whitening layer, computed from the data (`kernel_init = "whitening"`): the
//! filters of a KH×KW conv over the images are the eigenvectors of the images' KH×KW patch
//! covariance, each divided by √(λ + ε), followed by their negatives (so that a GELU after it
//! keeps both signs of every direction). The covariance is airbench's: uncentred, over every
//! KH×KW window (stride 1, no padding) of the first images, channel-major `(c, dy, dx)` patch
//! vectors, computed here in f64 (airbench: f32 on the GPU).

use nalgebra::{DMatrix, SymmetricEigen};
use rayon::prelude::*;

use crate::data::{ImageShape, Normalization};

/// airbench94's ε and image count.
pub const EPS: f64 = 5e-4;
pub const IMAGES: usize = 5000;

/// The HWIO kernel `[KH, KW, C, 2·KH·KW·C]` from `images` (HWC bytes of `shape`) normalised
/// as the run normalises them (`(x/255 − mean)/std`). Filter k < KH·KW·C is eigenvector k in
/// order of decreasing eigenvalue, its sign fixed so that its largest component is positive
/// (an eigenvector's sign is arbitrary; this makes it reproducible); filter KH·KW·C + k is
/// its negative.
pub fn kernel(
    images: &[&[u8]],
    shape: ImageShape,
    norm: &Normalization,
    kh: usize,
    kw: usize,
    eps: f64,
) -> Vec<f32> {
    let (h, w, c) = (shape.h as usize, shape.w as usize, shape.c as usize);
    let d = c * kh * kw;
    // The patch vector's index of (channel, dy, dx): PyTorch's unfold order.
    let at = |ch: usize, dy: usize, dx: usize| (ch * kh + dy) * kw + dx;
    let cov = images
        .par_iter()
        .map(|img| {
            let x: Vec<f64> = img
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    let ch = i % c;
                    ((b as f32 / 255.0 - norm.mean[ch]) / norm.std[ch]) as f64
                })
                .collect();
            let mut sum = vec![0.0f64; d * d];
            let mut p = vec![0.0f64; d];
            for y in 0..=h - kh {
                for xx in 0..=w - kw {
                    for ch in 0..c {
                        for dy in 0..kh {
                            for dx in 0..kw {
                                p[at(ch, dy, dx)] = x[((y + dy) * w + xx + dx) * c + ch];
                            }
                        }
                    }
                    for i in 0..d {
                        for j in i..d {
                            sum[i * d + j] += p[i] * p[j];
                        }
                    }
                }
            }
            sum
        })
        .reduce(
            || vec![0.0f64; d * d],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let n = (images.len() * (h - kh + 1) * (w - kw + 1)).max(1) as f64;
    let m = DMatrix::from_fn(d, d, |i, j| cov[i.min(j) * d + i.max(j)] / n);
    let eig = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let o = 2 * d;
    let mut k = vec![0.0f32; kh * kw * c * o];
    for (f, &e) in order.iter().enumerate() {
        let v = eig.eigenvectors.column(e);
        let big = (0..d).fold(0, |b, i| if v[i].abs() > v[b].abs() { i } else { b });
        let sign = if v[big] < 0.0 { -1.0 } else { 1.0 };
        let scale = sign / (eig.eigenvalues[e].max(0.0) + eps).sqrt();
        for ch in 0..c {
            for dy in 0..kh {
                for dx in 0..kw {
                    let val = v[at(ch, dy, dx)] * scale;
                    let hwio = ((dy * kw + dx) * c + ch) * o;
                    k[hwio + f] = val as f32;
                    k[hwio + d + f] = -val as f32;
                }
            }
        }
    }
    k
}

/// Fills every whitening kernel of `specs` in `params` that `given` (a checkpoint's) does not
/// name from the first [`IMAGES`] training images of `split` (`train_idx` in file order),
/// normalised as the run normalises them. Returns a line to print per kernel.
pub(super) fn fill(
    specs: &[crate::plan::ParamSpec],
    params: &mut [Vec<f32>],
    given: &dyn Fn(&str) -> bool,
    split: &crate::data::Split,
    train_idx: &[u32],
    norm: &Normalization,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (spec, t) in specs.iter().zip(params.iter_mut()) {
        if spec.init != crate::plan::Init::Whitening || given(&spec.name) {
            continue;
        }
        let mut first = train_idx.to_vec();
        first.sort_unstable();
        first.truncate(IMAGES);
        let images: Vec<&[u8]> = first.iter().map(|&i| split.image(i as usize)).collect();
        let [kh, kw] = [spec.shape[0], spec.shape[1]];
        *t = kernel(&images, split.shape, norm, kh, kw, EPS);
        lines.push(format!(
            "whitening: {} from the {kh}x{kw} patches of the first {} training images (eigenvectors / sqrt(eigenvalue + {EPS}), and their negatives)",
            spec.name,
            images.len()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filters whiten: on the patches they came from, the first half's outputs have
    /// covariance diag(λ / (λ + ε)) ≈ identity for the strong directions, and they are
    /// orthogonal; the second half is the negative of the first.
    #[test]
    fn whitening_filters_whiten_their_patches() {
        let shape = ImageShape { h: 6, w: 5, c: 3 };
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        };
        // Correlated channels, so the covariance is far from diagonal.
        let imgs: Vec<Vec<u8>> = (0..40)
            .map(|_| {
                (0..shape.h * shape.w)
                    .flat_map(|_| {
                        let base = next() / 2;
                        [base + next() / 4, base, base / 2 + next() / 2]
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[u8]> = imgs.iter().map(|v| v.as_slice()).collect();
        let norm = Normalization::cifar10();
        let (kh, kw) = (2, 2);
        let k = kernel(&refs, shape, &norm, kh, kw, 1e-9);
        let d = 12;
        // Filter outputs over every patch: their second moments.
        let mut m = vec![0.0f64; d * d];
        let mut n = 0.0;
        for img in &refs {
            for y in 0..=shape.h as usize - kh {
                for x in 0..=shape.w as usize - kw {
                    let out: Vec<f64> = (0..d)
                        .map(|f| {
                            let mut s = 0.0;
                            for dy in 0..kh {
                                for dx in 0..kw {
                                    for ch in 0..3 {
                                        let b = img[((y + dy) * 5 + x + dx) * 3 + ch];
                                        let v = (b as f32 / 255.0 - norm.mean[ch]) / norm.std[ch];
                                        s += v as f64
                                            * k[((dy * kw + dx) * 3 + ch) * 2 * d + f] as f64;
                                    }
                                }
                            }
                            s
                        })
                        .collect();
                    for i in 0..d {
                        for j in 0..d {
                            m[i * d + j] += out[i] * out[j];
                        }
                    }
                    n += 1.0;
                }
            }
        }
        for i in 0..d {
            for j in 0..d {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (m[i * d + j] / n - want).abs() < 1e-6,
                    "({i},{j}): {}",
                    m[i * d + j] / n
                );
            }
        }
        for t in 0..kh * kw * 3 {
            for f in 0..d {
                assert_eq!(k[t * 2 * d + d + f], -k[t * 2 * d + f]);
            }
        }
    }
}
