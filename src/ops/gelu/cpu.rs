//! Reference for `gelu.wgsl`: GELU with the tanh approximation (Flax's `nn.gelu`).
//!   y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))

use crate::ops::Real;

fn tanh_u<T: Real>(x: T) -> T {
    let k0 = T::of(0.797_884_560_802_865_4);
    let k1 = T::of(0.044715);
    (k0 * (x + k1 * x * x * x)).tanh()
}

pub fn gelu_forward<T: Real>(input: &[T], output: &mut [T]) {
    let half = T::of(0.5);
    for (o, &x) in output.iter_mut().zip(input) {
        *o = half * x * (T::one() + tanh_u(x));
    }
}

/// dinput = dout · gelu'(input) (=), from the forward *input*.
pub fn gelu_backward<T: Real>(dout: &[T], input: &[T], dinput: &mut [T]) {
    let (half, k0, k1) = (T::of(0.5), T::of(0.797_884_560_802_865_4), T::of(0.044715));
    for ((d, &g), &x) in dinput.iter_mut().zip(dout).zip(input) {
        let t = tanh_u(x);
        let du = k0 * (T::one() + T::of(3.0) * k1 * x * x);
        *d = g * (half * (T::one() + t) + half * x * (T::one() - t * t) * du);
    }
}
