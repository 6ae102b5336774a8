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
// adam_update_vec4 / sgd_update_vec4: the same, four elements per invocation (lavapipe loads
// and stores element-wise kernels' vec4s for about the cost of one scalar each;
// docs/notes/elementwise-kernels.md), over ceil(count / 4) vec4s. The launcher picks them
// only when every buffer holds that many whole vec4s, the elements past `count` being zero
// pads (the model allocates its flat buffers so): a zero pad stays zero (mu = nu = 0,
// update 0 / (0 + eps) = 0, decay 0 · 0).

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

@group(0) @binding(11) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> mu4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> nu4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> decay_mask4: array<vec4<f32>>;

fn decay4(i: u32) -> vec4<f32> {
    if (p.masked != 0u) {
        return p.wd * decay_mask4[i];
    }
    return vec4<f32>(p.wd);
}

@compute @workgroup_size(64)
fn adam_update_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= (p.count + 3u) / 4u) { return; }
    let g = grad4[i];
    let m = p.b1 * mu4[i] + (1.0 - p.b1) * g;
    let v = p.b2 * nu4[i] + (1.0 - p.b2) * g * g;
    mu4[i] = m;
    nu4[i] = v;
    var u = (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
    if (p.wd != 0.0) {
        u += decay4(i) * param4[i];
    }
    param4[i] -= p.lr * u;
}

@compute @workgroup_size(64)
fn sgd_update_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= (p.count + 3u) / 4u) { return; }
    var g = grad4[i];
    if (p.wd != 0.0) {
        g += decay4(i) * param4[i];
    }
    let t = g + p.momentum * mu4[i];
    mu4[i] = t;
    var u = t;
    if (p.nesterov != 0u) {
        u = g + p.momentum * t;
    }
    param4[i] -= p.lr * u;
}
