//! The CPU reference of a whole plan ([`reference`]): it interprets the plan's unfused layers
//! with the ops' CPU twins (`ops::<op>::cpu`, generic over f32 and f64), the ground truth every
//! fused GPU schedule is tested against.

pub mod reference;

pub use crate::ops::{cast, Real};
