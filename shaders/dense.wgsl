// dense.wgsl — fully connected layer y = x · w + b.
//
// Layouts: x/dx [M,K] (M = batch, K = inputs), w/dw [K,N] (Flax Dense.kernel), b/db [N],
// y/dy [M,N]; all row-major.
//
// Entry points (all write with =):
//   dense_forward          y  = x · w + b         tile over (m, n), loop k
//                          (then max(·, 0) when p.relu = 1: the layer's ReLU, fused)
//   dense_backward_input   dx = dy · wᵀ           tile over (m, k), loop n
//   dense_backward_weight  dw = xᵀ · dy           tile over (k, n), loop m (batch: short)
//   dense_backward_bias    db = Σ_m dy            one column per invocation
// Each GEMM invocation owns a 4×4 register tile and loops over the whole reduction in a fixed
// order, so results are deterministic. Loads past the end are clamped, stores masked.

struct DenseParams {
    m: u32, k: u32, n: u32, relu: u32,
}

@group(0) @binding(0) var<uniform> p: DenseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn clamp4(base: u32, last: u32) -> vec4<u32> {
    return min(vec4<u32>(base, base + 1u, base + 2u, base + 3u), vec4<u32>(last));
}

@compute @workgroup_size(64)
fn dense_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let ntiles = (p.n + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= ntiles * ((p.m + 3u) / 4u)) { return; }
    let n0 = (idx % ntiles) * 4u;
    let m0 = (idx / ntiles) * 4u;
    let rows = clamp4(m0, p.m - 1u) * p.k;
    let cols = clamp4(n0, p.n - 1u);
    var acc0 = vec4<f32>(b[cols.x], b[cols.y], b[cols.z], b[cols.w]);
    var acc1 = acc0;
    var acc2 = acc0;
    var acc3 = acc0;
    for (var kk = 0u; kk < p.k; kk++) {
        let wb = kk * p.n;
        let wv = vec4<f32>(w[wb + cols.x], w[wb + cols.y], w[wb + cols.z], w[wb + cols.w]);
        acc0 += x[rows.x + kk] * wv;
        acc1 += x[rows.y + kk] * wv;
        acc2 += x[rows.z + kk] * wv;
        acc3 += x[rows.w + kk] * wv;
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (m0 + i < p.m && n0 + j < p.n) {
                let v = acc[i][j];
                y[(m0 + i) * p.n + n0 + j] = select(v, max(v, 0.0), p.relu != 0u);
            }
        }
    }
}

@compute @workgroup_size(64)
fn dense_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let ktiles = (p.k + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= ktiles * ((p.m + 3u) / 4u)) { return; }
    let k0 = (idx % ktiles) * 4u;
    let m0 = (idx / ktiles) * 4u;
    let rows = clamp4(m0, p.m - 1u) * p.n;
    let wrows = clamp4(k0, p.k - 1u) * p.n;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var nn = 0u; nn < p.n; nn++) {
        let wv = vec4<f32>(w[wrows.x + nn], w[wrows.y + nn], w[wrows.z + nn], w[wrows.w + nn]);
        acc0 += dy[rows.x + nn] * wv;
        acc1 += dy[rows.y + nn] * wv;
        acc2 += dy[rows.z + nn] * wv;
        acc3 += dy[rows.w + nn] * wv;
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (m0 + i < p.m && k0 + j < p.k) { dx[(m0 + i) * p.k + k0 + j] = acc[i][j]; }
        }
    }
}

@compute @workgroup_size(64)
fn dense_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let ntiles = (p.n + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= ntiles * ((p.k + 3u) / 4u)) { return; }
    let n0 = (idx % ntiles) * 4u;
    let k0 = (idx / ntiles) * 4u;
    let ks = clamp4(k0, p.k - 1u);
    let cols = clamp4(n0, p.n - 1u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var mm = 0u; mm < p.m; mm++) {
        let xb = mm * p.k;
        let yb = mm * p.n;
        let dv = vec4<f32>(dy[yb + cols.x], dy[yb + cols.y], dy[yb + cols.z], dy[yb + cols.w]);
        acc0 += x[xb + ks.x] * dv;
        acc1 += x[xb + ks.y] * dv;
        acc2 += x[xb + ks.z] * dv;
        acc3 += x[xb + ks.w] * dv;
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (k0 + i < p.k && n0 + j < p.n) { dw[(k0 + i) * p.n + n0 + j] = acc[i][j]; }
        }
    }
}

@compute @workgroup_size(64)
fn dense_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    if (j >= p.n) { return; }
    var sum = 0.0;
    for (var mm = 0u; mm < p.m; mm++) {
        sum += dy[mm * p.n + j];
    }
    db[j] = sum;
}
