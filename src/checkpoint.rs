//! Checkpoints: safetensors, float32, with Flax's parameter names and layouts
//! (`Conv_0.kernel` [3,3,3,32] HWIO, …, `Dense_0.kernel` [4096,256] with inputs in (H,W,C)
//! order), batch-norm running statistics as `batch_stats.<name>` (Flax's `batch_stats`
//! collection: `batch_stats.BatchNorm_0.mean` / `.var`), the optimizer's state as
//! `opt.<slot>.<name>` (Adam/AdamW: `opt.mu`, `opt.nu`; SGD: `opt.trace`; older files'
//! `adam.mu` / `adam.nu` still load), a lookahead run's slow copy as `lookahead.<name>` and
//! `lookahead.batch_stats.<name>`, and the training position
//! (step, epoch, RNG seed, …) as string metadata, the model description (TOML) as metadata
//! `model` (checkpoints without it are the seed model, `flax-cifar10`). Written atomically (temporary file, fsync,
//! rename), so a kill at any moment leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};

use crate::graph::{zoo, Description};
use crate::io::write_atomic;
use crate::plan::{ParamLayout, ParamSpec};

/// The optimizer's per-parameter state, per tensor in `param_specs()` order: Adam's (mu, nu),
/// or SGD's (momentum trace, unused).
pub type Moments = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Parameters, optionally Adam's state, and metadata.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model and its description's text (metadata `model`).
    pub model: Description,
    pub model_text: String,
    /// Per tensor, in the model's [`ParamLayout`] order.
    pub params: Vec<Vec<f32>>,
    /// Batch-norm running statistics per tensor, in the model's [`ParamLayout::stats_of`] order
    /// (empty without batch norm).
    pub batch_stats: Vec<Vec<f32>>,
    /// Adam's (mu, nu) per tensor, when present.
    pub opt_state: Option<Moments>,
    /// Lookahead's slow parameters and batch statistics (`lookahead.<name>`,
    /// `lookahead.batch_stats.<name>`), when the run trains with lookahead.
    pub lookahead: Option<Moments>,
    pub metadata: HashMap<String, String>,
    /// Names in the file that are not part of the model (reported as warnings by `load`).
    pub unknown: Vec<String>,
    /// What loading decided on the reader's behalf (a `model` metadata entry that is not a
    /// description, ignored), one line each, for the command to print.
    pub notes: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint of `model` (described by `model_text`) without metadata.
    /// Its batch statistics are the initial ones (means 0, variances 1).
    pub fn new(model: Description, model_text: String, params: Vec<Vec<f32>>) -> Self {
        let batch_stats = ParamLayout::stats_of(&model)
            .expect("a checkpoint's model is a valid description")
            .init(0);
        Checkpoint {
            batch_stats,
            model,
            model_text,
            params,
            opt_state: None,
            lookahead: None,
            metadata: HashMap::new(),
            unknown: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The parameter names and shapes of the checkpoint's model.
    pub fn specs(&self) -> Vec<ParamSpec> {
        ParamLayout::of(&self.model)
            .expect("a checkpoint's model was checked when it was made")
            .specs
    }

    /// The batch-statistics names and shapes of the checkpoint's model.
    pub fn stats_specs(&self) -> Vec<ParamSpec> {
        ParamLayout::stats_of(&self.model)
            .expect("a checkpoint's model was checked when it was made")
            .specs
    }

    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.metadata.get(key).and_then(|v| v.parse().ok())
    }
}

fn bytes_of(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn save(path: &Path, ck: &Checkpoint) -> Result<()> {
    let specs = ck.specs();
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (s, t) in specs.iter().zip(&ck.params) {
        data.push((s.name.to_string(), s.shape.clone(), bytes_of(t)));
    }
    for (s, t) in ck.stats_specs().iter().zip(&ck.batch_stats) {
        data.push((
            format!("batch_stats.{}", s.name),
            s.shape.clone(),
            bytes_of(t),
        ));
    }
    if let Some((mu, nu)) = &ck.opt_state {
        // The optimizer's state slots: SGD's momentum trace, or Adam's two moments.
        if ck.metadata.get("optimizer").map(String::as_str) == Some("sgd") {
            for (s, t) in specs.iter().zip(mu) {
                data.push((
                    format!("opt.trace.{}", s.name),
                    s.shape.clone(),
                    bytes_of(t),
                ));
            }
        } else {
            for (s, t) in specs.iter().zip(mu) {
                data.push((format!("opt.mu.{}", s.name), s.shape.clone(), bytes_of(t)));
            }
            for (s, t) in specs.iter().zip(nu) {
                data.push((format!("opt.nu.{}", s.name), s.shape.clone(), bytes_of(t)));
            }
        }
    }
    if let Some((params, stats)) = &ck.lookahead {
        for (s, t) in specs.iter().zip(params) {
            data.push((
                format!("lookahead.{}", s.name),
                s.shape.clone(),
                bytes_of(t),
            ));
        }
        for (s, t) in ck.stats_specs().iter().zip(stats) {
            data.push((
                format!("lookahead.batch_stats.{}", s.name),
                s.shape.clone(),
                bytes_of(t),
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, shape, b)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut meta = ck.metadata.clone();
    meta.insert("model".into(), ck.model_text.clone());
    let bytes = safetensors::serialize(views, Some(meta))?;
    write_atomic(path, &bytes)
}

/// Loads and validates a checkpoint: every parameter present with its shape, float32, finite.
/// Adam's state is read when complete. Unknown tensors are listed in `unknown`. A file without
/// a model description (written before descriptions existed) is the seed model.
pub fn load(path: &Path) -> Result<Checkpoint> {
    load_as(path, None)
}

/// As [`load`], but a file without a model description (from an older wgpu-cnn, or written by
/// Flax) holds the parameters of `model` when given, else of the seed model.
pub fn load_as(path: &Path, model: Option<(&Description, &str)>) -> Result<Checkpoint> {
    load_with(path, model, false)
}

/// A checkpoint read as `model` whatever its metadata says (`eval --model`, `predict --model`):
/// a Flax-written file of any model, or one whose `model` entry is free text.
pub fn load_model(path: &Path, model: (&Description, &str)) -> Result<Checkpoint> {
    load_with(path, Some(model), true)
}

/// Fine-tuning's load (`--init FILE --init-skip-mismatch`): each of `model`'s parameters and
/// batch statistics the file holds with the same name and shape is read from it; the others
/// keep their values in `params` / `stats` (a fresh initialisation): returned as (name, one
/// line for the log) each. A file sharing no tensor with the model is an error.
pub fn load_matching(
    path: &Path,
    model: &Description,
    params: &mut [Vec<f32>],
    stats: &mut [Vec<f32>],
) -> Result<Vec<(String, String)>> {
    let shown = path.display();
    if path.is_dir() {
        bail!("{shown}: is a directory, expected a .safetensors checkpoint");
    }
    let bytes = read_maybe_compressed(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{shown}: not a valid safetensors file ({e})"))?;
    let specs = ParamLayout::of(model)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .specs;
    let stat_specs = ParamLayout::stats_of(model)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .specs;
    let mut notes = Vec::new();
    let mut loaded = 0;
    let targets = specs
        .iter()
        .map(|s| (s.name.clone(), s))
        .zip(params.iter_mut())
        .chain(
            stat_specs
                .iter()
                .map(|s| (format!("batch_stats.{}", s.name), s))
                .zip(stats.iter_mut()),
        );
    for ((name, spec), dst) in targets {
        match st.tensor(&name) {
            Ok(t) if t.dtype() == Dtype::F32 && t.shape() == spec.shape.as_slice() => {
                *dst = finite_f32(&shown, &name, &t)?;
                loaded += 1;
            }
            Ok(t) => notes.push((
                name.clone(),
                format!(
                    "--init: {name} initialised afresh (the checkpoint's is {:?} {:?}, the model's {:?})",
                    t.dtype(),
                    t.shape(),
                    spec.shape
                ),
            )),
            Err(_) => notes.push((
                name.clone(),
                format!("--init: {name} initialised afresh (not in the checkpoint)"),
            )),
        }
    }
    if loaded == 0 {
        bail!("{shown}: shares no tensor (name and shape) with the model being trained");
    }
    Ok(notes)
}

/// An F32 tensor's values; a non-finite one is an error naming the tensor and the index.
fn finite_f32(
    shown: &dyn std::fmt::Display,
    name: &str,
    t: &safetensors::tensor::TensorView<'_>,
) -> Result<Vec<f32>> {
    let v: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        bail!(
            "{shown}: tensor {name} holds a non-finite value ({}) at index {i}",
            v[i]
        );
    }
    Ok(v)
}

/// A file's bytes, unpacked when it is xz- or gzip-compressed (recognised by their magic
/// bytes, whatever the name): the shipped `resnet20-cifar10-40ep.safetensors.xz` loads as it is.
pub fn read_maybe_compressed(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let raw = std::fs::read(path).with_context(|| format!("cannot read checkpoint {shown}"))?;
    if raw.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut &raw[..], &mut out)
            .map_err(|e| anyhow::anyhow!("{shown}: a broken xz file ({e})"))?;
        Ok(out)
    } else if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .map_err(|e| anyhow::anyhow!("{shown}: a broken gzip file ({e})"))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The model description a checkpoint stores (metadata `model`), when it holds one; reads the
/// header only.
pub fn stored_model(path: &Path) -> Result<Option<Description>> {
    let bytes = read_maybe_compressed(path)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e})", path.display()))?;
    Ok(header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("model"))
        .and_then(|t| Description::parse(t).ok()))
}

/// The model a checkpoint's tensors are read as: `given` when `force`; else the file's `model`
/// metadata when it is a description (free text is ignored with a note), else `given`, else the
/// seed (and a file whose tensors are not the seed's is an error naming `--model`).
fn load_with(path: &Path, given: Option<(&Description, &str)>, force: bool) -> Result<Checkpoint> {
    let shown = path.display();
    if path.is_dir() {
        bail!("{shown}: is a directory, expected a .safetensors checkpoint");
    }
    let bytes = read_maybe_compressed(path)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{shown}: not a valid safetensors file ({e})"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{shown}: not a valid safetensors file ({e})"))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut notes = Vec::new();
    let from_file = match metadata.get("model") {
        Some(_) if force => None,
        Some(t) => match Description::parse(t) {
            Ok(d) => Some((d, t.clone())),
            // A description is TOML with `[[layer]]` tables; anything else is a note another
            // tool wrote (a JAX script's `metadata={"model": "flax tutorial CNN"}`).
            Err(e) if t.contains("[[layer]]") || t.contains("layer =") => {
                bail!("{shown}: its model description: {e}")
            }
            Err(_) => {
                let short: String = t.chars().take(60).collect();
                notes.push(format!(
                    "{shown}: its metadata `model` (\"{short}\") is not a model description: ignored"
                ));
                None
            }
        },
        None => None,
    };
    let mut seed_fallback = false;
    let (model, model_text) = match (from_file, given) {
        (Some(m), _) => m,
        (None, Some((d, t))) => (d.clone(), t.to_string()),
        (None, None) => {
            seed_fallback = true;
            let t = zoo::text(zoo::DEFAULT).expect("the default preset exists");
            (
                Description::parse(t).expect("presets are valid"),
                t.to_string(),
            )
        }
    };
    let specs = ParamLayout::of(&model)
        .map_err(|e| anyhow::anyhow!("{shown}: its model description: {e}"))?
        .specs;
    let stats_layout = ParamLayout::stats_of(&model)
        .map_err(|e| anyhow::anyhow!("{shown}: its model description: {e}"))?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|_| anyhow::anyhow!("{shown}: tensor {name} is missing"))?;
        if t.dtype() != Dtype::F32 {
            bail!(
                "{shown}: tensor {name} has dtype {:?}, expected F32",
                t.dtype()
            );
        }
        if t.shape() != shape {
            bail!(
                "{shown}: tensor {name} has shape {:?}, expected {:?}",
                t.shape(),
                shape
            );
        }
        finite_f32(&shown, name, &t)
    };
    let params = specs
        .iter()
        .map(|s| read(&s.name, &s.shape))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| {
            if seed_fallback {
                anyhow::anyhow!(
                    "{e}: the file names no model, and its tensors are not the seed model's \
                     ({}); name its model with --model NAME|FILE",
                    zoo::DEFAULT
                )
            } else {
                e
            }
        })?;
    // Batch statistics: all of them, or none (a file from Flax's `params` alone: the initial
    // statistics).
    let stat_names: Vec<String> = stats_layout
        .specs
        .iter()
        .map(|s| format!("batch_stats.{}", s.name))
        .collect();
    let present = stat_names
        .iter()
        .filter(|n| st.names().iter().any(|m| *m == *n))
        .count();
    let batch_stats = if present == 0 {
        stats_layout.init(0)
    } else {
        stats_layout
            .specs
            .iter()
            .zip(&stat_names)
            .map(|(s, n)| read(n, &s.shape))
            .collect::<Result<Vec<_>>>()?
    };
    // The optimizer state: `opt.mu.*` / `opt.nu.*` (Adam, AdamW), `opt.trace.*` (SGD; the second
    // slot zero), or the older `adam.mu.*` / `adam.nu.*`; complete or absent.
    let has = |prefix: &str| {
        specs.iter().all(|s| {
            st.names()
                .iter()
                .any(|n| **n == format!("{prefix}.{}", s.name))
        })
    };
    let slot = |prefix: &str| {
        specs
            .iter()
            .map(|s| read(&format!("{prefix}.{}", s.name), &s.shape))
            .collect::<Result<Vec<_>>>()
    };
    let adam = if has("opt.mu") && has("opt.nu") {
        Some((slot("opt.mu")?, slot("opt.nu")?))
    } else if has("opt.trace") {
        let zeros = specs.iter().map(|s| vec![0.0; s.len()]).collect();
        Some((slot("opt.trace")?, zeros))
    } else if has("adam.mu") && has("adam.nu") {
        Some((slot("adam.mu")?, slot("adam.nu")?))
    } else {
        None
    };
    // Lookahead's slow copy: every parameter and statistic, or none.
    let slow_names: Vec<(String, Vec<usize>)> = specs
        .iter()
        .map(|s| (format!("lookahead.{}", s.name), s.shape.clone()))
        .chain(
            stats_layout
                .specs
                .iter()
                .map(|s| (format!("lookahead.batch_stats.{}", s.name), s.shape.clone())),
        )
        .collect();
    let lookahead = if slow_names
        .iter()
        .all(|(n, _)| st.names().iter().any(|m| *m == n))
    {
        let mut all = slow_names
            .iter()
            .map(|(n, shape)| read(n, shape))
            .collect::<Result<Vec<_>>>()?;
        let stats = all.split_off(specs.len());
        Some((all, stats))
    } else {
        None
    };
    let known: Vec<String> = specs
        .iter()
        .flat_map(|s| {
            [
                s.name.to_string(),
                format!("opt.mu.{}", s.name),
                format!("opt.nu.{}", s.name),
                format!("opt.trace.{}", s.name),
                format!("adam.mu.{}", s.name),
                format!("adam.nu.{}", s.name),
            ]
        })
        .chain(stat_names)
        .chain(slow_names.into_iter().map(|(n, _)| n))
        .collect();
    let mut unknown: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !known.iter().any(|k| k == *n))
        .map(|n| n.to_string())
        .collect();
    unknown.sort();
    Ok(Checkpoint {
        model,
        model_text,
        params,
        batch_stats,
        opt_state: adam,
        lookahead,
        notes,
        metadata,
        unknown,
    })
}
