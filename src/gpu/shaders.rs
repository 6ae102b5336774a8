//! Shader registry: every WGSL file is compiled into the binary, and looked up by its stem, the
//! same stem as its launcher in `gpu/ops/` and its reference in `cpu/`.

/// One WGSL source file.
pub struct ShaderSource {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! shader {
    ($name:literal) => {
        ShaderSource {
            name: $name,
            source: include_str!(concat!("../../shaders/", $name, ".wgsl")),
        }
    };
}

/// Every shader of the engine.
pub const SHADERS: &[ShaderSource] = &[
    shader!("conv2d"),
    shader!("conv2d_sg"),
    shader!("conv2d_wg"),
    shader!("avgpool"),
    shader!("dense"),
    shader!("relu"),
    shader!("gelu"),
    shader!("maxpool"),
    shader!("dropout"),
    shader!("softmax_ce"),
    shader!("adam"),
    shader!("clip"),
    shader!("augment"),
    shader!("batchnorm"),
    shader!("add"),
];

/// The WGSL source of shader `name`.
pub fn source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|s| s.name == name).map(|s| s.source)
}
