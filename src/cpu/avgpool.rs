//! Reference for `shaders/avgpool.wgsl`: window = stride = k, no padding, NHWC.

use super::Real;
use crate::params::AvgPoolParams;

pub fn avgpool_forward<T: Real>(p: &AvgPoolParams, input: &[T], output: &mut [T]) {
    let (n, h, w, c, k) = (
        p.n as usize,
        p.h as usize,
        p.w as usize,
        p.c as usize,
        p.k as usize,
    );
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    let scale = T::one() / T::of((k * k) as f64);
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                for ci in 0..c {
                    let mut s = T::zero();
                    for i in 0..k {
                        for j in 0..k {
                            s = s + input[((b * h + y * k + i) * w + x * k + j) * c + ci];
                        }
                    }
                    output[((b * oh + y) * ow + x) * c + ci] = s * scale;
                }
            }
        }
    }
}

pub fn avgpool_backward<T: Real>(p: &AvgPoolParams, dout: &[T], dinput: &mut [T]) {
    let (n, h, w, c, k) = (
        p.n as usize,
        p.h as usize,
        p.w as usize,
        p.c as usize,
        p.k as usize,
    );
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    let scale = T::one() / T::of((k * k) as f64);
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ci in 0..c {
                    let (oy, ox) = (y / k, x / k);
                    dinput[((b * h + y) * w + x) * c + ci] = if oy < oh && ox < ow {
                        dout[((b * oh + oy) * ow + ox) * c + ci] * scale
                    } else {
                        T::zero()
                    };
                }
            }
        }
    }
}

/// avgpool_backward followed by the backward of the ReLU before the pool (=).
pub fn avgpool_backward_relu<T: Real>(
    p: &AvgPoolParams,
    dout: &[T],
    relu_output: &[T],
    dinput: &mut [T],
) {
    avgpool_backward(p, dout, dinput);
    for (d, &y) in dinput.iter_mut().zip(relu_output) {
        if y <= T::zero() {
            *d = T::zero();
        }
    }
}
