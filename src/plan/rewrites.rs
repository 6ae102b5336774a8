//! Rewrites of a built plan that change how steps store and read tensors, not what they
//! compute: ReLU outputs kept as sign masks, and pool backwards folded into Winograd stages.

use super::*;

impl Plan {
    /// Gives every tensor a buffer: I/O tensors their own, the others by lifetime (first to
    /// last step touching them over forward + backward) — a buffer is reused once its previous
    /// tenant's last step is over, so no step reads and writes one buffer.
    /// A conv → ReLU → 2×2 pool run as one subgroup kernel keeps its full-resolution ReLU
    /// output only for the pool backward's ReLU mask. When nothing else reads it, the forward
    /// stores the output's signs instead (`ceil(O/32)` u32 words per pixel, 1/32 of the
    /// floats) and the pool backward reads those: fewer stores in the forward, fewer loads in
    /// the backward, the same values (docs/notes/subgroup-kernels.md).
    pub(super) fn relu_masks(&mut self) {
        for bi in 0..self.backward.len() {
            let Step::AvgPoolBackward {
                p: pool,
                relu_out: Some(t),
                ..
            } = &self.backward[bi]
            else {
                continue;
            };
            let (t, pool) = (*t, *pool);
            let Some(fi) = self.forward.iter().position(|s| {
                matches!(s, Step::Conv { y, pooled: Some(_), p, .. }
                    if *y == t && p.relu == 1 && p.pool == 1)
            }) else {
                continue;
            };
            let readers = self
                .forward
                .iter()
                .chain(&self.backward)
                .filter(|s| s.tensors().contains(&t))
                .count();
            if readers != 2 || !crate::ops::avgpool::mask_fits(&pool) {
                continue;
            }
            if let Step::Conv {
                p,
                winograd: Some(_),
                ..
            } = &self.forward[fi]
            {
                if !crate::ops::conv2d::winograd::can_mask(p) {
                    continue;
                }
            }
            if let Step::Conv { p, .. } = &mut self.forward[fi] {
                *p = p.with_relu_mask();
                self.tensors[t].len = p.relu_mask_len();
            }
            if let Step::AvgPoolBackward { mask, .. } = &mut self.backward[bi] {
                *mask = true;
            }
        }
    }

    /// A Winograd weight gradient whose output gradient comes from a masked 2×2 average pool
    /// backward ([`Plan::relu_masks`]) and is read by nothing else (the input gradient takes
    /// the weight gradient's D) computes it itself from the pooled gradient and the mask
    /// (`winograd_dout_pool`): the pool backward step goes, and the full-resolution gradient is
    /// never stored. Likewise a masked 2×2 pool backward whose input is only a Winograd input
    /// gradient's output runs inside that step's last stage (`winograd_gather_pool`).
    pub(super) fn winograd_pool_backwards(&mut self) {
        let mut bi = 0;
        while bi < self.backward.len() {
            let Step::AvgPoolBackward {
                p: pool,
                dout: dpool,
                relu_out: Some(mask),
                mask: true,
                din: dy,
                ..
            } = &self.backward[bi]
            else {
                bi += 1;
                continue;
            };
            let (pool, dpool, mask, dy) = (*pool, *dpool, *mask, *dy);
            // The one other backward step that uses tensor `t` (none if a forward step does).
            let only_user = |t: TensorId| -> Option<usize> {
                if self.forward.iter().any(|s| s.tensors().contains(&t)) {
                    return None;
                }
                let users: Vec<usize> = (0..self.backward.len())
                    .filter(|&i| i != bi && self.backward[i].tensors().contains(&t))
                    .collect();
                (users.len() == 1).then(|| users[0])
            };
            // The weight gradient of the layer before the ReLU, the only reader of dy.
            let into_weight = only_user(dy).filter(|&wi| {
                matches!(&self.backward[wi], Step::ConvBackwardWeight {
                    p, dout, winograd: Some(_), pool_mask: None, ..
                } if *dout == dy && crate::ops::conv2d::winograd::can_mask(p)
                    && p.h == pool.h && p.w == pool.w && p.o == pool.c)
            });
            // The input gradient of the layer after the pool, the only writer of dpool.
            let into_input = only_user(dpool).filter(|&ii| {
                ii < bi
                    && matches!(&self.backward[ii], Step::ConvBackwardInput {
                        p, din, winograd: Some((_, Some(_))), pool_mask: None, ..
                    } if *din == dpool && p.c.is_multiple_of(4)
                        && pool.h == 2 * p.h && pool.w == 2 * p.w && pool.c == p.c)
            });
            match (into_weight, into_input, &mut self.backward[..]) {
                (Some(wi), _, steps) => {
                    if let Step::ConvBackwardWeight {
                        dout, pool_mask, ..
                    } = &mut steps[wi]
                    {
                        *dout = dpool;
                        *pool_mask = Some(mask);
                    }
                    self.tensors[dy].len = 0;
                }
                (None, Some(ii), steps) => {
                    if let Step::ConvBackwardInput { din, pool_mask, .. } = &mut steps[ii] {
                        *din = dy;
                        *pool_mask = Some(mask);
                    }
                    self.tensors[dpool].len = 0;
                }
                (None, None, _) => {
                    bi += 1;
                    continue;
                }
            }
            self.backward.remove(bi);
        }
    }
}
