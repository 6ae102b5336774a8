//! The float types the CPU twins run in (f32 as the shaders, f64 as the exact reference).

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
