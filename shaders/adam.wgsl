// adam.wgsl — one optimizer step over every parameter of the model in one dispatch: params,
// grads and the state slots (mu, nu) are flat buffers with the same layout. optax semantics:
//   adam_update  (optax.adam; with wd > 0 optax.adamw = chain(scale_by_adam,
//                add_decayed_weights(wd, mask), scale_by_learning_rate)):
//     mu    = b1·mu + (1-b1)·g
//     nu    = b2·nu + (1-b2)·g²
//     param -= lr · ((mu / bc1) / (sqrt(nu / bc2) + eps) + wd·mask·param),
//              bc1 = 1 - b1^t, bc2 = 1 - b2^t
//   sgd_update   (chain(add_decayed_weights(wd, mask), optax.sgd(lr, momentum, nesterov))):
//     g'    = g + wd·mask·param
//     trace = g' + momentum·trace                      (in the mu slot; nu unused)
//     param -= lr · (nesterov ? g' + momentum·trace : trace)
// mask = decay_mask[i] when p.masked = 1 (0 or 1 per element: e.g. kernels only), else 1.
// param and the state are updated in place; grads are read. One element per invocation.

struct AdamParams {
    count: u32, lr: f32, b1: f32, b2: f32,
    eps: f32, bc1: f32, bc2: f32, wd: f32,
    masked: u32, momentum: f32, nesterov: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: AdamParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> mu: array<f32>;
@group(0) @binding(4) var<storage, read_write> nu: array<f32>;
@group(0) @binding(5) var<storage, read> decay_mask: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The weight decay of element i.
fn decay(i: u32) -> f32 {
    if (p.masked != 0u) {
        return p.wd * decay_mask[i];
    }
    return p.wd;
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
    var u = (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
    if (p.wd != 0.0) {
        u += decay(i) * param[i];
    }
    param[i] -= p.lr * u;
}

@compute @workgroup_size(64)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    var g = grad[i];
    if (p.wd != 0.0) {
        g += decay(i) * param[i];
    }
    let t = g + p.momentum * mu[i];
    mu[i] = t;
    var u = t;
    if (p.nesterov != 0u) {
        u = g + p.momentum * t;
    }
    param[i] -= p.lr * u;
}
