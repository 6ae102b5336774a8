// scale.wgsl — multiplication by a constant, element-wise over `count` values (any layout):
//   scale_forward   output = factor · input   (=)
//   scale_backward  dinput = factor · dout    (=)
// One f32 product per element, so the f32 result is the correctly rounded product, as XLA's.
// Memory-bound; one element per invocation, 64 per workgroup (a dispatch folds into y past
// 65,535 workgroups, `flat_id`).

struct ScaleParams {
    count: u32, factor: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ScaleParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dinput: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn scale_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    output[i] = p.factor * input[i];
}

@compute @workgroup_size(64)
fn scale_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    dinput[i] = p.factor * dout[i];
}
