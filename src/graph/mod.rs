//! Model descriptions: the TOML format users write (a contract: see README "Model files"), shape
//! inference, Flax's automatic parameter names, and the preset zoo.
//!
//! ```toml
//! input = [32, 32, 3]      # H, W, C of one image
//! classes = 10
//! [[layer]]
//! type = "conv"            # nn.Conv: features, kernel, stride (1), padding ("SAME"), bias (true)
//! features = 32
//! kernel = 3
//! ```
//! Layer kinds mirror Flax's modules and their arguments: `conv` (nn.Conv), `dense` (nn.Dense on
//! the last axis), `relu` (nn.relu), `avg_pool` (nn.avg_pool: window, stride = window, padding
//! "VALID"), `flatten` (`x.reshape(n, -1)`, (H, W, C) order). Parameters are named as Flax names
//! the submodules of one inline `nn.compact` method: per module type in order of first call
//! (`Conv_0`, `Conv_1`, `Dense_0`, …).

pub mod zoo;

use std::fmt;

use crate::ops::Padding;

/// One layer of a description.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Conv {
        features: u32,
        kernel: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
        bias: bool,
    },
    Dense {
        features: u32,
        bias: bool,
    },
    Relu,
    AvgPool {
        window: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
    },
    /// nn.max_pool: padding is −inf (never the maximum).
    MaxPool {
        window: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
    },
    /// Mean over H and W: `[N,H,W,C] -> [N,C]` (`jnp.mean(x, axis=(1, 2))`).
    GlobalAvgPool,
    /// nn.gelu (tanh approximation, Flax's default).
    Gelu,
    /// nn.Dropout(rate): training only (evaluation is the identity).
    Dropout {
        rate: f32,
    },
    Flatten,
    /// nn.BatchNorm: batch statistics in training (running ones updated), running ones in
    /// evaluation.
    BatchNorm {
        momentum: f32,
        epsilon: f32,
    },
    /// `y = body(x) + shortcut(x)`; an empty shortcut is the identity.
    Residual {
        body: Vec<Layer>,
        shortcut: Vec<Layer>,
    },
}

impl Layer {
    /// The `type` key.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Conv { .. } => "conv",
            Layer::Dense { .. } => "dense",
            Layer::Relu => "relu",
            Layer::AvgPool { .. } => "avg_pool",
            Layer::MaxPool { .. } => "max_pool",
            Layer::GlobalAvgPool => "global_avg_pool",
            Layer::Gelu => "gelu",
            Layer::Dropout { .. } => "dropout",
            Layer::Flatten => "flatten",
            Layer::BatchNorm { .. } => "batch_norm",
            Layer::Residual { .. } => "residual",
        }
    }

    /// Flax's module class name, for layers with parameters.
    pub fn module(&self) -> Option<&'static str> {
        match self {
            Layer::Conv { .. } => Some("Conv"),
            Layer::Dense { .. } => Some("Dense"),
            Layer::BatchNorm { .. } => Some("BatchNorm"),
            _ => None,
        }
    }

    /// One-word summary (`conv3x3/2 32`, `dense 10`, `avg_pool2`, …).
    pub fn summary(&self) -> String {
        let k = |k: [u32; 2]| {
            if k[0] == k[1] {
                format!("{}", k[0])
            } else {
                format!("{}x{}", k[0], k[1])
            }
        };
        match self {
            Layer::Conv {
                features,
                kernel,
                stride,
                ..
            } => {
                let s = if *stride == [1, 1] {
                    String::new()
                } else {
                    format!("/{}", k(*stride))
                };
                format!("conv{}x{}{s} {features}", kernel[0], kernel[1])
            }
            Layer::Dense { features, .. } => format!("dense {features}"),
            Layer::Relu => "relu".into(),
            Layer::AvgPool { window, stride, .. } | Layer::MaxPool { window, stride, .. } => {
                let kind = self.kind();
                if window == stride {
                    format!("{kind}{}", k(*window))
                } else {
                    format!("{kind}{}/{}", k(*window), k(*stride))
                }
            }
            Layer::GlobalAvgPool => "global_avg_pool".into(),
            Layer::Gelu => "gelu".into(),
            Layer::Dropout { rate } => format!("dropout{rate}"),
            Layer::Flatten => "flatten".into(),
            Layer::BatchNorm { .. } => "bn".into(),
            Layer::Residual { body, shortcut } => {
                let list = |v: &[Layer]| {
                    v.iter()
                        .map(|l| l.summary())
                        .collect::<Vec<_>>()
                        .join(" - ")
                };
                if shortcut.is_empty() {
                    format!("residual({})", list(body))
                } else {
                    format!("residual({} | {})", list(body), list(shortcut))
                }
            }
        }
    }
}

/// A model: input shape, classes and layers, plus the TOML text it came from (stored in
/// checkpoints as metadata `model`).
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// H, W, C of one image.
    pub input: [u32; 3],
    pub classes: u32,
    pub layers: Vec<Layer>,
}

/// The shape of one image's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `[H, W, C]`.
    Spatial { h: u32, w: u32, c: u32 },
    /// `[F]`.
    Flat(u32),
}

impl Shape {
    pub fn len(&self) -> usize {
        match *self {
            Shape::Spatial { h, w, c } => h as usize * w as usize * c as usize,
            Shape::Flat(f) => f as usize,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The last axis.
    pub fn channels(&self) -> u32 {
        match *self {
            Shape::Spatial { c, .. } => c,
            Shape::Flat(f) => f,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Spatial { h, w, c } => write!(f, "{h}x{w}x{c}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// A description error: one line naming the layer (its index) and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescError(pub String);

impl fmt::Display for DescError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DescError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DescError> {
    Err(DescError(msg.into()))
}

/// Where a key lives, for messages: `layer 3 (conv)`, `layer 4 (residual) body[1] (conv)` or
/// `the model`.
struct At {
    path: String,
}

impl At {
    fn model() -> Self {
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

fn positive(v: &toml::Value, at: &At, key: &str) -> Result<u32, DescError> {
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
fn pair(v: &toml::Value, at: &At, key: &str) -> Result<[u32; 2], DescError> {
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
fn fit(
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

fn padding(v: &toml::Value, at: &At) -> Result<Padding, DescError> {
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

fn boolean(v: &toml::Value, at: &At, key: &str) -> Result<bool, DescError> {
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
const SUPPORTED: &str = "conv, dense, relu, gelu, avg_pool, max_pool, global_avg_pool, dropout, batch_norm, residual, flatten";

/// Parses one layer table; `prefix` is where it sits (`layer 3`, `layer 4 (residual) body[1]`).
fn parse_layer(prefix: &str, t: &toml::Table) -> Result<Layer, DescError> {
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
        "conv" => &["type", "features", "kernel", "stride", "padding", "bias"],
        "dense" => &["type", "features", "bias"],
        "relu" | "flatten" | "gelu" | "global_avg_pool" => &["type"],
        "avg_pool" | "max_pool" => &["type", "window", "stride", "padding"],
        "dropout" => &["type", "rate"],
        "batch_norm" => &["type", "momentum", "epsilon"],
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
        },
        "dense" => Layer::Dense {
            features: positive(req("features")?, &at, "features")?,
            bias: opt_bool("bias")?,
        },
        "relu" => Layer::Relu,
        "gelu" => Layer::Gelu,
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
                a.iter()
                    .enumerate()
                    .map(|(j, v)| match v.as_table() {
                        Some(t) => parse_layer(&format!("{at} {key}[{j}]"), t),
                        None => err(format!(
                            "{at} {key}[{j}]: must be a table ({{ type = \"...\", ... }}), got {}",
                            v.type_str()
                        )),
                    })
                    .collect()
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

/// Where a node reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// The input images.
    Input,
    /// The output of node `i`.
    Node(usize),
}

/// What a node computes: a leaf layer (never [`Layer::Residual`]) or a residual's add.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeOp {
    Layer(Layer),
    /// `input + other`.
    Add {
        other: Src,
    },
}

/// One node of the flattened graph ([`Description::nodes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The top-level layer it belongs to.
    pub index: usize,
    /// `layer 4 (residual) body[3] (conv)`: where it is in the description.
    pub path: String,
    pub op: NodeOp,
    pub input: Src,
    pub in_shape: Shape,
    pub shape: Shape,
    /// Flax's automatic name (`Conv_0`, `BatchNorm_3`, …) for layers with parameters: per module
    /// type in order of first call, a residual's body before its shortcut.
    pub name: Option<String>,
}

impl Node {
    /// The leaf layer (`None` for an add).
    pub fn layer(&self) -> Option<&Layer> {
        match &self.op {
            NodeOp::Layer(l) => Some(l),
            NodeOp::Add { .. } => None,
        }
    }
    /// The kind (`conv`, …, `add`).
    pub fn kind(&self) -> &'static str {
        self.layer().map_or("add", |l| l.kind())
    }
    /// Every input.
    pub fn srcs(&self) -> Vec<Src> {
        match self.op {
            NodeOp::Add { other } => vec![self.input, other],
            NodeOp::Layer(_) => vec![self.input],
        }
    }
}

/// The walk of [`Description::nodes`].
struct Walk {
    nodes: Vec<Node>,
    counts: Vec<(&'static str, usize)>,
}

impl Walk {
    /// Adds layer `l` (at `prefix`) reading `src` of shape `s`; returns its output.
    fn layer(
        &mut self,
        index: usize,
        prefix: &str,
        l: &Layer,
        src: Src,
        s: Shape,
    ) -> Result<(Src, Shape), DescError> {
        let at = At {
            path: format!("{prefix} ({})", l.kind()),
        };
        if let Layer::Residual { body, shortcut } = l {
            let branch = |g: &mut Walk, key: &str, list: &[Layer]| {
                let (mut bs, mut bsh) = (src, s);
                for (j, b) in list.iter().enumerate() {
                    (bs, bsh) = g.layer(index, &format!("{at} {key}[{j}]"), b, bs, bsh)?;
                }
                Ok::<_, DescError>((bs, bsh))
            };
            let (b, bs) = branch(self, "body", body)?;
            let (o, os) = branch(self, "shortcut", shortcut)?;
            if bs != os {
                let end = |key: &str, list: &[Layer]| match list.len() {
                    0 => "the identity shortcut".to_string(),
                    n => format!("{at} {key}[{}] ({})", n - 1, list[n - 1].kind()),
                };
                return err(format!(
                    "{at}: the body ends in a {bs} output ({}) but the shortcut in a {os} one ({}); they must match to be added",
                    end("body", body),
                    end("shortcut", shortcut)
                ));
            }
            self.nodes.push(Node {
                index,
                path: format!("{at} add"),
                op: NodeOp::Add { other: o },
                input: b,
                in_shape: bs,
                shape: bs,
                name: None,
            });
            return Ok((Src::Node(self.nodes.len() - 1), bs));
        }
        let out = leaf_shape(l, s, &at)?;
        if out.len() > u32::MAX as usize / 4 {
            return err(format!(
                "{at}: the activation of one image has {} elements, too many",
                out.len()
            ));
        }
        let name = l.module().map(|m| {
            let n = match self.counts.iter_mut().find(|(k, _)| *k == m) {
                Some((_, n)) => {
                    *n += 1;
                    *n - 1
                }
                None => {
                    self.counts.push((m, 1));
                    0
                }
            };
            format!("{m}_{n}")
        });
        self.nodes.push(Node {
            index,
            path: at.path,
            op: NodeOp::Layer(l.clone()),
            input: src,
            in_shape: s,
            shape: out,
            name,
        });
        Ok((Src::Node(self.nodes.len() - 1), out))
    }
}

/// The output shape of leaf layer `l` on an input of shape `s`.
fn leaf_shape(l: &Layer, s: Shape, at: &At) -> Result<Shape, DescError> {
    Ok(match (l, s) {
        (
            Layer::Conv {
                features,
                kernel,
                stride,
                padding,
                ..
            },
            Shape::Spatial { h, w, .. },
        ) => {
            let win = fit(at, "kernel", h, w, *kernel, *stride, *padding)?;
            Shape::Spatial {
                h: win.out[0],
                w: win.out[1],
                c: *features,
            }
        }
        (Layer::Conv { .. }, Shape::Flat(_))
        | (Layer::AvgPool { .. }, Shape::Flat(_))
        | (Layer::MaxPool { .. }, Shape::Flat(_))
        | (Layer::GlobalAvgPool, Shape::Flat(_)) => {
            return err(format!(
                "{at}: needs an [H, W, C] input, got a flat one (a `flatten` comes before it)"
            ))
        }
        (
            Layer::AvgPool {
                window,
                stride,
                padding,
            }
            | Layer::MaxPool {
                window,
                stride,
                padding,
            },
            Shape::Spatial { h, w, c },
        ) => {
            let win = fit(at, "window", h, w, *window, *stride, *padding)?;
            // Max pooling pads with −inf: a window wholly in the padding would output −inf.
            let whole = win
                .pad
                .iter()
                .zip(window)
                .any(|(p, &k)| p[0] >= k || p[1] >= k);
            if matches!(l, Layer::MaxPool { .. }) && whole {
                return err(format!(
                    "{at}: key `padding`: padding of {:?} reaches a whole {}x{} window (max pooling pads with -inf)",
                    win.pad, window[0], window[1]
                ));
            }
            Shape::Spatial {
                h: win.out[0],
                w: win.out[1],
                c,
            }
        }
        (Layer::GlobalAvgPool, Shape::Spatial { c, .. }) => Shape::Flat(c),
        (Layer::Gelu, s) | (Layer::Dropout { .. }, s) | (Layer::BatchNorm { .. }, s) => s,
        (Layer::Dense { features, .. }, Shape::Spatial { h, w, .. }) => {
            Shape::Spatial { h, w, c: *features }
        }
        (Layer::Dense { features, .. }, Shape::Flat(_)) => Shape::Flat(*features),
        (Layer::Relu, s) => s,
        (Layer::Flatten, s) => Shape::Flat(s.len() as u32),
        (Layer::Residual { .. }, _) => unreachable!("Walk::layer expands residuals"),
    })
}

/// A layer's keys and values as TOML (every key written out; residual bodies as inline tables).
fn fields(l: &Layer) -> Vec<(&'static str, String)> {
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
        } => f.extend([
            ("features", features.to_string()),
            ("kernel", pair(*kernel)),
            ("stride", pair(*stride)),
            ("padding", pad(padding)),
            ("bias", bias.to_string()),
        ]),
        Layer::Dense { features, bias } => f.extend([
            ("features", features.to_string()),
            ("bias", bias.to_string()),
        ]),
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
        Layer::BatchNorm { momentum, epsilon } => f.extend([
            ("momentum", format!("{momentum:?}")),
            ("epsilon", format!("{epsilon:?}")),
        ]),
        Layer::Residual { body, shortcut } => {
            f.push(("body", inline(body)));
            if !shortcut.is_empty() {
                f.push(("shortcut", inline(shortcut)));
            }
        }
        Layer::Relu | Layer::Gelu | Layer::GlobalAvgPool | Layer::Flatten => {}
    }
    f
}

impl Description {
    /// Parses and checks a description (TOML 1.0). Errors are one line naming the layer and key;
    /// TOML syntax errors give the line.
    pub fn parse(text: &str) -> Result<Self, DescError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().trim().replace('\n', " ");
            DescError(match line {
                Some(l) => format!("TOML syntax error at line {l}: {msg}"),
                None => format!("TOML syntax error: {msg}"),
            })
        })?;
        let model = At::model();
        if let Some(k) = table
            .keys()
            .find(|k| !["input", "classes", "layer"].contains(&k.as_str()))
        {
            return err(format!(
                "the model: unknown key `{k}` (allowed: input, classes, layer)"
            ));
        }
        let input = match table.get("input") {
            Some(toml::Value::Array(a)) if a.len() == 3 => [
                positive(&a[0], &model, "input")?,
                positive(&a[1], &model, "input")?,
                positive(&a[2], &model, "input")?,
            ],
            Some(_) => return err("the model: key `input` must be [H, W, C] of positive integers"),
            None => return err("the model: missing key `input` ([H, W, C] of one image)"),
        };
        let classes = match table.get("classes") {
            Some(v) => positive(v, &model, "classes")?,
            None => return err("the model: missing key `classes`"),
        };
        let layers = match table.get("layer") {
            Some(toml::Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v.as_table() {
                    Some(t) => parse_layer(&format!("layer {i}"), t),
                    None => err(format!(
                        "layer {i}: must be a table ({{ type = \"...\", ... }}), got {}",
                        v.type_str()
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return err("the model: key `layer` must be an array of tables ([[layer]])"),
            None => return err("the model: no layers (add [[layer]] tables)"),
        };
        if layers.is_empty() {
            return err("the model: no layers (add [[layer]] tables)");
        }
        let d = Description {
            input,
            classes,
            layers,
        };
        d.shapes()?;
        Ok(d)
    }

    /// The output shape of every top-level layer (one image), checking that each layer fits its
    /// input and that the model ends in `classes` features.
    pub fn shapes(&self) -> Result<Vec<Shape>, DescError> {
        let nodes = self.nodes()?;
        Ok((0..self.layers.len())
            .map(|i| {
                nodes
                    .iter()
                    .rev()
                    .find(|n| n.index == i)
                    .expect("every layer has a node")
                    .shape
            })
            .collect())
    }

    /// The flattened graph: every leaf layer in order (a residual's body, then its shortcut,
    /// then its add), with its input, shapes and Flax module name. Checks every shape.
    pub fn nodes(&self) -> Result<Vec<Node>, DescError> {
        let [h, w, c] = self.input;
        let mut g = Walk {
            nodes: Vec::new(),
            counts: Vec::new(),
        };
        let mut src = Src::Input;
        let mut s = Shape::Spatial { h, w, c };
        for (i, l) in self.layers.iter().enumerate() {
            (src, s) = g.layer(i, &format!("layer {i}"), l, src, s)?;
        }
        let last = || {
            format!(
                "layer {} ({})",
                self.layers.len() - 1,
                self.layers.last().map_or("", |l| l.kind())
            )
        };
        match s {
            Shape::Flat(f) if f == self.classes => Ok(g.nodes),
            Shape::Flat(f) => err(format!(
                "{}: the last layer must output `classes` = {} features, got {f}",
                last(),
                self.classes
            )),
            Shape::Spatial { .. } => err(format!(
                "{}: the model must end in [{}] logits, got a {s} image (add a flatten and a dense layer)",
                last(),
                self.classes
            )),
        }
    }

    /// The description as canonical TOML (every key written out).
    pub fn to_toml(&self) -> String {
        let mut s = format!(
            "input = [{}, {}, {}]\nclasses = {}\n",
            self.input[0], self.input[1], self.input[2], self.classes
        );
        for l in &self.layers {
            s.push_str("\n[[layer]]\n");
            for (k, v) in fields(l) {
                s.push_str(&format!("{k} = {v}\n"));
            }
        }
        s
    }

    /// One line: `conv3x3 32 - relu - avg_pool2 - ...`.
    pub fn summary(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.summary())
            .collect::<Vec<_>>()
            .join(" - ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_flax_inline_numbering() {
        let d = zoo::preset("flax-cifar10").unwrap();
        let names: Vec<_> = d
            .nodes()
            .unwrap()
            .into_iter()
            .filter_map(|n| n.name)
            .collect();
        assert_eq!(names, ["Conv_0", "Conv_1", "Dense_0", "Dense_1"]);
    }

    #[test]
    fn residual_names_body_before_shortcut_and_nest() {
        let d = Description::parse(
            "input = [8, 8, 3]\nclasses = 2\n[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = 3\n[[layer]]\ntype = \"residual\"\nbody = [ { type = \"conv\", features = 6, kernel = 3, stride = 2, bias = false }, { type = \"batch_norm\" }, { type = \"residual\", body = [ { type = \"conv\", features = 6, kernel = 1 }, { type = \"batch_norm\", momentum = 0.5 } ] } ]\nshortcut = [ { type = \"conv\", features = 6, kernel = 1, stride = 2, bias = false }, { type = \"batch_norm\" } ]\n[[layer]]\ntype = \"global_avg_pool\"\n[[layer]]\ntype = \"dense\"\nfeatures = 2\n",
        )
        .unwrap();
        let nodes = d.nodes().unwrap();
        let names: Vec<_> = nodes.iter().filter_map(|n| n.name.clone()).collect();
        assert_eq!(
            names,
            [
                "Conv_0",
                "Conv_1",
                "BatchNorm_0",
                "Conv_2",
                "BatchNorm_1",
                "Conv_3",
                "BatchNorm_2",
                "Dense_0"
            ]
        );
        // conv, [conv, bn, [conv, bn, add], conv, bn, add], gap, dense
        let kinds: Vec<_> = nodes.iter().map(|n| n.kind()).collect();
        assert_eq!(
            kinds,
            [
                "conv",
                "conv",
                "batch_norm",
                "conv",
                "batch_norm",
                "add",
                "conv",
                "batch_norm",
                "add",
                "global_avg_pool",
                "dense"
            ]
        );
        // The inner add reads the inner body's end and the inner block's input (node 2); the
        // outer add the outer body's end (node 5) and the shortcut's (node 7).
        assert_eq!(nodes[5].input, Src::Node(4));
        assert_eq!(
            nodes[5].op,
            NodeOp::Add {
                other: Src::Node(2)
            }
        );
        assert_eq!(nodes[8].input, Src::Node(5));
        assert_eq!(
            nodes[8].op,
            NodeOp::Add {
                other: Src::Node(7)
            }
        );
        assert_eq!(nodes[6].input, Src::Node(0));
        assert_eq!(
            nodes[3].path,
            "layer 1 (residual) body[2] (residual) body[0] (conv)"
        );
        assert_eq!(d.shapes().unwrap()[1], Shape::Spatial { h: 4, w: 4, c: 6 });
        assert_eq!(Description::parse(&d.to_toml()).unwrap(), d);
    }

    #[test]
    fn canonical_toml_round_trips() {
        for name in zoo::NAMES {
            let d = zoo::preset(name).unwrap();
            assert_eq!(Description::parse(&d.to_toml()).unwrap(), d, "{name}");
        }
    }

    #[test]
    fn the_array_form_is_the_same_model() {
        let a = Description::parse(
            "input = [8, 8, 1]\nclasses = 3\nlayer = [ { type = \"conv\", features = 4, kernel = [2, 3], stride = 2, padding = [[1, 0], [0, 2]] }, { type = \"flatten\" }, { type = \"dense\", features = 3, bias = false } ]\n",
        )
        .unwrap();
        let b = Description::parse(
            "input = [8, 8, 1]\nclasses = 3\n[[layer]]\ntype = \"conv\"\nfeatures = 4\nkernel = [2, 3]\nstride = [2, 2]\npadding = [[1, 0], [0, 2]]\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 3\nbias = false\n",
        )
        .unwrap();
        assert_eq!(a, b);
        // rows (8 + 1 - 2) / 2 + 1 = 4, cols (8 + 2 - 3) / 2 + 1 = 4
        assert_eq!(a.shapes().unwrap()[0], Shape::Spatial { h: 4, w: 4, c: 4 });
    }
}
