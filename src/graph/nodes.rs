//! The description flattened into nodes: residual blocks expanded, every node's input and
//! output shape inferred and checked, Flax's auto-names.

use super::*;

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
pub(super) struct Walk {
    pub(super) nodes: Vec<Node>,
    pub(super) counts: Vec<(&'static str, usize)>,
}

impl Walk {
    /// Adds layer `l` (at `prefix`) reading `src` of shape `s`; returns its output.
    pub(super) fn layer(
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
pub(super) fn leaf_shape(l: &Layer, s: Shape, at: &At) -> Result<Shape, DescError> {
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
        (Layer::Gelu { .. }, s)
        | (Layer::Scale { .. }, s)
        | (Layer::Dropout { .. }, s)
        | (Layer::BatchNorm { .. }, s) => s,
        (Layer::Dense { features, .. }, Shape::Spatial { h, w, .. }) => {
            Shape::Spatial { h, w, c: *features }
        }
        (Layer::Dense { features, .. }, Shape::Flat(_)) => Shape::Flat(*features),
        (Layer::Relu, s) => s,
        (Layer::Flatten, s) => Shape::Flat(s.len() as u32),
        (Layer::Residual { .. }, _) => unreachable!("Walk::layer expands residuals"),
    })
}
