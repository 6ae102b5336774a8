//! The CPU backward of dense layers against finite differences.

use crate::common::{check_grad, rng};
use crate::shared::{dot, randn};
use wgpu_cnn::ops::*;

#[test]
fn dense_backward_matches_finite_differences() {
    for (si, &(m, k, n)) in [(3, 7, 5), (1, 13, 2), (4, 9, 11)].iter().enumerate() {
        let p = DenseParams::new(m, k, n);
        let what = format!("dense m{m} k{k} n{n}");
        let mut r = rng(1200 + si as u64);
        let (mu, ku, nu) = (m as usize, k as usize, n as usize);
        let mut x = randn(&mut r, mu * ku);
        let mut w = randn(&mut r, ku * nu);
        let mut b = randn(&mut r, nu);
        let dy = randn(&mut r, mu * nu);
        let mut dx = vec![0.0; mu * ku];
        wgpu_cnn::ops::dense::cpu::dense_backward_input(&p, &dy, &w, &mut dx);
        let (mut dw, mut db) = (vec![0.0; ku * nu], vec![0.0; nu]);
        wgpu_cnn::ops::dense::cpu::dense_backward_weight(&p, &x, &dy, &mut dw, &mut db);
        let mut y = vec![0.0; mu * nu];
        let (w0, b0) = (w.clone(), b.clone());
        check_grad(&format!("{what} dx"), &mut x, &dx, 200, &mut r, &mut |x| {
            wgpu_cnn::ops::dense::cpu::dense_forward(&p, x, &w0, &b0, &mut y);
            dot(&y, &dy)
        });
        let x0 = x.clone();
        check_grad(&format!("{what} dw"), &mut w, &dw, 200, &mut r, &mut |w| {
            wgpu_cnn::ops::dense::cpu::dense_forward(&p, &x0, w, &b0, &mut y);
            dot(&y, &dy)
        });
        check_grad(&format!("{what} db"), &mut b, &db, 200, &mut r, &mut |b| {
            wgpu_cnn::ops::dense::cpu::dense_forward(&p, &x0, &w0, b, &mut y);
            dot(&y, &dy)
        });
    }
}
