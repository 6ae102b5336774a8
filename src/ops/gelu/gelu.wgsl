// gelu.wgsl — GELU, tanh approximation (Flax's nn.gelu default, approximate=True), element-wise
// over `count` values (any layout):
//   gelu_forward   output = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)          (=)
//   gelu_backward  dinput = dout · (0.5·(1 + tanh u) + 0.5·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²))  (=)
// Backward reads the forward *input* (GELU is not invertible from its output). Memory-bound:
// invocation j computes elements j, j + S, j + 2S, … (S = ceil(count / PER), see `stride`), so
// a dispatch has PER times fewer workgroups than elements / 64 (what llvmpipe pays per workgroup
// is then spread over PER elements; docs/notes/elementwise-kernels.md) and neighbouring
// invocations still touch neighbouring words.

struct ElementwiseParams {
    count: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dinput: array<f32>;

const WG: u32 = 64u;
const K0: f32 = 0.7978845608028654; // √(2/π)
const K1: f32 = 0.044715;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Elements per invocation (gpu.rs launches `stride()` invocations).
const PER: u32 = 8u;

fn stride() -> u32 {
    return (p.count + PER - 1u) / PER;
}

// With s = σ(2u) = 1 / (1 + exp(−2u)): 1 + tanh u = 2s and 1 − tanh u = 2(1 − s), where
// 1 − s = 1 / (1 + exp(2u)) is computed on its own: no cancellation in the tails (x < −3), where
// 1 + tanh u is tiny and the derivative is a difference of small terms. u is clamped to ±40
// (exp(80) is finite in f32; σ is 0 or 1 to f32 precision well before).
fn sig(u: f32) -> vec2<f32> {
    let v = clamp(2.0 * u, -80.0, 80.0);
    return vec2<f32>(1.0 / (1.0 + exp(-v)), 1.0 / (1.0 + exp(v)));
}

@compute @workgroup_size(64)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let s = stride();
    if (j >= s) { return; }
    for (var i = j; i < p.count; i += s) {
        let x = input[i];
        // 0.5·x·(1 + tanh u) = x·s
        output[i] = x * sig(K0 * (x + K1 * x * x * x)).x;
    }
}

@compute @workgroup_size(64)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let st = stride();
    if (j >= st) { return; }
    for (var i = j; i < p.count; i += st) {
        let x = input[i];
        let s = sig(K0 * (x + K1 * x * x * x));
        let du = K0 * (1.0 + 3.0 * K1 * x * x);
        // 0.5·(1 + t) + 0.5·x·(1 − t²)·du = s + 2·x·s·(1 − s)·du
        dinput[i] = dout[i] * (s.x + 2.0 * x * s.x * s.y * du);
    }
}
