// relu.wgsl — rectified linear unit, element-wise over `count` values (any layout).
//   relu_forward   output = max(input, 0)                                   (=)
//   relu_backward  dinput = dout where output > 0, else 0                   (=)
//   relu_forward_vec4, relu_backward_vec4: the same, four values per invocation (count % 4 == 0;
//                  lavapipe loads a vec4 for about the cost of a scalar, as in add_forward_vec4;
//                  docs/notes/elementwise-kernels.md)
// Backward reads the forward *output*: output > 0 exactly where input > 0, and the output is
// what the next layer already keeps, so no extra buffer is needed. The gradient at 0 is 0, as
// in JAX. One element per invocation: memory-bound.

struct ElementwiseParams {
    count: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dinput: array<f32>;
@group(0) @binding(5) var<storage, read> fwd_output: array<f32>;
// The vec4 views of the same tensors.
@group(0) @binding(11) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> output4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> dinput4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> fwd_output4: array<vec4<f32>>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    output[i] = max(input[i], 0.0);
}

@compute @workgroup_size(64)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    dinput[i] = select(0.0, dout[i], fwd_output[i] > 0.0);
}

@compute @workgroup_size(64)
fn relu_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count / 4u) { return; }
    output4[i] = max(input4[i], vec4<f32>(0.0));
}

@compute @workgroup_size(64)
fn relu_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count / 4u) { return; }
    dinput4[i] = select(vec4<f32>(0.0), dout4[i], fwd_output4[i] > vec4<f32>(0.0));
}
