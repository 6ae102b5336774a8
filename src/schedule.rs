//! Learning-rate schedules with optax's names, defaults and formulas. The learning rate of Adam
//! step `t` (1-based, as the GPU counts) is the schedule at optax's `count = t − 1`, computed on
//! the CPU when the step is recorded and written into the Adam uniform: no GPU stall.
//!
//! - `constant`: `lr`.
//! - `cosine`: `optax.cosine_decay_schedule(lr, decay_steps=total, alpha=end_lr/lr)`:
//!   `lr·((1 − α)·½(1 + cos(π·min(count, total)/total)) + α)`.
//! - `warmup-cosine`: `optax.warmup_cosine_decay_schedule(0, lr, warmup, decay_steps=total,
//!   end_value=end_lr)`: linear from 0 to `lr` over `warmup` steps, then the cosine decay from
//!   `lr` to `end_lr` over the remaining `total − warmup` steps.
//! - `piecewise`: `optax.piecewise_constant_schedule(lr, {boundary: scale})`: `lr` times every
//!   scale whose boundary is ≤ count.
//!
//! `total` is epochs × steps per epoch of the whole run.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    #[default]
    Constant,
    Cosine {
        end_lr: f64,
    },
    WarmupCosine {
        warmup_steps: u64,
        end_lr: f64,
        /// The warmup as a number of epochs (a recipe's `warmup_epochs`): `warmup_steps` is
        /// then derived from the run's steps per epoch ([`Schedule::resolve`]), so that a
        /// recipe keeps its shape on a slice of the data (`--train-limit`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warmup_epochs: Option<f64>,
        /// The warmup as a fraction of the run's steps (a recipe's `warmup_fraction`, as
        /// Hugging Face's `warmup_ratio`): `warmup_steps` follows the run's length, so a preset
        /// keeps its shape on `--epochs 1 --train-limit 512`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warmup_fraction: Option<f64>,
    },
    Piecewise {
        boundaries: Vec<u64>,
        scales: Vec<f64>,
    },
    /// optax.piecewise_interpolate_schedule('linear', lr, {boundary: scale}): the values
    /// lr, lr·s1, lr·s1·s2, … at steps 0, b1, b2, …, linear between them, the last held.
    PiecewiseLinear {
        boundaries: Vec<u64>,
        scales: Vec<f64>,
    },
}

impl Schedule {
    /// From the CLI's flags; one clear error for combinations that do not make sense.
    pub fn from_flags(
        kind: &str,
        warmup_steps: Option<u64>,
        warmup_epochs: Option<f64>,
        warmup_fraction: Option<f64>,
        end_lr: Option<f64>,
        boundaries: Option<&str>,
        scales: Option<&str>,
    ) -> Result<Self> {
        let end = end_lr.unwrap_or(0.0);
        let given = [
            warmup_steps.is_some(),
            warmup_epochs.is_some(),
            warmup_fraction.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            bail!("--warmup-steps, --warmup-epochs and --warmup-fraction each give the warmup: choose one");
        }
        if let Some(e) = warmup_epochs {
            if !(e.is_finite() && e >= 0.0) {
                bail!("--warmup-epochs must be a finite number >= 0, got {e}");
            }
        }
        if let Some(f) = warmup_fraction {
            if !(0.0..=1.0).contains(&f) {
                bail!("--warmup-fraction must be between 0 and 1, got {f}");
            }
        }
        if !(end.is_finite() && end >= 0.0) {
            bail!("--end-lr must be a finite number >= 0, got {end}");
        }
        let unused = |flag: &str, given: bool| -> Result<()> {
            if given {
                bail!("{flag} does not apply to --schedule {kind}");
            }
            Ok(())
        };
        Ok(match kind {
            "constant" => {
                unused("--warmup-steps", warmup_steps.is_some())?;
                unused("--warmup-epochs", warmup_epochs.is_some())?;
                unused("--warmup-fraction", warmup_fraction.is_some())?;
                unused("--end-lr", end_lr.is_some())?;
                unused("--boundaries", boundaries.is_some())?;
                unused("--scales", scales.is_some())?;
                Schedule::Constant
            }
            "cosine" => {
                unused("--warmup-steps", warmup_steps.is_some())?;
                unused("--warmup-epochs", warmup_epochs.is_some())?;
                unused("--warmup-fraction", warmup_fraction.is_some())?;
                unused("--boundaries", boundaries.is_some())?;
                unused("--scales", scales.is_some())?;
                Schedule::Cosine { end_lr: end }
            }
            "warmup-cosine" => {
                unused("--boundaries", boundaries.is_some())?;
                unused("--scales", scales.is_some())?;
                Schedule::WarmupCosine {
                    warmup_steps: warmup_steps.unwrap_or(0),
                    end_lr: end,
                    warmup_epochs,
                    warmup_fraction,
                }
            }
            "piecewise" | "piecewise-linear" => {
                unused("--warmup-steps", warmup_steps.is_some())?;
                unused("--warmup-epochs", warmup_epochs.is_some())?;
                unused("--warmup-fraction", warmup_fraction.is_some())?;
                unused("--end-lr", end_lr.is_some())?;
                let list = |flag: &str, v: Option<&str>| -> Result<Vec<String>> {
                    match v {
                        Some(v) if !v.trim().is_empty() => {
                            Ok(v.split(',').map(|s| s.trim().to_string()).collect())
                        }
                        _ => bail!("--schedule piecewise needs {flag} (comma-separated)"),
                    }
                };
                let boundaries: Vec<u64> = list("--boundaries", boundaries)?
                    .iter()
                    .map(|s| {
                        s.parse()
                            .map_err(|_| anyhow::anyhow!("--boundaries: {s:?} is not a step count"))
                    })
                    .collect::<Result<_>>()?;
                let scales: Vec<f64> = list("--scales", scales)?
                    .iter()
                    .map(|s| match s.parse::<f64>() {
                        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                        _ => Err(anyhow::anyhow!(
                            "--scales: {s:?} is not a finite number >= 0"
                        )),
                    })
                    .collect::<Result<_>>()?;
                if boundaries.len() != scales.len() {
                    bail!(
                        "--boundaries has {} values, --scales {}: one scale per boundary",
                        boundaries.len(),
                        scales.len()
                    );
                }
                if boundaries.windows(2).any(|w| w[0] >= w[1]) {
                    bail!("--boundaries must increase");
                }
                if kind == "piecewise" {
                    Schedule::Piecewise { boundaries, scales }
                } else {
                    Schedule::PiecewiseLinear { boundaries, scales }
                }
            }
            _ => bail!(
                "--schedule must be constant, cosine, warmup-cosine, piecewise or piecewise-linear, got {kind:?}"
            ),
        })
    }

    /// Derives the steps of a warmup given in epochs or as a fraction from the run's length
    /// (rounded to the nearest step; 2 epochs of 351 steps is optax's `warmup_steps = 702`).
    pub fn resolve(&mut self, steps_per_epoch: u64, total: u64) {
        if let Schedule::WarmupCosine {
            warmup_steps,
            warmup_epochs,
            warmup_fraction,
            ..
        } = self
        {
            if let Some(e) = warmup_epochs {
                *warmup_steps = (*e * steps_per_epoch as f64).round() as u64;
            }
            if let Some(f) = warmup_fraction {
                *warmup_steps = (*f * total as f64).round() as u64;
            }
        }
    }

    /// Checks the schedule against the run's length (`total` Adam steps): a warmup longer than
    /// the run is refused, as optax's warmup_cosine_decay_schedule refuses it.
    pub fn validate(&self, total: u64) -> Result<()> {
        if let Schedule::WarmupCosine {
            warmup_steps,
            warmup_epochs,
            ..
        } = self
        {
            if *warmup_steps > total {
                let given = match warmup_epochs {
                    Some(e) => format!("--warmup-epochs {e} ({warmup_steps} steps)"),
                    None => format!("--warmup-steps {warmup_steps}"),
                };
                bail!(
                    "{given} is longer than the run's {total} steps (--warmup-fraction F scales with the run)"
                );
            }
        }
        Ok(())
    }

    /// The learning rate at optax's `count` (updates done so far) for base rate `lr` and a run
    /// of `total` steps.
    pub fn lr(&self, lr: f64, count: u64, total: u64) -> f64 {
        let cosine = |init: f64, end: f64, count: u64, steps: u64| -> f64 {
            if steps == 0 {
                return init;
            }
            let alpha = if init == 0.0 { 0.0 } else { end / init };
            let t = count.min(steps) as f64 / steps as f64;
            let c = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
            init * ((1.0 - alpha) * c + alpha)
        };
        match self {
            Schedule::Constant => lr,
            Schedule::Cosine { end_lr } => cosine(lr, *end_lr, count, total),
            Schedule::WarmupCosine {
                warmup_steps,
                end_lr,
                ..
            } => {
                if count < *warmup_steps {
                    lr * count as f64 / *warmup_steps as f64
                } else {
                    cosine(
                        lr,
                        *end_lr,
                        count - warmup_steps,
                        total.saturating_sub(*warmup_steps),
                    )
                }
            }
            Schedule::Piecewise { boundaries, scales } => boundaries
                .iter()
                .zip(scales)
                .filter(|(&b, _)| count >= b)
                .fold(lr, |v, (_, &s)| v * s),
            Schedule::PiecewiseLinear { boundaries, scales } => {
                // optax: bounds (0, b1, …), values cumprod(lr, s1, …); in [b_i, b_i+1) the
                // value moves linearly from values[i] to values[i+1] (an empty interval
                // counts as one step); from the last bound on, the last value.
                let mut start = (0u64, lr);
                for (&b, &s) in boundaries.iter().zip(scales) {
                    let end = (b, start.1 * s);
                    if count < b {
                        if count < start.0 {
                            return start.1;
                        }
                        let pct = (count - start.0) as f64 / (b - start.0).max(1) as f64;
                        return (end.1 - start.1) * pct + start.1;
                    }
                    start = end;
                }
                start.1
            }
        }
    }

    /// One line for logs.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Constant => "constant".into(),
            Schedule::Cosine { end_lr } => format!("cosine to {end_lr}"),
            Schedule::WarmupCosine {
                warmup_steps,
                end_lr,
                warmup_epochs,
                warmup_fraction,
            } => match (warmup_epochs, warmup_fraction) {
                (Some(e), _) => {
                    format!("warmup {e} epochs ({warmup_steps} steps), then cosine to {end_lr}")
                }
                (_, Some(f)) => {
                    format!("warmup {f} of the run ({warmup_steps} steps), then cosine to {end_lr}")
                }
                _ => format!("warmup {warmup_steps} steps, then cosine to {end_lr}"),
            },
            Schedule::PiecewiseLinear { boundaries, scales } => format!(
                "piecewise-linear: {}",
                boundaries
                    .iter()
                    .zip(scales)
                    .map(|(b, s)| format!("x{s} by step {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Schedule::Piecewise { boundaries, scales } => format!(
                "piecewise: {}",
                boundaries
                    .iter()
                    .zip(scales)
                    .map(|(b, s)| format!("x{s} from step {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    #[test]
    fn cosine_starts_at_lr_passes_the_midpoint_and_ends_at_end_lr() {
        let s = Schedule::Cosine { end_lr: 1e-5 };
        assert!((s.lr(1e-3, 0, 100) - 1e-3).abs() < EPS);
        // Halfway: cos(π/2) = 0, so the mean of lr and end_lr.
        assert!((s.lr(1e-3, 50, 100) - 0.5 * (1e-3 + 1e-5)).abs() < EPS);
        assert!((s.lr(1e-3, 100, 100) - 1e-5).abs() < EPS);
        // optax clips count at decay_steps.
        assert!((s.lr(1e-3, 250, 100) - 1e-5).abs() < EPS);
        let v: Vec<f64> = (0..=100).map(|c| s.lr(1e-3, c, 100)).collect();
        assert!(v.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn warmup_in_epochs_or_as_a_fraction_follows_the_run() {
        let mut e =
            Schedule::from_flags("warmup-cosine", None, Some(2.0), None, None, None, None).unwrap();
        e.resolve(351, 40 * 351);
        assert!(matches!(
            e,
            Schedule::WarmupCosine {
                warmup_steps: 702,
                ..
            }
        ));
        e.resolve(4, 4);
        assert!(matches!(
            e,
            Schedule::WarmupCosine {
                warmup_steps: 8,
                ..
            }
        ));
        assert!(e
            .validate(4)
            .unwrap_err()
            .to_string()
            .contains("--warmup-epochs 2 (8 steps)"));
        let mut f = Schedule::from_flags("warmup-cosine", None, None, Some(0.05), None, None, None)
            .unwrap();
        f.resolve(351, 40 * 351);
        assert!(matches!(
            f,
            Schedule::WarmupCosine {
                warmup_steps: 702,
                ..
            }
        ));
        f.resolve(4, 4);
        assert!(matches!(
            f,
            Schedule::WarmupCosine {
                warmup_steps: 0,
                ..
            }
        ));
        f.validate(4).unwrap();
        for (steps, epochs, fraction, err) in [
            (Some(5), Some(1.0), None, "choose one"),
            (None, Some(1.0), Some(0.1), "choose one"),
            (None, None, Some(1.5), "between 0 and 1"),
            (None, Some(-1.0), None, "finite number >= 0"),
        ] {
            let e =
                Schedule::from_flags("warmup-cosine", steps, epochs, fraction, None, None, None)
                    .unwrap_err();
            assert!(e.to_string().contains(err), "{e}");
        }
        let e =
            Schedule::from_flags("cosine", None, None, Some(0.1), None, None, None).unwrap_err();
        assert!(
            e.to_string().contains("--warmup-fraction does not apply"),
            "{e}"
        );
    }

    #[test]
    fn piecewise_linear_is_optaxs_interpolation() {
        // optax's docstring example: init 1.0, {4: 0.1, 8: 0.01}.
        let s = Schedule::from_flags(
            "piecewise-linear",
            None,
            None,
            None,
            None,
            Some("4,8"),
            Some("0.1,0.01"),
        )
        .unwrap();
        let want = [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001];
        for (i, w) in want.iter().enumerate() {
            let got = s.lr(1.0, 2 * i as u64, 10);
            assert!((got - w).abs() < 1e-12, "step {}: {got} vs {w}", 2 * i);
        }
        // airbench94's shape: 0.2 → 1.0 by step 23, then → 0.07 at step 100.
        let a = Schedule::from_flags(
            "piecewise-linear",
            None,
            None,
            None,
            None,
            Some("23,100"),
            Some("5,0.07"),
        )
        .unwrap();
        assert!((a.lr(0.2, 23, 100) - 1.0).abs() < 1e-12);
        assert!((a.lr(0.2, 100, 100) - 0.07).abs() < 1e-12);
        assert!((a.lr(0.2, 500, 100) - 0.07).abs() < 1e-12);
    }

    #[test]
    fn warmup_is_linear_from_zero_then_cosine() {
        let s = Schedule::WarmupCosine {
            warmup_steps: 10,
            end_lr: 0.0,
            warmup_epochs: None,
            warmup_fraction: None,
        };
        assert_eq!(s.lr(0.1, 0, 110), 0.0);
        assert!((s.lr(0.1, 5, 110) - 0.05).abs() < EPS);
        assert!((s.lr(0.1, 10, 110) - 0.1).abs() < EPS);
        assert!((s.lr(0.1, 60, 110) - 0.05).abs() < EPS);
        assert!(s.lr(0.1, 110, 110).abs() < EPS);
    }

    #[test]
    fn piecewise_multiplies_from_each_boundary_on() {
        let s = Schedule::from_flags(
            "piecewise",
            None,
            None,
            None,
            None,
            Some("10, 20"),
            Some("0.1,0.5"),
        )
        .unwrap();
        assert_eq!(s.lr(1.0, 9, 100), 1.0);
        assert!((s.lr(1.0, 10, 100) - 0.1).abs() < EPS);
        assert!((s.lr(1.0, 19, 100) - 0.1).abs() < EPS);
        assert!((s.lr(1.0, 20, 100) - 0.05).abs() < EPS);
    }

    #[test]
    fn bad_flags_are_one_clear_error() {
        for (kind, w, e, b, sc, needle) in [
            ("linear", None, None, None, None, "--schedule must be"),
            (
                "constant",
                Some(5),
                None,
                None,
                None,
                "--warmup-steps does not apply",
            ),
            ("piecewise", None, None, None, None, "needs --boundaries"),
            (
                "cosine",
                None,
                None,
                None,
                Some("0.1"),
                "--scales does not apply to --schedule cosine",
            ),
            (
                "warmup-cosine",
                Some(5),
                None,
                Some("5"),
                None,
                "--boundaries does not apply",
            ),
            (
                "constant",
                None,
                None,
                None,
                Some("0.1"),
                "--scales does not apply",
            ),
            (
                "piecewise",
                None,
                None,
                Some("5,3"),
                Some("1,1"),
                "must increase",
            ),
            (
                "piecewise",
                None,
                None,
                Some("5"),
                Some("1,1"),
                "one scale per boundary",
            ),
            (
                "piecewise",
                None,
                None,
                Some("x"),
                Some("1"),
                "not a step count",
            ),
            ("cosine", None, Some(-1.0), None, None, "--end-lr must be"),
        ] {
            let err = Schedule::from_flags(kind, w, None, None, e, b, sc)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{kind}: {err}");
        }
        let s =
            Schedule::from_flags("warmup-cosine", Some(50), None, None, None, None, None).unwrap();
        assert!(s.validate(40).is_err() && s.validate(50).is_ok());
    }
}
