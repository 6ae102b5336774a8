//! The float types the CPU twins run in (f32 as the shaders, f64 as the exact reference).

/// The float types the reference runs in.
pub trait Real:
    num_traits::Float + std::iter::Sum + std::fmt::Debug + Send + Sync + 'static
{
    fn of(x: f64) -> Self;
    fn as_f64(self) -> f64;
    /// The complementary error function (libm's: erfcf, erfc).
    fn erfc(self) -> Self;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn erfc(self) -> Self {
        libm::erfcf(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn erfc(self) -> Self {
        libm::erfc(self)
    }
}

/// Converts a slice between float types.
pub fn cast<A: Real, B: Real>(x: &[A]) -> Vec<B> {
    x.iter().map(|v| B::of(v.as_f64())).collect()
}

/// Terms summed serially in a run of [`blocked_sum`] (the shaders' `RUN`).
pub const SUM_RUN: usize = 8;
/// Terms in a block of [`blocked_sum`]: `SUM_RUN` runs (the shaders' `BLOCK`).
pub const SUM_BLOCK: usize = SUM_RUN * SUM_RUN;

/// Σ of `terms` in the shaders' blocked order: runs of [`SUM_RUN`] terms summed serially, the
/// runs of a block of [`SUM_BLOCK`] summed serially, then the blocks. The rounding error of n
/// terms grows with 2·SUM_RUN + n/SUM_BLOCK terms instead of n (a serial sum): the reductions
/// over N·H·W rows that batch norm does need it to stay near float64 (docs/notes/numerics.md).
pub fn blocked_sum<T: Real>(terms: impl IntoIterator<Item = T>) -> T {
    let (mut total, mut block, mut run) = (T::zero(), T::zero(), T::zero());
    for (i, t) in terms.into_iter().enumerate() {
        run = run + t;
        if (i + 1) % SUM_RUN == 0 {
            block = block + run;
            run = T::zero();
            if (i + 1) % SUM_BLOCK == 0 {
                total = total + block;
                block = T::zero();
            }
        }
    }
    // A short last run and block close in the same order as the shaders' loops.
    total + (block + run)
}
