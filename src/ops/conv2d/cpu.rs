//! Reference for the direct convolution kernels (`conv2d.wgsl`, `conv2d_wg.wgsl`, the subgroup
//! kernels `conv2d_sg_*.wgsl`): 2-D convolution with any kernel `KH×KW`, stride `SH×SW` and
//! padding, NHWC input, HWIO weight.
//!   output[n,y,x,o] = bias[o] + Σ_{ky,kx,c} input[n, y·SH+ky−pad_t, x·SW+kx−pad_l, c] · weight[ky,kx,c,o]
//! Taps outside the image read zero. With `p.relu = 1` the forward applies ReLU (fused); with
//! `p.bias = 0` there is no bias (forward adds none, `dbias` is not written).

use crate::ops::Conv2dParams;
use crate::ops::Real;

/// Input coordinate of output coordinate `o` at tap `k`, or None in the padding.
fn tap(o: usize, k: usize, stride: u32, pad: u32, size: usize) -> Option<usize> {
    let i = (o * stride as usize + k).checked_sub(pad as usize)?;
    (i < size).then_some(i)
}

/// Calls `f(b, out_pixel, ky, kx, in_pixel)` for every (output pixel, in-image tap) pair, in
/// the order the reference sums them.
fn for_each_tap(p: &Conv2dParams, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (n, h, w) = (p.n as usize, p.h as usize, p.w as usize);
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    let (kh, kw) = (p.kh as usize, p.kw as usize);
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                let m = (b * oh + y) * ow + x;
                f(m, usize::MAX, 0, 0);
                for ky in 0..kh {
                    let Some(iy) = tap(y, ky, p.sh, p.pad_t, h) else {
                        continue;
                    };
                    for kx in 0..kw {
                        let Some(ix) = tap(x, kx, p.sw, p.pad_l, w) else {
                            continue;
                        };
                        f(m, (b * h + iy) * w + ix, ky, kx);
                    }
                }
            }
        }
    }
}

pub fn conv2d_forward<T: Real>(
    p: &Conv2dParams,
    input: &[T],
    weight: &[T],
    bias: &[T],
    output: &mut [T],
) {
    let (c, o, kw) = (p.c as usize, p.o as usize, p.kw as usize);
    for_each_tap(p, |m, i, ky, kx| {
        let out = &mut output[m * o..][..o];
        if i == usize::MAX {
            // A new output pixel starts from its bias.
            if p.bias != 0 {
                out.copy_from_slice(&bias[..o]);
            } else {
                out.iter_mut().for_each(|v| *v = T::zero());
            }
            return;
        }
        for ci in 0..c {
            let a = input[i * c + ci];
            let wrow = &weight[((ky * kw + kx) * c + ci) * o..][..o];
            for (acc, &wv) in out.iter_mut().zip(wrow) {
                *acc = *acc + a * wv;
            }
        }
    });
    if p.relu != 0 {
        output[..p.output_len()]
            .iter_mut()
            .for_each(|v| *v = v.max(T::zero()));
    }
}

/// dinput = Σ over every output that read an input element of dout · weight (=).
pub fn conv2d_backward_input<T: Real>(
    p: &Conv2dParams,
    dout: &[T],
    weight: &[T],
    dinput: &mut [T],
) {
    let (c, o, kw) = (p.c as usize, p.o as usize, p.kw as usize);
    dinput[..p.input_len()]
        .iter_mut()
        .for_each(|v| *v = T::zero());
    for_each_tap(p, |m, i, ky, kx| {
        if i == usize::MAX {
            return;
        }
        let d = &dout[m * o..][..o];
        for ci in 0..c {
            let wrow = &weight[((ky * kw + kx) * c + ci) * o..][..o];
            let s: T = d.iter().zip(wrow).map(|(&a, &b)| a * b).sum();
            let di = &mut dinput[i * c + ci];
            *di = *di + s;
        }
    });
}

/// dweight[ky,kx,c,o] = Σ_{n,y,x} input[n, y·SH+ky−pad_t, x·SW+kx−pad_l, c] · dout[n,y,x,o];
/// dbias[o] = Σ dout (=; not written without a bias).
pub fn conv2d_backward_weight<T: Real>(
    p: &Conv2dParams,
    input: &[T],
    dout: &[T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let (c, o, kw) = (p.c as usize, p.o as usize, p.kw as usize);
    dweight[..p.weight_len()]
        .iter_mut()
        .for_each(|v| *v = T::zero());
    if p.bias != 0 {
        dbias[..o].iter_mut().for_each(|v| *v = T::zero());
    }
    for_each_tap(p, |m, i, ky, kx| {
        let d = &dout[m * o..][..o];
        if i == usize::MAX {
            if p.bias != 0 {
                for (db, &g) in dbias.iter_mut().zip(d) {
                    *db = *db + g;
                }
            }
            return;
        }
        for ci in 0..c {
            let a = input[i * c + ci];
            let dw = &mut dweight[((ky * kw + kx) * c + ci) * o..][..o];
            for (acc, &g) in dw.iter_mut().zip(d) {
                *acc = *acc + a * g;
            }
        }
    });
}
