// dropout.wgsl — inverted dropout (Flax's nn.Dropout) over `count` values, element-wise:
//   dropout_forward   training (p.train = 1): output = input · keep(i) / (1 − rate)          (=)
//                     evaluation (p.train = 0): output = input
//   dropout_backward  dinput = dout · keep(i) / (1 − rate)                                   (=)
// keep(i) = draw(i) ≥ rate, draw(i) a uniform in [0, 1) from a counter-based hash of (seed,
// layer, step, i): no state and no mask buffer — the backward draws the same mask, and the CPU
// twin (`cpu.rs`) draws it bit for bit. Each train step writes its step number into the
// uniform. Memory-bound: invocation j computes elements j, j + S, j + 2S, … (S =
// ceil(count / PER)): PER times fewer workgroups than elements / 64, which is what llvmpipe
// pays for (as gelu.wgsl; docs/notes/elementwise-kernels.md); neighbours still touch
// neighbouring words.

struct DropoutParams {
    count: u32, rate: f32, scale: f32, seed: u32,
    step: u32, layer: u32, train: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: DropoutParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dinput: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Elements per invocation (gpu.rs launches `stride()` invocations).
const PER: u32 = 8u;

fn stride() -> u32 {
    return (p.count + PER - 1u) / PER;
}

// murmur3's 32-bit finaliser: a bijection with full avalanche.
fn fmix(x_in: u32) -> u32 {
    var x = x_in;
    x ^= x >> 16u;
    x *= 0x85ebca6bu;
    x ^= x >> 13u;
    x *= 0xc2b2ae35u;
    x ^= x >> 16u;
    return x;
}

// The scale of element i: 1/(1 − rate) if kept, else 0.
fn mask(i: u32) -> f32 {
    let key = fmix(p.seed ^ fmix(p.layer ^ fmix(p.step ^ 0x9e3779b9u)));
    let draw = f32(fmix(i ^ key) >> 8u) * (1.0 / 16777216.0);
    return select(0.0, p.scale, draw >= p.rate);
}

@compute @workgroup_size(64)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let s = stride();
    if (j >= s) { return; }
    for (var i = j; i < p.count; i += s) {
        output[i] = select(input[i], input[i] * mask(i), p.train != 0u);
    }
}

@compute @workgroup_size(64)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let s = stride();
    if (j >= s) { return; }
    for (var i = j; i < p.count; i += s) {
        dinput[i] = dout[i] * mask(i);
    }
}
