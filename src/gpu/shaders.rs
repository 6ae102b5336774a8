//! Shader registry: every WGSL file is compiled into the binary, and looked up by its stem, the
//! same stem as its launcher in `gpu/ops/` and its reference in `cpu/`. The convolution
//! shaders share `conv2d_common.wgsl` (parameters, stride-phase tiling), put in front of each.

/// One WGSL source file.
pub struct ShaderSource {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! shader {
    ($op:literal / $name:literal) => {
        ShaderSource {
            name: $name,
            source: include_str!(concat!("../ops/", $op, "/", $name, ".wgsl")),
        }
    };
    // A shader with a shared prelude in front (WGSL has no includes).
    ($op:literal / $name:literal after $prelude:literal) => {
        ShaderSource {
            name: $name,
            source: concat!(
                include_str!(concat!("../ops/", $op, "/", $prelude, ".wgsl")),
                "\n",
                include_str!(concat!("../ops/", $op, "/", $name, ".wgsl")),
            ),
        }
    };
}

/// The WGSL files that are no shader of their own but a prelude of some (see `shader!`).
pub const PRELUDES: &[&str] = &["conv2d_common"];

/// Every shader of the engine.
pub const SHADERS: &[ShaderSource] = &[
    shader!("conv2d" / "conv2d" after "conv2d_common"),
    shader!("conv2d" / "conv2d_sg" after "conv2d_common"),
    shader!("conv2d" / "conv2d_wg" after "conv2d_common"),
    shader!("conv2d" / "winograd" after "conv2d_common"),
    shader!("avgpool" / "avgpool"),
    shader!("dense" / "dense"),
    shader!("relu" / "relu"),
    shader!("gelu" / "gelu"),
    shader!("maxpool" / "maxpool"),
    shader!("dropout" / "dropout"),
    shader!("softmax_ce" / "softmax_ce"),
    shader!("optimizer" / "adam"),
    shader!("clip" / "clip"),
    shader!("augment" / "augment"),
    shader!("batchnorm" / "batchnorm"),
    shader!("add" / "add"),
    // A device probe, not an op: the lane layout the subgroup kernels assume.
    ShaderSource {
        name: "subgroup_probe",
        source: include_str!("subgroup_probe.wgsl"),
    },
];

/// The WGSL source of shader `name`.
pub fn source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|s| s.name == name).map(|s| s.source)
}
