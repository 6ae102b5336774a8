//! Reference for `maxpool.wgsl`: Flax's `max_pool` with any window, stride and padding
//! (padding is −inf: never the maximum), NHWC. The gradient of each window goes to one element:
//! the first maximal element in row-major window order (XLA's select_and_scatter rule).

use crate::ops::MaxPoolParams;
use crate::ops::Real;

/// For every window (output pixel m, channel c): the input pixel of its maximum. Calls
/// `f(m·C + c, input index)`.
fn for_each_argmax<T: Real>(p: &MaxPoolParams, input: &[T], mut f: impl FnMut(usize, usize)) {
    let (n, h, w, c) = (p.n as usize, p.h as usize, p.w as usize, p.c as usize);
    let (oh, ow) = (p.out_h as usize, p.out_w as usize);
    for b in 0..n {
        for y in 0..oh {
            for x in 0..ow {
                let m = (b * oh + y) * ow + x;
                for ci in 0..c {
                    let mut best: Option<(T, usize)> = None;
                    for i in 0..p.kh as usize {
                        let Some(iy) = (y * p.sh as usize + i).checked_sub(p.pad_t as usize) else {
                            continue;
                        };
                        if iy >= h {
                            continue;
                        }
                        for j in 0..p.kw as usize {
                            let Some(ix) = (x * p.sw as usize + j).checked_sub(p.pad_l as usize)
                            else {
                                continue;
                            };
                            if ix >= w {
                                continue;
                            }
                            let at = ((b * h + iy) * w + ix) * c + ci;
                            if best.is_none_or(|(v, _)| input[at] > v) {
                                best = Some((input[at], at));
                            }
                        }
                    }
                    let (_, at) = best.expect("every window holds an image element");
                    f(m * c + ci, at);
                }
            }
        }
    }
}

pub fn maxpool_forward<T: Real>(p: &MaxPoolParams, input: &[T], output: &mut [T]) {
    for_each_argmax(p, input, |o, i| output[o] = input[i]);
}

/// dinput = dout scattered to each window's maximum (=); needs the forward input.
pub fn maxpool_backward<T: Real>(p: &MaxPoolParams, input: &[T], dout: &[T], dinput: &mut [T]) {
    dinput[..p.input_len()]
        .iter_mut()
        .for_each(|v| *v = T::zero());
    for_each_argmax(p, input, |o, i| dinput[i] = dinput[i] + dout[o]);
}
