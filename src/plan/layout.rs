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
    /// PyTorch's Conv2d/Linear default: uniform in ±1/√fan_in (kernels and biases).
    Uniform,
    /// A conv kernel `[KH, KW, C, O]`: [`Init::Uniform`], then filters `o < min(C, O)` the
    /// identity (1 at the centre tap of channel `o`, 0 elsewhere: PyTorch's `dirac_`).
    Dirac,
    /// A conv kernel computed from the data when training starts
    /// (`crate::train::whitening`); [`Init::Uniform`] until then (the same random stream).
    Whitening,
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

/// The kernel just pushed takes `kernel_init`; the bias (when the layer has one) `bias_init`.
fn with_inits(
    specs: &mut Vec<ParamSpec>,
    bias: bool,
    o: usize,
    fan_in: usize,
    kernel_init: crate::graph::KernelInit,
    bias_init: crate::graph::BiasInit,
    name: &str,
) {
    use crate::graph::{BiasInit, KernelInit};
    if let Some(k) = specs.last_mut() {
        k.init = match kernel_init {
            KernelInit::LecunNormal => Init::Lecun,
            KernelInit::Pytorch => Init::Uniform,
            KernelInit::Dirac => Init::Dirac,
            KernelInit::Whitening => Init::Whitening,
        };
    }
    if bias {
        let mut b = ParamSpec::new(format!("{name}.bias"), vec![o], 0);
        if bias_init == BiasInit::Pytorch {
            (b.fan_in, b.init) = (fan_in, Init::Uniform);
        }
        specs.push(b);
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
                    Init::Uniform | Init::Dirac | Init::Whitening => {
                        // The same stream as the other kernels, one draw per element.
                        let bound = (1.0 / s.fan_in as f64).sqrt();
                        let mut v: Vec<f32> = (0..s.len())
                            .map(|_| rng.random_range(-bound..bound) as f32)
                            .collect();
                        if s.init == Init::Dirac {
                            dirac(&mut v, &s.shape);
                        }
                        return v;
                    }
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
                    kernel_init,
                    bias_init,
                    ..
                } => {
                    let (kh, kw) = (kernel[0] as usize, kernel[1] as usize);
                    let o = *features as usize;
                    if *kernel_init == crate::graph::KernelInit::Whitening {
                        // The filters are the patch covariance's eigenvectors and their
                        // negatives, computed from the images themselves.
                        if n.input != crate::graph::Src::Input {
                            return Err(crate::graph::DescError(format!(
                                "{} (conv): kernel_init = \"whitening\" is computed from the images: only a conv that reads the input can take it",
                                n.path
                            )));
                        }
                        if o != 2 * kh * kw * c {
                            return Err(crate::graph::DescError(format!(
                                "{} (conv): kernel_init = \"whitening\" makes 2·KH·KW·C = {} filters (the eigenvectors and their negatives), got features = {o}",
                                n.path,
                                2 * kh * kw * c
                            )));
                        }
                    }
                    specs.push(ParamSpec::new(
                        format!("{name}.kernel"),
                        vec![kh, kw, c, o],
                        kh * kw * c,
                    ));
                    with_inits(
                        &mut specs,
                        *bias,
                        o,
                        kh * kw * c,
                        *kernel_init,
                        *bias_init,
                        &name,
                    );
                }
                Layer::Dense {
                    features,
                    bias,
                    kernel_init,
                    bias_init,
                } => {
                    let o = *features as usize;
                    specs.push(ParamSpec::new(format!("{name}.kernel"), vec![c, o], c));
                    with_inits(&mut specs, *bias, o, c, *kernel_init, *bias_init, &name);
                }
                Layer::BatchNorm { use_scale, .. } => {
                    if *use_scale {
                        specs.push(ParamSpec::constant(format!("{name}.scale"), c, Init::Ones));
                    }
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

/// PyTorch's `dirac_` on the first `min(C, O)` filters of an HWIO kernel `[KH, KW, C, O]`:
/// filter `o` becomes the identity on channel `o` (1 at the centre tap `(KH/2, KW/2)`), the
/// later filters keep their values.
fn dirac(k: &mut [f32], shape: &[usize]) {
    let (kh, kw, c, o) = (shape[0], shape[1], shape[2], shape[3]);
    for f in 0..c.min(o) {
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..c {
                    let one = y == kh / 2 && x == kw / 2 && i == f;
                    k[((y * kw + x) * c + i) * o + f] = if one { 1.0 } else { 0.0 };
                }
            }
        }
    }
}
