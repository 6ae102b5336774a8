//! Reference for `gelu.wgsl`: GELU with the tanh approximation (Flax's `nn.gelu`)
//!   y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
//! or exact (`nn.gelu(approximate=False)`): y = x·Φ(x), Φ(x) = erfc(−x/√2) / 2, whose
//! derivative is Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π). The exact form uses libm's erfc (the
//! f64 reference is then correctly rounded to ~1 ulp; f32 uses erfcf).

use crate::ops::Real;

fn tanh_u<T: Real>(x: T) -> T {
    let k0 = T::of(0.797_884_560_802_865_4);
    let k1 = T::of(0.044715);
    (k0 * (x + k1 * x * x * x)).tanh()
}

/// Φ(x), the standard normal CDF, without cancellation in either tail.
fn phi_cdf<T: Real>(x: T) -> T {
    T::of(0.5) * (-x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erfc()
}

/// φ(x), the standard normal density.
fn phi_pdf<T: Real>(x: T) -> T {
    T::of(0.398_942_280_401_432_7) * (T::of(-0.5) * x * x).exp()
}

/// `y = gelu(x)`, exact or the tanh approximation.
pub fn gelu_forward_as<T: Real>(approximate: bool, input: &[T], output: &mut [T]) {
    if approximate {
        return gelu_forward(input, output);
    }
    for (o, &x) in output.iter_mut().zip(input) {
        *o = x * phi_cdf(x);
    }
}

/// `dinput = dout · gelu'(input)`, exact or the tanh approximation.
pub fn gelu_backward_as<T: Real>(approximate: bool, dout: &[T], input: &[T], dinput: &mut [T]) {
    if approximate {
        return gelu_backward(dout, input, dinput);
    }
    for ((d, &g), &x) in dinput.iter_mut().zip(dout).zip(input) {
        *d = g * (phi_cdf(x) + x * phi_pdf(x));
    }
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
