//! Reports of a run: evaluation results, the confusion matrix as a text table and a PNG heat
//! map, and training curves.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use crate::data::CLASS_NAMES;

/// Loss and accuracy of a model on a set of images; the confusion matrix when collected.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalResult {
    pub loss: f64,
    pub accuracy: f64,
    pub correct: u64,
    pub total: u64,
    /// `confusion[true][predicted]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<u64>>>,
    /// The data set's class names (empty: CIFAR-10's, or `class i`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

/// Names for `n` classes: `given` when it has `n`, CIFAR-10's for 10, else `class i`.
pub fn class_names(given: &[String], n: usize) -> Vec<String> {
    if given.len() == n {
        given.to_vec()
    } else if n == CLASS_NAMES.len() {
        CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..n).map(|i| format!("class {i}")).collect()
    }
}

impl EvalResult {
    /// The class names of the confusion matrix's rows.
    pub fn names(&self) -> Vec<String> {
        let n = self
            .confusion
            .as_ref()
            .map_or(self.classes.len(), |m| m.len());
        class_names(&self.classes, n)
    }

    pub fn per_class_accuracy(&self) -> Option<Vec<f64>> {
        self.confusion.as_ref().map(|m| {
            m.iter()
                .enumerate()
                .map(|(i, row)| {
                    let n: u64 = row.iter().sum();
                    if n == 0 {
                        0.0
                    } else {
                        row[i] as f64 / n as f64
                    }
                })
                .collect()
        })
    }

    /// `loss: 0.9002, accuracy: 0.7274 (7274/10000)`, the seed's format.
    pub fn line(&self) -> String {
        format!(
            "loss: {:.4}, accuracy: {:.4} ({}/{})",
            self.loss, self.accuracy, self.correct, self.total
        )
    }

    /// JSON object with per-class accuracy keyed by class name.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "loss": self.loss,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
        });
        if let (Some(pc), Some(m)) = (self.per_class_accuracy(), &self.confusion) {
            let names = self.names();
            let per: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(pc)
                .map(|(n, a)| (n.clone(), a.into()))
                .collect();
            v["per_class_accuracy"] = per.into();
            v["classes"] = names.into();
            v["confusion"] = serde_json::to_value(m).unwrap_or_default();
        }
        v
    }
}

/// Per-class accuracy lines and the confusion matrix (rows: true class, columns: predicted).
pub fn confusion_table(r: &EvalResult) -> String {
    let (Some(m), Some(pc)) = (&r.confusion, r.per_class_accuracy()) else {
        return String::new();
    };
    let names = r.names();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut s = String::from("per-class accuracy:\n");
    for (name, a) in names.iter().zip(&pc) {
        s += &format!("  {name:<width$} {a:.4}\n");
    }
    let short = |n: &str| n.chars().take(6).collect::<String>();
    s += "confusion matrix (rows: true class, columns: predicted):\n";
    s += &format!("{:>12}", "");
    for name in &names {
        s += &format!(" {:>6}", short(name));
    }
    s += "\n";
    for (name, row) in names.iter().zip(m) {
        let name: String = name.chars().take(12).collect();
        s += &format!("{name:>12}");
        for v in row {
            s += &format!(" {v:>6}");
        }
        s += "\n";
    }
    s
}

fn font() -> Result<()> {
    static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("cannot load the bundled font"))
}

fn plot_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("cannot draw {}: {e:?}", path.display())
}

/// Writes `path` (PNG) atomically from an RGB buffer.
fn save_png(path: &Path, w: u32, h: u32, rgb: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, rgb).context("image buffer size")?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    crate::io::write_atomic(path, &bytes)
}

/// Heat map of the confusion matrix with class names and counts.
pub fn confusion_png(r: &EvalResult, title: &str, path: &Path) -> Result<()> {
    let Some(m) = &r.confusion else { return Ok(()) };
    font()?;
    let (w, h) = (900u32, 820u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err(path))?;
        let names = r.names();
        let n = names.len() as i32;
        // Many classes: no counts in the cells, and labels only where they fit.
        let counts = n <= 20;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(70)
            .y_label_area_size(110)
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
            .map_err(plot_err(path))?;
        // The data set's own names, as every other output prints them; columns hold ten
        // characters at the label size below (CIFAR-10's longest, "automobile"), more classes
        // fewer.
        let column = if n <= 10 { 10 } else { 7 };
        let name = |v: &SegmentValue<i32>, flip: bool| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                let i = if flip { n - 1 - *i } else { *i };
                names
                    .get(i as usize)
                    .map(|s| s.chars().take(if flip { 14 } else { column }).collect())
                    .unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(names.len().min(20))
            .y_labels(names.len().min(40))
            .x_desc("predicted")
            .y_desc("true")
            .x_label_formatter(&|v| name(v, false))
            .y_label_formatter(&|v| name(v, true))
            .x_label_style(("sans-serif", 13))
            .y_label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_err(path))?;
        let row_max: Vec<u64> = m.iter().map(|r| r.iter().sum::<u64>().max(1)).collect();
        for (t, row) in m.iter().enumerate() {
            for (p, &v) in row.iter().enumerate() {
                let frac = v as f64 / row_max[t] as f64;
                let shade = (255.0 * (1.0 - frac)) as u8;
                let (x, y) = (p as i32, n - 1 - t as i32);
                let cell = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        cell,
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(plot_err(path))?;
                if !counts {
                    continue;
                }
                let text_color = if frac > 0.5 { WHITE } else { BLACK };
                let style = ("sans-serif", 15)
                    .into_font()
                    .color(&text_color)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart
                    .draw_series(std::iter::once(Text::new(
                        v.to_string(),
                        (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                        style,
                    )))
                    .map_err(plot_err(path))?;
            }
        }
        root.present().map_err(plot_err(path))?;
    }
    save_png(path, w, h, buf)
}

/// One epoch's metrics, as written to metrics.jsonl.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Resident memory of the process at the end of the epoch (flat across a healthy run).
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// GPU memory the run allocated (model, data sets, scratch): constant by design.
    #[serde(default)]
    pub gpu_bytes: Option<u64>,
    /// Buffers alive in wgpu at the end of the epoch.
    #[serde(default)]
    pub live_buffers: Option<usize>,
    /// Optimizer steps taken by the end of the epoch.
    #[serde(default)]
    pub step: Option<u64>,
    /// The learning rate of the epoch's last step (the schedule's value).
    #[serde(default)]
    pub lr: Option<f64>,
    /// When the epoch ended, in seconds since the Unix epoch.
    #[serde(default)]
    pub wall_time: Option<f64>,
}

/// Resident set size of this process (Linux; None elsewhere).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Train/validation loss and accuracy per epoch.
pub fn curves_png(history: &[EpochMetrics], path: &Path) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    font()?;
    // Loss, accuracy and (when the run recorded it) the learning rate, side by side.
    let lr: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| m.lr.map(|v| (m.epoch as f64, v)))
        .collect();
    let panels = if lr.is_empty() { 2 } else { 3 };
    let (w, h) = (600 * panels, 480u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err(path))?;
        let areas = root.split_evenly((1, panels as usize));
        let last = history.last().map(|m| m.epoch).unwrap_or(0) as f64;
        let series = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
                .collect()
        };
        // Epochs are whole numbers: ticks only there, at most about ten of them.
        let every = ((last + 1.0) / 10.0).ceil().max(1.0);
        let epoch_tick = |v: &f64| {
            let r = v.round();
            if (v - r).abs() < 1e-9 && r >= 0.0 && r % every == 0.0 {
                format!("{r:.0}")
            } else {
                String::new()
            }
        };
        let ticks = (last.max(1.0) * 4.0) as usize + 2;
        for (i, (title, train, val)) in [
            (
                "loss",
                series(&|m| Some(m.train_loss)),
                series(&|m| m.val_loss),
            ),
            (
                "accuracy",
                series(&|m| Some(m.train_accuracy)),
                series(&|m| m.val_accuracy),
            ),
            ("learning rate (at the epoch's end)", lr.clone(), Vec::new()),
        ]
        .into_iter()
        .take(panels as usize)
        .enumerate()
        {
            let area = &areas[i];
            let all = train.iter().chain(&val).map(|p| p.1);
            let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
            // Room above the data for the legend (loss falls, accuracy rises: the legend goes
            // where the curves are not, and the headroom keeps it clear of the last points).
            let pad = ((hi - lo) * 0.05).max(1e-3 * hi.abs().max(1e-6));
            let top = hi + pad + if i < 2 { (hi - lo) * 0.25 } else { 0.0 };
            // The learning rate from 0, so that a constant one is a flat line, not noise.
            let (lo, pad) = if i == 2 { (0.0, 0.0) } else { (lo, pad) };
            let top = if i == 2 { hi * 1.1 + 1e-12 } else { top };
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 22))
                .margin(15)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(-0.2..last.max(1.0) + 0.2, (lo - pad)..top)
                .map_err(plot_err(path))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels(ticks)
                .x_label_formatter(&epoch_tick)
                .y_label_formatter(&|v| {
                    if i == 2 {
                        format!("{v:.1e}")
                    } else {
                        format!("{v:.2}")
                    }
                })
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(plot_err(path))?;
            let (first, color) = if i == 2 {
                ("learning rate", BLACK)
            } else {
                ("train", BLUE)
            };
            // Lines and a marker per epoch, so a run of one or two epochs shows its points.
            chart
                .draw_series(LineSeries::new(train.clone(), color.stroke_width(2)))
                .map_err(plot_err(path))?
                .label(first)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(train.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(plot_err(path))?;
            if !val.is_empty() {
                chart
                    .draw_series(LineSeries::new(val.clone(), RED.stroke_width(2)))
                    .map_err(plot_err(path))?
                    .label("validation")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
                chart
                    .draw_series(val.iter().map(|&p| Circle::new(p, 4, RED.filled())))
                    .map_err(plot_err(path))?;
            }
            if i < 2 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 14))
                    .draw()
                    .map_err(plot_err(path))?;
            }
        }
        root.present().map_err(plot_err(path))?;
    }
    save_png(path, w, h, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels of exactly `rgb` in the PNG at `path`.
    fn count(path: &Path, rgb: [u8; 3]) -> usize {
        let img = image::open(path).unwrap().to_rgb8();
        img.pixels().filter(|p| p.0 == rgb).count()
    }

    #[test]
    fn curves_of_one_epoch_show_its_points() {
        let dir = std::env::temp_dir().join(format!("wgpu-cnn-curves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("curves.png");
        let epoch = EpochMetrics {
            epoch: 0,
            train_loss: 1.8,
            train_accuracy: 0.35,
            val_loss: Some(1.6),
            val_accuracy: Some(0.41),
            seconds: 1.0,
            images_per_second: 1.0,
            rss_bytes: None,
            gpu_bytes: None,
            live_buffers: None,
            step: None,
            lr: None,
            wall_time: None,
        };
        curves_png(std::slice::from_ref(&epoch), &path).unwrap();
        // A line through one point draws nothing: what shows is the marker (a filled circle of
        // radius 4, ~49 pixels) in each of the two charts, besides the legend's 21-pixel
        // stroke per chart.
        let (blue, red) = (count(&path, [0, 0, 255]), count(&path, [255, 0, 0]));
        assert!(blue >= 42 + 2 * 40, "{blue} blue pixels");
        assert!(red >= 42 + 2 * 40, "{red} red pixels");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
