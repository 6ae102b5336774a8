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
    },
    Piecewise {
        boundaries: Vec<u64>,
        scales: Vec<f64>,
    },
}

impl Schedule {
    /// From the CLI's flags; one clear error for combinations that do not make sense.
    pub fn from_flags(
        kind: &str,
        warmup_steps: Option<u64>,
        end_lr: Option<f64>,
        boundaries: Option<&str>,
        scales: Option<&str>,
    ) -> Result<Self> {
        let end = end_lr.unwrap_or(0.0);
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
                unused("--end-lr", end_lr.is_some())?;
                unused("--boundaries", boundaries.is_some())?;
                unused("--scales", scales.is_some())?;
                Schedule::Constant
            }
            "cosine" => {
                unused("--warmup-steps", warmup_steps.is_some())?;
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
                }
            }
            "piecewise" => {
                unused("--warmup-steps", warmup_steps.is_some())?;
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
                Schedule::Piecewise { boundaries, scales }
            }
            _ => bail!(
                "--schedule must be constant, cosine, warmup-cosine or piecewise, got {kind:?}"
            ),
        })
    }

    /// Checks the schedule against the run's length (`total` Adam steps).
    pub fn validate(&self, total: u64) -> Result<()> {
        if let Schedule::WarmupCosine { warmup_steps, .. } = self {
            if *warmup_steps > total {
                bail!("--warmup-steps {warmup_steps} is longer than the run's {total} steps");
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
            } => format!("warmup {warmup_steps} steps, then cosine to {end_lr}"),
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
    fn warmup_is_linear_from_zero_then_cosine() {
        let s = Schedule::WarmupCosine {
            warmup_steps: 10,
            end_lr: 0.0,
        };
        assert_eq!(s.lr(0.1, 0, 110), 0.0);
        assert!((s.lr(0.1, 5, 110) - 0.05).abs() < EPS);
        assert!((s.lr(0.1, 10, 110) - 0.1).abs() < EPS);
        assert!((s.lr(0.1, 60, 110) - 0.05).abs() < EPS);
        assert!(s.lr(0.1, 110, 110).abs() < EPS);
    }

    #[test]
    fn piecewise_multiplies_from_each_boundary_on() {
        let s =
            Schedule::from_flags("piecewise", None, None, Some("10, 20"), Some("0.1,0.5")).unwrap();
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
            let err = Schedule::from_flags(kind, w, e, b, sc)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{kind}: {err}");
        }
        let s = Schedule::from_flags("warmup-cosine", Some(50), None, None, None).unwrap();
        assert!(s.validate(40).is_err() && s.validate(50).is_ok());
    }
}
