// gelu.wgsl — GELU, element-wise over `count` values (any layout). `exact = 0`: the tanh
// approximation (Flax's nn.gelu default, approximate=True):
//   gelu_forward   output = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)          (=)
//   gelu_backward  dinput = dout · (0.5·(1 + tanh u) + 0.5·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²))  (=)
// `exact = 1` (nn.gelu(approximate=False)): output = x·Φ(x), dinput = dout·(Φ(x) + x·φ(x)), with
// Φ(x) = erfc(−x/√2)/2 from `erfc_pos` below, so neither tail cancels.
// Backward reads the forward *input* (GELU is not invertible from its output). Memory-bound:
// invocation j computes elements j, j + S, j + 2S, … (S = ceil(count / PER), see `stride`), so
// a dispatch has PER times fewer workgroups than elements / 64 (what llvmpipe pays per workgroup
// is then spread over PER elements; docs/notes/elementwise-kernels.md) and neighbouring
// invocations still touch neighbouring words.

struct GeluParams {
    count: u32, exact: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: GeluParams;
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

// erfc(z) for z ≥ 0 with a relative error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev
// fit, `erfcc`): t·exp(−z² + P(t)), t = 1/(1 + z/2). WGSL has no erf; this form keeps the
// relative accuracy in the far tail, where 1 − erf would lose everything.
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
}

// Φ(x) = erfc(−x/√2)/2: the small side computed directly, the other as 1 − it.
fn normal_cdf(x: f32) -> f32 {
    let q = 0.5 * erfc_pos(abs(x) * 0.7071067811865476);
    return select(1.0 - q, q, x < 0.0);
}

const INV_SQRT_2PI: f32 = 0.3989422804014327;

@compute @workgroup_size(64)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let s = stride();
    if (j >= s) { return; }
    if (p.exact == 1u) {
        for (var i = j; i < p.count; i += s) {
            let x = input[i];
            output[i] = x * normal_cdf(x);
        }
        return;
    }
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
    if (p.exact == 1u) {
        for (var i = j; i < p.count; i += st) {
            let x = input[i];
            // exp(−x²/2) underflows to 0 for |x| > ~13.2: x·φ(x) is then 0, as it should be.
            dinput[i] = dout[i] * (normal_cdf(x) + x * INV_SQRT_2PI * exp(-0.5 * x * x));
        }
        return;
    }
    for (var i = j; i < p.count; i += st) {
        let x = input[i];
        let s = sig(K0 * (x + K1 * x * x * x));
        let du = K0 * (1.0 + 3.0 * K1 * x * x);
        // 0.5·(1 + t) + 0.5·x·(1 − t²)·du = s + 2·x·s·(1 − s)·du
        dinput[i] = dout[i] * (s.x + 2.0 * x * s.x * s.y * du);
    }
}
