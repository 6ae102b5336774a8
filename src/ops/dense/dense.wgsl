// dense.wgsl — fully connected layer y = x · w + b (b only when p.bias = 1; without a bias the
// launcher does not run dense_backward_bias).
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
// Variants for N % 4 == 0 (chosen by the launcher; 4×8 tiles, vec4 loads through the w4/dy4
// views of the same buffers): dense_forward_vec4, dense_backward_input_vec4,
// dense_backward_weight_vec4.
// Each GEMM invocation owns a 4×4 register tile and loops over the whole reduction in a fixed
// order, so results are deterministic. Loads past the end are clamped, stores masked. 64
// invocations per workgroup: a multiple of every SIMD/warp width, and no workgroup memory is
// used (CPU-type adapters run faster from registers and the cache than from shared tiles).

struct DenseParams {
    m: u32, k: u32, n: u32, relu: u32,
    bias: u32, _p0: u32, _p1: u32, _p2: u32,
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
@group(0) @binding(10) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> dy4: array<vec4<f32>>;

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
    var acc0 = select(vec4<f32>(0.0), vec4<f32>(b[cols.x], b[cols.y], b[cols.z], b[cols.w]),
                      p.bias != 0u);
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
fn dense_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let ntiles = (p.n + 7u) / 8u;
    let idx = flat_id(gid, nwg);
    if (idx >= ntiles * ((p.m + 3u) / 4u)) { return; }
    let n0 = (idx % ntiles) * 8u;
    let m0 = (idx / ntiles) * 4u;
    let rows = clamp4(m0, p.m - 1u) * p.k;
    let n4 = p.n / 4u;
    let qa = n0 / 4u;
    let qb = min(qa + 1u, n4 - 1u);
    let hb = p.bias != 0u;
    let z = vec4<f32>(0.0);
    let ba = select(z, vec4<f32>(b[4u * qa], b[4u * qa + 1u], b[4u * qa + 2u], b[4u * qa + 3u]), hb);
    let bb = select(z, vec4<f32>(b[4u * qb], b[4u * qb + 1u], b[4u * qb + 2u], b[4u * qb + 3u]), hb);
    var a0 = ba;
    var a1 = ba;
    var a2 = ba;
    var a3 = ba;
    var b0 = bb;
    var b1 = bb;
    var b2 = bb;
    var b3 = bb;
    var wrow = 0u;
    for (var kk = 0u; kk < p.k; kk++) {
        let wa = w4[wrow + qa];
        let wb = w4[wrow + qb];
        wrow += n4;
        let x0 = x[rows.x + kk];
        let x1 = x[rows.y + kk];
        let x2 = x[rows.z + kk];
        let x3 = x[rows.w + kk];
        a0 += x0 * wa;
        a1 += x1 * wa;
        a2 += x2 * wa;
        a3 += x3 * wa;
        b0 += x0 * wb;
        b1 += x1 * wb;
        b2 += x2 * wb;
        b3 += x3 * wb;
    }
    let acc = array<vec4<f32>, 8>(a0, a1, a2, a3, b0, b1, b2, b3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 8u; j++) {
            if (m0 + i < p.m && n0 + j < p.n) {
                let v = acc[i + 4u * (j / 4u)][j % 4u];
                y[(m0 + i) * p.n + n0 + j] = select(v, max(v, 0.0), p.relu != 0u);
            }
        }
    }
}

@compute @workgroup_size(64)
fn dense_backward_input_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>) {
    let ktiles = (p.k + 7u) / 8u;
    let idx = flat_id(gid, nwg);
    if (idx >= ktiles * ((p.m + 3u) / 4u)) { return; }
    let k0 = (idx % ktiles) * 8u;
    let m0 = (idx / ktiles) * 4u;
    let n4 = p.n / 4u;
    let rows = clamp4(m0, p.m - 1u) * n4;
    let wa = clamp4(k0, p.k - 1u) * n4;
    let wb = clamp4(k0 + 4u, p.k - 1u) * n4;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var q = 0u; q < n4; q++) {
        let d0 = dy4[rows.x + q];
        let d1 = dy4[rows.y + q];
        let d2 = dy4[rows.z + q];
        let d3 = dy4[rows.w + q];
        let w0 = w4[wa.x + q];
        let w1 = w4[wa.y + q];
        let w2 = w4[wa.z + q];
        let w3 = w4[wa.w + q];
        a0 += vec4<f32>(dot(d0, w0), dot(d0, w1), dot(d0, w2), dot(d0, w3));
        a1 += vec4<f32>(dot(d1, w0), dot(d1, w1), dot(d1, w2), dot(d1, w3));
        a2 += vec4<f32>(dot(d2, w0), dot(d2, w1), dot(d2, w2), dot(d2, w3));
        a3 += vec4<f32>(dot(d3, w0), dot(d3, w1), dot(d3, w2), dot(d3, w3));
        let w4_ = w4[wb.x + q];
        let w5 = w4[wb.y + q];
        let w6 = w4[wb.z + q];
        let w7 = w4[wb.w + q];
        b0 += vec4<f32>(dot(d0, w4_), dot(d0, w5), dot(d0, w6), dot(d0, w7));
        b1 += vec4<f32>(dot(d1, w4_), dot(d1, w5), dot(d1, w6), dot(d1, w7));
        b2 += vec4<f32>(dot(d2, w4_), dot(d2, w5), dot(d2, w6), dot(d2, w7));
        b3 += vec4<f32>(dot(d3, w4_), dot(d3, w5), dot(d3, w6), dot(d3, w7));
    }
    let acc = array<vec4<f32>, 8>(a0, a1, a2, a3, b0, b1, b2, b3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 8u; j++) {
            if (m0 + i < p.m && k0 + j < p.k) { dx[(m0 + i) * p.k + k0 + j] = acc[i + 4u * (j / 4u)][j % 4u]; }
        }
    }
}

@compute @workgroup_size(64)
fn dense_backward_weight_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
    let ntiles = (p.n + 7u) / 8u;
    let idx = flat_id(gid, nwg);
    if (idx >= ntiles * ((p.k + 3u) / 4u)) { return; }
    let n0 = (idx % ntiles) * 8u;
    let k0 = (idx / ntiles) * 4u;
    let ks = clamp4(k0, p.k - 1u);
    let n4 = p.n / 4u;
    let qa = n0 / 4u;
    let qb = min(qa + 1u, n4 - 1u);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var mm = 0u; mm < p.m; mm++) {
        let xb = mm * p.k;
        let da = dy4[mm * n4 + qa];
        let dbv = dy4[mm * n4 + qb];
        let x0 = x[xb + ks.x];
        let x1 = x[xb + ks.y];
        let x2 = x[xb + ks.z];
        let x3 = x[xb + ks.w];
        a0 += x0 * da;
        a1 += x1 * da;
        a2 += x2 * da;
        a3 += x3 * da;
        b0 += x0 * dbv;
        b1 += x1 * dbv;
        b2 += x2 * dbv;
        b3 += x3 * dbv;
    }
    let acc = array<vec4<f32>, 8>(a0, a1, a2, a3, b0, b1, b2, b3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 8u; j++) {
            if (k0 + i < p.k && n0 + j < p.n) { dw[(k0 + i) * p.n + n0 + j] = acc[i + 4u * (j / 4u)][j % 4u]; }
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
