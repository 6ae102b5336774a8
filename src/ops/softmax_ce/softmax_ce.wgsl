// softmax_ce.wgsl — fused softmax cross-entropy with integer labels, mean over the batch.
//
// Layouts: logits/dlogits [N, classes] row-major; labels [N] u32; row_stats [N, 2] = (loss, correct);
// stats [3] = (mean loss, correct count, summed loss) of this batch; totals [4] accumulate
// (summed loss, correct count, rows, first bad batch) over many batches, e.g. an epoch, and are
// zeroed by the host. "First bad batch" is the 1-based index, among the batches accumulated,
// of the first one whose loss was not finite (0: none), so the host can name the step without
// reading the loss back every step.
// Targets are smoothed as optax.smooth_labels with α = p.smoothing (0: the one-hot labels):
//   q_i       = (1 - α)·onehot(label_i) + α/classes
//   loss_i    = logsumexp(logits_i) - Σ_j q_ij·logits_ij
//             = logsumexp(logits_i) - (1 - α)·logits_i[label_i] - (α/classes)·Σ_j logits_ij
//   correct_i = argmax(logits_i) == label_i (first maximum wins, as jnp.argmax)
//   dlogits_i = (softmax(logits_i) - q_i) / N        (= , gradient of the mean loss)
//
// Entry points:
//   softmax_ce_forward   row_stats                 (evaluation: no gradient)
//   softmax_ce_backward  row_stats and dlogits     (training: loss and gradient in one pass)
//   softmax_ce_reduce    stats = reduce(row_stats); totals += ... — one workgroup of 256 sums rows in
//                        a fixed order (strided partial sums, then a tree), so it is deterministic.
// One row per invocation: rows are short (10 classes).

struct SoftmaxCeParams {
    n: u32, classes: u32, inv_n: f32, smoothing: f32,
}

@group(0) @binding(0) var<uniform> p: SoftmaxCeParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> row_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> totals: array<f32>;

const WG: u32 = 64u;
const REDUCE_WG: u32 = 256u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Writes row i's loss and correctness; returns (row max, Σ exp(logit - max)) for the gradient.
fn row_loss(i: u32) -> vec2<f32> {
    let base = i * p.classes;
    let label = min(labels[i], p.classes - 1u);
    var mx = logits[base];
    var arg = 0u;
    for (var j = 1u; j < p.classes; j++) {
        let v = logits[base + j];
        if (v > mx) { mx = v; arg = j; }
    }
    var sum = 0.0;
    var total = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        let v = logits[base + j];
        sum += exp(v - mx);
        total += v;
    }
    let a = p.smoothing;
    var picked = logits[base + label];
    if (a != 0.0) {
        picked = (1.0 - a) * picked + a / f32(p.classes) * total;
    }
    row_stats[2u * i] = mx + log(sum) - picked;
    row_stats[2u * i + 1u] = select(0.0, 1.0, arg == label);
    return vec2<f32>(mx, sum);
}

@compute @workgroup_size(64)
fn softmax_ce_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    _ = row_loss(i);
}

@compute @workgroup_size(64)
fn softmax_ce_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    let ms = row_loss(i);
    let base = i * p.classes;
    let label = min(labels[i], p.classes - 1u);
    let scale = p.inv_n / ms.y;
    let off = p.inv_n * p.smoothing / f32(p.classes);
    let on = p.inv_n * (1.0 - p.smoothing) + off;
    for (var j = 0u; j < p.classes; j++) {
        let q = select(off, on, j == label);
        dlogits[base + j] = exp(logits[base + j] - ms.x) * scale - q;
    }
}

var<workgroup> partial: array<vec2<f32>, REDUCE_WG>;

@compute @workgroup_size(256)
fn softmax_ce_reduce(@builtin(local_invocation_index) lid: u32) {
    var acc = vec2<f32>(0.0);
    for (var i = lid; i < p.n; i += REDUCE_WG) {
        acc += vec2<f32>(row_stats[2u * i], row_stats[2u * i + 1u]);
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = REDUCE_WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let total = partial[0];
        stats[0] = total.x * p.inv_n;
        stats[1] = total.y;
        stats[2] = total.x;
        // Inf or NaN: all exponent bits set (no isnan in WGSL, and x != x may be folded away).
        let bad = (bitcast<u32>(total.x) & 0x7f800000u) == 0x7f800000u;
        if (bad && totals[3] == 0.0) {
            totals[3] = totals[2] / f32(p.n) + 1.0;
        }
        totals[0] += total.x;
        totals[1] += total.y;
        totals[2] += f32(p.n);
    }
}
