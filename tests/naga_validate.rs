//! Every shader parses and validates with naga (no adapter needed), declares the entry points
//! its launcher uses, and its params uniform has the size and alignment of the Rust struct.

use wgpu_cnn::gpu::shaders::{PRELUDES, SHADERS};
use wgpu_cnn::ops::*;

fn parse(name: &str, src: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(src)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        // The subgroup convolution kernels (conv2d_sg_common.wgsl in front) use subgroup
        // operations (the device feature SUBGROUP).
        naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}.wgsl does not validate:\n{}", e.emit_to_string(src)));
    (module, info)
}

#[test]
fn every_shader_parses_and_validates() {
    assert_eq!(SHADERS.len(), 22);
    for s in SHADERS {
        parse(s.name, s.source);
    }
    // Every .wgsl file under src/ (the ops' folders, the GPU context's probe) is in the
    // registry, or a prelude that is in front of some shader: each shader's source is its
    // preludes' text, in order, then its own file.
    fn wgsl_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                wgsl_files(&path, out);
            } else if path.extension().is_some_and(|x| x == "wgsl") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    wgsl_files(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    assert!(files.len() >= SHADERS.len(), "{files:?}");
    for path in files {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if PRELUDES.contains(&stem.as_str()) {
            let users = SHADERS
                .iter()
                .filter(|s| s.preludes.contains(&stem.as_str()))
                .count();
            assert!(users > 0, "prelude {stem} is in front of no shader");
            continue;
        }
        assert!(
            SHADERS.iter().any(|s| s.name == stem),
            "{} is not in the shader registry",
            path.display()
        );
    }
    // A shader's source is exactly its preludes and its own file, and names only preludes.
    let dir = |name: &str| {
        let mut files = Vec::new();
        wgsl_files(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
            &mut files,
        );
        files
            .into_iter()
            .find(|f| f.file_stem().unwrap() == name)
            .unwrap_or_else(|| panic!("{name}.wgsl not under src/"))
    };
    for s in SHADERS {
        let mut want = String::new();
        for prelude in s.preludes {
            assert!(
                PRELUDES.contains(prelude),
                "{}: {prelude} is not a prelude",
                s.name
            );
            want += &std::fs::read_to_string(dir(prelude)).unwrap();
            want += "\n";
        }
        want += &std::fs::read_to_string(dir(s.name)).unwrap();
        assert_eq!(s.source, want, "{}: source", s.name);
    }
}

#[test]
fn entry_points_match_launchers() {
    let want: &[(&str, &[&str])] = &[
        (
            "conv2d",
            &[
                "conv2d_forward",
                "conv2d_forward_vec4",
                "conv2d_backward_input",
                "conv2d_backward_input_vec4",
                "conv2d_backward_weight",
                "conv2d_backward_weight_vec4",
                "conv2d_backward_weight_c4",
                "conv2d_backward_weight_reduce",
                "conv2d_backward_weight_reduce_vec4",
            ],
        ),
        (
            "conv2d_sg_forward",
            &[
                "conv2d_forward_sg",
                "conv2d_forward_sg_c3",
                "conv2d_forward_sg_c4",
                "conv2d_forward_sg_c4_o16",
            ],
        ),
        (
            "conv2d_sg_backward_input",
            &["conv2d_backward_input_sg", "conv2d_backward_input_sg_c16"],
        ),
        (
            "conv2d_sg_backward_weight",
            &[
                "conv2d_backward_weight_sg",
                "conv2d_backward_weight_sg_c4",
                "conv2d_backward_weight_sg_o16",
                "conv2d_backward_weight_sg_o16_c4",
            ],
        ),
        (
            "winograd_gemm_sg",
            &[
                "winograd_gemm_sg",
                "winograd_gemm_weight_sg",
                "winograd_gemm_out_sg",
                "winograd_gemm_out_sg_o16",
            ],
        ),
        ("subgroup_probe", &["subgroup_layout_probe"]),
        (
            "conv2d_wg",
            &[
                "conv2d_forward_wg",
                "conv2d_forward_wg_vec4",
                "conv2d_backward_input_wg",
                "conv2d_backward_input_wg_vec4",
                "conv2d_backward_weight_wg",
                "conv2d_backward_weight_wg_vec4",
            ],
        ),
        (
            "avgpool",
            &[
                "avgpool_forward",
                "avgpool_backward",
                "avgpool_backward_relu",
                "avgpool_backward_relu_k2",
                "avgpool_backward_relu_k2_mask",
                "avgpool_backward_disjoint",
                "avgpool_backward_disjoint_relu",
            ],
        ),
        (
            "dense",
            &[
                "dense_forward",
                "dense_forward_vec4",
                "dense_backward_input",
                "dense_backward_input_vec4",
                "dense_backward_weight",
                "dense_backward_weight_vec4",
                "dense_backward_bias",
            ],
        ),
        (
            "relu",
            &[
                "relu_forward",
                "relu_backward",
                "relu_forward_vec4",
                "relu_backward_vec4",
            ],
        ),
        ("gelu", &["gelu_forward", "gelu_backward"]),
        ("scale", &["scale_forward", "scale_backward"]),
        ("maxpool", &["maxpool_forward", "maxpool_backward"]),
        ("dropout", &["dropout_forward", "dropout_backward"]),
        (
            "softmax_ce",
            &[
                "softmax_ce_forward",
                "softmax_ce_backward",
                "softmax_ce_reduce",
            ],
        ),
        (
            "adam",
            &[
                "adam_update",
                "adam_update_vec4",
                "sgd_update",
                "sgd_update_vec4",
            ],
        ),
        ("lookahead", &["lookahead_sync"]),
        ("clip", &["clip_partial", "clip_finalize", "clip_scale"]),
        ("augment", &["augment_batch"]),
        (
            "batchnorm",
            &[
                "batchnorm_stats",
                "batchnorm_stats_vec4",
                "batchnorm_stats_finalize",
                "batchnorm_forward",
                "batchnorm_forward_vec4",
                "batchnorm_forward_eval",
                "batchnorm_forward_eval_vec4",
                "batchnorm_forward_add",
                "batchnorm_forward_add_vec4",
                "batchnorm_forward_eval_add",
                "batchnorm_forward_eval_add_vec4",
                "batchnorm_backward_stats",
                "batchnorm_backward_stats_vec4",
                "batchnorm_backward_finalize",
                "batchnorm_backward_input",
                "batchnorm_backward_input_vec4",
            ],
        ),
        (
            "winograd",
            &[
                "winograd_weight",
                "winograd_weight_t",
                "winograd_weight_flip_t",
                "winograd_adjoint",
                "winograd_gather",
                "winograd_gather_pool",
                "winograd_input",
                "winograd_output",
                "winograd_dout",
                "winograd_dout_pool",
                "winograd_weight_grad",
            ],
        ),
        (
            "add",
            &[
                "add_forward",
                "add_forward_vec4",
                "add_relu_backward",
                "add_relu_backward_vec4",
            ],
        ),
    ];
    for (shader, entries) in want {
        let src = wgpu_cnn::gpu::shaders::source(shader).unwrap();
        let (module, _) = parse(shader, src);
        let mut have: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        have.sort();
        let mut want: Vec<&str> = entries.to_vec();
        want.sort();
        assert_eq!(have, want, "entry points of {shader}.wgsl");
        // The launchers name a subgroup entry point's shader by `sg_shader`, and the dispatch
        // binds the tile queue to exactly these shaders' entry points.
        let sg = shader.starts_with("conv2d_sg") || *shader == "winograd_gemm_sg";
        assert_eq!(
            wgpu_cnn::gpu::shaders::binds_tile_queue(shader),
            sg,
            "{shader}"
        );
        if sg {
            for entry in entries.iter() {
                assert_eq!(wgpu_cnn::ops::conv2d::sg_shader(entry), *shader, "{entry}");
            }
        }
    }
}

#[test]
fn params_structs_match_their_wgsl_twins() {
    let sizes: &[(&str, usize)] = &[
        ("conv2d", std::mem::size_of::<Conv2dParams>()),
        ("conv2d_sg_forward", std::mem::size_of::<Conv2dParams>()),
        (
            "conv2d_sg_backward_input",
            std::mem::size_of::<Conv2dParams>(),
        ),
        (
            "conv2d_sg_backward_weight",
            std::mem::size_of::<Conv2dParams>(),
        ),
        ("winograd_gemm_sg", std::mem::size_of::<Conv2dParams>()),
        ("winograd", std::mem::size_of::<Conv2dParams>()),
        ("conv2d_wg", std::mem::size_of::<Conv2dParams>()),
        ("avgpool", std::mem::size_of::<AvgPoolParams>()),
        ("dense", std::mem::size_of::<DenseParams>()),
        ("relu", std::mem::size_of::<ElementwiseParams>()),
        ("gelu", std::mem::size_of::<GeluParams>()),
        ("scale", std::mem::size_of::<ScaleParams>()),
        ("maxpool", std::mem::size_of::<MaxPoolParams>()),
        ("dropout", std::mem::size_of::<DropoutParams>()),
        ("softmax_ce", std::mem::size_of::<SoftmaxCeParams>()),
        ("adam", std::mem::size_of::<AdamParams>()),
        ("lookahead", std::mem::size_of::<LookaheadParams>()),
        ("clip", std::mem::size_of::<ClipParams>()),
        ("augment", std::mem::size_of::<AugmentParams>()),
        ("batchnorm", std::mem::size_of::<BatchNormParams>()),
        ("add", std::mem::size_of::<AddParams>()),
    ];
    for &(shader, rust_size) in sizes {
        let src = wgpu_cnn::gpu::shaders::source(shader).unwrap();
        let (module, _) = parse(shader, src);
        let (_, var) = module
            .global_variables
            .iter()
            .find(|(_, v)| v.space == naga::AddressSpace::Uniform)
            .unwrap_or_else(|| panic!("{shader}.wgsl has no uniform"));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let layout = layouter[var.ty];
        assert_eq!(
            layout.size as usize, rust_size,
            "{shader}: WGSL params size vs Rust struct"
        );
        assert_eq!(
            rust_size % 16,
            0,
            "{shader}: uniform size must be a multiple of 16"
        );
        // The fields are 4-byte scalars, then optionally arrays of vec4 (the optimizer's group
        // table): packed without gaps, so Rust's repr(C) offsets equal WGSL's.
        let naga::TypeInner::Struct { members, .. } = &module.types[var.ty].inner else {
            panic!("{shader}: params is not a struct")
        };
        let mut at = 0;
        for m in members {
            assert_eq!(
                m.offset as usize, at,
                "{shader}: member {:?} offset",
                m.name
            );
            at += layouter[m.ty].size as usize;
        }
        assert_eq!(at, rust_size, "{shader}: fields fill the struct");
    }
}

/// WebGPU's default (and what browsers and Metal enforce): at most 8 storage buffers per shader
/// stage. Counted per entry point over the globals its function (and the functions it calls)
/// actually use.
#[test]
fn every_entry_point_binds_at_most_8_storage_buffers() {
    for s in SHADERS {
        let (module, info) = parse(s.name, s.source);
        for (i, ep) in module.entry_points.iter().enumerate() {
            let used = info.get_entry_point(i);
            let storage = module
                .global_variables
                .iter()
                .filter(|(h, g)| {
                    matches!(g.space, naga::AddressSpace::Storage { .. }) && !used[*h].is_empty()
                })
                .count();
            assert!(
                storage <= 8,
                "{}.wgsl {}: {storage} storage buffers (WebGPU allows 8 per stage)",
                s.name,
                ep.name
            );
        }
    }
}
