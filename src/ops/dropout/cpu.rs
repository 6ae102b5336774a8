//! Reference for `dropout.wgsl`: inverted dropout with the same counter-based mask, bit
//! for bit (integer hash, the same float conversion).

use crate::ops::DropoutParams;
use crate::ops::Real;

fn fmix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^= x >> 16;
    x
}

/// The uniform draw in [0, 1) of element `i` (24 bits, exactly as the shader).
pub fn draw(p: &DropoutParams, i: u32) -> f32 {
    let key = fmix(p.seed ^ fmix(p.layer ^ fmix(p.step ^ 0x9e37_79b9)));
    (fmix(i ^ key) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Whether element `i` is kept in training.
pub fn keep(p: &DropoutParams, i: u32) -> bool {
    draw(p, i) >= p.rate
}

/// Training: `output = input · keep / (1 − rate)`; evaluation (`p.train = 0`): a copy (=).
pub fn dropout_forward<T: Real>(p: &DropoutParams, input: &[T], output: &mut [T]) {
    let scale = T::of(p.scale as f64);
    for (i, (o, &x)) in output.iter_mut().zip(input).enumerate() {
        *o = if p.train == 0 {
            x
        } else if keep(p, i as u32) {
            x * scale
        } else {
            T::zero()
        };
    }
}

/// `dinput = dout · keep / (1 − rate)` (=).
pub fn dropout_backward<T: Real>(p: &DropoutParams, dout: &[T], dinput: &mut [T]) {
    let scale = T::of(p.scale as f64);
    for (i, (d, &g)) in dinput.iter_mut().zip(dout).enumerate() {
        *d = if keep(p, i as u32) {
            g * scale
        } else {
            T::zero()
        };
    }
}
