//! Reference for `scale.wgsl`: `y = factor · x`, and the same for the gradient.

use super::ScaleParams;
use crate::ops::Real;

/// output = factor · input (=).
pub fn scale_forward<T: Real>(p: &ScaleParams, input: &[T], output: &mut [T]) {
    let f = T::of(p.factor as f64);
    for (o, &x) in output.iter_mut().zip(input) {
        *o = f * x;
    }
}

/// dinput = factor · dout (=).
pub fn scale_backward<T: Real>(p: &ScaleParams, dout: &[T], dinput: &mut [T]) {
    scale_forward(p, dout, dinput);
}
