//! The optimizers, with optax's names, defaults and formulas (`--optimizer adam|adamw|sgd`):
//! - `adam`: optax.adam(lr, b1, b2, eps).
//! - `adamw`: optax.adamw(lr, b1, b2, eps, weight_decay) — Adam's update plus the decoupled
//!   decay `wd·param`, then the learning rate (weight decay default 1e-4, optax's).
//! - `sgd`: optax.sgd(lr, momentum, nesterov), with `--weight-decay` chained before it as
//!   optax.add_decayed_weights (the gradient becomes `g + wd·param`, as PyTorch's SGD).
//!
//! `--decay-mask all` decays every parameter (optax's default mask); `kernels` only the conv and
//! dense kernels (not biases or batch-norm scales).
//!
//! Parameter groups (`--param-group "PATTERN: lr=64, decay=0.015625"`, optax.multi_transform's
//! labels, PyTorch's param_groups): the tensors whose Flax names match take the group's
//! multipliers of the learning rate and of the weight decay, or are frozen (optax.set_to_zero:
//! no update and no optimizer state change), from the start or from a given step or epoch on.

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
    /// Parameter groups, the first that matches a tensor wins; the rest train as given above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ParamGroup>,
}

/// When a group stops training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frozen {
    /// After this many updates (0: never updated).
    Step(u64),
    /// After this many epochs (resolved to steps by the run that knows its epoch length).
    Epoch(u32),
}

/// One parameter group (`PATTERN: lr=F, decay=F, frozen, frozen-from-step=N,
/// frozen-from-epoch=E`): PATTERN is globs over Flax parameter names (`BatchNorm_*.bias`),
/// alternatives separated by `|`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    pub pattern: String,
    /// Multiplies the learning rate (the schedule's, each step).
    pub lr: f64,
    /// Multiplies the weight decay.
    pub decay: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
}

impl ParamGroup {
    /// Parses `PATTERN: key=value, …` (the flag's and the recipe's form).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: String| anyhow::anyhow!("--param-group {spec:?}: {why}");
        let (pattern, opts) = spec.split_once(':').unwrap_or((spec, ""));
        let pattern = pattern.trim().to_string();
        if pattern.is_empty() {
            return Err(bad(
                "no name pattern before `:` (e.g. `BatchNorm_*.bias: lr=64`)".into(),
            ));
        }
        for alt in pattern.split('|') {
            glob::Pattern::new(alt.trim()).map_err(|e| bad(format!("pattern `{alt}`: {e}")))?;
        }
        let mut g = ParamGroup {
            pattern,
            lr: 1.0,
            decay: 1.0,
            frozen: None,
        };
        for opt in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (k, v) = opt
                .split_once('=')
                .map_or((opt, None), |(k, v)| (k.trim(), Some(v.trim())));
            let num = |v: Option<&str>| -> Result<f64> {
                let v = v.ok_or_else(|| bad(format!("`{k}` takes a value ({k}=…)")))?;
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0 && (*x as f32).is_finite())
                    .ok_or_else(|| bad(format!("`{k}` must be a non-negative number, got `{v}`")))
            };
            let count = |v: Option<&str>| -> Result<u64> {
                let v = v.ok_or_else(|| bad(format!("`{k}` takes a value ({k}=…)")))?;
                v.parse::<u64>()
                    .map_err(|_| bad(format!("`{k}` must be a whole number, got `{v}`")))
            };
            match k {
                "lr" => g.lr = num(v)?,
                "decay" => g.decay = num(v)?,
                "frozen" if v.is_none() => g.frozen = Some(Frozen::Step(0)),
                "frozen-from-step" => g.frozen = Some(Frozen::Step(count(v)?)),
                "frozen-from-epoch" => {
                    g.frozen = Some(Frozen::Epoch(
                        u32::try_from(count(v)?).map_err(|_| bad("epoch out of range".into()))?,
                    ))
                }
                _ => {
                    return Err(bad(format!(
                        "unknown option `{opt}` (allowed: lr=F, decay=F, frozen, frozen-from-step=N, frozen-from-epoch=E)"
                    )))
                }
            }
        }
        Ok(g)
    }

    /// The canonical spec, which [`ParamGroup::parse`] reads back as the same group.
    pub fn spec(&self) -> String {
        let mut opts = Vec::new();
        if self.lr != 1.0 {
            opts.push(format!("lr={}", self.lr));
        }
        if self.decay != 1.0 {
            opts.push(format!("decay={}", self.decay));
        }
        match self.frozen {
            Some(Frozen::Step(0)) => opts.push("frozen".into()),
            Some(Frozen::Step(n)) => opts.push(format!("frozen-from-step={n}")),
            Some(Frozen::Epoch(e)) => opts.push(format!("frozen-from-epoch={e}")),
            None => {}
        }
        format!("{}: {}", self.pattern, opts.join(", "))
    }

    /// Whether parameter `name` belongs to the group.
    pub fn matches(&self, name: &str) -> bool {
        self.pattern
            .split('|')
            .filter_map(|alt| glob::Pattern::new(alt.trim()).ok())
            .any(|p| p.matches(name))
    }
}

/// Lookahead (`--lookahead "every=K, decay=D, power=P"`; optax.lookahead, airbench94's
/// LookaheadState): a slow copy of the parameters and of the batch-norm running statistics;
/// after every K-th update the slow copy moves toward the trained (fast) one by
/// `w = 1 − D·(t/T)^P` (t the update, T the run's updates; P = 0: optax.lookahead with
/// `slow_step_size = 1 − D`) and the fast one takes it; after the run's last update the fast
/// one takes the slow copy (w = 0), so the run ends with the slow weights. The optimizer's
/// state is left as it is (optax's `reset_state=False`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lookahead {
    pub every: u32,
    pub decay: f64,
    pub power: f64,
}

impl Lookahead {
    /// Parses `every=K, decay=D, power=P` (power defaults to 0).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: String| anyhow::anyhow!("--lookahead {spec:?}: {why}");
        let (mut every, mut decay, mut power) = (None, None, 0.0);
        for opt in spec.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let Some((k, v)) = opt.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
                return Err(bad(format!("`{opt}` is not key=value")));
            };
            let num = || {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && (*x as f32).is_finite())
                    .ok_or_else(|| bad(format!("`{k}` must be a number, got `{v}`")))
            };
            match k {
                "every" => {
                    every = Some(v.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        bad(format!("`every` must be a whole number ≥ 1, got `{v}`"))
                    })?)
                }
                "decay" => decay = Some(num()?),
                "power" => power = num()?,
                _ => {
                    return Err(bad(format!(
                        "unknown key `{k}` (allowed: every, decay, power)"
                    )))
                }
            }
        }
        let every =
            every.ok_or_else(|| bad("missing `every=K` (synchronise every K updates)".into()))?;
        let decay = decay.ok_or_else(|| {
            bad("missing `decay=D` (the slow weights keep D of themselves)".into())
        })?;
        if !(0.0..=1.0).contains(&decay) {
            return Err(bad(format!("`decay` must be in [0, 1], got {decay}")));
        }
        if power < 0.0 {
            return Err(bad(format!("`power` must be ≥ 0, got {power}")));
        }
        Ok(Lookahead {
            every,
            decay,
            power,
        })
    }

    /// The canonical spec ([`Lookahead::parse`] reads it back).
    pub fn spec(&self) -> String {
        format!(
            "every={}, decay={}, power={}",
            self.every, self.decay, self.power
        )
    }

    /// The synchronisation after update `t` (1-based) of a run of `total` updates: the lerp
    /// weight, or `None` when there is none. Computed in f32 as airbench's PyTorch does
    /// (`decay · (t/T)³` in f32, `1 − decay` in f64, rounded to f32).
    pub fn weight(&self, t: u64, total: u64) -> Option<f32> {
        if t.is_multiple_of(self.every as u64) {
            let x = t as f32 / total.max(1) as f32;
            // Small whole powers as repeated products, as PyTorch's `x ** 3` computes them.
            let p = self.power;
            let ramp = if p == 0.0 {
                1.0
            } else if p == 1.0 {
                x
            } else if p == 2.0 {
                x * x
            } else if p == 3.0 {
                x * x * x
            } else {
                x.powf(p as f32)
            };
            let d = self.decay as f32 * ramp;
            Some((1.0 - d as f64) as f32)
        } else if t == total {
            Some(0.0)
        } else {
            None
        }
    }
}

/// The update's group table for one model: per tensor an entry of the uniform's table, and per
/// entry the learning-rate and decay multipliers and the step from which it is frozen. The
/// decay mask (`--decay-mask kernels`) is part of an entry's decay multiplier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Groups {
    /// Per tensor of the layout, its entry.
    pub of_tensor: Vec<u32>,
    /// Per entry: (lr multiplier, decay multiplier, frozen after this many updates).
    entries: Vec<(f32, f32, Option<u64>)>,
}

impl Groups {
    /// Whether the update needs the per-element table (else it runs as without groups).
    pub fn active(&self) -> bool {
        self.entries
            .iter()
            .any(|&(lr, decay, frozen)| lr != 1.0 || decay != 1.0 || frozen.is_some())
    }

    /// Fills `p`'s table for update `t` (1-based) and marks it as read; untouched when the
    /// groups change nothing (the update then runs exactly as without them).
    pub fn apply(&self, p: &mut AdamParams, t: u32) {
        if !self.active() {
            return;
        }
        p.masked = 1;
        for (k, &(lr, decay, frozen)) in self.entries.iter().enumerate() {
            let off = frozen.is_some_and(|n| t as u64 > n);
            p.groups[k] = [lr, decay, off as u32 as f32, 0.0];
        }
    }
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
            groups: Vec::new(),
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
    pub param_groups: &'a [String],
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
            || !self.param_groups.is_empty()
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
            groups: f
                .param_groups
                .iter()
                .map(|g| ParamGroup::parse(g))
                .collect::<Result<_>>()?,
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

    /// The uniform of step `t` (1-based: optax's count after its increment) at rate `lr`,
    /// without the group table (the decay mask and parameter groups, [`Groups::apply`]).
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
            // The decay mask and the parameter groups: `Groups::apply`.
            masked: 0,
            momentum: self.momentum as f32,
            nesterov: self.nesterov as u32,
            _pad0: 0,
            groups: [[0.0; 4]; AdamParams::GROUPS],
        }
    }

    /// The optimizer of a run whose epochs are `steps_per_epoch` updates long: a group frozen
    /// from an epoch on is frozen from that epoch's first step.
    pub fn with_epoch_length(&self, steps_per_epoch: u64) -> Optimizer {
        let mut o = self.clone();
        for g in &mut o.groups {
            if let Some(Frozen::Epoch(e)) = g.frozen {
                g.frozen = Some(Frozen::Step(e as u64 * steps_per_epoch));
            }
        }
        o
    }

    /// The group table of a model with parameters `specs` (in layout order). Errors name a
    /// group that matches no parameter, one frozen from an epoch outside a training run
    /// ([`Optimizer::with_epoch_length`]) and a table too large for the uniform.
    pub fn groups(&self, specs: &[ParamSpec]) -> Result<Groups> {
        let mut keys: Vec<(usize, u32)> = Vec::new();
        let mut of_tensor = Vec::with_capacity(specs.len());
        let mut used = vec![false; self.groups.len()];
        for spec in specs {
            let g = self.groups.iter().position(|g| g.matches(&spec.name));
            if let Some(g) = g {
                used[g] = true;
            }
            // Entry 0 is the default group; group k is entry k + 1.
            let key = (g.map_or(0, |g| g + 1), self.mask_of(spec).to_bits());
            let k = match keys.iter().position(|&x| x == key) {
                Some(k) => k,
                None => {
                    keys.push(key);
                    keys.len() - 1
                }
            };
            of_tensor.push(k as u32);
        }
        if let Some(g) = used.iter().position(|u| !u) {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "--param-group {:?} matches no parameter of the model that an earlier group does not take ({})",
                self.groups[g].spec(),
                names.join(", ")
            );
        }
        if keys.len() > AdamParams::GROUPS {
            bail!(
                "--param-group: {} groups (with the decay mask) exceed the update's {}",
                keys.len(),
                AdamParams::GROUPS
            );
        }
        let entries = keys
            .iter()
            .map(|&(g, mask)| {
                let mask = f32::from_bits(mask);
                let Some(group) = g.checked_sub(1).map(|g| &self.groups[g]) else {
                    return Ok((1.0, mask, None));
                };
                let frozen = match group.frozen {
                    None => None,
                    Some(Frozen::Step(n)) => Some(n),
                    Some(Frozen::Epoch(_)) => bail!(
                        "--param-group {:?}: frozen-from-epoch needs the run's epoch length",
                        group.spec()
                    ),
                };
                // A decay multiplier on a masked-off tensor stays 0.
                Ok((group.lr as f32, mask * group.decay as f32, frozen))
            })
            .collect::<Result<_>>()?;
        Ok(Groups { of_tensor, entries })
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
        for g in &self.groups {
            parts.push(format!("group {}", g.spec()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ParamSpec {
        ParamSpec::new(
            name.into(),
            vec![2],
            if name.ends_with(".kernel") { 2 } else { 0 },
        )
    }

    #[test]
    fn param_groups_parse_print_and_match() {
        let g = ParamGroup::parse("BatchNorm_*.bias: lr=64, decay=0.015625").unwrap();
        assert_eq!((g.lr, g.decay, g.frozen), (64.0, 0.015625, None));
        assert_eq!(ParamGroup::parse(&g.spec()).unwrap(), g);
        assert!(g.matches("BatchNorm_12.bias") && !g.matches("BatchNorm_1.scale"));
        let f = ParamGroup::parse("Conv_0.kernel|Conv_0.bias: frozen-from-epoch=3").unwrap();
        assert_eq!(f.frozen, Some(Frozen::Epoch(3)));
        assert!(f.matches("Conv_0.bias") && !f.matches("Conv_10.bias"));
        assert_eq!(ParamGroup::parse(&f.spec()).unwrap(), f);
        assert_eq!(
            ParamGroup::parse("Dense_*: frozen").unwrap().frozen,
            Some(Frozen::Step(0))
        );
        for (bad, why) in [
            (": lr=2", "no name pattern"),
            ("Conv_*: lr=-1", "non-negative number"),
            ("Conv_*: lr", "takes a value"),
            ("Conv_*: lrr=2", "unknown option `lrr=2`"),
            ("Conv_[: lr=2", "pattern"),
            ("Conv_*: frozen-from-step=1.5", "whole number"),
        ] {
            let e = ParamGroup::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    /// The first matching group wins; the decay mask multiplies each entry's decay; epochs
    /// become steps; a frozen entry switches off after its updates; a group that matches
    /// nothing is an error naming it.
    #[test]
    fn group_tables() {
        let specs: Vec<ParamSpec> = [
            "Conv_0.kernel",
            "Conv_0.bias",
            "BatchNorm_0.bias",
            "Dense_0.kernel",
        ]
        .iter()
        .map(|n| spec(n))
        .collect();
        let opt = Optimizer {
            kind: Kind::Sgd,
            weight_decay: 0.1,
            decay_mask: DecayMask::Kernels,
            groups: [
                "BatchNorm_*.bias: lr=64, decay=0.5",
                "Conv_0.*: frozen-from-epoch=2",
                "*.bias: lr=3",
            ]
            .iter()
            .map(|g| ParamGroup::parse(g).unwrap())
            .collect(),
            ..Optimizer::default()
        };
        let e = opt
            .with_epoch_length(5)
            .groups(&specs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"*.bias: lr=3\" matches no parameter"), "{e}");
        let opt = Optimizer {
            groups: opt.groups[..2].to_vec(),
            ..opt
        };
        assert!(opt
            .groups(&specs)
            .unwrap_err()
            .to_string()
            .contains("epoch"));
        let g = opt.with_epoch_length(5).groups(&specs).unwrap();
        assert!(g.active());
        // Conv_0.kernel (frozen group, mask 1), Conv_0.bias (frozen group, mask 0),
        // BatchNorm_0.bias (×64, mask 0), Dense_0.kernel (default, mask 1).
        assert_eq!(g.of_tensor, [0, 1, 2, 3]);
        let mut p = opt.params(8, 0.1, 10);
        g.apply(&mut p, 10);
        assert_eq!(p.masked, 1);
        assert_eq!(
            &p.groups[..4],
            &[
                [1.0, 1.0, 0.0, 0.0],
                [1.0, 0.0, 0.0, 0.0],
                [64.0, 0.0, 0.0, 0.0],
                [1.0, 1.0, 0.0, 0.0]
            ]
        );
        g.apply(&mut p, 11);
        assert_eq!(p.groups[0][2], 1.0, "frozen after 2 epochs of 5 steps");
        // Without groups or a mask, the update runs as it always did.
        let plain = Optimizer::default().groups(&specs).unwrap();
        assert!(!plain.active());
        let mut p = Optimizer::default().params(8, 0.1, 1);
        let before = p;
        plain.apply(&mut p, 1);
        assert_eq!(p, before);
    }

    /// airbench94's schedule: every 5 updates, w = 1 − 0.95⁵·(t/T)³; the last update copies
    /// back (w = 0); power 0 is optax.lookahead's constant slow step.
    #[test]
    fn lookahead_weights() {
        let la = Lookahead::parse("every=5, decay=0.7737809375, power=3").unwrap();
        assert_eq!(Lookahead::parse(&la.spec()).unwrap(), la);
        assert_eq!(la.weight(4, 476), None);
        let x = 5.0f32 / 476.0;
        assert_eq!(
            la.weight(5, 476),
            Some((1.0 - ((0.7737809375f64 as f32) * (x * x * x)) as f64) as f32)
        );
        assert_eq!(la.weight(475, 476).map(|w| (w * 1e4).round()), Some(2311.0));
        assert_eq!(la.weight(476, 476), Some(0.0));
        let c = Lookahead::parse("every=6,decay=0.5").unwrap();
        assert_eq!((c.weight(12, 100), c.weight(13, 100)), (Some(0.5), None));
        for (bad, why) in [
            ("decay=0.5", "missing `every"),
            ("every=0, decay=0.5", "whole number"),
            ("every=5, decay=1.5", "in [0, 1]"),
            ("every=5, decay=0.5, rho=1", "unknown key `rho`"),
            ("every=5 decay=0.5", "must be a whole number"),
        ] {
            let e = Lookahead::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
