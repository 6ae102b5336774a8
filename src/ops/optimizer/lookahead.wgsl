// lookahead.wgsl — the lookahead synchronisation (optax.lookahead; airbench94's LookaheadState)
// over `count` values of a flat buffer (the parameters, or the batch-norm running statistics):
//   lookahead_sync   slow = lerp(slow, fast, w);  fast = slow
// lerp as PyTorch's (airbench's `ema.lerp_(net, 1 - decay)`): `slow + w·(fast − slow)` for
// w < 0.5, `fast − (fast − slow)·(1 − w)` otherwise, so both ends are exact (w = 0 copies the
// slow weights back unchanged, w = 1 takes the fast ones). One element per invocation.

struct LookaheadParams {
    count: u32, weight: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: LookaheadParams;
@group(0) @binding(1) var<storage, read_write> slow: array<f32>;
@group(0) @binding(2) var<storage, read_write> fast: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn lookahead_sync(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    let s = slow[i];
    let f = fast[i];
    var v: f32;
    if (p.weight < 0.5) {
        v = s + p.weight * (f - s);
    } else {
        v = f - (f - s) * (1.0 - p.weight);
    }
    slow[i] = v;
    fast[i] = v;
}
