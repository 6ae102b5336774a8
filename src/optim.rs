//! The optimizers, with optax's names, defaults and formulas (`--optimizer adam|adamw|sgd`):
//! - `adam`: optax.adam(lr, b1, b2, eps).
//! - `adamw`: optax.adamw(lr, b1, b2, eps, weight_decay) — Adam's update plus the decoupled
//!   decay `wd·param`, then the learning rate (weight decay default 1e-4, optax's).
//! - `sgd`: optax.sgd(lr, momentum, nesterov), with `--weight-decay` chained before it as
//!   optax.add_decayed_weights (the gradient becomes `g + wd·param`, as PyTorch's SGD).
//!
//! `--decay-mask all` decays every parameter (optax's default mask); `kernels` only the conv and
//! dense kernels (not biases or batch-norm scales).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::ops::AdamParams;
use crate::plan::ParamSpec;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Adam,
    AdamW,
    Sgd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecayMask {
    #[default]
    All,
    Kernels,
}

/// An optimizer and its hyper-parameters (the learning rate and its schedule live beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    pub kind: Kind,
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub decay_mask: DecayMask,
}

impl Default for Optimizer {
    /// optax.adam's defaults.
    fn default() -> Self {
        Optimizer {
            kind: Kind::Adam,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decay_mask: DecayMask::All,
        }
    }
}

/// The command-line flags of the optimizer (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct Flags<'a> {
    pub optimizer: Option<&'a str>,
    pub b1: Option<f64>,
    pub b2: Option<f64>,
    pub eps: Option<f64>,
    pub momentum: Option<f64>,
    pub nesterov: bool,
    pub weight_decay: Option<f64>,
    pub decay_mask: Option<&'a str>,
}

impl Flags<'_> {
    pub fn any(&self) -> bool {
        self.optimizer.is_some()
            || self.b1.is_some()
            || self.b2.is_some()
            || self.eps.is_some()
            || self.momentum.is_some()
            || self.nesterov
            || self.weight_decay.is_some()
            || self.decay_mask.is_some()
    }
}

impl Optimizer {
    /// From the flags (defaults: optax's), checked: one clear error per bad combination.
    pub fn from_flags(f: &Flags) -> Result<Self> {
        let kind = match f.optimizer.unwrap_or("adam") {
            "adam" => Kind::Adam,
            "adamw" => Kind::AdamW,
            "sgd" => Kind::Sgd,
            other => bail!("--optimizer must be adam, adamw or sgd, got {other:?}"),
        };
        let d = Optimizer::default();
        let o = Optimizer {
            kind,
            b1: f.b1.unwrap_or(d.b1),
            b2: f.b2.unwrap_or(d.b2),
            eps: f.eps.unwrap_or(d.eps),
            momentum: f.momentum.unwrap_or(0.0),
            nesterov: f.nesterov,
            weight_decay: f
                .weight_decay
                .unwrap_or(if kind == Kind::AdamW { 1e-4 } else { 0.0 }),
            decay_mask: match f.decay_mask.unwrap_or("all") {
                "all" => DecayMask::All,
                "kernels" => DecayMask::Kernels,
                other => bail!("--decay-mask must be all or kernels, got {other:?}"),
            },
        };
        let adam_flags = f.b1.is_some() || f.b2.is_some() || f.eps.is_some();
        if kind == Kind::Sgd && adam_flags {
            bail!(
                "--b1, --b2 and --eps are Adam's; --optimizer sgd takes --momentum and --nesterov"
            );
        }
        if kind != Kind::Sgd && (f.momentum.is_some() || f.nesterov) {
            bail!("--momentum and --nesterov are SGD's (--optimizer sgd)");
        }
        if kind == Kind::Adam && f.weight_decay.is_some_and(|w| w != 0.0) {
            bail!("--weight-decay needs --optimizer adamw (decoupled, optax.adamw) or sgd");
        }
        if f.decay_mask.is_some() && o.weight_decay == 0.0 {
            bail!("--decay-mask needs a weight decay (--weight-decay, or --optimizer adamw)");
        }
        o.validate()?;
        Ok(o)
    }

    /// Ranges: betas in [0, 1), eps > 0, momentum in [0, 1), decay ≥ 0, all finite in f32.
    pub fn validate(&self) -> Result<()> {
        let f32ok = |v: f64| v.is_finite() && (v as f32).is_finite();
        for (name, v) in [("--b1", self.b1), ("--b2", self.b2)] {
            if !(f32ok(v) && (0.0..1.0).contains(&v)) {
                bail!("{name} must be in [0, 1), got {v}");
            }
        }
        if !(f32ok(self.eps) && self.eps > 0.0) {
            bail!("--eps must be a positive number, got {}", self.eps);
        }
        if !(f32ok(self.momentum) && (0.0..1.0).contains(&self.momentum)) {
            bail!("--momentum must be in [0, 1), got {}", self.momentum);
        }
        if self.nesterov && self.momentum == 0.0 {
            bail!("--nesterov needs a --momentum above 0");
        }
        if !(f32ok(self.weight_decay) && self.weight_decay >= 0.0) {
            bail!(
                "--weight-decay must be a non-negative number, got {}",
                self.weight_decay
            );
        }
        Ok(())
    }

    /// The uniform of step `t` (1-based: optax's count after its increment) at rate `lr`.
    pub fn params(&self, count: u32, lr: f32, t: u32) -> AdamParams {
        let t = t.clamp(1, i32::MAX as u32) as i32;
        let (b1, b2) = (self.b1 as f32, self.b2 as f32);
        AdamParams {
            count,
            lr,
            b1,
            b2,
            eps: self.eps as f32,
            bc1: 1.0 - b1.powi(t),
            bc2: 1.0 - b2.powi(t),
            wd: self.weight_decay as f32,
            masked: (self.decay_mask == DecayMask::Kernels) as u32,
            momentum: self.momentum as f32,
            nesterov: self.nesterov as u32,
            _pad0: 0,
        }
    }

    pub fn is_sgd(&self) -> bool {
        self.kind == Kind::Sgd
    }

    /// The update kernel's rule.
    pub fn rule(&self) -> crate::ops::optimizer::Rule {
        if self.is_sgd() {
            crate::ops::optimizer::Rule::Sgd
        } else {
            crate::ops::optimizer::Rule::Adam
        }
    }

    /// Whether parameter `spec` is decayed under the mask (1) or not (0).
    pub fn mask_of(&self, spec: &ParamSpec) -> f32 {
        match self.decay_mask {
            DecayMask::All => 1.0,
            DecayMask::Kernels => spec.name.ends_with(".kernel") as u32 as f32,
        }
    }

    /// One line for logs: `sgd (momentum 0.9, nesterov, weight decay 0.0005 on kernels)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.kind {
            Kind::Sgd => {
                if self.momentum > 0.0 {
                    parts.push(format!("momentum {}", self.momentum));
                }
                if self.nesterov {
                    parts.push("nesterov".into());
                }
            }
            _ => {
                let d = Optimizer::default();
                if (self.b1, self.b2, self.eps) != (d.b1, d.b2, d.eps) {
                    parts.push(format!("b1 {}, b2 {}, eps {}", self.b1, self.b2, self.eps));
                }
            }
        }
        if self.weight_decay > 0.0 {
            parts.push(format!(
                "weight decay {} on {}",
                self.weight_decay,
                match self.decay_mask {
                    DecayMask::All => "all parameters",
                    DecayMask::Kernels => "kernels",
                }
            ));
        }
        let name = match self.kind {
            Kind::Adam => "adam",
            Kind::AdamW => "adamw",
            Kind::Sgd => "sgd",
        };
        if parts.is_empty() {
            name.into()
        } else {
            format!("{name} ({})", parts.join(", "))
        }
    }
}
