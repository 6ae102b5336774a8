//! The optimizer update (optax's adam, adamw, sgd with momentum/Nesterov and decay), and the
//! lookahead synchronisation of slow and fast weights (`lookahead.wgsl`).

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// One optimizer step over `count` parameters (`adam.wgsl`): Adam (optax defaults unless set;
/// `bc1 = 1 - b1^t`, `bc2 = 1 - b2^t`), AdamW's decoupled weight decay `wd`, or SGD with a
/// momentum trace (`sgd_update`); `masked = 1`: element i belongs to entry `group[i]` of
/// `groups`, whose `[lr multiplier, decay multiplier, frozen (1) or not (0), 0]` apply to it
/// (the parameter groups and the decay mask, `crate::optim::Groups`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct AdamParams {
    pub count: u32,
    pub lr: f32,
    pub b1: f32,
    pub b2: f32,
    pub eps: f32,
    pub bc1: f32,
    pub bc2: f32,
    pub wd: f32,
    pub masked: u32,
    pub momentum: f32,
    pub nesterov: u32,
    pub _pad0: u32,
    pub groups: [[f32; 4]; AdamParams::GROUPS],
}

impl AdamParams {
    pub const B1: f32 = 0.9;
    pub const B2: f32 = 0.999;
    pub const EPS: f32 = 1e-8;
    /// Entries of the group table (parameter groups times the decay mask's two values).
    pub const GROUPS: usize = 16;

    /// Parameters of step `t` (1-based, as optax counts after its increment).
    pub fn new(count: u32, lr: f32, t: u32) -> Self {
        let t = t.clamp(1, i32::MAX as u32) as i32;
        Self {
            count,
            lr,
            b1: Self::B1,
            b2: Self::B2,
            eps: Self::EPS,
            bc1: 1.0 - Self::B1.powi(t),
            bc2: 1.0 - Self::B2.powi(t),
            wd: 0.0,
            masked: 0,
            momentum: 0.0,
            nesterov: 0,
            _pad0: 0,
            groups: [[0.0; 4]; Self::GROUPS],
        }
    }
}

/// Which update rule the optimizer step runs (`adam.wgsl`): Adam and AdamW share one kernel
/// (AdamW's decay is a uniform), SGD (with or without momentum, Nesterov, decay) has its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rule {
    #[default]
    Adam,
    Sgd,
}

impl Rule {
    /// The entry point: the `_vec4` form where every buffer holds whole vec4s (the model
    /// allocates them so, `gpu::padded_len`).
    pub fn entry(self, vec4: bool) -> &'static str {
        match (self, vec4) {
            (Rule::Adam, false) => "adam_update",
            (Rule::Sgd, false) => "sgd_update",
            (Rule::Adam, true) => "adam_update_vec4",
            (Rule::Sgd, true) => "sgd_update_vec4",
        }
    }
}

/// One lookahead synchronisation over `count` values (`lookahead.wgsl`): the slow copy moves
/// toward the fast one by `weight` (PyTorch's lerp), and the fast one takes the result.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct LookaheadParams {
    pub count: u32,
    pub weight: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

impl LookaheadParams {
    pub fn new(count: u32, weight: f32) -> Self {
        LookaheadParams {
            count,
            weight,
            _pad0: 0,
            _pad1: 0,
        }
    }
}
