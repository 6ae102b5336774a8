//! The flat parameter layout: Flax's names and shapes in Flax's order, each tensor at a 256-byte
//! aligned offset of one buffer (gradients, Adam's mu and nu share it, so one Adam dispatch
//! updates everything).

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::ops::Real;

/// How a tensor starts (Flax's defaults per parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// lecun_normal: truncated normal, variance 1/fan_in (kernels).
    Lecun,
    /// Biases, batch-norm running means.
    Zeros,
    /// Batch-norm scales, running variances.
    Ones,
}

/// One parameter tensor: Flax name, shape, fan-in (for lecun_normal; 0 otherwise), init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub fan_in: usize,
    pub init: Init,
}

impl ParamSpec {
    /// A kernel (`fan_in > 0`: lecun_normal) or a bias (`fan_in = 0`: zeros).
    pub fn new(name: String, shape: Vec<usize>, fan_in: usize) -> Self {
        ParamSpec {
            name,
            shape,
            fan_in,
            init: if fan_in > 0 { Init::Lecun } else { Init::Zeros },
        }
    }
    /// A tensor of ones or zeros.
    pub fn constant(name: String, len: usize, init: Init) -> Self {
        ParamSpec {
            name,
            shape: vec![len],
            fan_in: 0,
            init,
        }
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_bias(&self) -> bool {
        self.shape.len() == 1
    }
}

/// Offsets of each tensor inside the flat parameter (and gradient, mu, nu) buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub specs: Vec<ParamSpec>,
    pub offsets: Vec<usize>,
    pub total: usize,
}

/// Tensors start at multiples of 64 floats = 256 bytes, WebGPU's largest allowed
/// `min_storage_buffer_offset_alignment`, so the layout binds on every adapter.
pub const ALIGN: usize = 64;

impl ParamLayout {
    pub fn new(specs: Vec<ParamSpec>) -> Self {
        let mut offsets = Vec::with_capacity(specs.len());
        let mut at = 0;
        for s in &specs {
            offsets.push(at);
            at = (at + s.len()).div_ceil(ALIGN) * ALIGN;
        }
        ParamLayout {
            specs,
            offsets,
            total: at,
        }
    }
    pub fn count(&self) -> usize {
        self.specs.iter().map(|s| s.len()).sum()
    }
    /// Whether tensor `b` starts right where tensor `a` ends (a dense bias after its kernel when
    /// the kernel is a whole number of 64-float blocks): one kernel can then write both
    /// gradients.
    pub fn follows(&self, a: usize, b: usize) -> bool {
        self.offsets[b] == self.offsets[a] + self.specs[a].len()
    }
    /// Index of the tensor named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }
    /// Packs per-tensor vectors into the flat layout (padding is zero).
    pub fn flatten<T: Real>(&self, tensors: &[Vec<T>]) -> Vec<T> {
        let mut flat = vec![T::zero(); self.total];
        for ((t, &off), s) in tensors.iter().zip(&self.offsets).zip(&self.specs) {
            flat[off..off + s.len()].copy_from_slice(&t[..s.len()]);
        }
        flat
    }
    /// Splits a flat buffer into per-tensor vectors.
    pub fn unflatten<T: Real>(&self, flat: &[T]) -> Vec<Vec<T>> {
        self.specs
            .iter()
            .zip(&self.offsets)
            .map(|(s, &off)| flat[off..off + s.len()].to_vec())
            .collect()
    }
    /// Flax's default init: kernels lecun_normal (truncated normal in ±2σ, variance 1/fan_in),
    /// biases zero, batch-norm scales one; one RNG stream over the kernels in order.
    pub fn init(&self, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        self.specs
            .iter()
            .map(|s| {
                match s.init {
                    Init::Zeros => return vec![0.0; s.len()],
                    Init::Ones => return vec![1.0; s.len()],
                    Init::Lecun => {}
                }
                // Std of a standard normal truncated to [-2, 2] is 0.87962566; divide it out.
                let std = (1.0 / s.fan_in as f64).sqrt() / 0.879_625_661_034_239_8;
                (0..s.len())
                    .map(|_| loop {
                        let z: f64 = rng.sample(StandardNormal);
                        if z.abs() <= 2.0 {
                            break (z * std) as f32;
                        }
                    })
                    .collect()
            })
            .collect()
    }
    /// Zeros per tensor (Adam's initial moments, gradient accumulators).
    pub fn zeros<T: Real>(&self) -> Vec<Vec<T>> {
        self.specs
            .iter()
            .map(|s| vec![T::zero(); s.len()])
            .collect()
    }
}

impl ParamLayout {
    /// The parameters of a description in Flax's order (the graph's node order): per module,
    /// `kernel` (conv HWIO `[KH, KW, C, O]`, fan-in KH·KW·C; dense `[in, out]`, fan-in `in`) then
    /// `bias`; batch norm `scale` (ones) then `bias`.
    pub fn of(desc: &crate::graph::Description) -> Result<Self, crate::graph::DescError> {
        use crate::graph::Layer;
        let mut specs = Vec::new();
        for n in desc.nodes()? {
            let (Some(l), Some(name)) = (n.layer(), n.name.clone()) else {
                continue;
            };
            let c = n.in_shape.channels() as usize;
            match l {
                Layer::Conv {
                    features,
                    kernel,
                    bias,
                    ..
                } => {
                    let (kh, kw) = (kernel[0] as usize, kernel[1] as usize);
                    let o = *features as usize;
                    specs.push(ParamSpec::new(
                        format!("{name}.kernel"),
                        vec![kh, kw, c, o],
                        kh * kw * c,
                    ));
                    if *bias {
                        specs.push(ParamSpec::new(format!("{name}.bias"), vec![o], 0));
                    }
                }
                Layer::Dense { features, bias } => {
                    let o = *features as usize;
                    specs.push(ParamSpec::new(format!("{name}.kernel"), vec![c, o], c));
                    if *bias {
                        specs.push(ParamSpec::new(format!("{name}.bias"), vec![o], 0));
                    }
                }
                Layer::BatchNorm { .. } => {
                    specs.push(ParamSpec::constant(format!("{name}.scale"), c, Init::Ones));
                    specs.push(ParamSpec::constant(format!("{name}.bias"), c, Init::Zeros));
                }
                _ => {}
            }
        }
        Ok(ParamLayout::new(specs))
    }

    /// The batch-norm running statistics (Flax's `batch_stats` collection): `BatchNorm_i.mean`
    /// (zeros) and `BatchNorm_i.var` (ones), same flat aligned layout, no gradient.
    pub fn stats_of(desc: &crate::graph::Description) -> Result<Self, crate::graph::DescError> {
        let mut specs = Vec::new();
        for n in desc.nodes()? {
            if let (Some(crate::graph::Layer::BatchNorm { .. }), Some(name)) = (n.layer(), &n.name)
            {
                let c = n.in_shape.channels() as usize;
                specs.push(ParamSpec::constant(format!("{name}.mean"), c, Init::Zeros));
                specs.push(ParamSpec::constant(format!("{name}.var"), c, Init::Ones));
            }
        }
        Ok(ParamLayout::new(specs))
    }
}
