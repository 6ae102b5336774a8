// batchnorm.wgsl — batch normalisation with Flax `nn.BatchNorm` semantics over `rows` rows of `c`
// channels (NHWC flattened: rows = N·H·W; a flat [N, F] input is rows = N, c = F). M = rows.
//
// Training forward (three dispatches):
//   batchnorm_stats            per (chunk k, channel): chunk mean m_k and M2_k = Σ (x − m_k)²,
//                              two passes over the chunk (the second from cache)       (= partials)
//   batchnorm_stats_vec4       the same for 4 channels per invocation (c % 4 == 0): the same
//                              sums in the same order, a quarter of the load instructions (=)
//   batchnorm_stats_finalize   per channel: Chan's parallel combination of the chunks in chunk
//                              order → mean, biased var = M2 / M; saved = [mean | invstd]  (=),
//                              running = momentum·running + (1 − momentum)·batch stat  (in place)
//   batchnorm_forward[_vec4]   y = (x − mean)·(invstd·scale) + bias, then max(y, 0) if p.relu (=)
//   batchnorm_forward_add[_vec4]  a residual's add fused into the normalisation that produces the
//                              body's (or shortcut's) output: y = ((x − mean)·(invstd·scale) +
//                              bias) + res, then max(y, 0) if p.relu — the same roundings as
//                              batchnorm_forward then add_forward, one pass instead of two (=)
// Evaluation forward:
//   batchnorm_forward_eval[_vec4]  as above with running_mean and rsqrt(running_var + eps)   (=)
//   batchnorm_forward_eval_add[_vec4]  the same plus res (then the ReLU)                     (=)
// Backward (training statistics), g = dout·[y > 0] when p.relu (the forward's output before its
// ReLU, y = (x − mean)·(invstd·scale) + bias, recomputed with the forward's roundings: the same
// mask as reading the forward's output back, one tensor fewer to read), else dout;
// xhat = (x − mean)·invstd:
//   batchnorm_backward_stats   per (chunk, channel): Σ g and Σ g·(x − mean)           (= partials)
//   batchnorm_backward_stats_vec4  the same, 4 channels per invocation (c % 4 == 0)      (=)
//   batchnorm_backward_finalize per channel, chunks in order: dbias = Σ g, dscale = invstd·Σ g·(x − mean) (=)
//   batchnorm_backward_input[_vec4]  dx = scale·invstd·(g − dbias/M − xhat·dscale/M)   (=)
// Forward keeps `saved` (mean and invstd, 2·c floats) for backward. Partials: [first value of every (k, ch) | second],
// index k·c + ch. No float atomics: every sum has one fixed order, so results are bitwise
// reproducible. The variance never forms E[x²] − E[x]² (catastrophic cancellation when
// |mean| ≫ std): each chunk is centred on its own mean before squaring.
//
// Invocation i of the chunked kernels is (k = i / c, ch = i % c): neighbouring invocations read
// neighbouring channels of the same row (coalesced). Element-wise kernels: one channel (or vec4
// of channels when c % 4 == 0) over ROWS_PER rows per invocation (see row_stride), 64 per
// workgroup, memory-bound.

struct BatchNormParams {
    rows: u32, c: u32, chunk: u32, chunks: u32,
    momentum: f32, epsilon: f32, relu: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: BatchNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> saved_out: array<f32>;
@group(0) @binding(6) var<storage, read> saved: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(9) var<storage, read_write> y: array<f32>;
@group(0) @binding(10) var<storage, read> dout: array<f32>;
@group(0) @binding(12) var<storage, read_write> dscale: array<f32>;
@group(0) @binding(13) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(14) var<storage, read> dscale_in: array<f32>;
@group(0) @binding(15) var<storage, read> dbias_in: array<f32>;
@group(0) @binding(16) var<storage, read_write> dx: array<f32>;
@group(0) @binding(17) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(21) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(22) var<storage, read> mean_in: array<f32>;
@group(0) @binding(23) var<storage, read> var_in: array<f32>;
@group(0) @binding(24) var<storage, read> res: array<f32>;
@group(0) @binding(25) var<storage, read> res4: array<vec4<f32>>;
@group(0) @binding(26) var<storage, read_write> partials4: array<vec4<f32>>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Element-wise kernels: invocation j owns channel (or vec4 of channels) j % w, w = c or c/4, at
// rows j / w + t·S, S = ceil(rows / ROWS_PER), t = 0, 1, …: the per-channel values are loaded
// once per ROWS_PER rows (on a CPU device those scattered loads cost more than the data), and at
// every step neighbouring invocations touch neighbouring words (j + t·S·w).
const ROWS_PER: u32 = 8u;

fn row_stride() -> u32 {
    return (p.rows + ROWS_PER - 1u) / ROWS_PER;
}

// Rows [r0, r1) of chunk k.
fn chunk_rows(k: u32) -> vec2<u32> {
    let r0 = k * p.chunk;
    return vec2<u32>(r0, min(r0 + p.chunk, p.rows));
}

// Four consecutive channels of a per-channel vector (WGSL passes no storage pointers).
fn saved4(i: u32) -> vec4<f32> { return vec4<f32>(saved[i], saved[i + 1u], saved[i + 2u], saved[i + 3u]); }
fn scale4(i: u32) -> vec4<f32> { return vec4<f32>(scale[i], scale[i + 1u], scale[i + 2u], scale[i + 3u]); }
fn bias4(i: u32) -> vec4<f32> { return vec4<f32>(bias[i], bias[i + 1u], bias[i + 2u], bias[i + 3u]); }
fn mean_in4(i: u32) -> vec4<f32> { return vec4<f32>(mean_in[i], mean_in[i + 1u], mean_in[i + 2u], mean_in[i + 3u]); }
fn var_in4(i: u32) -> vec4<f32> { return vec4<f32>(var_in[i], var_in[i + 1u], var_in[i + 2u], var_in[i + 3u]); }
fn dscale_in4(i: u32) -> vec4<f32> { return vec4<f32>(dscale_in[i], dscale_in[i + 1u], dscale_in[i + 2u], dscale_in[i + 3u]); }
fn dbias_in4(i: u32) -> vec4<f32> { return vec4<f32>(dbias_in[i], dbias_in[i + 1u], dbias_in[i + 2u], dbias_in[i + 3u]); }

@compute @workgroup_size(64)
fn batchnorm_stats(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.chunks * p.c) { return; }
    let k = i / p.c;
    let ch = i - k * p.c;
    let r = chunk_rows(k);
    var s = 0.0;
    for (var j = r.x * p.c + ch; j < r.y * p.c; j += p.c) {
        s += x[j];
    }
    let m = s / f32(r.y - r.x);
    var m2 = 0.0;
    for (var j = r.x * p.c + ch; j < r.y * p.c; j += p.c) {
        let d = x[j] - m;
        m2 += d * d;
    }
    partials[i] = m;
    partials[p.chunks * p.c + i] = m2;
}

// Four channels per invocation (c % 4 == 0): invocation i is (k = i / w, channels 4·(i % w) …),
// w = c / 4; each channel's sums run over the same rows in the same order as batchnorm_stats,
// so the partials are bitwise equal to its.
@compute @workgroup_size(64)
fn batchnorm_stats_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    let w = p.c / 4u;
    if (i >= p.chunks * w) { return; }
    let k = i / w;
    let q = i - k * w;
    let r = chunk_rows(k);
    var s = vec4<f32>(0.0);
    for (var j = r.x * w + q; j < r.y * w; j += w) {
        s += x4[j];
    }
    let m = s / f32(r.y - r.x);
    var m2 = vec4<f32>(0.0);
    for (var j = r.x * w + q; j < r.y * w; j += w) {
        let d = x4[j] - m;
        m2 += d * d;
    }
    partials4[i] = m;
    partials4[p.chunks * w + i] = m2;
}

@compute @workgroup_size(64)
fn batchnorm_stats_finalize(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat_id(gid, nwg);
    if (ch >= p.c) { return; }
    let second = p.chunks * p.c;
    // Chan et al.: merging (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b), δ = mean_b − mean_a:
    // mean = mean_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n.
    var n = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var k = 0u; k < p.chunks; k++) {
        let r = chunk_rows(k);
        let nb = f32(r.y - r.x);
        let tot = n + nb;
        let delta = partials[k * p.c + ch] - mean;
        mean += delta * (nb / tot);
        m2 += partials[second + k * p.c + ch] + delta * delta * (n * nb / tot);
        n = tot;
    }
    let v = m2 / f32(p.rows);
    saved_out[ch] = mean;
    saved_out[p.c + ch] = inverseSqrt(v + p.epsilon);
    running_mean[ch] = p.momentum * running_mean[ch] + (1.0 - p.momentum) * mean;
    running_var[ch] = p.momentum * running_var[ch] + (1.0 - p.momentum) * v;
}

@compute @workgroup_size(64)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let step = row_stride() * p.c;
    if (j >= step) { return; }
    let ch = j % p.c;
    let mean = saved[ch];
    let mul = saved[p.c + ch] * scale[ch];
    let b = bias[ch];
    for (var i = j; i < p.rows * p.c; i += step) {
        var v = (x[i] - mean) * mul + b;
        if (p.relu != 0u) { v = max(v, 0.0); }
        y[i] = v;
    }
}

@compute @workgroup_size(64)
fn batchnorm_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let w = p.c / 4u;
    let step = row_stride() * w;
    if (j >= step) { return; }
    let ch = (j % w) * 4u;
    let mean = saved4(ch);
    let mul = saved4(p.c + ch) * scale4(ch);
    let b = bias4(ch);
    if (p.relu != 0u) {
        for (var i = j; i < p.rows * w; i += step) {
            y4[i] = max((x4[i] - mean) * mul + b, vec4<f32>(0.0));
        }
        return;
    }
    for (var i = j; i < p.rows * w; i += step) {
        y4[i] = (x4[i] - mean) * mul + b;
    }
}

// Rows j, j + step, … of y = ((x − mean)·mul + b) + res, then max(y, 0) if p.relu: the
// element-wise part of the `_add` kernels (one loop per case: lavapipe blends every value
// written under a branch inside a loop).
fn normalize_add_rows(j: u32, step: u32, mean: f32, mul: f32, b: f32) {
    if (p.relu != 0u) {
        for (var i = j; i < p.rows * p.c; i += step) {
            y[i] = max(((x[i] - mean) * mul + b) + res[i], 0.0);
        }
        return;
    }
    for (var i = j; i < p.rows * p.c; i += step) {
        y[i] = ((x[i] - mean) * mul + b) + res[i];
    }
}

fn normalize_add_rows4(j: u32, step: u32, mean: vec4<f32>, mul: vec4<f32>, b: vec4<f32>) {
    let w = p.c / 4u;
    if (p.relu != 0u) {
        for (var i = j; i < p.rows * w; i += step) {
            y4[i] = max(((x4[i] - mean) * mul + b) + res4[i], vec4<f32>(0.0));
        }
        return;
    }
    for (var i = j; i < p.rows * w; i += step) {
        y4[i] = ((x4[i] - mean) * mul + b) + res4[i];
    }
}

@compute @workgroup_size(64)
fn batchnorm_forward_add(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let step = row_stride() * p.c;
    if (j >= step) { return; }
    let ch = j % p.c;
    normalize_add_rows(j, step, saved[ch], saved[p.c + ch] * scale[ch], bias[ch]);
}

@compute @workgroup_size(64)
fn batchnorm_forward_add_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let w = p.c / 4u;
    let step = row_stride() * w;
    if (j >= step) { return; }
    let ch = (j % w) * 4u;
    normalize_add_rows4(j, step, saved4(ch), saved4(p.c + ch) * scale4(ch), bias4(ch));
}

@compute @workgroup_size(64)
fn batchnorm_forward_eval(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let step = row_stride() * p.c;
    if (j >= step) { return; }
    let ch = j % p.c;
    let mean = mean_in[ch];
    let mul = inverseSqrt(var_in[ch] + p.epsilon) * scale[ch];
    let b = bias[ch];
    for (var i = j; i < p.rows * p.c; i += step) {
        var v = (x[i] - mean) * mul + b;
        if (p.relu != 0u) { v = max(v, 0.0); }
        y[i] = v;
    }
}

@compute @workgroup_size(64)
fn batchnorm_forward_eval_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let w = p.c / 4u;
    let step = row_stride() * w;
    if (j >= step) { return; }
    let ch = (j % w) * 4u;
    let mean = mean_in4(ch);
    let mul = inverseSqrt(var_in4(ch) + p.epsilon) * scale4(ch);
    let b = bias4(ch);
    for (var i = j; i < p.rows * w; i += step) {
        var v = (x4[i] - mean) * mul + b;
        if (p.relu != 0u) { v = max(v, vec4<f32>(0.0)); }
        y4[i] = v;
    }
}

@compute @workgroup_size(64)
fn batchnorm_forward_eval_add(@builtin(global_invocation_id) gid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let step = row_stride() * p.c;
    if (j >= step) { return; }
    let ch = j % p.c;
    let mul = inverseSqrt(var_in[ch] + p.epsilon) * scale[ch];
    normalize_add_rows(j, step, mean_in[ch], mul, bias[ch]);
}

@compute @workgroup_size(64)
fn batchnorm_forward_eval_add_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let w = p.c / 4u;
    let step = row_stride() * w;
    if (j >= step) { return; }
    let ch = (j % w) * 4u;
    let mul = inverseSqrt(var_in4(ch) + p.epsilon) * scale4(ch);
    normalize_add_rows4(j, step, mean_in4(ch), mul, bias4(ch));
}

@compute @workgroup_size(64)
fn batchnorm_backward_stats(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.chunks * p.c) { return; }
    let k = i / p.c;
    let ch = i - k * p.c;
    let r = chunk_rows(k);
    let mean = saved[ch];
    var sg = 0.0;
    var sgx = 0.0;
    if (p.relu != 0u) {
        let mul = scale[ch] * saved[p.c + ch];
        let b = bias[ch];
        for (var j = r.x * p.c + ch; j < r.y * p.c; j += p.c) {
            let xc = x[j] - mean;
            let g = select(0.0, dout[j], xc * mul + b > 0.0);
            sg += g;
            sgx += g * xc;
        }
    } else {
        for (var j = r.x * p.c + ch; j < r.y * p.c; j += p.c) {
            let g = dout[j];
            sg += g;
            sgx += g * (x[j] - mean);
        }
    }
    partials[i] = sg;
    partials[p.chunks * p.c + i] = sgx;
}

@compute @workgroup_size(64)
fn batchnorm_backward_stats_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    let w = p.c / 4u;
    if (i >= p.chunks * w) { return; }
    let k = i / w;
    let q = i - k * w;
    let r = chunk_rows(k);
    let mean = saved4(4u * q);
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    if (p.relu != 0u) {
        let mul = scale4(4u * q) * saved4(p.c + 4u * q);
        let b = bias4(4u * q);
        for (var j = r.x * w + q; j < r.y * w; j += w) {
            let xc = x4[j] - mean;
            let g = select(vec4<f32>(0.0), dout4[j], xc * mul + b > vec4<f32>(0.0));
            sg += g;
            sgx += g * xc;
        }
    } else {
        for (var j = r.x * w + q; j < r.y * w; j += w) {
            let g = dout4[j];
            sg += g;
            sgx += g * (x4[j] - mean);
        }
    }
    partials4[i] = sg;
    partials4[p.chunks * w + i] = sgx;
}

@compute @workgroup_size(64)
fn batchnorm_backward_finalize(@builtin(global_invocation_id) gid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat_id(gid, nwg);
    if (ch >= p.c) { return; }
    let second = p.chunks * p.c;
    var sg = 0.0;
    var sgx = 0.0;
    for (var k = 0u; k < p.chunks; k++) {
        sg += partials[k * p.c + ch];
        sgx += partials[second + k * p.c + ch];
    }
    dbias[ch] = sg;
    dscale[ch] = sgx * saved[p.c + ch];
}

@compute @workgroup_size(64)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let step = row_stride() * p.c;
    if (j >= step) { return; }
    let ch = j % p.c;
    let mean = saved[ch];
    let inv = saved[p.c + ch];
    let k = scale[ch] * inv;
    let inv_m = 1.0 / f32(p.rows);
    let db = dbias_in[ch] * inv_m;
    let ds = dscale_in[ch] * inv_m;
    let b = bias[ch];
    for (var i = j; i < p.rows * p.c; i += step) {
        let xc = x[i] - mean;
        var g = dout[i];
        if (p.relu != 0u && !(xc * k + b > 0.0)) { g = 0.0; }
        let xhat = xc * inv;
        dx[i] = k * (g - db - xhat * ds);
    }
}

@compute @workgroup_size(64)
fn batchnorm_backward_input_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let w = p.c / 4u;
    let step = row_stride() * w;
    if (j >= step) { return; }
    let ch = (j % w) * 4u;
    let mean = saved4(ch);
    let inv = saved4(p.c + ch);
    let k = scale4(ch) * inv;
    let inv_m = 1.0 / f32(p.rows);
    let db = dbias_in4(ch) * inv_m;
    let ds = dscale_in4(ch) * inv_m;
    // The fused ReLU's mask in a loop of its own: no branch inside the loop (lavapipe blends
    // every value written under one).
    if (p.relu != 0u) {
        let b = bias4(ch);
        for (var i = j; i < p.rows * w; i += step) {
            let xc = x4[i] - mean;
            let g = select(vec4<f32>(0.0), dout4[i], xc * k + b > vec4<f32>(0.0));
            dx4[i] = k * (g - db - (xc * inv) * ds);
        }
        return;
    }
    for (var i = j; i < p.rows * w; i += step) {
        let g = dout4[i];
        let xhat = (x4[i] - mean) * inv;
        dx4[i] = k * (g - db - xhat * ds);
    }
}
