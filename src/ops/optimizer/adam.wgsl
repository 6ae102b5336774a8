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
// With p.masked = 1 element i belongs to entry group[i] of p.groups, [lr multiplier L, decay
// multiplier D, frozen, 0] (parameter groups, and the decay mask as D = 0 or 1): the decay is
// wd·D, the step lr·L, and a frozen element is left as it is, state included (optax.set_to_zero;
// PyTorch skips a parameter without a gradient). With L = D = 1 the values are the ones
// without groups, bit for bit (x·1 = x). With p.masked = 0 the table is not read.
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
    groups: array<vec4<f32>, 16>,
}

@group(0) @binding(0) var<uniform> p: AdamParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> mu: array<f32>;
@group(0) @binding(4) var<storage, read_write> nu: array<f32>;
@group(0) @binding(5) var<storage, read> group: array<u32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The group-table entry of element i: [lr multiplier, decay multiplier, frozen, 0].
fn entry(i: u32) -> vec4<f32> {
    if (p.masked != 0u) {
        return p.groups[group[i]];
    }
    return vec4<f32>(1.0, 1.0, 0.0, 0.0);
}

@compute @workgroup_size(64)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    let e = entry(i);
    if (e.z != 0.0) { return; }
    let g = grad[i];
    let m = p.b1 * mu[i] + (1.0 - p.b1) * g;
    let v = p.b2 * nu[i] + (1.0 - p.b2) * g * g;
    mu[i] = m;
    nu[i] = v;
    var u = (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
    if (p.wd != 0.0) {
        u += (p.wd * e.y) * param[i];
    }
    param[i] -= (p.lr * e.x) * u;
}

@compute @workgroup_size(64)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    let e = entry(i);
    if (e.z != 0.0) { return; }
    var g = grad[i];
    if (p.wd != 0.0) {
        g += (p.wd * e.y) * param[i];
    }
    let t = g + p.momentum * mu[i];
    mu[i] = t;
    var u = t;
    if (p.nesterov != 0u) {
        u = g + p.momentum * t;
    }
    param[i] -= (p.lr * e.x) * u;
}

@group(0) @binding(11) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> mu4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> nu4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> group4: array<vec4<u32>>;

// The group-table entries of elements 4i … 4i+3, as [lr multipliers, decay multipliers,
// frozen (1) or not (0)].
struct Entries { lr: vec4<f32>, decay: vec4<f32>, frozen: vec4<bool> }

fn entries4(i: u32) -> Entries {
    if (p.masked != 0u) {
        let k = group4[i];
        let e0 = p.groups[k.x];
        let e1 = p.groups[k.y];
        let e2 = p.groups[k.z];
        let e3 = p.groups[k.w];
        return Entries(vec4<f32>(e0.x, e1.x, e2.x, e3.x), vec4<f32>(e0.y, e1.y, e2.y, e3.y),
                       vec4<f32>(e0.z, e1.z, e2.z, e3.z) != vec4<f32>(0.0));
    }
    return Entries(vec4<f32>(1.0), vec4<f32>(1.0), vec4<bool>(false));
}

@compute @workgroup_size(64)
fn adam_update_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= (p.count + 3u) / 4u) { return; }
    let e = entries4(i);
    let g = grad4[i];
    let m0 = mu4[i];
    let v0 = nu4[i];
    let x = param4[i];
    let m = p.b1 * m0 + (1.0 - p.b1) * g;
    let v = p.b2 * v0 + (1.0 - p.b2) * g * g;
    mu4[i] = select(m, m0, e.frozen);
    nu4[i] = select(v, v0, e.frozen);
    var u = (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
    if (p.wd != 0.0) {
        u += (p.wd * e.decay) * x;
    }
    param4[i] = select(x - (p.lr * e.lr) * u, x, e.frozen);
}

@compute @workgroup_size(64)
fn sgd_update_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= (p.count + 3u) / 4u) { return; }
    let e = entries4(i);
    let x = param4[i];
    let t0 = mu4[i];
    var g = grad4[i];
    if (p.wd != 0.0) {
        g += (p.wd * e.decay) * x;
    }
    let t = g + p.momentum * t0;
    mu4[i] = select(t, t0, e.frozen);
    var u = t;
    if (p.nesterov != 0u) {
        u = g + p.momentum * t;
    }
    param4[i] = select(x - (p.lr * e.lr) * u, x, e.frozen);
}
