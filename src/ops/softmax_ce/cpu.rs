//! Reference for `softmax_ce.wgsl`: mean softmax cross-entropy with integer labels.

use crate::ops::Real;
use crate::ops::SoftmaxCeParams;

/// Per-row (loss, correct, max, Σ exp) of one row of logits against targets smoothed by `a`
/// (optax.smooth_labels); correct uses the first maximum (jnp.argmax).
fn row<T: Real>(logits: &[T], label: usize, a: T) -> (T, bool, T, T) {
    let mut mx = logits[0];
    let mut arg = 0;
    for (j, &v) in logits.iter().enumerate().skip(1) {
        if v > mx {
            mx = v;
            arg = j;
        }
    }
    let sum: T = logits.iter().map(|&v| (v - mx).exp()).sum();
    let k = T::of(logits.len() as f64);
    // Σ_j q_j·logit_j with q = (1 − a)·onehot + a/k.
    let target: T = logits
        .iter()
        .enumerate()
        .map(|(j, &v)| {
            let q = if j == label { T::one() - a } else { T::zero() } + a / k;
            q * v
        })
        .sum();
    (mx + sum.ln() - target, arg == label, mx, sum)
}

/// Returns (mean loss, number of correct predictions).
pub fn softmax_ce_forward<T: Real>(p: &SoftmaxCeParams, logits: &[T], labels: &[u32]) -> (T, u32) {
    let c = p.classes as usize;
    let mut loss = T::zero();
    let mut correct = 0;
    for (i, &l) in labels.iter().enumerate().take(p.n as usize) {
        let (li, ok, _, _) = row(&logits[i * c..][..c], l as usize, T::of(p.smoothing as f64));
        loss = loss + li;
        correct += ok as u32;
    }
    (loss / T::of(p.n as f64), correct)
}

/// As [`softmax_ce_forward`], and dlogits = (softmax − q) / N (=), q the smoothed targets.
pub fn softmax_ce_backward<T: Real>(
    p: &SoftmaxCeParams,
    logits: &[T],
    labels: &[u32],
    dlogits: &mut [T],
) -> (T, u32) {
    let c = p.classes as usize;
    let inv_n = T::one() / T::of(p.n as f64);
    let a = T::of(p.smoothing as f64);
    for (i, &l) in labels.iter().enumerate().take(p.n as usize) {
        let (_, _, mx, sum) = row(&logits[i * c..][..c], l as usize, a);
        for j in 0..c {
            let sm = (logits[i * c + j] - mx).exp() / sum;
            let onehot = if j == l as usize { T::one() } else { T::zero() };
            let q = (T::one() - a) * onehot + a / T::of(c as f64);
            dlogits[i * c + j] = (sm - q) * inv_n;
        }
    }
    softmax_ce_forward(p, logits, labels)
}
