//! The `--plan` printer: layers, steps with their kernels, buffers and memory.

use std::fmt::Write as _;

use super::*;

impl Plan {
    /// The plan as text (`wgpu-cnn models NAME --plan`); `kernel` names the kernel a step runs
    /// on the device (the launchers' pure selection functions).
    pub fn render(&self, kernel: &dyn Fn(&Step) -> String) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan: batch {}, {} mode, {} parameters, forward {:.2} MFLOP/image",
            self.batch,
            if self.mode == Mode::Train {
                "train"
            } else {
                "inference"
            },
            self.layout.count(),
            self.forward_flops() as f64 / self.batch as f64 / 1e6
        );
        let _ = writeln!(s, "device: {}", self.caps.describe());
        // The summary first: memory, the largest batch, the kernels that run.
        let mirrors = self.texture_mirror_bytes(kernel);
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let largest = match Plan::max_batch(&self.desc, &self.caps, self.mode) {
            Some(b) => format!("largest batch within this adapter's binding limits {b}"),
            None => "no batch fits this adapter's binding limits".into(),
        };
        let _ = writeln!(
            s,
            "memory: {:.2} MiB of GPU memory; {largest}",
            mib(self.gpu_bytes() + mirrors)
        );
        let mut kernels: Vec<(String, usize)> = Vec::new();
        let schedule = if self.mode == Mode::Train {
            self.forward
                .iter()
                .chain(&self.backward)
                .collect::<Vec<_>>()
        } else {
            self.forward.iter().collect()
        };
        for st in schedule {
            let k = kernel(st);
            let name = k.split_whitespace().next().unwrap_or("").to_string();
            match kernels.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => kernels.push((name, 1)),
            }
        }
        // Broken into lines of at most 100 characters, continued under the first name.
        let mut lines = vec![String::from("kernels:")];
        for (i, (n, c)) in kernels.iter().enumerate() {
            let item = if *c > 1 {
                format!("{n} ×{c}")
            } else {
                n.clone()
            };
            let sep = if i + 1 < kernels.len() { "," } else { "" };
            let line = lines.last_mut().expect("one line at least");
            if line.chars().count() + 1 + item.chars().count() + sep.len() > 100 && i > 0 {
                lines.push(format!("         {item}{sep}"));
            } else {
                line.push(' ');
                line.push_str(&item);
                line.push_str(sep);
            }
        }
        let _ = writeln!(s, "{}", lines.join("\n"));
        let _ = writeln!(s, "\nlayers:");
        let [h, w, c] = self.desc.input;
        let _ = writeln!(
            s,
            "  {:<4} {:<14} {:>12}",
            "",
            "input",
            format!("{h}x{w}x{c}")
        );
        let mut block = usize::MAX;
        for l in &self.layers {
            // A node inside a block names its place in it; the block's first node shows the
            // whole block once.
            let what = if l.index == block {
                match l.path.split_once(") ") {
                    Some((_, rest)) => format!("  {rest}"),
                    None => format!("  {}", l.name),
                }
            } else {
                block = l.index;
                self.desc.layers[l.index].summary()
            };
            let params: usize = self
                .layout
                .specs
                .iter()
                .filter(|p| p.name.starts_with(&format!("{}.", l.name)))
                .map(|p| p.len())
                .sum();
            let _ = writeln!(
                s,
                "  {:<4} {:<14} {:>12}  {:>9}  {}",
                l.index,
                l.name,
                l.shape.to_string(),
                if params > 0 {
                    format!("{params} p")
                } else {
                    String::new()
                },
                what
            );
        }
        let mut steps = |title: &str, list: &[Step]| {
            let _ = writeln!(s, "\n{title}:");
            for st in list {
                let _ = writeln!(
                    s,
                    "  {:<12} {:<42} {:>9.3} GFLOP  {}",
                    st.layer(),
                    kernel(st),
                    st.flops() as f64 / 1e9,
                    st.describe(self)
                );
            }
        };
        steps("forward (train and eval)", &self.forward);
        if self.mode == Mode::Train {
            steps("loss, backward, update", &self.backward);
        } else {
            steps("loss (eval)", &[self.eval_loss()]);
        }
        let _ = writeln!(s, "\nbuffers:");
        let _ = writeln!(
            s,
            "  {:>10}  params (flat, 256-byte aligned tensors)",
            format!("{:.2} MiB", mib(4 * self.layout.total as u64)),
        );
        if self.mode == Mode::Train {
            for what in ["grads", "adam.mu", "adam.nu"] {
                let _ = writeln!(
                    s,
                    "  {:>10}  {what}",
                    format!("{:.2} MiB", mib(4 * self.layout.total as u64))
                );
            }
        }
        for b in &self.buffers {
            let _ = writeln!(
                s,
                "  {:>10}  {}",
                format!("{:.2} MiB", mib(4 * b.len as u64)),
                b.label
            );
        }
        if mirrors > 0 {
            let _ = writeln!(
                s,
                "  {:>10}  textures of the subgroup kernels' per-lane operand (weights, dout)",
                format!("{:.2} MiB", mib(mirrors))
            );
        }
        let _ = writeln!(
            s,
            "  total {:.2} MiB of GPU memory",
            mib(self.gpu_bytes() + mirrors)
        );
        match Plan::max_batch(&self.desc, &self.caps, self.mode) {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "  largest batch within this adapter's binding limits: {b}"
                );
            }
            None => {
                let _ = writeln!(s, "  no batch fits this adapter's binding limits");
            }
        }
        s
    }
}

impl Step {
    /// A short description for `--plan`.
    pub(super) fn describe(&self, plan: &Plan) -> String {
        let t = |i: &TensorId| plan.tensors[*i].name.clone();
        match self {
            Step::Conv {
                p,
                x,
                y,
                pooled,
                fused,
                winograd,
                ..
            } => {
                format!(
                    "conv {}x{}/{}x{} {}->{} pad t{} l{}{}: {} -> {}{}",
                    p.kh,
                    p.kw,
                    p.sh,
                    p.sw,
                    p.c,
                    p.o,
                    p.pad_t,
                    p.pad_l,
                    if fused.is_empty() {
                        String::new()
                    } else {
                        format!(" + {}", fused.join(" + "))
                    },
                    t(x),
                    if p.mask != 0 {
                        format!("{} (relu mask)", t(y))
                    } else {
                        t(y)
                    },
                    pooled.map_or(String::new(), |q| format!(", {}", t(&q)))
                ) + if winograd.is_some() {
                    " (Winograd F(4x4, 3x3))"
                } else {
                    ""
                }
            }
            Step::Dense { p, x, y, fused, .. } => format!(
                "dense {}x{}->{}{}: {} -> {}",
                p.m,
                p.k,
                p.n,
                if fused.is_empty() {
                    String::new()
                } else {
                    format!(" + {}", fused.join(" + "))
                },
                t(x),
                t(y)
            ),
            Step::Relu { x, y, .. } => format!("relu: {} -> {}", t(x), t(y)),
            Step::Gelu { x, y, .. } => format!("gelu: {} -> {}", t(x), t(y)),
            Step::Scale { p, x, y, .. } => format!("scale x{}: {} -> {}", p.factor, t(x), t(y)),
            Step::ScaleBackward { p, dout, din, .. } => {
                format!("scale backward x{}: {} -> {}", p.factor, t(dout), t(din))
            }
            Step::Dropout { p, x, y, .. } => {
                format!("dropout {} (eval: copy): {} -> {}", p.rate, t(x), t(y))
            }
            Step::DropoutBackward { dout, din, .. } => {
                format!("dropout backward: {} -> {}", t(dout), t(din))
            }
            Step::MaxPool {
                p, x, y, argmax, ..
            } => format!(
                "max_pool {}x{}/{}x{} pad t{} l{}: {} -> {}, {}",
                p.kh,
                p.kw,
                p.sh,
                p.sw,
                p.pad_t,
                p.pad_l,
                t(x),
                t(y),
                t(argmax)
            ),
            Step::MaxPoolBackward { dout, din, .. } => {
                format!(
                    "max_pool backward (to each window's argmax): {} -> {}",
                    t(dout),
                    t(din)
                )
            }
            Step::GeluBackward { dout, din, .. } => {
                format!("gelu backward: {} -> {}", t(dout), t(din))
            }
            Step::AvgPool { p, x, y, .. } => format!(
                "avg_pool {}x{}/{}x{}: {} -> {}",
                p.kh,
                p.kw,
                p.sh,
                p.sw,
                t(x),
                t(y)
            ),
            Step::Loss {
                logits, dlogits, ..
            } => match dlogits {
                Some(d) => format!("softmax CE forward + backward: {} -> {}", t(logits), t(d)),
                None => format!("softmax CE forward: {}", t(logits)),
            },
            Step::ReluBackward { dout, din, .. } => {
                format!("relu backward: {} -> {}", t(dout), t(din))
            }
            Step::AvgPoolBackward {
                dout,
                relu_out,
                mask,
                din,
                ..
            } => format!(
                "avg_pool backward{}: {} -> {}",
                match relu_out {
                    Some(r) if *mask => format!(" + relu backward (mask {})", t(r)),
                    Some(_) => " + relu backward".to_string(),
                    None => String::new(),
                },
                t(dout),
                t(din)
            ),
            Step::ConvBackwardWeight {
                dout,
                partials,
                winograd: Some([v, d]),
                forward_v,
                pool_mask,
                ..
            } => format!(
                "conv weight gradient (Winograd F(4x4, 3x3){}): {}{} -> {}{}, {} (scratch)",
                if *forward_v { ", the forward's V" } else { "" },
                t(dout),
                pool_mask.map_or(String::new(), |m| format!(
                    " + avg_pool backward + relu backward (mask {})",
                    t(&m)
                )),
                if *forward_v {
                    String::new()
                } else {
                    format!("{}, ", t(v))
                },
                t(d),
                t(partials)
            ),
            Step::ConvBackwardWeight {
                p, dout, partials, ..
            } => format!(
                "conv weight gradient (split-K {} x {} pixels): {} -> {}",
                p.splits,
                p.chunk,
                t(dout),
                t(partials)
            ),
            Step::ConvBackwardInput {
                dout,
                din,
                winograd,
                weight_d,
                pool_mask,
                ..
            } => match winograd {
                Some(([_, d], _)) if *weight_d => format!(
                    "conv input gradient (Winograd F(4x4, 3x3), the weight gradient's D): {} -> {}{}",
                    t(d),
                    t(din),
                    pool_mask.map_or(String::new(), |m| format!(
                        " (+ avg_pool backward + relu backward, mask {})",
                        t(&m)
                    ))
                ),
                Some((_, Some(_))) => format!(
                    "conv input gradient (Winograd F(4x4, 3x3)): {} -> {}",
                    t(dout),
                    t(din)
                ),
                Some((_, None)) => format!(
                    "conv input gradient (Winograd F(4x4, 3x3) forward of the transposed conv): {} -> {}",
                    t(dout),
                    t(din)
                ),
                None => format!("conv input gradient: {} -> {}", t(dout), t(din)),
            },
            Step::DenseBackwardWeight { dout, partials, .. } => format!(
                "dense weight gradient{}: {}",
                if partials.is_some() {
                    " (via split-K scratch)"
                } else {
                    ""
                },
                t(dout)
            ),
            Step::DenseBackwardInput { dout, din, .. } => {
                format!("dense input gradient: {} -> {}", t(dout), t(din))
            }
            Step::Update { rule } => format!(
                "{} update over {} parameters",
                match rule {
                    UpdateRule::Adam => "adam/adamw",
                    UpdateRule::Sgd => "sgd",
                },
                plan.layout.count()
            ),
            Step::BatchNorm {
                p,
                x,
                residual,
                y,
                fused,
                ..
            } => format!(
                "batch_norm {} channels x {} rows{} (eval: running statistics): {}{} -> {}",
                p.c,
                p.rows,
                if fused.is_empty() {
                    String::new()
                } else {
                    format!(" + {}", fused.join(" + "))
                },
                t(x),
                residual.map_or(String::new(), |r| format!(" + {}", t(&r))),
                t(y)
            ),
            Step::BatchNormBackward { dout, din, .. } => format!(
                "batch_norm backward (scale, bias{}): {}{}",
                if din.is_some() { ", input" } else { "" },
                t(dout),
                din.map_or(String::new(), |d| format!(" -> {}", t(&d)))
            ),
            Step::Add {
                a,
                b,
                mask,
                y,
                fused,
                ..
            } => format!(
                "add{}{}: {} + {}{} -> {}",
                if fused.is_empty() {
                    String::new()
                } else {
                    format!(" + {}", fused.join(" + "))
                },
                if mask.is_some() { " backward" } else { "" },
                t(a),
                t(b),
                mask.map_or(String::new(), |m| format!(" (where {} > 0)", t(&m))),
                t(y)
            ),
        }
    }
}
