//! Every shader entry point translates, with naga (the translator inside wgpu), to what each
//! backend needs: SPIR-V (Vulkan), MSL 2.1 (Metal), HLSL shader model 6.0 (DX12 with DXC) and
//! GLSL ES 3.1 / GLSL 4.30 compute (wgpu's GL backend) — so a Metal, DX12 or GL user never meets
//! a shader that does not translate. (The subgroup kernels of `conv2d_sg_*.wgsl` translate to GLSL
//! too, through GL_KHR_shader_subgroup; the planner picks them only where the device reports
//! 8-wide subgroups.)

use wgpu_cnn::gpu::shaders::SHADERS;

fn parse(name: &str, src: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(src)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(src)));
    (module, info)
}

#[test]
fn every_entry_point_translates_to_every_backend() {
    let mut translated = 0;
    for s in SHADERS {
        let (module, info) = parse(s.name, s.source);
        for ep in &module.entry_points {
            let what = format!("{}.wgsl {}", s.name, ep.name);
            let stage = ep.stage;
            // SPIR-V (Vulkan).
            naga::back::spv::write_vec(
                &module,
                &info,
                &naga::back::spv::Options::default(),
                Some(&naga::back::spv::PipelineOptions {
                    shader_stage: stage,
                    entry_point: ep.name.clone(),
                }),
            )
            .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e}"));
            // MSL (Metal); subgroup operations need MSL 2.1.
            let msl = naga::back::msl::Options {
                lang_version: (2, 1),
                ..Default::default()
            };
            naga::back::msl::write_string(
                &module,
                &info,
                &msl,
                &naga::back::msl::PipelineOptions {
                    entry_point: Some((stage, ep.name.clone())),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));
            // HLSL shader model 6.0 (DX12 with DXC; wave intrinsics for the subgroup kernels).
            let hlsl = naga::back::hlsl::Options {
                shader_model: naga::back::hlsl::ShaderModel::V6_0,
                ..Default::default()
            };
            let pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some((stage, ep.name.clone())),
            };
            let mut out = String::new();
            naga::back::hlsl::Writer::new(&mut out, &hlsl, &pipeline)
                .write(&module, &info, None)
                .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));
            // GLSL (wgpu's GL backend): ES 3.1 and desktop 4.30 compute.
            for version in [
                naga::back::glsl::Version::new_gles(310),
                naga::back::glsl::Version::Desktop(430),
            ] {
                let options = naga::back::glsl::Options {
                    version,
                    ..Default::default()
                };
                let pipeline = naga::back::glsl::PipelineOptions {
                    shader_stage: stage,
                    entry_point: ep.name.clone(),
                    multiview: None,
                };
                let mut out = String::new();
                naga::back::glsl::Writer::new(
                    &mut out,
                    &module,
                    &info,
                    &options,
                    &pipeline,
                    naga::proc::BoundsCheckPolicies::default(),
                )
                .and_then(|mut w| w.write())
                .unwrap_or_else(|e| panic!("{what}: GLSL {version:?}: {e}"));
            }
            translated += 1;
        }
    }
    assert!(translated >= 58, "only {translated} entry points");
}
