//! Reference for `shaders/conv2d.wgsl`: stride-1 convolution, NHWC input, HWIO weight.
//!   output[n,y,x,o] = bias[o] + Σ_{ky,kx,c} input[n, y+ky-pad, x+kx-pad, c] · weight[ky,kx,c,o]
//! Taps outside the image read zero. With `p.relu = 1` the forward applies ReLU (fused).

use super::Real;
use crate::params::Conv2dParams;

/// Input coordinate of output coordinate `o` at tap `k`, or None in the padding.
fn tap(o: usize, k: usize, pad: usize, size: usize) -> Option<usize> {
    let i = (o + k).checked_sub(pad)?;
    (i < size).then_some(i)
}

pub fn conv2d_forward<T: Real>(
    p: &Conv2dParams,
    input: &[T],
    weight: &[T],
    bias: &[T],
    output: &mut [T],
) {
    let (n, h, w, c, o, k, pad) = dims(p);
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                let out = &mut output[((b * oh + y) * ow + x) * o..][..o];
                out.copy_from_slice(&bias[..o]);
                for ky in 0..k {
                    let Some(iy) = tap(y, ky, pad, h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(ix) = tap(x, kx, pad, w) else {
                            continue;
                        };
                        for ci in 0..c {
                            let a = input[((b * h + iy) * w + ix) * c + ci];
                            let wrow = &weight[((ky * k + kx) * c + ci) * o..][..o];
                            for (acc, &wv) in out.iter_mut().zip(wrow) {
                                *acc = *acc + a * wv;
                            }
                        }
                    }
                }
                if p.relu != 0 {
                    out.iter_mut().for_each(|v| *v = v.max(T::zero()));
                }
            }
        }
    }
}

/// dinput = Σ over every output that read an input element of dout · weight (=).
pub fn conv2d_backward_input<T: Real>(
    p: &Conv2dParams,
    dout: &[T],
    weight: &[T],
    dinput: &mut [T],
) {
    let (n, h, w, c, o, k, pad) = dims(p);
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    dinput.iter_mut().for_each(|v| *v = T::zero());
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                let d = &dout[((b * oh + y) * ow + x) * o..][..o];
                for ky in 0..k {
                    let Some(iy) = tap(y, ky, pad, h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(ix) = tap(x, kx, pad, w) else {
                            continue;
                        };
                        for ci in 0..c {
                            let wrow = &weight[((ky * k + kx) * c + ci) * o..][..o];
                            let s: T = d.iter().zip(wrow).map(|(&a, &b)| a * b).sum();
                            let di = &mut dinput[((b * h + iy) * w + ix) * c + ci];
                            *di = *di + s;
                        }
                    }
                }
            }
        }
    }
}

/// dweight[ky,kx,c,o] = Σ_{n,y,x} input[n,y+ky-pad,x+kx-pad,c] · dout[n,y,x,o]; dbias[o] = Σ dout (=).
pub fn conv2d_backward_weight<T: Real>(
    p: &Conv2dParams,
    input: &[T],
    dout: &[T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let (n, h, w, c, o, k, pad) = dims(p);
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    dweight.iter_mut().for_each(|v| *v = T::zero());
    dbias.iter_mut().for_each(|v| *v = T::zero());
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                let d = &dout[((b * oh + y) * ow + x) * o..][..o];
                for (db, &g) in dbias.iter_mut().zip(d) {
                    *db = *db + g;
                }
                for ky in 0..k {
                    let Some(iy) = tap(y, ky, pad, h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(ix) = tap(x, kx, pad, w) else {
                            continue;
                        };
                        for ci in 0..c {
                            let a = input[((b * h + iy) * w + ix) * c + ci];
                            let dw = &mut dweight[((ky * k + kx) * c + ci) * o..][..o];
                            for (acc, &g) in dw.iter_mut().zip(d) {
                                *acc = *acc + a * g;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn dims(p: &Conv2dParams) -> (usize, usize, usize, usize, usize, usize, usize) {
    (
        p.n as usize,
        p.h as usize,
        p.w as usize,
        p.c as usize,
        p.o as usize,
        p.k as usize,
        p.pad as usize,
    )
}
