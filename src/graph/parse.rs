//! Reading (and writing back) one layer of a description: typed fields with errors that name
//! the layer and key.

use super::*;

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, DescError> {
    Err(DescError(msg.into()))
}

/// Where a key lives, for messages: `layer 3 (conv)`, `layer 4 (residual) body[1] (conv)` or
/// `the model`.
pub(super) struct At {
    pub(super) path: String,
}

impl At {
    pub(super) fn model() -> Self {
        At {
            path: "the model".into(),
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

pub(super) fn positive(v: &toml::Value, at: &At, key: &str) -> Result<u32, DescError> {
    match v.as_integer() {
        Some(i) if i >= 1 && i <= u32::MAX as i64 => Ok(i as u32),
        Some(i) => err(format!("{at}: key `{key}` must be positive, got {i}")),
        None => err(format!(
            "{at}: key `{key}` must be a positive integer, got {}",
            v.type_str()
        )),
    }
}

/// An integer `k` or a pair `[a, b]` of positive integers.
pub(super) fn pair(v: &toml::Value, at: &At, key: &str) -> Result<[u32; 2], DescError> {
    if let Some(a) = v.as_array() {
        if a.len() != 2 {
            return err(format!(
                "{at}: key `{key}` must be an integer or a pair [a, b], got {} values",
                a.len()
            ));
        }
        return Ok([positive(&a[0], at, key)?, positive(&a[1], at, key)?]);
    }
    let k = positive(v, at, key)?;
    Ok([k, k])
}

/// The window of a conv or pool over an `h`×`w` input, or an error naming `key` when the padded
/// input is smaller than the window (the shape would shrink to zero).
pub(super) fn fit(
    at: &At,
    key: &str,
    h: u32,
    w: u32,
    k: [u32; 2],
    stride: [u32; 2],
    padding: Padding,
) -> Result<crate::ops::Window, DescError> {
    crate::ops::Window::new(h, w, k, stride, padding).ok_or_else(|| {
        DescError(format!(
            "{at}: key `{key}`: a {}x{} {key} does not fit the padded {h}x{w} input (the shape shrinks to zero)",
            k[0], k[1]
        ))
    })
}

pub(super) fn padding(v: &toml::Value, at: &At) -> Result<Padding, DescError> {
    let bad = || {
        DescError(format!(
            "{at}: key `padding` must be \"SAME\", \"VALID\", an integer or [[top, bottom], [left, right]]"
        ))
    };
    let non_neg = |v: &toml::Value| match v.as_integer() {
        Some(i) if (0..=u32::MAX as i64).contains(&i) => Ok(i as u32),
        Some(i) => err(format!("{at}: key `padding` must not be negative, got {i}")),
        None => Err(bad()),
    };
    match v {
        toml::Value::String(s) => match s.to_ascii_uppercase().as_str() {
            "SAME" => Ok(Padding::Same),
            "VALID" => Ok(Padding::Valid),
            _ => err(format!(
                "{at}: key `padding` must be \"SAME\" or \"VALID\", got \"{s}\""
            )),
        },
        toml::Value::Integer(_) => {
            let p = non_neg(v)?;
            Ok(Padding::Explicit([[p, p], [p, p]]))
        }
        toml::Value::Array(rows) if rows.len() == 2 => {
            let mut out = [[0; 2]; 2];
            for (axis, r) in rows.iter().enumerate() {
                match r.as_array() {
                    Some(r) if r.len() == 2 => {
                        out[axis] = [non_neg(&r[0])?, non_neg(&r[1])?];
                    }
                    _ => return Err(bad()),
                }
            }
            Ok(Padding::Explicit(out))
        }
        _ => Err(bad()),
    }
}

/// `kernel_init = "lecun_normal" | "pytorch" | "dirac"` (dirac: convs only).
fn kernel_init(t: &toml::Table, at: &At, conv: bool) -> Result<KernelInit, DescError> {
    let known = if conv {
        "lecun_normal, pytorch, dirac or whitening"
    } else {
        "lecun_normal or pytorch"
    };
    match t.get("kernel_init") {
        None => Ok(KernelInit::LecunNormal),
        Some(toml::Value::String(s)) => match s.as_str() {
            "lecun_normal" => Ok(KernelInit::LecunNormal),
            "pytorch" => Ok(KernelInit::Pytorch),
            "dirac" if conv => Ok(KernelInit::Dirac),
            "whitening" if conv => Ok(KernelInit::Whitening),
            _ => err(format!(
                "{at}: key `kernel_init` must be {known}, got \"{s}\""
            )),
        },
        Some(v) => err(format!(
            "{at}: key `kernel_init` must be a string ({known}), got {}",
            v.type_str()
        )),
    }
}

/// `bias_init = "zeros" | "pytorch"`.
fn bias_init(t: &toml::Table, at: &At) -> Result<BiasInit, DescError> {
    match t.get("bias_init") {
        None => Ok(BiasInit::Zeros),
        Some(toml::Value::String(s)) if s == "zeros" => Ok(BiasInit::Zeros),
        Some(toml::Value::String(s)) if s == "pytorch" => Ok(BiasInit::Pytorch),
        Some(v) => err(format!(
            "{at}: key `bias_init` must be \"zeros\" or \"pytorch\", got {v}"
        )),
    }
}

pub(super) fn boolean(v: &toml::Value, at: &At, key: &str) -> Result<bool, DescError> {
    v.as_bool().map_or_else(
        || {
            err(format!(
                "{at}: key `{key}` must be true or false, got {}",
                v.type_str()
            ))
        },
        Ok,
    )
}

/// The layer types this engine runs.
pub(super) const SUPPORTED: &str = "conv, dense, relu, gelu, avg_pool, max_pool, global_avg_pool, dropout, scale, batch_norm, residual, flatten, repeat";

/// The most copies a `repeat` may make (a typo guard: ResNet-152's longest stage is 36).
const MAX_REPEAT: u32 = 1000;

/// Parses an array of layer tables (`[[layer]]`, or a residual's `body` / `shortcut`), where
/// `at(i)` names entry `i`. A `repeat` entry (`type = "repeat"`, `times`, `body`) becomes its
/// body `times` times, inline: the layers Flax's `for _ in range(times):` loop calls, in that
/// order, so the parameters get the names the unrolled file would give them.
pub(super) fn parse_layers(
    at: &dyn Fn(usize) -> String,
    items: &[toml::Value],
) -> Result<Vec<Layer>, DescError> {
    Ok(parse_layers_with_origins(at, items)?
        .into_iter()
        .map(|(l, _)| l)
        .collect())
}

/// [`parse_layers`], with where each layer of the expansion was written: `layer 3`, or for a
/// layer a `repeat` made, `layer 2 (repeat) body[1], repetition 2 of 3`.
pub(super) fn parse_layers_with_origins(
    at: &dyn Fn(usize) -> String,
    items: &[toml::Value],
) -> Result<Vec<(Layer, String)>, DescError> {
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let Some(t) = v.as_table() else {
            return err(format!(
                "{}: must be a table ({{ type = \"...\", ... }}), got {}",
                at(i),
                v.type_str()
            ));
        };
        if t.get("type").and_then(|v| v.as_str()) != Some("repeat") {
            out.push((parse_layer(&at(i), t)?, at(i)));
            continue;
        }
        let here = At {
            path: format!("{} (repeat)", at(i)),
        };
        if let Some(k) = t
            .keys()
            .find(|k| !["type", "times", "body"].contains(&k.as_str()))
        {
            return err(format!("{here}: unknown key `{k}` (allowed: times, body)"));
        }
        let times = match t.get("times") {
            Some(v) => positive(v, &here, "times")?,
            None => return err(format!("{here}: missing key `times`")),
        };
        if times > MAX_REPEAT {
            return err(format!(
                "{here}: key `times` must be at most {MAX_REPEAT}, got {times}"
            ));
        }
        let body = match t.get("body") {
            Some(toml::Value::Array(a)) if !a.is_empty() => {
                parse_layers_with_origins(&|j| format!("{here} body[{j}]"), a)?
            }
            Some(toml::Value::Array(_)) | None => {
                return err(format!("{here}: key `body` must hold at least one layer"))
            }
            Some(v) => {
                return err(format!(
                    "{here}: key `body` must be an array of layer tables ([{{ type = \"...\", ... }}, ...]), got {}",
                    v.type_str()
                ))
            }
        };
        for rep in 1..=times {
            out.extend(
                body.iter()
                    .map(|(l, o)| (l.clone(), format!("{o}, repetition {rep} of {times}"))),
            );
        }
    }
    Ok(out)
}

/// Parses one layer table; `prefix` is where it sits (`layer 3`, `layer 4 (residual) body[1]`).
pub(super) fn parse_layer(prefix: &str, t: &toml::Table) -> Result<Layer, DescError> {
    let kind = match t.get("type") {
        Some(toml::Value::String(s)) => s.as_str(),
        Some(v) => {
            return err(format!(
                "{prefix}: key `type` must be a string, got {}",
                v.type_str()
            ))
        }
        None => return err(format!("{prefix}: missing key `type`")),
    };
    let at = At {
        path: format!("{prefix} ({kind})"),
    };
    let allowed: &[&str] = match kind {
        "conv" => &[
            "type",
            "features",
            "kernel",
            "stride",
            "padding",
            "bias",
            "kernel_init",
            "bias_init",
        ],
        "dense" => &["type", "features", "bias", "kernel_init", "bias_init"],
        "relu" | "flatten" | "global_avg_pool" => &["type"],
        "gelu" => &["type", "approximate"],
        "avg_pool" | "max_pool" => &["type", "window", "stride", "padding"],
        "dropout" => &["type", "rate"],
        "scale" => &["type", "factor"],
        "batch_norm" => &["type", "momentum", "epsilon", "use_scale"],
        "residual" => &["type", "body", "shortcut"],
        _ => {
            return err(format!(
                "{prefix}: unknown layer type \"{kind}\" (supported: {SUPPORTED})"
            ))
        }
    };
    if let Some(k) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
        return err(format!(
            "{at}: unknown key `{k}` (allowed: {})",
            allowed[1..].join(", ")
        ));
    }
    let req = |key: &str| {
        t.get(key)
            .ok_or_else(|| DescError(format!("{at}: missing key `{key}`")))
    };
    let opt_bool = |key: &str| t.get(key).map_or(Ok(true), |v| boolean(v, &at, key));
    Ok(match kind {
        "conv" => Layer::Conv {
            features: positive(req("features")?, &at, "features")?,
            kernel: pair(req("kernel")?, &at, "kernel")?,
            stride: t
                .get("stride")
                .map_or(Ok([1, 1]), |v| pair(v, &at, "stride"))?,
            padding: t
                .get("padding")
                .map_or(Ok(Padding::Same), |v| padding(v, &at))?,
            bias: opt_bool("bias")?,
            kernel_init: kernel_init(t, &at, true)?,
            bias_init: bias_init(t, &at)?,
        },
        "dense" => Layer::Dense {
            features: positive(req("features")?, &at, "features")?,
            bias: opt_bool("bias")?,
            kernel_init: kernel_init(t, &at, false)?,
            bias_init: bias_init(t, &at)?,
        },
        "relu" => Layer::Relu,
        "gelu" => Layer::Gelu {
            approximate: opt_bool("approximate")?,
        },
        "scale" => {
            let v = req("factor")?;
            match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
                Some(f) if (f as f32).is_finite() => Layer::Scale { factor: f as f32 },
                Some(f) => {
                    return err(format!(
                        "{at}: key `factor` must be a finite number, got {f}"
                    ))
                }
                None => {
                    return err(format!(
                        "{at}: key `factor` must be a number, got {}",
                        v.type_str()
                    ))
                }
            }
        }
        "dropout" => {
            let v = req("rate")?;
            let rate = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            match rate {
                Some(r) if (0.0..1.0).contains(&r) && (r as f32) < 1.0 => {
                    Layer::Dropout { rate: r as f32 }
                }
                Some(r) => return err(format!("{at}: key `rate` must be in [0, 1), got {r}")),
                None => {
                    return err(format!(
                        "{at}: key `rate` must be a number in [0, 1), got {}",
                        v.type_str()
                    ))
                }
            }
        }
        "global_avg_pool" => Layer::GlobalAvgPool,
        "batch_norm" => {
            let num = |key: &str, default: f64| -> Result<f64, DescError> {
                match t.get(key) {
                    None => Ok(default),
                    Some(v) => v
                        .as_float()
                        .or_else(|| v.as_integer().map(|i| i as f64))
                        .ok_or_else(|| {
                            DescError(format!(
                                "{at}: key `{key}` must be a number, got {}",
                                v.type_str()
                            ))
                        }),
                }
            };
            let momentum = num("momentum", 0.9)?;
            if !(0.0..=1.0).contains(&momentum) {
                return err(format!(
                    "{at}: key `momentum` must be in [0, 1], got {momentum}"
                ));
            }
            let epsilon = num("epsilon", 1e-5)?;
            if !(epsilon > 0.0 && (epsilon as f32) > 0.0 && epsilon.is_finite()) {
                return err(format!(
                    "{at}: key `epsilon` must be positive, got {epsilon}"
                ));
            }
            Layer::BatchNorm {
                momentum: momentum as f32,
                epsilon: epsilon as f32,
                use_scale: opt_bool("use_scale")?,
            }
        }
        "residual" => {
            let list = |key: &str| -> Result<Vec<Layer>, DescError> {
                let Some(v) = t.get(key) else {
                    return Ok(Vec::new());
                };
                let Some(a) = v.as_array() else {
                    return err(format!(
                        "{at}: key `{key}` must be an array of layer tables ([{{ type = \"...\", ... }}, ...]), got {}",
                        v.type_str()
                    ));
                };
                parse_layers(&|j| format!("{at} {key}[{j}]"), a)
            };
            let body = list("body")?;
            if body.is_empty() {
                return err(format!("{at}: key `body` must hold at least one layer"));
            }
            Layer::Residual {
                body,
                shortcut: list("shortcut")?,
            }
        }
        "flatten" => Layer::Flatten,
        "avg_pool" | "max_pool" => {
            let window = pair(req("window")?, &at, "window")?;
            let stride = t
                .get("stride")
                .map_or(Ok(window), |v| pair(v, &at, "stride"))?;
            let padding = t
                .get("padding")
                .map_or(Ok(Padding::Valid), |v| padding(v, &at))?;
            if kind == "avg_pool" {
                Layer::AvgPool {
                    window,
                    stride,
                    padding,
                }
            } else {
                Layer::MaxPool {
                    window,
                    stride,
                    padding,
                }
            }
        }
        _ => unreachable!("kinds checked above"),
    })
}

/// The init keys that differ from Flax's defaults.
fn inits(k: KernelInit, b: BiasInit) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    match k {
        KernelInit::LecunNormal => {}
        KernelInit::Pytorch => v.push(("kernel_init", "\"pytorch\"".to_string())),
        KernelInit::Dirac => v.push(("kernel_init", "\"dirac\"".to_string())),
        KernelInit::Whitening => v.push(("kernel_init", "\"whitening\"".to_string())),
    }
    if b == BiasInit::Pytorch {
        v.push(("bias_init", "\"pytorch\"".to_string()));
    }
    v
}

/// A layer's keys and values as TOML (every key written out; residual bodies as inline tables).
pub(super) fn fields(l: &Layer) -> Vec<(&'static str, String)> {
    let pair = |p: [u32; 2]| {
        if p[0] == p[1] {
            p[0].to_string()
        } else {
            format!("[{}, {}]", p[0], p[1])
        }
    };
    let pad = |p: &Padding| match p {
        Padding::Same => "\"SAME\"".to_string(),
        Padding::Valid => "\"VALID\"".to_string(),
        Padding::Explicit([[t, b], [l, r]]) => format!("[[{t}, {b}], [{l}, {r}]]"),
    };
    let inline = |list: &[Layer]| {
        let tables: Vec<String> = list
            .iter()
            .map(|l| {
                let kv: Vec<String> = fields(l)
                    .into_iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                format!("{{ {} }}", kv.join(", "))
            })
            .collect();
        format!("[ {} ]", tables.join(", "))
    };
    let mut f = vec![("type", format!("\"{}\"", l.kind()))];
    match l {
        Layer::Conv {
            features,
            kernel,
            stride,
            padding,
            bias,
            kernel_init: ki,
            bias_init: bi,
        } => {
            f.extend([
                ("features", features.to_string()),
                ("kernel", pair(*kernel)),
                ("stride", pair(*stride)),
                ("padding", pad(padding)),
                ("bias", bias.to_string()),
            ]);
            f.extend(inits(*ki, *bi));
        }
        Layer::Dense {
            features,
            bias,
            kernel_init: ki,
            bias_init: bi,
        } => {
            f.extend([
                ("features", features.to_string()),
                ("bias", bias.to_string()),
            ]);
            f.extend(inits(*ki, *bi));
        }
        Layer::AvgPool {
            window,
            stride,
            padding,
        }
        | Layer::MaxPool {
            window,
            stride,
            padding,
        } => f.extend([
            ("window", pair(*window)),
            ("stride", pair(*stride)),
            ("padding", pad(padding)),
        ]),
        Layer::Dropout { rate } => f.push(("rate", format!("{rate:?}"))),
        Layer::Scale { factor } => f.push(("factor", format!("{factor:?}"))),
        Layer::BatchNorm {
            momentum,
            epsilon,
            use_scale,
        } => {
            f.extend([
                ("momentum", format!("{momentum:?}")),
                ("epsilon", format!("{epsilon:?}")),
            ]);
            if !use_scale {
                f.push(("use_scale", "false".into()));
            }
        }
        Layer::Residual { body, shortcut } => {
            f.push(("body", inline(body)));
            if !shortcut.is_empty() {
                f.push(("shortcut", inline(shortcut)));
            }
        }
        Layer::Gelu { approximate } => {
            if !approximate {
                f.push(("approximate", "false".into()));
            }
        }
        Layer::Relu | Layer::GlobalAvgPool | Layer::Flatten => {}
    }
    f
}
