// batchnorm.wgsl — batch normalisation with Flax `nn.BatchNorm` semantics over `rows` rows of `c`
// channels (NHWC flattened: rows = N·H·W; a flat [N, F] input is rows = N, c = F). M = rows.
//
// Training forward (three dispatches):
//   batchnorm_stats            per (chunk k, channel): chunk sum s_k and M2_k = Σ (x − m_k)²,
//                              m_k = s_k / n_k, two passes over the chunk (the second from
//                              cache), each a blocked sum (see BLOCK)                  (= partials)
//   batchnorm_stats_vec4       the same for 4 channels per invocation (c % 4 == 0): the same
//                              sums in the same order, a quarter of the load instructions (=)
//   batchnorm_stats_finalize   per channel, blocked sums over the chunks in chunk order:
//                              mean = Σ s_k / M, then M2 = Σ (M2_k + n_k·(m_k − mean)²) (the
//                              parallel-variance identity, every term ≥ 0), biased var =
//                              M2 / M; saved = [mean | invstd]  (=),
//                              running = momentum·running + decay·batch stat, decay = 1 − momentum
//                              rounded once from the decimal (Flax's factor)  (in place)
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
//   batchnorm_backward_stats   per (chunk, channel): Σ g and Σ g·(x − mean), blocked  (= partials)
//   batchnorm_backward_stats_vec4  the same, 4 channels per invocation (c % 4 == 0)      (=)
//   batchnorm_backward_finalize per channel, chunks in order: dbias = Σ g, dscale = invstd·Σ g·(x − mean) (=)
//   batchnorm_backward_input[_vec4]  dx = scale·invstd·(g − dbias/M − xhat·dscale/M)   (=)
// Every sum over many terms is blocked (runs of RUN terms summed serially, RUN runs to a
// block, blocks summed serially): its rounding error grows with 2·RUN + n/RUN² terms instead of
// n, which is what keeps the statistics, and through them the ReLU masks and the gradients,
// as close to float64 as XLA's tree reductions (docs/notes/numerics.md). No compensated
// (Kahan) sums: a shader compiler may reassociate them away.
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
    momentum: f32, epsilon: f32, relu: u32, decay: f32,
    use_scale: u32, _pad0: u32, _pad1: u32, _pad2: u32,
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

// Blocked sums (see the header): RUN terms serially, RUN runs to a block, blocks serially.
const RUN: u32 = 8u;
const BLOCK: u32 = 64u;

// One accumulator per sum: the n-th term (counting from 1) goes into the run; a run's end
// adds it to the block, a block's end adds that to the total. One loop with the ends as selects
// (nested loops cost lavapipe twice the time of these memory-bound passes).
struct Blocked {
    s: f32,
    sb: f32,
    sa: f32,
}

fn blocked_add(acc: Blocked, v: f32, n: u32) -> Blocked {
    var a = acc;
    a.sa += v;
    let run_end = n % RUN == 0u;
    a.sb = select(a.sb, a.sb + a.sa, run_end);
    a.sa = select(a.sa, 0.0, run_end);
    let block_end = n % BLOCK == 0u;
    a.s = select(a.s, a.s + a.sb, block_end);
    a.sb = select(a.sb, 0.0, block_end);
    return a;
}

fn blocked_total(a: Blocked) -> f32 {
    return a.s + (a.sb + a.sa);
}

// The same for four channels: each lane the scalar sums in the same order.
struct Blocked4 {
    s: vec4<f32>,
    sb: vec4<f32>,
    sa: vec4<f32>,
}

fn blocked_add4(acc: Blocked4, v: vec4<f32>, n: u32) -> Blocked4 {
    var a = acc;
    a.sa += v;
    let run_end = n % RUN == 0u;
    a.sb = select(a.sb, a.sb + a.sa, run_end);
    a.sa = select(a.sa, vec4<f32>(0.0), run_end);
    let block_end = n % BLOCK == 0u;
    a.s = select(a.s, a.s + a.sb, block_end);
    a.sb = select(a.sb, vec4<f32>(0.0), block_end);
    return a;
}

fn blocked_total4(a: Blocked4) -> vec4<f32> {
    return a.s + (a.sb + a.sa);
}

// Σ x over rows [r0, r1) of channel ch.
fn column_sum(ch: u32, r0: u32, r1: u32) -> f32 {
    var acc = Blocked(0.0, 0.0, 0.0);
    var n = 0u;
    for (var j = r0 * p.c + ch; j < r1 * p.c; j += p.c) {
        n++;
        acc = blocked_add(acc, x[j], n);
    }
    return blocked_total(acc);
}

// Σ (x − m)² over rows [r0, r1) of channel ch.
fn column_m2(ch: u32, r0: u32, r1: u32, m: f32) -> f32 {
    var acc = Blocked(0.0, 0.0, 0.0);
    var n = 0u;
    for (var j = r0 * p.c + ch; j < r1 * p.c; j += p.c) {
        n++;
        let d = x[j] - m;
        acc = blocked_add(acc, d * d, n);
    }
    return blocked_total(acc);
}

// The same for vec4 q of w = c / 4 channels per row.
fn column_sum4(q: u32, r0: u32, r1: u32) -> vec4<f32> {
    let w = p.c / 4u;
    var acc = Blocked4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var n = 0u;
    for (var j = r0 * w + q; j < r1 * w; j += w) {
        n++;
        acc = blocked_add4(acc, x4[j], n);
    }
    return blocked_total4(acc);
}

fn column_m2_4(q: u32, r0: u32, r1: u32, m: vec4<f32>) -> vec4<f32> {
    let w = p.c / 4u;
    var acc = Blocked4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var n = 0u;
    for (var j = r0 * w + q; j < r1 * w; j += w) {
        n++;
        let d = x4[j] - m;
        acc = blocked_add4(acc, d * d, n);
    }
    return blocked_total4(acc);
}

// Σ g and Σ g·(x − mean) over rows [r0, r1) of channel ch, g = dout masked by the fused ReLU
// (y = (x − mean)·mul + b > 0) when p.relu: the mask is a select, not a branch.
fn column_grad_sums(ch: u32, r0: u32, r1: u32, mean: f32, mul: f32, b: f32) -> vec2<f32> {
    let all = p.relu == 0u;
    var sg = Blocked(0.0, 0.0, 0.0);
    var sgx = Blocked(0.0, 0.0, 0.0);
    var n = 0u;
    for (var j = r0 * p.c + ch; j < r1 * p.c; j += p.c) {
        n++;
        let xc = x[j] - mean;
        let g = select(0.0, dout[j], xc * mul + b > 0.0 || all);
        sg = blocked_add(sg, g, n);
        sgx = blocked_add(sgx, g * xc, n);
    }
    return vec2<f32>(blocked_total(sg), blocked_total(sgx));
}

struct GradSums4 {
    g: vec4<f32>,
    gx: vec4<f32>,
}

fn column_grad_sums4(q: u32, r0: u32, r1: u32, mean: vec4<f32>, mul: vec4<f32>,
                     b: vec4<f32>) -> GradSums4 {
    let w = p.c / 4u;
    let all = vec4<bool>(p.relu == 0u);
    var sg = Blocked4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var sgx = Blocked4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var n = 0u;
    for (var j = r0 * w + q; j < r1 * w; j += w) {
        n++;
        let xc = x4[j] - mean;
        let g = select(vec4<f32>(0.0), dout4[j], (xc * mul + b > vec4<f32>(0.0)) | all);
        sg = blocked_add4(sg, g, n);
        sgx = blocked_add4(sgx, g * xc, n);
    }
    return GradSums4(blocked_total4(sg), blocked_total4(sgx));
}

// Σ over the chunks k of partials[base + k·c + ch].
fn chunks_sum(base: u32, ch: u32) -> f32 {
    var acc = Blocked(0.0, 0.0, 0.0);
    for (var k = 0u; k < p.chunks; k++) {
        acc = blocked_add(acc, partials[base + k * p.c + ch], k + 1u);
    }
    return blocked_total(acc);
}

// Σ over the chunks of M2_k + n_k·(s_k / n_k − mean)².
fn chunks_m2(ch: u32, mean: f32) -> f32 {
    let second = p.chunks * p.c;
    var acc = Blocked(0.0, 0.0, 0.0);
    for (var k = 0u; k < p.chunks; k++) {
        let r = chunk_rows(k);
        let n = f32(r.y - r.x);
        let d = partials[k * p.c + ch] / n - mean;
        acc = blocked_add(acc, partials[second + k * p.c + ch] + n * (d * d), k + 1u);
    }
    return blocked_total(acc);
}

// Four consecutive channels of a per-channel vector (WGSL passes no storage pointers).
fn saved4(i: u32) -> vec4<f32> { return vec4<f32>(saved[i], saved[i + 1u], saved[i + 2u], saved[i + 3u]); }
// The scale of channel i: 1 without a trainable scale (use_scale = 0; the binding then holds
// something else and is not read).
fn scale_at(i: u32) -> f32 {
    if (p.use_scale == 0u) { return 1.0; }
    return scale[i];
}
fn scale4(i: u32) -> vec4<f32> {
    if (p.use_scale == 0u) { return vec4<f32>(1.0); }
    return vec4<f32>(scale[i], scale[i + 1u], scale[i + 2u], scale[i + 3u]);
}
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
    let s = column_sum(ch, r.x, r.y);
    partials[i] = s;
    partials[p.chunks * p.c + i] = column_m2(ch, r.x, r.y, s / f32(r.y - r.x));
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
    let s = column_sum4(q, r.x, r.y);
    partials4[i] = s;
    partials4[p.chunks * w + i] = column_m2_4(q, r.x, r.y, s / f32(r.y - r.x));
}

@compute @workgroup_size(64)
fn batchnorm_stats_finalize(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat_id(gid, nwg);
    if (ch >= p.c) { return; }
    let mean = chunks_sum(0u, ch) / f32(p.rows);
    let m2 = chunks_m2(ch, mean);
    let v = m2 / f32(p.rows);
    saved_out[ch] = mean;
    saved_out[p.c + ch] = inverseSqrt(v + p.epsilon);
    running_mean[ch] = p.momentum * running_mean[ch] + p.decay * mean;
    running_var[ch] = p.momentum * running_var[ch] + p.decay * v;
}

@compute @workgroup_size(64)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    let step = row_stride() * p.c;
    if (j >= step) { return; }
    let ch = j % p.c;
    let mean = saved[ch];
    let mul = saved[p.c + ch] * scale_at(ch);
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
    normalize_add_rows(j, step, saved[ch], saved[p.c + ch] * scale_at(ch), bias[ch]);
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
    let mul = inverseSqrt(var_in[ch] + p.epsilon) * scale_at(ch);
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
    let mul = inverseSqrt(var_in[ch] + p.epsilon) * scale_at(ch);
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
    let sums = column_grad_sums(ch, r.x, r.y, saved[ch], scale_at(ch) * saved[p.c + ch], bias[ch]);
    partials[i] = sums.x;
    partials[p.chunks * p.c + i] = sums.y;
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
    let sums = column_grad_sums4(q, r.x, r.y, saved4(4u * q),
                                 scale4(4u * q) * saved4(p.c + 4u * q), bias4(4u * q));
    partials4[i] = sums.g;
    partials4[p.chunks * w + i] = sums.gx;
}

@compute @workgroup_size(64)
fn batchnorm_backward_finalize(@builtin(global_invocation_id) gid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat_id(gid, nwg);
    if (ch >= p.c) { return; }
    let sg = chunks_sum(0u, ch);
    let sgx = chunks_sum(p.chunks * p.c, ch);
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
    let k = scale_at(ch) * inv;
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
