//! Reference for `dense.wgsl`: y[M,N] = x[M,K] · w[K,N] + b[N], then ReLU when
//! `p.relu = 1` (fused); without a bias (`p.bias = 0`) b is neither read nor written.

use crate::ops::DenseParams;
use crate::ops::Real;

pub fn dense_forward<T: Real>(p: &DenseParams, x: &[T], w: &[T], b: &[T], y: &mut [T]) {
    let (m, k, n) = (p.m as usize, p.k as usize, p.n as usize);
    for i in 0..m {
        let row = &mut y[i * n..][..n];
        if p.bias != 0 {
            row.copy_from_slice(&b[..n]);
        } else {
            row.iter_mut().for_each(|v| *v = T::zero());
        }
        for kk in 0..k {
            let a = x[i * k + kk];
            for (acc, &wv) in row.iter_mut().zip(&w[kk * n..][..n]) {
                *acc = *acc + a * wv;
            }
        }
        if p.relu != 0 {
            row.iter_mut().for_each(|v| *v = v.max(T::zero()));
        }
    }
}

/// dx = dy · wᵀ (=).
pub fn dense_backward_input<T: Real>(p: &DenseParams, dy: &[T], w: &[T], dx: &mut [T]) {
    let (m, k, n) = (p.m as usize, p.k as usize, p.n as usize);
    for i in 0..m {
        for kk in 0..k {
            dx[i * k + kk] = dy[i * n..][..n]
                .iter()
                .zip(&w[kk * n..][..n])
                .map(|(&a, &b)| a * b)
                .sum();
        }
    }
}

/// dw = xᵀ · dy, db = Σ_m dy (=; db only with a bias).
pub fn dense_backward_weight<T: Real>(
    p: &DenseParams,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: &mut [T],
) {
    let (m, k, n) = (p.m as usize, p.k as usize, p.n as usize);
    dw[..k * n].iter_mut().for_each(|v| *v = T::zero());
    let has_bias = p.bias != 0;
    if has_bias {
        db[..n].iter_mut().for_each(|v| *v = T::zero());
    }
    for i in 0..m {
        let d = &dy[i * n..][..n];
        if has_bias {
            for (acc, &g) in db.iter_mut().zip(d) {
                *acc = *acc + g;
            }
        }
        for kk in 0..k {
            let a = x[i * k + kk];
            for (acc, &g) in dw[kk * n..][..n].iter_mut().zip(d) {
                *acc = *acc + a * g;
            }
        }
    }
}
