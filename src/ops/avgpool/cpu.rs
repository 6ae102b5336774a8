//! Reference for `avgpool.wgsl`: Flax's `avg_pool` with any window `KH×KW`, stride
//! `SH×SW` and padding, NHWC. Padding counts as zeros and every window divides by `KH·KW`
//! (Flax's default `count_include_pad=True`):
//!   output[n,y,x,c] = Σ_{i<KH, j<KW} input[n, y·SH+i−pad_t, x·SW+j−pad_l, c] / (KH·KW)
//! The backward scatters dout / (KH·KW) to every in-image element of each window (=).

use crate::ops::AvgPoolParams;
use crate::ops::Real;

/// Calls `f(out_pixel, in_pixel)` for every in-image element of every window.
fn for_each_window(p: &AvgPoolParams, mut f: impl FnMut(usize, usize)) {
    let (n, h, w) = (p.n as usize, p.h as usize, p.w as usize);
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                let m = (b * oh + y) * ow + x;
                for i in 0..p.kh as usize {
                    let Some(iy) = (y * p.sh as usize + i).checked_sub(p.pad_t as usize) else {
                        continue;
                    };
                    if iy >= h {
                        continue;
                    }
                    for j in 0..p.kw as usize {
                        let Some(ix) = (x * p.sw as usize + j).checked_sub(p.pad_l as usize) else {
                            continue;
                        };
                        if ix < w {
                            f(m, (b * h + iy) * w + ix);
                        }
                    }
                }
            }
        }
    }
}

fn scale<T: Real>(p: &AvgPoolParams) -> T {
    T::one() / T::of((p.kh * p.kw) as f64)
}

pub fn avgpool_forward<T: Real>(p: &AvgPoolParams, input: &[T], output: &mut [T]) {
    let c = p.c as usize;
    let out = &mut output[..p.output_len()];
    out.iter_mut().for_each(|v| *v = T::zero());
    for_each_window(p, |m, i| {
        for ci in 0..c {
            out[m * c + ci] = out[m * c + ci] + input[i * c + ci];
        }
    });
    let s = scale::<T>(p);
    out.iter_mut().for_each(|v| *v = *v * s);
}

pub fn avgpool_backward<T: Real>(p: &AvgPoolParams, dout: &[T], dinput: &mut [T]) {
    let c = p.c as usize;
    let s = scale::<T>(p);
    dinput[..p.input_len()]
        .iter_mut()
        .for_each(|v| *v = T::zero());
    for_each_window(p, |m, i| {
        for ci in 0..c {
            dinput[i * c + ci] = dinput[i * c + ci] + dout[m * c + ci] * s;
        }
    });
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
