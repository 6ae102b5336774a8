// add.wgsl — element-wise sum of two tensors of `count` values (any layout): residual
// connections, and summing the two gradients that reach a tensor read by two layers.
//   add_forward       y = a + b, then max(y, 0) when p.relu                     (=)
//   add_forward_vec4  the same, four values per invocation (count % 4 == 0)      (=)
//   add_relu_backward[_vec4]  y = (a + b)·[out > 0]: the two gradients of a tensor read twice,
//                     summed and passed through the backward of the ReLU that produced it
//                     (out: that ReLU's output) in one pass — add_forward then relu_backward's
//                     roundings (=)
// Nothing is kept for backward: the gradient of a sum is dout to both inputs (masked by
// y > 0 with the fused ReLU, as relu_backward does). y must not alias a or b (WebGPU forbids a
// buffer bound read-only and read-write in one dispatch). One element (or vec4) per invocation,
// 64 per workgroup: memory-bound.

struct AddParams {
    count: u32, relu: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: AddParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> out: array<f32>;
@group(0) @binding(8) var<storage, read> out4: array<vec4<f32>>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    var v = a[i] + b[i];
    if (p.relu != 0u) { v = max(v, 0.0); }
    y[i] = v;
}

@compute @workgroup_size(64)
fn add_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count / 4u) { return; }
    var v = a4[i] + b4[i];
    if (p.relu != 0u) { v = max(v, vec4<f32>(0.0)); }
    y4[i] = v;
}

@compute @workgroup_size(64)
fn add_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    y[i] = select(0.0, a[i] + b[i], out[i] > 0.0);
}

@compute @workgroup_size(64)
fn add_relu_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count / 4u) { return; }
    y4[i] = select(vec4<f32>(0.0), a4[i] + b4[i], out4[i] > vec4<f32>(0.0));
}
