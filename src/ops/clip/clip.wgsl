// clip.wgsl — optax.clip_by_global_norm(max_norm) over the flat gradient buffer (every
// parameter's gradient; the layout's padding is zero and adds nothing), in place:
//   norm = sqrt(Σ g²)
//   g    = (g / norm) · max_norm   where norm ≥ max_norm (optax: select(norm < max, g, g / norm · max))
// Entry points (one after another, before the optimizer's update):
//   clip_partial   partials[k] = Σ g² over chunk k of `chunk` elements, in order           (=)
//   clip_finalize  one workgroup of 256: strided sums of the partials, then a tree → norm[0] (=)
//   clip_scale     the scaling above, one element per invocation                          (in place)
// Every sum has one fixed order: the same gradients give the same bits.

struct ClipParams {
    count: u32, chunk: u32, chunks: u32, max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: ClipParams;
@group(0) @binding(1) var<storage, read> grad_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read> norm_in: array<f32>;
@group(0) @binding(6) var<storage, read> partials_in: array<f32>;

const WG: u32 = 64u;
const REDUCE_WG: u32 = 256u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn clip_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= p.chunks) { return; }
    let end = min((k + 1u) * p.chunk, p.count);
    var s = 0.0;
    for (var i = k * p.chunk; i < end; i++) {
        let g = grad_in[i];
        s += g * g;
    }
    partials[k] = s;
}

var<workgroup> part: array<f32, REDUCE_WG>;

@compute @workgroup_size(256)
fn clip_finalize(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var k = lid; k < p.chunks; k += REDUCE_WG) {
        acc += partials_in[k];
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var stride = REDUCE_WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            part[lid] += part[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        norm[0] = sqrt(part[0]);
    }
}

@compute @workgroup_size(64)
fn clip_scale(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.count) { return; }
    let n = norm_in[0];
    if (n >= p.max_norm) {
        grad[i] = (grad[i] / n) * p.max_norm;
    }
}
