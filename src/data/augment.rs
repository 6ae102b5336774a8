//! Training augmentation, `--augment LIST` (comma-separated, order-free):
//!
//! - `flip`: horizontal flip with p = 0.5;
//! - `flip:alternate`: airbench's alternating flip: each image's flip is drawn once (from the
//!   run's seed and the image, p = 0.5) for even epochs and mirrored on odd ones, so every
//!   image is seen both ways in any two consecutive epochs;
//! - `rrc`: RandomResizedCrop with torchvision's semantics (`--rrc-scale`, `--rrc-ratio`;
//!   the seed's defaults (0.8, 1.0) and (0.9, 1.1)), resized back bilinearly;
//! - `crop:PAD` / `crop:PAD:reflect`: pad PAD pixels on every side (zeros, i.e. black, as
//!   torchvision's `RandomCrop(padding=PAD)`, or reflected without repeating the edge as
//!   `padding_mode="reflect"`) and crop a random window of the image's size back;
//! - `translate:PX`: shift by a random whole number of pixels in [−PX, PX] along each axis, the
//!   uncovered pixels set to the data set's mean (0 after normalisation);
//! - `none`.
//!
//! At most one of `rrc`, `crop`, `translate`. Each image's draws come from the epoch's RNG in a
//! fixed order — the flip first, then the geometry — so `flip,rrc` draws exactly the seed's
//! sequence. Every choice becomes one [`Crop`]: a window of the (flipped) image, possibly
//! reaching outside it, resized to the image's size; the shader and its CPU twin
//! (`cpu::augment`) build the batch from those words.

use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ImageShape;

/// What a crop window reads outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Byte 0 (black before normalisation).
    Zero = 0,
    /// The mirror image without repeating the edge pixel.
    Reflect = 1,
    /// The normalised value 0 (the mean).
    Mean = 2,
}

/// One image's augmentation: which record, flip, and the crop window (in the flipped image,
/// top/left possibly negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub record: u32,
    pub flip: bool,
    pub top: i32,
    pub left: i32,
    pub h: u32,
    pub w: u32,
    pub fill: Fill,
}

impl Crop {
    /// The whole image, unflipped: evaluation.
    pub fn identity(record: u32, shape: ImageShape) -> Self {
        Crop {
            record,
            flip: false,
            top: 0,
            left: 0,
            h: shape.h,
            w: shape.w,
            fill: Fill::Zero,
        }
    }
    /// The 8 u32 the shader reads: record, flip, top, left (two's complement), h, w, fill, 0.
    pub fn words(&self) -> [u32; 8] {
        [
            self.record,
            self.flip as u32,
            self.top as u32,
            self.left as u32,
            self.h,
            self.w,
            self.fill as u32,
            0,
        ]
    }
}

/// The geometric part of the augmentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Geometry {
    None,
    Rrc {
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    Crop {
        pad: u32,
        reflect: bool,
    },
    Translate {
        px: u32,
    },
}

/// A parsed `--augment` list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    pub flip: bool,
    /// `flip:alternate`: the flip follows the image and the epoch's parity, not the epoch's RNG.
    pub flip_alternate: bool,
    pub geometry: Geometry,
}

/// The seed's RandomResizedCrop scale and ratio.
pub const RRC_SCALE: (f64, f64) = (0.8, 1.0);
pub const RRC_RATIO: (f64, f64) = (0.9, 1.1);

/// The augmentation settings of a run as config.json and recipes hold them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// The `--augment` list, canonical: `flip,rrc`, `crop:4,flip`, `none` …
    pub list: String,
    pub rrc_scale: (f64, f64),
    pub rrc_ratio: (f64, f64),
}

impl Default for AugmentConfig {
    /// The seed's: flip and RandomResizedCrop.
    fn default() -> Self {
        AugmentConfig {
            list: "flip,rrc".into(),
            rrc_scale: RRC_SCALE,
            rrc_ratio: RRC_RATIO,
        }
    }
}

impl AugmentConfig {
    pub fn none() -> Self {
        AugmentConfig {
            list: "none".into(),
            ..Default::default()
        }
    }
    /// Runs before `--augment` stored a bool.
    pub fn from_flag(on: bool) -> Self {
        if on {
            Self::default()
        } else {
            Self::none()
        }
    }
    pub fn parsed(&self) -> Result<Augment> {
        Augment::parse(&self.list, self.rrc_scale, self.rrc_ratio)
    }
}

/// `"0.8,1.0"` → (0.8, 1.0) for `--rrc-scale` / `--rrc-ratio`.
pub fn parse_pair(flag: &str, s: &str) -> Result<(f64, f64)> {
    let v: Vec<f64> = s
        .split(',')
        .map(|t| t.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{flag} must be two numbers LOW,HIGH, got `{s}`"))?;
    match v[..] {
        [a, b] if a.is_finite() && b.is_finite() && 0.0 < a && a < b => Ok((a, b)),
        _ => bail!("{flag} must be two positive numbers LOW,HIGH with LOW < HIGH, got `{s}`"),
    }
}

impl Augment {
    pub const KNOWN: &'static str =
        "flip, flip:alternate, rrc, crop:PAD[:reflect], translate:PX, none";

    pub fn parse(list: &str, scale: (f64, f64), ratio: (f64, f64)) -> Result<Self> {
        if scale.1 > 1.0 || scale.1.is_nan() {
            bail!("--rrc-scale must lie within (0, 1], got {scale:?}");
        }
        let mut a = Augment {
            flip: false,
            flip_alternate: false,
            geometry: Geometry::None,
        };
        let mut none = false;
        let items: Vec<&str> = list.split(',').map(str::trim).collect();
        for item in &items {
            let parts: Vec<&str> = item.split(':').collect();
            let geometry = match parts[..] {
                ["none"] => {
                    none = true;
                    continue;
                }
                ["flip"] | ["flip", "alternate"] => {
                    if a.flip {
                        bail!("--augment lists flip twice");
                    }
                    a.flip = true;
                    a.flip_alternate = parts.len() == 2;
                    continue;
                }
                ["rrc"] => Geometry::Rrc { scale, ratio },
                ["crop", pad] | ["crop", pad, "zero"] => Geometry::Crop {
                    pad: count("crop", pad)?,
                    reflect: false,
                },
                ["crop", pad, "reflect"] => Geometry::Crop {
                    pad: count("crop", pad)?,
                    reflect: true,
                },
                ["translate", px] => Geometry::Translate {
                    px: count("translate", px)?,
                },
                _ => bail!(
                    "unknown augmentation `{item}` in --augment (known: {})",
                    Self::KNOWN
                ),
            };
            if a.geometry != Geometry::None {
                bail!("--augment takes at most one of rrc, crop, translate, got `{list}`");
            }
            a.geometry = geometry;
        }
        if none && items.len() > 1 {
            bail!("--augment none cannot be combined with other augmentations, got `{list}`");
        }
        Ok(a)
    }

    /// The canonical list (flip first): what config.json stores.
    pub fn canonical(&self) -> String {
        let mut v = Vec::new();
        if self.flip {
            v.push(
                if self.flip_alternate {
                    "flip:alternate"
                } else {
                    "flip"
                }
                .to_string(),
            );
        }
        match self.geometry {
            Geometry::None => {}
            Geometry::Rrc { .. } => v.push("rrc".into()),
            Geometry::Crop { pad, reflect } => v.push(if reflect {
                format!("crop:{pad}:reflect")
            } else {
                format!("crop:{pad}")
            }),
            Geometry::Translate { px } => v.push(format!("translate:{px}")),
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join(",")
        }
    }

    /// Whether the augmentation fits images of `shape` (reflection needs PAD < side).
    pub fn check(&self, shape: ImageShape) -> Result<()> {
        if let Geometry::Crop { pad, reflect: true } = self.geometry {
            if pad >= shape.h.min(shape.w) {
                bail!(
                    "--augment crop:{pad}:reflect needs a padding smaller than the {}x{} images",
                    shape.h,
                    shape.w
                );
            }
        }
        Ok(())
    }

    /// One image's crop, drawn from `rng`: the flip first, then the geometry (an alternating
    /// flip as in epoch 0 of seed 0; see [`Augment::draw_in`]).
    pub fn draw(&self, rng: &mut impl Rng, record: u32, shape: ImageShape) -> Crop {
        self.draw_in(rng, record, shape, 0, 0)
    }

    /// [`Augment::draw`] in epoch `epoch` of a run seeded `seed`: an alternating flip is the
    /// image's own draw (not the RNG's), mirrored on odd epochs.
    pub fn draw_in(
        &self,
        rng: &mut impl Rng,
        record: u32,
        shape: ImageShape,
        epoch: u32,
        seed: u64,
    ) -> Crop {
        let mut c = Crop::identity(record, shape);
        if self.flip_alternate {
            c.flip = image_flip(seed, record) ^ (epoch % 2 == 1);
        } else if self.flip {
            c.flip = rng.random_bool(0.5);
        }
        match self.geometry {
            Geometry::None => {}
            Geometry::Rrc { scale, ratio } => {
                let (top, left, h, w) = random_resized_crop(rng, shape, scale, ratio);
                (c.top, c.left, c.h, c.w) = (top as i32, left as i32, h, w);
            }
            Geometry::Crop { pad, reflect } => {
                let p = pad as i32;
                c.top = rng.random_range(0..=2 * p) - p;
                c.left = rng.random_range(0..=2 * p) - p;
                c.fill = if reflect { Fill::Reflect } else { Fill::Zero };
            }
            Geometry::Translate { px } => {
                let p = px as i32;
                c.top = rng.random_range(-p..=p);
                c.left = rng.random_range(-p..=p);
                c.fill = Fill::Mean;
            }
        }
        c
    }
}

fn count(what: &str, s: &str) -> Result<u32> {
    s.parse::<u32>()
        .map_err(|_| anyhow::anyhow!("--augment {what}:{s}: `{s}` is not a pixel count"))
}

/// RandomResizedCrop parameters with torchvision's semantics: 10 tries of a target area
/// uniform in `scale`·area and a log-uniform aspect ratio, sides rounded (half to even, as
/// Python's round), then the fallback central crop clamped to `ratio`.
pub fn random_resized_crop(
    rng: &mut impl Rng,
    shape: ImageShape,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> (u32, u32, u32, u32) {
    let (height, width) = (shape.h as f64, shape.w as f64);
    let area = height * width;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.random_range(scale.0..scale.1);
        let aspect = rng.random_range(lr0..lr1).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= width && h > 0.0 && h <= height {
            let (h, w) = (h as u32, w as u32);
            let top = rng.random_range(0..=shape.h - h);
            let left = rng.random_range(0..=shape.w - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width / height;
    let (h, w) = if in_ratio < ratio.0 {
        (width / ratio.0, width)
    } else if in_ratio > ratio.1 {
        (height, height * ratio.1)
    } else {
        (height, width)
    };
    let (h, w) = (h.round_ties_even() as u32, w.round_ties_even() as u32);
    ((shape.h - h) / 2, (shape.w - w) / 2, h, w)
}

/// An image's flip for the even epochs of an alternating flip: one bit of SplitMix64 of the
/// run's seed and the record (a fixed, well-mixed function: the same on every run and resume).
pub fn image_flip(seed: u64, record: u32) -> bool {
    let mut z = seed ^ (u64::from(record).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ 0xA17E_F11B;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z >> 63 == 1
}

/// One test-time view of an image: shifted by (`dy`, `dx`) pixels (the pixel at (i, j) is the
/// image's at (i + dy, j + dx), reflect-padded: airbench94's crops of a 1-pixel reflect pad),
/// then mirrored when `flip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub flip: bool,
    pub dy: i32,
    pub dx: i32,
}

impl View {
    /// The crop that shows this view of `record` (the shader mirrors before it crops, so a
    /// mirrored view's column offset changes sign).
    pub fn crop(&self, record: u32, shape: ImageShape) -> Crop {
        Crop {
            flip: self.flip,
            top: self.dy,
            left: if self.flip { -self.dx } else { self.dx },
            fill: Fill::Reflect,
            ..Crop::identity(record, shape)
        }
    }

    fn name(&self) -> String {
        match (self.flip, self.dy, self.dx) {
            (false, 0, 0) => "id".into(),
            (true, 0, 0) => "flip".into(),
            (false, y, x) => format!("{y}/{x}"),
            (true, y, x) => format!("flip/{y}/{x}"),
        }
    }
}

/// Test-time augmentation of a final test (`--tta`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Tta {
    #[default]
    None,
    /// Each image and its mirror; the mean of their softmax probabilities decides.
    Flip,
    /// Weighted views whose logits are summed with the weights (airbench94's TTA), written
    /// `id=0.25, flip=0.25, -1/-1=0.125, flip/-1/-1=0.125, …` (`DY/DX` a shift, `flip/DY/DX` a
    /// shifted mirror); `airbench` names airbench94's six views.
    Views(Vec<(View, f64)>),
}

impl Tta {
    /// airbench94's `tta_level = 2`: plain and mirror 0.25 each, the ±1-pixel shifts of both
    /// 0.125 each, logits averaged.
    pub fn airbench() -> Self {
        let v = |flip, d| View { flip, dy: d, dx: d };
        Tta::Views(vec![
            (v(false, 0), 0.25),
            (v(true, 0), 0.25),
            (v(false, -1), 0.125),
            (v(true, -1), 0.125),
            (v(false, 1), 0.125),
            (v(true, 1), 0.125),
        ])
    }

    /// `none`, `flip`, `airbench`, or weighted views (`VIEW=WEIGHT, …`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "none" => return Ok(Tta::None),
            "flip" => return Ok(Tta::Flip),
            "airbench" => return Ok(Tta::airbench()),
            _ => {}
        }
        let bad = |why: String| {
            anyhow::anyhow!("--tta {s:?}: {why} (none, flip, airbench, or views as `id=0.5, flip=0.5, -1/-1=…, flip/1/1=…`)")
        };
        let mut views = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (view, w) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("`{item}` is not VIEW=WEIGHT")))?;
            let w: f64 = w
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w > 0.0)
                .ok_or_else(|| bad(format!("`{item}`: the weight must be a positive number")))?;
            let view = view.trim();
            let (flip, rest) = match view.strip_prefix("flip") {
                Some(r) => (true, r.strip_prefix('/').unwrap_or(r)),
                None => (false, view),
            };
            let (dy, dx) = match rest {
                "" | "id" if flip || rest == "id" => (0, 0),
                _ => {
                    let (y, x) = rest
                        .split_once('/')
                        .ok_or_else(|| bad(format!("unknown view `{view}`")))?;
                    let px = |t: &str| {
                        t.trim()
                            .parse::<i32>()
                            .ok()
                            .filter(|d| d.abs() <= 64)
                            .ok_or_else(|| bad(format!("`{view}`: shifts are whole pixels")))
                    };
                    (px(y)?, px(x)?)
                }
            };
            views.push((View { flip, dy, dx }, w));
        }
        if views.is_empty() {
            return Err(bad("no views".into()));
        }
        Ok(Tta::Views(views))
    }

    /// The canonical form ([`Tta::parse`] reads it back).
    pub fn spec(&self) -> String {
        match self {
            Tta::None => "none".into(),
            Tta::Flip => "flip".into(),
            v if *v == Tta::airbench() => "airbench".into(),
            Tta::Views(views) => views
                .iter()
                .map(|(v, w)| format!("{}={w}", v.name()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Every view's largest shift, which the image must exceed (a reflect pad of that width).
    pub fn check(&self, shape: ImageShape) -> Result<()> {
        if let Tta::Views(views) = self {
            for (v, _) in views {
                if v.dy.unsigned_abs() >= shape.h || v.dx.unsigned_abs() >= shape.w {
                    bail!(
                        "--tta: the view {} shifts by more than a {}x{} image's reflect pad",
                        v.name(),
                        shape.h,
                        shape.w
                    );
                }
            }
        }
        Ok(())
    }
}

/// `Tta` in a run's config.json: `false`/`true` (no TTA, flip; as runs before views wrote
/// it) or the views' spec.
impl Serialize for Tta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Tta::None => s.serialize_bool(false),
            Tta::Flip => s.serialize_bool(true),
            v => s.serialize_str(&v.spec()),
        }
    }
}

impl<'de> Deserialize<'de> for Tta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Bool(bool),
            Spec(String),
        }
        match Repr::deserialize(d)? {
            Repr::Bool(b) => Ok(if b { Tta::Flip } else { Tta::None }),
            Repr::Spec(s) => Tta::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tta_specs() {
        let a = Tta::airbench();
        assert_eq!(Tta::parse("airbench").unwrap(), a);
        assert_eq!(a.spec(), "airbench");
        let v = Tta::parse("id=0.5, flip=0.25, -1/2=0.125, flip/1/-1=0.125").unwrap();
        assert_eq!(Tta::parse(&v.spec()).unwrap(), v);
        let Tta::Views(ref views) = v else { panic!() };
        assert_eq!(
            views[2].0,
            View {
                flip: false,
                dy: -1,
                dx: 2
            }
        );
        assert_eq!(
            views[3].0,
            View {
                flip: true,
                dy: 1,
                dx: -1
            }
        );
        // config.json: runs before views wrote a bool.
        assert_eq!(serde_json::from_str::<Tta>("true").unwrap(), Tta::Flip);
        assert_eq!(serde_json::to_string(&Tta::None).unwrap(), "false");
        assert_eq!(serde_json::from_str::<Tta>("\"airbench\"").unwrap(), a);
        for bad in ["flipx=1", "id", "id=-1", "1/x=1", ""] {
            assert!(Tta::parse(bad).is_err(), "{bad}");
        }
        assert!(Tta::parse("0/7=1")
            .unwrap()
            .check(ImageShape { h: 5, w: 7, c: 1 })
            .is_err());
    }
}
