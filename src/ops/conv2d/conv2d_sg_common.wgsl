// conv2d_sg_common.wgsl — what the subgroup convolution kernels share. They compute conv2d (and,
// with K = 1 and H = W = 1, dense) on devices whose subgroups are exactly 8 invocations wide:
// CPU-type adapters such as lavapipe on AVX2, where a subgroup is one 8-lane SIMD register. Same
// math, layouts and parameters as conv2d.wgsl (NHWC, HWIO, any kernel, stride and padding,
// output[n,y,x,o] = bias[o] + Σ input · weight, the bias only when p.bias = 1); only the work
// split differs. WGSL has no includes: the shader registry (gpu/shaders.rs) puts
// conv2d_common.wgsl and this file in front of each direction's file, one shader module each:
//   conv2d_sg_forward.wgsl          the forward (fused ReLU, 2×2 average pool, ReLU mask)
//   conv2d_sg_backward_input.wgsl   the input gradient
//   conv2d_sg_backward_weight.wgsl  the weight gradient's split-K partials
//   winograd_gemm_sg.wgsl           the GEMMs of Winograd F(4×4, 3×3) (winograd.wgsl: the
//                                   transforms around them)
// Here: the bindings (the same numbers for every entry point of every direction), the texture
// mirrors, the tile queue, the tile size, and the multiply-add helpers that more than one
// direction uses. Lab notes: docs/notes/subgroup-kernels.md, docs/notes/lavapipe.md.
//
// Why: lavapipe loads a storage-buffer element one lane at a time (a bounds check, a branch and
// an insert per lane) unless the address is a compile-time constant — loop counters never are —
// so a kernel's speed is set by how many elements each lane loads per multiply-add. Here the 8
// lanes of a subgroup each load a different element and share it with subgroupBroadcast (one
// register permute). A subgroup computes a tile of 8 pixels × 32 channels, every lane owning
// 4 channels (one vec4) of all 8 pixels: one pixel value and one vec4 of weights per lane feed
// 32 multiply-adds (conv2d.wgsl's 4×8 register tiles load 12 per 32). The kernels take four
// such tiles per subgroup (32 pixels, or 32 weight rows for the weight gradient) so that each
// weight (or dout) load feeds all four (`TILE`).
// The operand every lane loads for its own channels (nothing to share) comes through a texture
// instead: the weights of the forward and input-gradient kernels (`weight_vec4`), the output
// gradient of the weight-gradient kernels (`dout_vec4`). llvmpipe fetches texels for all 8
// lanes without the per-lane loop (`examples/texfetch.rs`, `examples/variants.rs`).
// Inner loops chain 4 products per accumulator update: lavapipe blends every register written
// inside a loop with the loop's mask, so fewer updates mean fewer blends.
// lavapipe has no fused multiply-add (a·b + c is a multiply and an add), which bounds what
// these kernels can reach on it (docs/notes/lavapipe.md).
// Tensors of at most 16 channels (ResNet-20's first stage) have 16-channel tiles in every
// direction (`_o16`, `_c16`), where the 32-channel tiles would leave half the lanes idle or
// more: every lane owns 2 channels (one vec2). Same loads per step (vec2 instead of vec4 weights
// or dout), half the multiply-adds per lane, and the summation order of the 32-channel kernels,
// so the results are bitwise equal to theirs. The 16-output-channel ones (`_o16`) read their
// vec2 operand from rg32float mirrors (bindings 32, 33): half an rgba32float texel costs a whole
// fetch and a select.
//
// Each entry point is a loop around its `_tile` function: a subgroup computes the tile at its
// place in the grid, or (p.queue = 1, CPU-type adapters) tile after tile from the tile queue
// until none is left (see `tile_queue`); either way a tile's sums are the same, in the same order.
// Lanes past the end of a tensor load clamped indices and store nothing; a subgroup past the end
// of the grid returns as a whole, so every broadcast reads an active lane. No float atomics:
// results are bitwise reproducible. The launchers pick these kernels only where the device's
// subgroups are 8 wide (`Caps::conv_sg`).

// Conv2dParams and the uniform p: conv2d_common.wgsl.
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(11) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> output4: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read_write> dinput4: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read_write> partials4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> pooled4: array<vec4<f32>>;
// The 16-channel-tile kernels' vec2 views (weight rows, dout rows, outputs of O/2 or C/2).
@group(0) @binding(21) var<storage, read_write> output2: array<vec2<f32>>;
@group(0) @binding(22) var<storage, read_write> dinput2: array<vec2<f32>>;
@group(0) @binding(24) var<storage, read_write> partials2: array<vec2<f32>>;

const SG: u32 = 8u;

// The weights, HWIO, as vec4s (the launcher mirrors the weight tensor into this rgba32float
// texture and refreshes it before every dispatch: gpu/dispatch.rs TextureMirror). lavapipe
// fetches a texel for 8 lanes without its per-lane storage-load loop (bounds check, branch and
// insert per lane and component; examples/texfetch.rs, docs/notes/subgroup-kernels.md).
// Vec4 number i sits at (i % 4096, i / 4096).
@group(0) @binding(30) var weight_texture: texture_2d<f32>;

// Texel i of a mirror texture.
fn texel(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i % 4096u, i / 4096u), 0);
}

fn weight_vec4(i: u32) -> vec4<f32> { return texel(weight_texture, i); }

// The same tensor as vec2s for the 16-channel-tile kernels, from an rg32float mirror (vec2
// number i at (i % 4096, i / 4096)): half an rgba32float texel costs a whole fetch and a select.
@group(0) @binding(32) var weight_texture2: texture_2d<f32>;

fn texel2(t: texture_2d<f32>, i: u32) -> vec2<f32> {
    return textureLoad(t, vec2<u32>(i % 4096u, i / 4096u), 0).xy;
}

fn weight_vec2(i: u32) -> vec2<f32> { return texel2(weight_texture2, i); }

// The output gradient of the weight-gradient kernels, which every lane loads for its own
// channels, through a texture the same way (the input-gradient kernels load dout once per
// subgroup and share it: storage there).
@group(0) @binding(31) var dout_texture: texture_2d<f32>;

fn dout_vec4(i: u32) -> vec4<f32> { return texel(dout_texture, i); }

@group(0) @binding(33) var dout_texture2: texture_2d<f32>;

fn dout_vec2(i: u32) -> vec2<f32> { return texel2(dout_texture2, i); }

// Index of this subgroup's tile in the whole grid (8 subgroups per group of 64; large grids
// fold into y as in dispatch::grid).
fn tile_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 8u + lid / SG;
}

// The tile queue (p.queue = 1; the launcher sets it on CPU-type adapters). llvmpipe hands each
// of its threads an equal share of a dispatch's workgroups up front, so a dispatch lasts as long
// as its slowest thread: on a 2-vCPU VM whose cores are preempted now and then, the other
// thread idles at the end of every dispatch. With the queue the launcher starts a few
// workgroups per CPU and every subgroup takes the next free tile from a counter until none is
// left: whichever thread is running takes the work. Each tile is computed exactly as from its
// place in the grid, so results are bitwise the same; only which thread computes it changes
// (docs/notes/subgroup-kernels.md).
// [0]: the next free tile; [1]: subgroups done. The last subgroup out zeroes both, so the next
// dispatch (the launcher binds one queue to every dispatch of a device, and dispatches run one
// after another) starts from a clean queue.
@group(0) @binding(40) var<storage, read_write> tile_queue: array<atomic<u32>, 2>;

// This subgroup's first tile: its place in the grid, or the first one it takes from the queue.
fn first_tile(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    if (p.queue == 0u) { return tile_id(wid, nwg, lid); }
    return take_tile(lid);
}

// The subgroup's next tile from the queue; past every tile (0xffffffff) without the queue.
fn next_tile(lid: u32) -> u32 {
    if (p.queue == 0u) { return 0xffffffffu; }
    return take_tile(lid);
}

// Lane 0 takes a tile and shares it: the whole subgroup works on one tile (its broadcasts need
// every lane).
fn take_tile(lid: u32) -> u32 {
    var t = 0u;
    if (lid % SG == 0u) { t = atomicAdd(&tile_queue[0], 1u); }
    return subgroupBroadcast(t, 0u);
}

// Called by every subgroup once it found the queue empty: the last one resets it.
fn leave_queue(nwg: vec3<u32>, lid: u32) {
    if (p.queue == 0u || lid % SG != 0u) { return; }
    let subgroups = nwg.x * nwg.y * nwg.z * (64u / SG);
    if (atomicAdd(&tile_queue[1], 1u) + 1u == subgroups) {
        atomicStore(&tile_queue[0], 0u);
        atomicStore(&tile_queue[1], 0u);
    }
}

// Subgroup tiles of the forward kernels (8 lanes × `ch` output channels by 32 pixels), the
// input-gradient kernels (8 lanes × `ch` input channels by 32 pixels of one stride phase) and
// the weight-gradient kernels (8 lanes × `ch` output channels by 32 weight rows, per split):
// four 8-wide tiles per subgroup, so that every operand a lane loads for its own channels
// (weights, or dout for the weight gradient) feeds four tiles. Their accumulators (128 floats
// per lane, 64 with 16-channel tiles) spill; that costs less than the loads saved, with 32
// vector registers or 16 (`GALLIUM_OVERRIDE_CPU_CAPS=avx`; `examples/texfetch.rs`). Four is
// where that balance ends: more tiles spill more than their shared loads save
// (docs/notes/subgroup-kernels.md).
const TILE: u32 = 32u;

// With p.mask = 1 (p.relu = 1 and p.pool = 1: the ReLU output is read only as the pool
// backward's mask) the output is not stored; `relu_mask` gets its signs instead, one bit per
// channel: word m·ceil(O/32) + c/32 of pixel m holds bit c % 32 = [output(m, c) > 0]. The
// 8 lanes' nibbles of a pixel are OR-ed across the subgroup and lane i stores pixel i's word:
// one u32 store per lane where the output takes eight vec4s.
@group(0) @binding(19) var<storage, read_write> relu_mask: array<u32>;

// One broadcast pixel (4 input channels) times 4 weight rows, summed in a fixed order.
fn mac4(acc: vec4<f32>, x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>,
        w3: vec4<f32>) -> vec4<f32> {
    return acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
}

// mac4 for the 16-channel tiles (vec2 weight rows), accumulated in the same order.
fn mac4x2(acc: vec2<f32>, x: vec4<f32>, w0: vec2<f32>, w1: vec2<f32>, w2: vec2<f32>,
          w3: vec2<f32>) -> vec2<f32> {
    return acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
}

// One broadcast vec4 of 4 input channels per pixel of an 8-pixel tile times 4 weight rows.
fn mac_tile(acc: array<vec4<f32>, 8>, x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>,
            w2: vec4<f32>, w3: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        mac4(acc[0], subgroupBroadcast(x, 0u), w0, w1, w2, w3),
        mac4(acc[1], subgroupBroadcast(x, 1u), w0, w1, w2, w3),
        mac4(acc[2], subgroupBroadcast(x, 2u), w0, w1, w2, w3),
        mac4(acc[3], subgroupBroadcast(x, 3u), w0, w1, w2, w3),
        mac4(acc[4], subgroupBroadcast(x, 4u), w0, w1, w2, w3),
        mac4(acc[5], subgroupBroadcast(x, 5u), w0, w1, w2, w3),
        mac4(acc[6], subgroupBroadcast(x, 6u), w0, w1, w2, w3),
        mac4(acc[7], subgroupBroadcast(x, 7u), w0, w1, w2, w3));
}

// Four steps of the weight-gradient update for one 8-row tile: row i of step j is component
// i % 4 of lane 2j + i / 4's vec4 `e`, times that step's output gradient dj; the four products
// summed first, then added (conv2d_backward_weight_sg's order, so the `_c4` kernel stays
// bitwise equal to it).
fn wgrad_tile(acc: array<vec4<f32>, 8>, e: vec4<f32>, d0: vec4<f32>, d1: vec4<f32>,
              d2: vec4<f32>, d3: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        acc[0] + (subgroupBroadcast(e.x, 0u) * d0 + subgroupBroadcast(e.x, 2u) * d1
            + subgroupBroadcast(e.x, 4u) * d2 + subgroupBroadcast(e.x, 6u) * d3),
        acc[1] + (subgroupBroadcast(e.y, 0u) * d0 + subgroupBroadcast(e.y, 2u) * d1
            + subgroupBroadcast(e.y, 4u) * d2 + subgroupBroadcast(e.y, 6u) * d3),
        acc[2] + (subgroupBroadcast(e.z, 0u) * d0 + subgroupBroadcast(e.z, 2u) * d1
            + subgroupBroadcast(e.z, 4u) * d2 + subgroupBroadcast(e.z, 6u) * d3),
        acc[3] + (subgroupBroadcast(e.w, 0u) * d0 + subgroupBroadcast(e.w, 2u) * d1
            + subgroupBroadcast(e.w, 4u) * d2 + subgroupBroadcast(e.w, 6u) * d3),
        acc[4] + (subgroupBroadcast(e.x, 1u) * d0 + subgroupBroadcast(e.x, 3u) * d1
            + subgroupBroadcast(e.x, 5u) * d2 + subgroupBroadcast(e.x, 7u) * d3),
        acc[5] + (subgroupBroadcast(e.y, 1u) * d0 + subgroupBroadcast(e.y, 3u) * d1
            + subgroupBroadcast(e.y, 5u) * d2 + subgroupBroadcast(e.y, 7u) * d3),
        acc[6] + (subgroupBroadcast(e.z, 1u) * d0 + subgroupBroadcast(e.z, 3u) * d1
            + subgroupBroadcast(e.z, 5u) * d2 + subgroupBroadcast(e.z, 7u) * d3),
        acc[7] + (subgroupBroadcast(e.w, 1u) * d0 + subgroupBroadcast(e.w, 3u) * d1
            + subgroupBroadcast(e.w, 5u) * d2 + subgroupBroadcast(e.w, 7u) * d3));
}

// The same for the 16-channel tiles (vec2 output gradients).
fn wgrad_tile2(acc: array<vec2<f32>, 8>, e: vec4<f32>, d0: vec2<f32>, d1: vec2<f32>,
               d2: vec2<f32>, d3: vec2<f32>) -> array<vec2<f32>, 8> {
    return array<vec2<f32>, 8>(
        acc[0] + (subgroupBroadcast(e.x, 0u) * d0 + subgroupBroadcast(e.x, 2u) * d1
            + subgroupBroadcast(e.x, 4u) * d2 + subgroupBroadcast(e.x, 6u) * d3),
        acc[1] + (subgroupBroadcast(e.y, 0u) * d0 + subgroupBroadcast(e.y, 2u) * d1
            + subgroupBroadcast(e.y, 4u) * d2 + subgroupBroadcast(e.y, 6u) * d3),
        acc[2] + (subgroupBroadcast(e.z, 0u) * d0 + subgroupBroadcast(e.z, 2u) * d1
            + subgroupBroadcast(e.z, 4u) * d2 + subgroupBroadcast(e.z, 6u) * d3),
        acc[3] + (subgroupBroadcast(e.w, 0u) * d0 + subgroupBroadcast(e.w, 2u) * d1
            + subgroupBroadcast(e.w, 4u) * d2 + subgroupBroadcast(e.w, 6u) * d3),
        acc[4] + (subgroupBroadcast(e.x, 1u) * d0 + subgroupBroadcast(e.x, 3u) * d1
            + subgroupBroadcast(e.x, 5u) * d2 + subgroupBroadcast(e.x, 7u) * d3),
        acc[5] + (subgroupBroadcast(e.y, 1u) * d0 + subgroupBroadcast(e.y, 3u) * d1
            + subgroupBroadcast(e.y, 5u) * d2 + subgroupBroadcast(e.y, 7u) * d3),
        acc[6] + (subgroupBroadcast(e.z, 1u) * d0 + subgroupBroadcast(e.z, 3u) * d1
            + subgroupBroadcast(e.z, 5u) * d2 + subgroupBroadcast(e.z, 7u) * d3),
        acc[7] + (subgroupBroadcast(e.w, 1u) * d0 + subgroupBroadcast(e.w, 3u) * d1
            + subgroupBroadcast(e.w, 5u) * d2 + subgroupBroadcast(e.w, 7u) * d3));
}
