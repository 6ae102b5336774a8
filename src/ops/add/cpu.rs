//! Reference for `add.wgsl`: `y = a + b`, then `max(y, 0)` when `p.relu` (=).

use crate::ops::AddParams;
use crate::ops::Real;

pub fn add_forward<T: Real>(p: &AddParams, a: &[T], b: &[T], y: &mut [T]) {
    let n = p.count as usize;
    for ((o, &u), &v) in y[..n].iter_mut().zip(&a[..n]).zip(&b[..n]) {
        let s = u + v;
        *o = if p.relu != 0 { s.max(T::zero()) } else { s };
    }
}
