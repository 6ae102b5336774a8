//! Shader registry: every WGSL file is compiled into the binary, and looked up by its stem, the
//! same stem as its launcher in `ops/<op>/gpu.rs` and its reference in `ops/<op>/cpu.rs`. WGSL
//! has no includes, so shared code is a prelude put in front of each shader that uses it: the
//! convolution shaders share `conv2d_common.wgsl` (parameters, stride-phase tiling), and the
//! subgroup convolution kernels, one shader per direction, also `conv2d_sg_common.wgsl`
//! (bindings, texture mirrors, tile queue, shared multiply-add helpers).

/// One WGSL source file.
pub struct ShaderSource {
    pub name: &'static str,
    /// The preludes in front of the shader's own file, in order.
    pub preludes: &'static [&'static str],
    pub source: &'static str,
}

macro_rules! shader {
    ($op:literal / $name:literal) => {
        ShaderSource {
            name: $name,
            preludes: &[],
            source: include_str!(concat!("../ops/", $op, "/", $name, ".wgsl")),
        }
    };
    // A shader with shared preludes in front (WGSL has no includes), in the order given.
    ($op:literal / $name:literal after $($prelude:literal),+) => {
        ShaderSource {
            name: $name,
            preludes: &[$($prelude),+],
            source: concat!(
                $(
                    include_str!(concat!("../ops/", $op, "/", $prelude, ".wgsl")),
                    "\n",
                )+
                include_str!(concat!("../ops/", $op, "/", $name, ".wgsl")),
            ),
        }
    };
}

/// The WGSL files that are no shader of their own but a prelude of some (see `shader!`).
pub const PRELUDES: &[&str] = &["conv2d_common", "conv2d_sg_common"];

/// Every shader of the engine.
pub const SHADERS: &[ShaderSource] = &[
    shader!("conv2d" / "conv2d" after "conv2d_common"),
    shader!("conv2d" / "conv2d_sg_forward" after "conv2d_common", "conv2d_sg_common"),
    shader!("conv2d" / "conv2d_sg_backward_input" after "conv2d_common", "conv2d_sg_common"),
    shader!("conv2d" / "conv2d_sg_backward_weight" after "conv2d_common", "conv2d_sg_common"),
    shader!("conv2d" / "winograd_gemm_sg" after "conv2d_common", "conv2d_sg_common"),
    shader!("conv2d" / "conv2d_wg" after "conv2d_common"),
    shader!("conv2d" / "winograd" after "conv2d_common"),
    shader!("avgpool" / "avgpool"),
    shader!("dense" / "dense"),
    shader!("relu" / "relu"),
    shader!("gelu" / "gelu"),
    shader!("scale" / "scale"),
    shader!("maxpool" / "maxpool"),
    shader!("dropout" / "dropout"),
    shader!("softmax_ce" / "softmax_ce"),
    shader!("optimizer" / "adam"),
    shader!("optimizer" / "lookahead"),
    shader!("clip" / "clip"),
    shader!("augment" / "augment"),
    shader!("batchnorm" / "batchnorm"),
    shader!("add" / "add"),
    // A device probe, not an op: the lane layout the subgroup kernels assume.
    ShaderSource {
        name: "subgroup_probe",
        preludes: &[],
        source: include_str!("subgroup_probe.wgsl"),
    },
];

/// The WGSL source of shader `name`.
pub fn source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|s| s.name == name).map(|s| s.source)
}

/// Whether the entry points of shader `name` declare the tile queue (binding 40, bound by the
/// dispatch): those of the subgroup convolution kernels, which have `conv2d_sg_common.wgsl` in
/// front.
pub fn binds_tile_queue(name: &str) -> bool {
    SHADERS
        .iter()
        .any(|s| s.name == name && s.preludes.contains(&"conv2d_sg_common"))
}
