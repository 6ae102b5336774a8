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

mod nodes;
mod parse;
pub mod zoo;

use nodes::*;
pub use nodes::{Node, NodeOp, Src};
use parse::*;

use std::fmt;

use crate::ops::Padding;

/// How a conv or dense kernel starts (Flax's `kernel_init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelInit {
    /// `lecun_normal`, Flax's default: truncated normal, variance 1/fan_in.
    #[default]
    LecunNormal,
    /// `pytorch`: PyTorch's Conv2d/Linear default, uniform in ±1/√fan_in
    /// (`variance_scaling(1/3, "fan_in", "uniform")`).
    Pytorch,
    /// `dirac` (convs): `pytorch`, then the first `c_in` filters the identity (PyTorch's
    /// `dirac_` on `weight[:c_in]`, as airbench initialises its 3×3 convs).
    Dirac,
    /// `whitening` (the first conv, `features = 2·KH·KW·C`): computed from the training data
    /// when a run starts from scratch (airbench94's whitening layer): the eigenvectors of the
    /// KH×KW patch covariance of the first 5,000 normalised training images, each divided by
    /// √(λ + 5e-4), then their negatives; `pytorch` where no data is at hand.
    Whitening,
}

/// How a conv or dense bias starts (Flax's `bias_init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BiasInit {
    /// `zeros`, Flax's default.
    #[default]
    Zeros,
    /// `pytorch`: uniform in ±1/√fan_in of the layer's kernel.
    Pytorch,
}

/// One layer of a description.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Conv {
        features: u32,
        kernel: [u32; 2],
        stride: [u32; 2],
        padding: Padding,
        bias: bool,
        kernel_init: KernelInit,
        bias_init: BiasInit,
    },
    Dense {
        features: u32,
        bias: bool,
        kernel_init: KernelInit,
        bias_init: BiasInit,
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
    /// nn.gelu: the tanh approximation (`approximate = true`, Flax's default) or exact.
    Gelu {
        approximate: bool,
    },
    /// `x * factor`: multiplication by a constant (no parameters; Flax writes it inline).
    Scale {
        factor: f32,
    },
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
        /// `use_scale` (default true): false has no `scale` parameter (the scale is 1).
        use_scale: bool,
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
            Layer::Gelu { .. } => "gelu",
            Layer::Scale { .. } => "scale",
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
            Layer::Gelu { approximate: true } => "gelu".into(),
            Layer::Gelu { approximate: false } => "gelu(exact)".into(),
            Layer::Scale { factor } => format!("x{factor}"),
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

/// A description as written, before the data is known: `input` and `classes` may be left out
/// (training takes them from the data), and when `classes` is, so may the `features` of the
/// last top-level dense layer (the head, which then outputs the data's classes).
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub input: Option<[u32; 3]>,
    pub classes: Option<u32>,
    pub layers: Vec<Layer>,
    /// The index in `layers` of the head whose `features` was left out.
    open_head: Option<usize>,
    /// Where each layer was written (`layer 3`; a `repeat`'s layers name their entry and
    /// repetition), so that shape errors name what the file says, not the expansion.
    origins: Vec<String>,
}

impl From<Description> for Draft {
    fn from(d: Description) -> Self {
        Draft {
            input: Some(d.input),
            classes: Some(d.classes),
            origins: (0..d.layers.len()).map(|i| format!("layer {i}")).collect(),
            layers: d.layers,
            open_head: None,
        }
    }
}

impl Draft {
    /// Parses a description (TOML 1.0) whose `input` and `classes` may be left out; a complete
    /// one is checked as [`Description::parse`] checks it. Errors are one line naming the layer
    /// and key; TOML syntax errors give the line.
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
            Some(toml::Value::Array(a)) if a.len() == 3 => Some([
                positive(&a[0], &model, "input")?,
                positive(&a[1], &model, "input")?,
                positive(&a[2], &model, "input")?,
            ]),
            Some(_) => return err("the model: key `input` must be [H, W, C] of positive integers"),
            None => None,
        };
        let classes = match table.get("classes") {
            Some(v) => Some(positive(v, &model, "classes")?),
            None => None,
        };
        let at = |i| format!("layer {i}");
        let (layers, open_head) = match table.get("layer") {
            Some(toml::Value::Array(a)) => {
                // Without `classes`, the last top-level dense layer may leave out `features`:
                // it is parsed with a stand-in and takes the data's class count later.
                let head = classes
                    .is_none()
                    .then(|| {
                        a.iter()
                            .rposition(|v| v.get("type").and_then(|t| t.as_str()) == Some("dense"))
                    })
                    .flatten()
                    .filter(|&k| a[k].get("features").is_none());
                match head {
                    Some(k) => {
                        let mut items = a.clone();
                        if let Some(t) = items[k].as_table_mut() {
                            t.insert("features".into(), toml::Value::Integer(1));
                        }
                        let at_head = parse_layers(&at, &items[..k])?.len();
                        (parse_layers_with_origins(&at, &items)?, Some(at_head))
                    }
                    None => (parse_layers_with_origins(&at, a)?, None),
                }
            }
            Some(_) => return err("the model: key `layer` must be an array of tables ([[layer]])"),
            None => return err("the model: no layers (add [[layer]] tables)"),
        };
        if layers.is_empty() {
            return err("the model: no layers (add [[layer]] tables)");
        }
        let (layers, origins) = layers.into_iter().unzip();
        let d = Draft {
            input,
            classes,
            layers,
            open_head,
            origins,
        };
        if d.is_complete() {
            d.described()?;
        }
        Ok(d)
    }

    /// Whether the description fixes both `input` and `classes`.
    pub fn is_complete(&self) -> bool {
        self.input.is_some() && self.classes.is_some()
    }

    /// What the data must give: `input`, `classes`, both or none, as a phrase.
    pub fn open_keys(&self) -> Option<&'static str> {
        match (self.input.is_none(), self.classes.is_none()) {
            (true, true) => Some("`input` and `classes`"),
            (true, false) => Some("`input`"),
            (false, true) => Some("`classes`"),
            (false, false) => None,
        }
    }

    /// The description as written, which must fix `input` and `classes`; checks every shape.
    pub fn described(&self) -> Result<Description, DescError> {
        let Some(input) = self.input else {
            return err("the model: missing key `input` ([H, W, C] of one image; only `train` takes it from the data when it is left out)");
        };
        let Some(classes) = self.classes else {
            return err("the model: missing key `classes` (only `train` takes it from the data when it is left out)");
        };
        let d = Description {
            input,
            classes,
            layers: self.layers.clone(),
        };
        d.shapes().map_err(|e| self.located(e))?;
        Ok(d)
    }

    /// A shape error with each `layer N` of the expansion named as the file wrote it.
    fn located(&self, e: DescError) -> DescError {
        let msg = e.0;
        let mut out = String::with_capacity(msg.len());
        let mut rest = msg.as_str();
        while let Some(at) = rest.find("layer ") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 6..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let origin = after[..digits]
                .parse::<usize>()
                .ok()
                .filter(|_| matches!(after.as_bytes().get(digits), Some(b' ' | b':')))
                .and_then(|i| self.origins.get(i));
            match origin {
                Some(o) => {
                    out.push_str(o);
                    rest = &after[digits..];
                }
                None => {
                    out.push_str("layer ");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        DescError(out)
    }

    /// The model on data of `input` images and `classes` classes: what the description leaves
    /// out comes from the data (a key it fixes stays, and is checked against the data later).
    /// Checks every shape.
    pub fn complete(&self, input: [u32; 3], classes: u32) -> Result<Description, DescError> {
        let mut layers = self.layers.clone();
        if let Some(Layer::Dense { features, .. }) = self.open_head.and_then(|k| layers.get_mut(k))
        {
            *features = classes;
        }
        let d = Description {
            input: self.input.unwrap_or(input),
            classes: self.classes.unwrap_or(classes),
            layers,
        };
        if self.classes.is_none() && self.open_head.is_none() {
            // The head fixes its width: name the fix rather than only the mismatch.
            if let Ok(Shape::Flat(f)) = d.end_shape() {
                if f != classes {
                    return err(format!(
                        "the model's last layer outputs {f} features, the data has {classes} classes: leave `features` out of its last dense layer (it then outputs the data's classes), or set it to {classes}"
                    ));
                }
            }
        }
        d.shapes().map_err(|e| self.located(e))?;
        Ok(d)
    }
}

impl Description {
    /// Parses and checks a description (TOML 1.0) that fixes `input` and `classes`. Errors are
    /// one line naming the layer and key; TOML syntax errors give the line.
    pub fn parse(text: &str) -> Result<Self, DescError> {
        Draft::parse(text)?.described()
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
        let (nodes, s) = self.walk()?;
        let last = || {
            format!(
                "layer {} ({})",
                self.layers.len() - 1,
                self.layers.last().map_or("", |l| l.kind())
            )
        };
        match s {
            Shape::Flat(f) if f == self.classes => Ok(nodes),
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

    /// The shape the layers end in (one image), checking that each layer fits its input.
    fn end_shape(&self) -> Result<Shape, DescError> {
        Ok(self.walk()?.1)
    }

    /// Every leaf layer's node and the shape the layers end in.
    fn walk(&self) -> Result<(Vec<Node>, Shape), DescError> {
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
        Ok((g.nodes, s))
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

    /// One line: `conv3x3 32 - relu - avg_pool2 - ...`; a run of identical layers, or of an
    /// identical group of up to eight (a block and its activation; airbench94's conv group of
    /// seven), as `3× (… - …)`, whether the file wrote a `repeat` or unrolled it.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|l| l.summary()).collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < parts.len() {
            // The period (1–8 layers) whose repetitions from `i` cover the most layers.
            let mut best = (1, 1);
            for p in 1..=8.min(parts.len() - i) {
                let mut k = 1;
                while i + (k + 1) * p <= parts.len()
                    && parts[i + k * p..i + (k + 1) * p] == parts[i..i + p]
                {
                    k += 1;
                }
                if k > 1 && p * k > best.0 * best.1 {
                    best = (p, k);
                }
            }
            let (p, k) = best;
            // A run that also repeats one layer later (`relu - 3× (residual - relu)` rather
            // than `3× (relu - residual) - relu`) starts there: a block, then its activation.
            if k > 1 && p > 1 && parts.get(i + p * k) == Some(&parts[i]) {
                out.push(parts[i].clone());
                i += 1;
                continue;
            }
            let group = parts[i..i + p].join(" - ");
            out.push(match (p, k) {
                (_, 1) => group,
                (1, _) => format!("{k}× {group}"),
                _ => format!("{k}× ({group})"),
            });
            i += p * k;
        }
        out.join(" - ")
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

    /// `input` and `classes` may be left to the data; so may the head's `features` when
    /// `classes` is (the head is the last top-level dense layer, found after a `repeat`).
    #[test]
    fn drafts_leave_input_and_classes_to_the_data() {
        let text = "[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"repeat\"\ntimes = 2\nbody = [ { type = \"dense\", features = 5 }, { type = \"relu\" } ]\n[[layer]]\ntype = \"dense\"\n";
        let d = Draft::parse(text).unwrap();
        assert_eq!((d.input, d.classes), (None, None));
        assert_eq!(d.open_keys(), Some("`input` and `classes`"));
        let m = d.complete([4, 4, 1], 3).unwrap();
        assert_eq!((m.input, m.classes, m.layers.len()), ([4, 4, 1], 3, 6));
        assert!(matches!(m.layers[5], Layer::Dense { features: 3, .. }));
        assert!(matches!(m.layers[3], Layer::Dense { features: 5, .. }));
        // The completed model parses back as itself, and the strict parse names the key.
        assert_eq!(Description::parse(&m.to_toml()).unwrap(), m);
        assert!(Description::parse(text)
            .unwrap_err()
            .0
            .contains("missing key `input`"));
        // With `classes` given, every dense layer needs its `features`.
        let e = Draft::parse(&format!("classes = 3\n{text}")).unwrap_err();
        assert!(
            e.0.contains("layer 2 (dense): missing key `features`"),
            "{e}"
        );
        // A fixed input is kept (the data is checked against it later); a fixed head must
        // output the data's classes.
        let d = Draft::parse(&format!("input = [2, 2, 1]\n{text}")).unwrap();
        assert_eq!(d.complete([4, 4, 1], 3).unwrap().input, [2, 2, 1]);
        let d = Draft::parse(&format!("{text}features = 7\n")).unwrap();
        assert!(d
            .complete([4, 4, 1], 3)
            .unwrap_err()
            .0
            .contains("leave `features` out"));
        assert_eq!(d.complete([4, 4, 1], 7).unwrap().classes, 7);
        // A complete description is checked as it parses.
        let e = Draft::parse(&format!("input = [4, 4, 1]\nclasses = 2\n{text}")).unwrap_err();
        assert!(e.0.contains("missing key `features`"), "{e}");
    }

    /// A shape error inside a `repeat` names the entry and the repetition the file wrote, not
    /// the index in the expansion.
    #[test]
    fn shape_errors_in_a_repeat_name_the_repetition() {
        let text = "input = [8, 8, 1]\nclasses = 2\n[[layer]]\ntype = \"relu\"\n[[layer]]\ntype = \"repeat\"\ntimes = 3\nbody = [ { type = \"conv\", features = 2, kernel = 3, stride = 2, padding = \"VALID\" }, { type = \"relu\" } ]\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nfeatures = 2\n";
        let e = Description::parse(text).unwrap_err().0;
        assert!(
            e.starts_with("layer 1 (repeat) body[0], repetition 3 of 3 (conv): key `kernel`"),
            "{e}"
        );
        // Layers after the repeat keep their place in the file.
        let text = text
            .replace("times = 3", "times = 2")
            .replace("features = 2\n", "features = 3\n");
        let e = Description::parse(&text).unwrap_err().0;
        assert!(
            e.starts_with("layer 3 (dense): the last layer must output"),
            "{e}"
        );
    }
}
