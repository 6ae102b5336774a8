//! Reference for `relu.wgsl`.

use crate::ops::Real;

pub fn relu_forward<T: Real>(input: &[T], output: &mut [T]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = x.max(T::zero());
    }
}

/// dinput = dout where the forward output is > 0, else 0 (=).
pub fn relu_backward<T: Real>(dout: &[T], output: &[T], dinput: &mut [T]) {
    for ((d, &g), &y) in dinput.iter_mut().zip(dout).zip(output) {
        *d = if y > T::zero() { g } else { T::zero() };
    }
}
