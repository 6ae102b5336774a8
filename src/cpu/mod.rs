//! CPU reference of every op and direction, generic over f32 and f64. Each file mirrors the
//! shader of the same stem, function by function (`conv2d_forward` ↔ `conv2d_forward`), and
//! writes its outputs with = like the shaders. These are the ground truth of the tests: plain
//! loops in the most obvious order, no tiling.

pub mod reference;

/// The float types the reference runs in.
pub trait Real:
    num_traits::Float + std::iter::Sum + std::fmt::Debug + Send + Sync + 'static
{
    fn of(x: f64) -> Self;
    fn as_f64(self) -> f64;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
}

/// Converts a slice between float types.
pub fn cast<A: Real, B: Real>(x: &[A]) -> Vec<B> {
    x.iter().map(|v| B::of(v.as_f64())).collect()
}
