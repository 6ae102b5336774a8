//! Launcher for `adam.wgsl`: the optimizers' update (Adam, AdamW, SGD).

use super::{LookaheadParams, Rule};
use crate::gpu::dispatch::grid;
use crate::gpu::{BufSlice, Dispatch, Gpu};
use crate::ops::AdamParams;

/// The optimizer state and group table of an update: `mu` (SGD: the momentum trace), `nu`
/// (Adam's second moment), `group` (per element its entry of `p.groups` as u32, read when
/// `p.masked = 1`; any buffer otherwise).
#[derive(Clone, Copy, Debug)]
pub struct OptimizerBuffers<'a> {
    pub param: BufSlice<'a>,
    pub grad: BufSlice<'a>,
    pub mu: BufSlice<'a>,
    pub nu: BufSlice<'a>,
    pub group: BufSlice<'a>,
}

/// One step of Adam/AdamW (`adam_update`) or SGD (`sgd_update`, [`Rule::Sgd`]) over flat buffers
/// of `p.count` elements. The returned dispatch's `uniform` is rewritten before each step.
/// When every buffer holds ceil(count / 4) whole vec4s (the elements past `count` zero pads, as
/// [`padded_len`] allocates them; the group buffer needs them only when `p.masked = 1`), the `_vec4`
/// entry points run instead: same values, four elements per invocation.
pub fn update(gpu: &Gpu, p: &AdamParams, b: &OptimizerBuffers<'_>, rule: Rule) -> Dispatch {
    let sgd = rule == Rule::Sgd;
    let u = gpu.uniform("adam.params", p);
    let padded = 4 * padded_len(p.count as usize) as u64;
    let vec4 = [b.param, b.grad, b.mu]
        .iter()
        .chain(if sgd { None } else { Some(&b.nu) })
        .all(|s| s.size >= padded)
        && b.group.size >= if p.masked != 0 { padded } else { 16 };
    let entry = rule.entry(vec4);
    // SGD has one state slot: nu is not bound.
    let base = if vec4 { 10 } else { 0 };
    let all = [
        (base + 1, b.param),
        (base + 2, b.grad),
        (base + 3, b.mu),
        (base + 5, b.group),
        (base + 4, b.nu),
    ];
    let threads = if vec4 { p.count.div_ceil(4) } else { p.count };
    Dispatch::new(
        gpu,
        "adam",
        entry,
        &u,
        &all[..if sgd { 4 } else { 5 }],
        grid(threads),
        10 * p.count as u64,
        4 * 7 * p.count as u64,
    )
}

/// Elements to allocate for a flat optimizer buffer of `len` elements so that the vec4 update
/// runs: `len` rounded up to whole vec4s (the extra elements zero).
pub fn padded_len(len: usize) -> usize {
    len.max(1).next_multiple_of(4)
}

/// One lookahead synchronisation of `slow` toward `fast` over `p.count` values, both updated
/// in place (`lookahead_sync`). The returned dispatch's `uniform` is rewritten before each use.
pub fn lookahead(
    gpu: &Gpu,
    p: &LookaheadParams,
    slow: BufSlice<'_>,
    fast: BufSlice<'_>,
) -> Dispatch {
    let u = gpu.uniform("lookahead.params", p);
    Dispatch::new(
        gpu,
        "lookahead",
        "lookahead_sync",
        &u,
        &[(1, slow), (2, fast)],
        grid(p.count),
        3 * p.count as u64,
        16 * p.count as u64,
    )
}
