// adam.wgsl — one Adam step (optax.adam defaults: b1 0.9, b2 0.999, eps 1e-8, eps_root 0) over
// every parameter of the model in one dispatch: params, grads, mu and nu are flat buffers with
// the same layout.
//   mu    = b1·mu + (1-b1)·g
//   nu    = b2·nu + (1-b2)·g²
//   param -= lr · (mu / bc1) / (sqrt(nu / bc2) + eps),   bc1 = 1 - b1^t, bc2 = 1 - b2^t
// param, mu and nu are updated in place (+=); grads are read. One element per invocation.

struct AdamParams {
    count: u32, lr: f32, b1: f32, b2: f32,
    eps: f32, bc1: f32, bc2: f32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: AdamParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> mu: array<f32>;
@group(0) @binding(4) var<storage, read_write> nu: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    let g = grad[i];
    let m = p.b1 * mu[i] + (1.0 - p.b1) * g;
    let v = p.b2 * nu[i] + (1.0 - p.b2) * g * g;
    mu[i] = m;
    nu[i] = v;
    param[i] -= p.lr * (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
}
