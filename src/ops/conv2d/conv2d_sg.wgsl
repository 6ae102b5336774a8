// conv2d_sg.wgsl — conv2d (and, with K = 1 and H = W = 1, dense) kernels for devices whose
// subgroups are exactly 8 invocations wide: CPU-type adapters such as lavapipe on AVX2, where a
// subgroup is one 8-lane SIMD register. Same math, layouts and parameters as conv2d.wgsl
// (NHWC, HWIO, any kernel, stride and padding, output[n,y,x,o] = bias[o] + Σ input · weight, the
// bias only when p.bias = 1); only the work split differs.
//
// Why: lavapipe loads a storage-buffer element one lane at a time (a bounds check, a branch and
// an insert per lane) unless the address is a compile-time constant — loop counters never are —
// so a kernel's speed is set by how many elements each lane loads per multiply-add. Here the 8
// lanes of a subgroup each load a different element and share it with subgroupBroadcast (one
// register permute). A subgroup computes a tile of 8 pixels × 32 channels, every lane owning
// 4 channels (one vec4) of all 8 pixels: one pixel value and one vec4 of weights per lane feed
// 32 multiply-adds (conv2d.wgsl's 4×8 register tiles load 12 per 32). The kernels below take
// four such tiles per subgroup (32 pixels, or 32 weight rows for the weight gradient) so that
// each weight (or dout) load feeds all four (`TILE`).
// The operand every lane loads for its own channels (nothing to share) comes through a texture
// instead: the weights of the forward and input-gradient kernels (`weight_vec4`), the output
// gradient of the weight-gradient kernels (`dout_vec4`). llvmpipe fetches texels for all 8
// lanes without the per-lane loop: 1.2–1.7× per kernel (`examples/texfetch.rs`,
// `examples/variants.rs`).
// Inner loops chain 4 products per accumulator update: lavapipe blends every register written
// inside a loop with the loop's mask, so fewer updates mean fewer blends.
// lavapipe has no fused multiply-add (a·b + c is a multiply and an add), which caps these
// kernels near 80 GFLOP/s on 2 AVX2 cores; they reach 35–52 on an AVX-512 Xeon and 12–24 on
// a 2-core AMD EPYC (`examples/variants.rs`).
//
// Entry points (the launcher picks them only when the device's subgroup size is 8):
//   conv2d_forward_sg          output = conv(input, weight) + bias (then ReLU when p.relu = 1)
//                              O % 4 == 0; any C
//   conv2d_forward_sg_c3       the same for C == 3 (RGB input), the channel loop unrolled
//   conv2d_forward_sg_c4       the same for C % 4 == 0: 4 input channels per step, one vec4 load
//   (all three with p.pool = 1: also pooled = avgpool 2×2 of the output, from registers; the pixel
//   tiles are then 2 rows × 4 columns, OH even and OW a multiple of 4)
//   conv2d_backward_input_sg   dinput = conv_transpose(dout, weight); O % 4 == 0, C % 4 == 0
//   conv2d_backward_weight_sg  partials[s] as conv2d_backward_weight (rows KH·KW·C plus the bias
//                              row, split-K over output pixels); O % 4 == 0. The reduction is
//                              conv2d.wgsl's conv2d_backward_weight_reduce (with one split, as
//                              for dense layers, the partials are the gradients themselves).
//   conv2d_backward_weight_sg_c4  the same for C % 4 == 0: input taps loaded as vec4s (4 rows of
//                              one tap per lane), bitwise equal to conv2d_backward_weight_sg;
//                              conv2d_backward_weight_sg_o16_c4 likewise for the 16-channel tiles
//   conv2d_forward_sg_c4_o16, conv2d_backward_input_sg_c16, conv2d_backward_weight_sg_o16:
//                              the same with 16-channel tiles (every lane owns 2 channels, one
//                              vec2) for tensors of at most 16 channels (ResNet-20's first stage),
//                              where the 32-channel tiles above leave half the lanes idle or more.
//                              Same loads per step (vec2 instead of vec4 weights or dout), half
//                              the multiply-adds per lane: 1.6–1.8× faster at 16 channels on
//                              lavapipe. The 16-output-channel ones read their vec2 operand from
//                              rg32float mirrors (bindings 32, 33): ~5–8 % faster than halves of
//                              rgba32float texels (a whole fetch and a select each). Summation order is that of the 32-channel kernels, so the
//                              results are bitwise equal to theirs. No pooled output.
//   winograd_gemm_sg, winograd_gemm_weight_sg: the 36 GEMMs of a Winograd F(4×4, 3×3)
//                              convolution (winograd.wgsl has the transforms around them), the
//                              forward's scheme and the weight gradient's, at the end of this file.
// Each entry point is a loop around its `_tile` function: a subgroup computes the tile at its
// place in the grid, or (p.queue = 1, CPU-type adapters) tile after tile from the tile queue
// until none is left (see `tile_queue`); either way a tile's sums are the same, in the same order.
// Lanes past the end of a tensor load clamped indices and store nothing; a subgroup past the end
// of the grid returns as a whole, so every broadcast reads an active lane. No float atomics:
// results are bitwise reproducible.

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
// insert per lane and component): 1.3-1.6x on the forward kernels (examples/texfetch.rs).
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
// place in the grid, so results are bitwise the same; only which thread computes it changes.
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
// per lane, 64 with 16-channel tiles) spill; that costs less than the loads saved: 1.1–1.45×
// over two tiles per kernel on a Zen 5 EPYC, with 32 vector registers or 16
// (`GALLIUM_OVERRIDE_CPU_CAPS=avx`; `examples/texfetch.rs`); six tiles gained nothing more,
// eight lost (docs/benchmarks.md, twelfth session).
const TILE: u32 = 32u;

fn forward_tiles(ch: u32) -> u32 {
    return ((p.o / ch + SG - 1u) / SG) * ((p.n * p.out_h * p.out_w + TILE - 1u) / TILE);
}

fn input_tiles(ch: u32) -> u32 {
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    return ((p.c / ch + SG - 1u) / SG) * p.sh * p.sw * ((p.n * hq * wq + TILE - 1u) / TILE);
}

fn weight_tiles(ch: u32) -> u32 {
    let rows = p.kh * p.kw * p.c + 1u;
    return ((p.o / ch + SG - 1u) / SG) * ((rows + TILE - 1u) / TILE) * p.splits;
}

// Output pixel of lane/pixel i of pixel tile g: 8 consecutive pixels, or with p.pool = 1 a
// block of 2 rows × 4 columns (OH even, OW a multiple of 4), so that the tile holds two whole
// 2×2 pooling windows.
fn tile_pixel(g: u32, i: u32) -> u32 {
    if (p.pool == 0u) { return g * SG + i; }
    // Tile g covers rows 2t, 2t+1 (t = g / (OW/4) counts row pairs across images, OH being
    // even) and columns 4·(g mod OW/4) + 0..3. One division: lavapipe divides lane by lane.
    let qw = p.out_w / 4u;
    let t = g / qw;
    return (2u * t + i / 4u) * p.out_w + (g - t * qw) * 4u + i % 4u;
}

// With p.pool = 1: the pooled pixel of tile g's left window (the right one is the next).
fn pooled_pixel(g: u32) -> u32 {
    let qw = p.out_w / 4u;
    let t = g / qw;
    return t * (p.out_w / 2u) + (g - t * qw) * 2u;
}

// With p.mask = 1 (p.relu = 1 and p.pool = 1: the ReLU output is read only as the pool
// backward's mask) the output is not stored; `relu_mask` gets its signs instead, one bit per
// channel: word m·ceil(O/32) + c/32 of pixel m holds bit c % 32 = [output(m, c) > 0]. The
// 8 lanes' nibbles of a pixel are OR-ed across the subgroup and lane i stores pixel i's word:
// one u32 store per lane where the output takes eight vec4s.
@group(0) @binding(19) var<storage, read_write> relu_mask: array<u32>;

fn store_output_tile(g: u32, q: u32, o4: u32, acc_in: array<vec4<f32>, 8>) {
    let m_total = p.n * p.out_h * p.out_w;
    let qb = min(q, o4 - 1u);
    let b = select(vec4<f32>(0.0),
        vec4<f32>(bias[4u * qb], bias[4u * qb + 1u], bias[4u * qb + 2u], bias[4u * qb + 3u]),
        p.bias != 0u);
    let relu = p.relu != 0u;
    let pool = p.pool != 0u;
    let m0 = tile_pixel(g, 0u);
    var acc = acc_in;
    for (var i = 0u; i < SG; i++) {
        let v = acc[i] + b;
        acc[i] = select(v, max(v, vec4<f32>(0.0)), relu);
    }
    if (p.mask != 0u) {
        // Every lane takes part in the ORs (lanes past O give 0); then the stores.
        let lane = q % SG;
        var mine = 0u;
        for (var i = 0u; i < SG; i++) {
            let s = vec4<u32>(acc[i] > vec4<f32>(0.0)) << vec4<u32>(0u, 1u, 2u, 3u);
            let nib = select(0u, s.x | s.y | s.z | s.w, q < o4);
            let word = subgroupOr(nib << (4u * lane));
            mine = select(mine, word, lane == i);
        }
        let m = m0 + select(lane, (lane / 4u) * p.out_w + lane % 4u, pool);
        if (m < m_total) { relu_mask[m * ((o4 + SG - 1u) / SG) + q / SG] = mine; }
    }
    if (q >= o4) { return; }
    if (p.mask == 0u) {
        for (var i = 0u; i < SG; i++) {
            let m = m0 + select(i, (i / 4u) * p.out_w + i % 4u, pool);
            if (m < m_total) { output4[m * o4 + q] = acc[i]; }
        }
    }
    if (pool && m0 < m_total) {
        // Windows: columns 0-1 and 2-3 of the tile's two rows.
        let pm = pooled_pixel(g);
        pooled4[pm * o4 + q] = (acc[0] + acc[1] + acc[4] + acc[5]) * 0.25;
        pooled4[(pm + 1u) * o4 + q] = (acc[2] + acc[3] + acc[6] + acc[7]) * 0.25;
    }
}

// Output pixel m's window origin: (x, y) of its top-left tap (may be negative), first input
// row of its image.
fn window(m: u32) -> vec3<i32> {
    let t = m / p.out_w;
    return vec3<i32>(i32(m % p.out_w * p.sw) - i32(p.pad_l), i32(t % p.out_h * p.sh) - i32(p.pad_t),
                     i32(t / p.out_h * p.h));
}

// Offset of tap (ky, kx) of window `o` in the input, or -1 in the padding.
fn window_tap(o: vec3<i32>, ky: u32, kx: u32) -> i32 {
    let iy = o.y + i32(ky);
    let ix = o.x + i32(kx);
    let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
    return select(-1, ((o.z + iy) * i32(p.w) + ix) * i32(p.c), ok);
}

// Any C (C = 3 has conv2d_forward_sg_c3, C % 4 == 0 conv2d_forward_sg_c4), four 8-pixel tiles
// per subgroup.
fn conv2d_forward_sg_tile(t: u32, lane: u32) {
    let m_total = p.n * p.out_h * p.out_w;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let g = (t / otiles) * 4u;
    // This lane loads the input of pixel `lane` of each of the four tiles.
    let wa = window(min(tile_pixel(g, lane), m_total - 1u));
    let wb = window(min(tile_pixel(g + 1u, lane), m_total - 1u));
    let wc = window(min(tile_pixel(g + 2u, lane), m_total - 1u));
    let wd = window(min(tile_pixel(g + 3u, lane), m_total - 1u));
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var cc = array<vec4<f32>, 8>();
    var dd = array<vec4<f32>, 8>();
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let oa = window_tap(wa, ky, kx);
            let ob = window_tap(wb, ky, kx);
            let oc = window_tap(wc, ky, kx);
            let od = window_tap(wd, ky, kx);
            let ua = u32(max(oa, 0));
            let ub = u32(max(ob, 0));
            let uc = u32(max(oc, 0));
            let ud = u32(max(od, 0));
            var wr = (ky * p.kw + kx) * p.c * o4 + qc;
            for (var c = 0u; c < p.c; c++) {
                let x = select(0.0, input[ua + c], oa >= 0);
                let y = select(0.0, input[ub + c], ob >= 0);
                let xc = select(0.0, input[uc + c], oc >= 0);
                let xd = select(0.0, input[ud + c], od >= 0);
                let w = weight_vec4(wr);
                wr += o4;
                a[0] += subgroupBroadcast(x, 0u) * w;
                a[1] += subgroupBroadcast(x, 1u) * w;
                a[2] += subgroupBroadcast(x, 2u) * w;
                a[3] += subgroupBroadcast(x, 3u) * w;
                a[4] += subgroupBroadcast(x, 4u) * w;
                a[5] += subgroupBroadcast(x, 5u) * w;
                a[6] += subgroupBroadcast(x, 6u) * w;
                a[7] += subgroupBroadcast(x, 7u) * w;
                b[0] += subgroupBroadcast(y, 0u) * w;
                b[1] += subgroupBroadcast(y, 1u) * w;
                b[2] += subgroupBroadcast(y, 2u) * w;
                b[3] += subgroupBroadcast(y, 3u) * w;
                b[4] += subgroupBroadcast(y, 4u) * w;
                b[5] += subgroupBroadcast(y, 5u) * w;
                b[6] += subgroupBroadcast(y, 6u) * w;
                b[7] += subgroupBroadcast(y, 7u) * w;
                cc[0] += subgroupBroadcast(xc, 0u) * w;
                cc[1] += subgroupBroadcast(xc, 1u) * w;
                cc[2] += subgroupBroadcast(xc, 2u) * w;
                cc[3] += subgroupBroadcast(xc, 3u) * w;
                cc[4] += subgroupBroadcast(xc, 4u) * w;
                cc[5] += subgroupBroadcast(xc, 5u) * w;
                cc[6] += subgroupBroadcast(xc, 6u) * w;
                cc[7] += subgroupBroadcast(xc, 7u) * w;
                dd[0] += subgroupBroadcast(xd, 0u) * w;
                dd[1] += subgroupBroadcast(xd, 1u) * w;
                dd[2] += subgroupBroadcast(xd, 2u) * w;
                dd[3] += subgroupBroadcast(xd, 3u) * w;
                dd[4] += subgroupBroadcast(xd, 4u) * w;
                dd[5] += subgroupBroadcast(xd, 5u) * w;
                dd[6] += subgroupBroadcast(xd, 6u) * w;
                dd[7] += subgroupBroadcast(xd, 7u) * w;
            }
        }
    }
    store_output_tile(g, q, o4, a);
    store_output_tile(g + 1u, q, o4, b);
    store_output_tile(g + 2u, q, o4, cc);
    store_output_tile(g + 3u, q, o4, dd);
}

@compute @workgroup_size(64)
fn conv2d_forward_sg(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let tiles = forward_tiles(4u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_forward_sg_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// One broadcast pixel (3 input channels) times 3 weight rows, in conv2d_forward_sg's order.
fn mac3(acc: vec4<f32>, x: vec3<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>) -> vec4<f32> {
    return acc + x.x * w0 + x.y * w1 + x.z * w2;
}

// C == 3 (RGB images into a first layer): conv2d_forward_sg with the channel loop unrolled, a
// tap's 3 products chained into one accumulator update (lavapipe blends every accumulator
// written inside a loop once per update) and one vec3 broadcast per pixel; four 8-pixel tiles
// per subgroup, as conv2d_forward_sg_c4. The same sums in the same order as conv2d_forward_sg:
// bitwise equal results.
fn conv2d_forward_sg_c3_tile(t: u32, lane: u32) {
    let m_total = p.n * p.out_h * p.out_w;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let g = (t / otiles) * 4u;
    let wa = window(min(tile_pixel(g, lane), m_total - 1u));
    let wb = window(min(tile_pixel(g + 1u, lane), m_total - 1u));
    let wc = window(min(tile_pixel(g + 2u, lane), m_total - 1u));
    let wd = window(min(tile_pixel(g + 3u, lane), m_total - 1u));
    let z = vec3<f32>(0.0);
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var cc = array<vec4<f32>, 8>();
    var dd = array<vec4<f32>, 8>();
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let oa = window_tap(wa, ky, kx);
            let ob = window_tap(wb, ky, kx);
            let oc = window_tap(wc, ky, kx);
            let od = window_tap(wd, ky, kx);
            let ua = u32(max(oa, 0));
            let ub = u32(max(ob, 0));
            let uc = u32(max(oc, 0));
            let ud = u32(max(od, 0));
            let xa = select(z, vec3<f32>(input[ua], input[ua + 1u], input[ua + 2u]), oa >= 0);
            let xb = select(z, vec3<f32>(input[ub], input[ub + 1u], input[ub + 2u]), ob >= 0);
            let xc = select(z, vec3<f32>(input[uc], input[uc + 1u], input[uc + 2u]), oc >= 0);
            let xd = select(z, vec3<f32>(input[ud], input[ud + 1u], input[ud + 2u]), od >= 0);
            let wr = (ky * p.kw + kx) * 3u * o4 + qc;
            let w0 = weight_vec4(wr);
            let w1 = weight_vec4(wr + o4);
            let w2 = weight_vec4(wr + 2u * o4);
            a[0] = mac3(a[0], subgroupBroadcast(xa, 0u), w0, w1, w2);
            a[1] = mac3(a[1], subgroupBroadcast(xa, 1u), w0, w1, w2);
            a[2] = mac3(a[2], subgroupBroadcast(xa, 2u), w0, w1, w2);
            a[3] = mac3(a[3], subgroupBroadcast(xa, 3u), w0, w1, w2);
            a[4] = mac3(a[4], subgroupBroadcast(xa, 4u), w0, w1, w2);
            a[5] = mac3(a[5], subgroupBroadcast(xa, 5u), w0, w1, w2);
            a[6] = mac3(a[6], subgroupBroadcast(xa, 6u), w0, w1, w2);
            a[7] = mac3(a[7], subgroupBroadcast(xa, 7u), w0, w1, w2);
            b[0] = mac3(b[0], subgroupBroadcast(xb, 0u), w0, w1, w2);
            b[1] = mac3(b[1], subgroupBroadcast(xb, 1u), w0, w1, w2);
            b[2] = mac3(b[2], subgroupBroadcast(xb, 2u), w0, w1, w2);
            b[3] = mac3(b[3], subgroupBroadcast(xb, 3u), w0, w1, w2);
            b[4] = mac3(b[4], subgroupBroadcast(xb, 4u), w0, w1, w2);
            b[5] = mac3(b[5], subgroupBroadcast(xb, 5u), w0, w1, w2);
            b[6] = mac3(b[6], subgroupBroadcast(xb, 6u), w0, w1, w2);
            b[7] = mac3(b[7], subgroupBroadcast(xb, 7u), w0, w1, w2);
            cc[0] = mac3(cc[0], subgroupBroadcast(xc, 0u), w0, w1, w2);
            cc[1] = mac3(cc[1], subgroupBroadcast(xc, 1u), w0, w1, w2);
            cc[2] = mac3(cc[2], subgroupBroadcast(xc, 2u), w0, w1, w2);
            cc[3] = mac3(cc[3], subgroupBroadcast(xc, 3u), w0, w1, w2);
            cc[4] = mac3(cc[4], subgroupBroadcast(xc, 4u), w0, w1, w2);
            cc[5] = mac3(cc[5], subgroupBroadcast(xc, 5u), w0, w1, w2);
            cc[6] = mac3(cc[6], subgroupBroadcast(xc, 6u), w0, w1, w2);
            cc[7] = mac3(cc[7], subgroupBroadcast(xc, 7u), w0, w1, w2);
            dd[0] = mac3(dd[0], subgroupBroadcast(xd, 0u), w0, w1, w2);
            dd[1] = mac3(dd[1], subgroupBroadcast(xd, 1u), w0, w1, w2);
            dd[2] = mac3(dd[2], subgroupBroadcast(xd, 2u), w0, w1, w2);
            dd[3] = mac3(dd[3], subgroupBroadcast(xd, 3u), w0, w1, w2);
            dd[4] = mac3(dd[4], subgroupBroadcast(xd, 4u), w0, w1, w2);
            dd[5] = mac3(dd[5], subgroupBroadcast(xd, 5u), w0, w1, w2);
            dd[6] = mac3(dd[6], subgroupBroadcast(xd, 6u), w0, w1, w2);
            dd[7] = mac3(dd[7], subgroupBroadcast(xd, 7u), w0, w1, w2);
        }
    }
    store_output_tile(g, q, o4, a);
    store_output_tile(g + 1u, q, o4, b);
    store_output_tile(g + 2u, q, o4, cc);
    store_output_tile(g + 3u, q, o4, dd);
}

@compute @workgroup_size(64)
fn conv2d_forward_sg_c3(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let tiles = forward_tiles(4u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_forward_sg_c3_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// One broadcast pixel (4 input channels) times 4 weight rows, summed in a fixed order.
fn mac4(acc: vec4<f32>, x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>,
        w3: vec4<f32>) -> vec4<f32> {
    return acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
}

// C % 4 == 0: 4 input channels per step (one vec4 load per pixel) and four pixel tiles per
// subgroup (32 pixels × 32 channels, 128 accumulators per lane): the weights fetched once
// feed all four tiles. The accumulators spill, but each weight fetch now feeds 4 tiles'
// multiply-adds: 1.10–1.17× over two tiles on a Zen 5 EPYC with 32 vector registers and
// 1.18–1.20× with 16 (`GALLIUM_OVERRIDE_CPU_CAPS=avx`), `examples/texfetch.rs` (on the earlier
// AVX2 EPYC, with weights from storage, four tiles were slower: 43 against 48 GFLOP/s).
// The tiles are independent: each pixel's sums are those of a one-tile kernel, in the same
// order.
fn conv2d_forward_sg_c4_tile(t: u32, lane: u32) {
    let m_total = p.n * p.out_h * p.out_w;
    let o4 = p.o / 4u;
    let cq = p.c / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let g = (t / otiles) * 4u;
    let wa = window(min(tile_pixel(g, lane), m_total - 1u));
    let wb = window(min(tile_pixel(g + 1u, lane), m_total - 1u));
    let wc = window(min(tile_pixel(g + 2u, lane), m_total - 1u));
    let wd = window(min(tile_pixel(g + 3u, lane), m_total - 1u));
    let z = vec4<f32>(0.0);
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var c2 = array<vec4<f32>, 8>();
    var d = array<vec4<f32>, 8>();
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            // window_tap counts floats; C % 4 == 0 makes it a whole number of vec4s.
            let oa = window_tap(wa, ky, kx);
            let ob = window_tap(wb, ky, kx);
            let oc = window_tap(wc, ky, kx);
            let od = window_tap(wd, ky, kx);
            let offa = u32(max(oa, 0)) / 4u;
            let offb = u32(max(ob, 0)) / 4u;
            let offc = u32(max(oc, 0)) / 4u;
            let offd = u32(max(od, 0)) / 4u;
            var wr = (ky * p.kw + kx) * p.c * o4 + qc;
            for (var c = 0u; c < cq; c++) {
                let xa = select(z, input4[offa + c], oa >= 0);
                let xb = select(z, input4[offb + c], ob >= 0);
                let xc = select(z, input4[offc + c], oc >= 0);
                let xd = select(z, input4[offd + c], od >= 0);
                let w0 = weight_vec4(wr);
                let w1 = weight_vec4(wr + o4);
                let w2 = weight_vec4(wr + 2u * o4);
                let w3 = weight_vec4(wr + 3u * o4);
                wr += 4u * o4;
                a = mac_tile(a, xa, w0, w1, w2, w3);
                b = mac_tile(b, xb, w0, w1, w2, w3);
                c2 = mac_tile(c2, xc, w0, w1, w2, w3);
                d = mac_tile(d, xd, w0, w1, w2, w3);
            }
        }
    }
    store_output_tile(g, q, o4, a);
    store_output_tile(g + 1u, q, o4, b);
    store_output_tile(g + 2u, q, o4, c2);
    store_output_tile(g + 3u, q, o4, d);
}

@compute @workgroup_size(64)
fn conv2d_forward_sg_c4(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let tiles = forward_tiles(4u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_forward_sg_c4_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// 16-channel tiles: lane i owns output channels 2q, 2q + 1 (q = tile·8 + i) of 32 pixels (four
// tiles of 8, as conv2d_forward_sg_c4: ~1.15× over two on ResNet-20's first stage),
// accumulated in the same order as mac4.
fn mac4x2(acc: vec2<f32>, x: vec4<f32>, w0: vec2<f32>, w1: vec2<f32>, w2: vec2<f32>,
          w3: vec2<f32>) -> vec2<f32> {
    return acc + x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
}

fn store_output_tile2(m0: u32, q: u32, o2: u32, acc: array<vec2<f32>, 8>) {
    if (q >= o2) { return; }
    let m_total = p.n * p.out_h * p.out_w;
    let b = select(vec2<f32>(0.0), vec2<f32>(bias[2u * q], bias[2u * q + 1u]), p.bias != 0u);
    let relu = p.relu != 0u;
    for (var i = 0u; i < SG; i++) {
        let v = acc[i] + b;
        if (m0 + i < m_total) {
            output2[(m0 + i) * o2 + q] = select(v, max(v, vec2<f32>(0.0)), relu);
        }
    }
}

// C % 4 == 0, O % 2 == 0 (the launcher: O <= 16), p.pool = 0. 1.8× conv2d_forward_sg_c4 on
// lavapipe at 128×32×32×16 → 16 (3×3), both with two pixel tiles per subgroup.
fn conv2d_forward_sg_c4_o16_tile(t: u32, lane: u32) {
    let m_total = p.n * p.out_h * p.out_w;
    let o2 = p.o / 2u;
    let cq = p.c / 4u;
    let otiles = (o2 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o2 - 1u);
    let m0 = (t / otiles) * 32u;
    let z = vec4<f32>(0.0);
    let wxa = window(min(m0 + lane, m_total - 1u));
    let wxb = window(min(m0 + 1u * SG + lane, m_total - 1u));
    let wxc = window(min(m0 + 2u * SG + lane, m_total - 1u));
    let wxd = window(min(m0 + 3u * SG + lane, m_total - 1u));
    var a = array<vec2<f32>, 8>();
    var b = array<vec2<f32>, 8>();
    var cc = array<vec2<f32>, 8>();
    var dd = array<vec2<f32>, 8>();
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let oxa = window_tap(wxa, ky, kx);
            let uxa = u32(max(oxa, 0)) / 4u;
            let oxb = window_tap(wxb, ky, kx);
            let uxb = u32(max(oxb, 0)) / 4u;
            let oxc = window_tap(wxc, ky, kx);
            let uxc = u32(max(oxc, 0)) / 4u;
            let oxd = window_tap(wxd, ky, kx);
            let uxd = u32(max(oxd, 0)) / 4u;
            var wr = (ky * p.kw + kx) * p.c * o2 + qc;
            for (var c = 0u; c < cq; c++) {
                let xa = select(z, input4[uxa + c], oxa >= 0);
                let xb = select(z, input4[uxb + c], oxb >= 0);
                let xc = select(z, input4[uxc + c], oxc >= 0);
                let xd = select(z, input4[uxd + c], oxd >= 0);
                let w0 = weight_vec2(wr);
                let w1 = weight_vec2(wr + o2);
                let w2 = weight_vec2(wr + 2u * o2);
                let w3 = weight_vec2(wr + 3u * o2);
                wr += 4u * o2;
                a[0] = mac4x2(a[0], subgroupBroadcast(xa, 0u), w0, w1, w2, w3);
                a[1] = mac4x2(a[1], subgroupBroadcast(xa, 1u), w0, w1, w2, w3);
                a[2] = mac4x2(a[2], subgroupBroadcast(xa, 2u), w0, w1, w2, w3);
                a[3] = mac4x2(a[3], subgroupBroadcast(xa, 3u), w0, w1, w2, w3);
                a[4] = mac4x2(a[4], subgroupBroadcast(xa, 4u), w0, w1, w2, w3);
                a[5] = mac4x2(a[5], subgroupBroadcast(xa, 5u), w0, w1, w2, w3);
                a[6] = mac4x2(a[6], subgroupBroadcast(xa, 6u), w0, w1, w2, w3);
                a[7] = mac4x2(a[7], subgroupBroadcast(xa, 7u), w0, w1, w2, w3);
                b[0] = mac4x2(b[0], subgroupBroadcast(xb, 0u), w0, w1, w2, w3);
                b[1] = mac4x2(b[1], subgroupBroadcast(xb, 1u), w0, w1, w2, w3);
                b[2] = mac4x2(b[2], subgroupBroadcast(xb, 2u), w0, w1, w2, w3);
                b[3] = mac4x2(b[3], subgroupBroadcast(xb, 3u), w0, w1, w2, w3);
                b[4] = mac4x2(b[4], subgroupBroadcast(xb, 4u), w0, w1, w2, w3);
                b[5] = mac4x2(b[5], subgroupBroadcast(xb, 5u), w0, w1, w2, w3);
                b[6] = mac4x2(b[6], subgroupBroadcast(xb, 6u), w0, w1, w2, w3);
                b[7] = mac4x2(b[7], subgroupBroadcast(xb, 7u), w0, w1, w2, w3);
                cc[0] = mac4x2(cc[0], subgroupBroadcast(xc, 0u), w0, w1, w2, w3);
                cc[1] = mac4x2(cc[1], subgroupBroadcast(xc, 1u), w0, w1, w2, w3);
                cc[2] = mac4x2(cc[2], subgroupBroadcast(xc, 2u), w0, w1, w2, w3);
                cc[3] = mac4x2(cc[3], subgroupBroadcast(xc, 3u), w0, w1, w2, w3);
                cc[4] = mac4x2(cc[4], subgroupBroadcast(xc, 4u), w0, w1, w2, w3);
                cc[5] = mac4x2(cc[5], subgroupBroadcast(xc, 5u), w0, w1, w2, w3);
                cc[6] = mac4x2(cc[6], subgroupBroadcast(xc, 6u), w0, w1, w2, w3);
                cc[7] = mac4x2(cc[7], subgroupBroadcast(xc, 7u), w0, w1, w2, w3);
                dd[0] = mac4x2(dd[0], subgroupBroadcast(xd, 0u), w0, w1, w2, w3);
                dd[1] = mac4x2(dd[1], subgroupBroadcast(xd, 1u), w0, w1, w2, w3);
                dd[2] = mac4x2(dd[2], subgroupBroadcast(xd, 2u), w0, w1, w2, w3);
                dd[3] = mac4x2(dd[3], subgroupBroadcast(xd, 3u), w0, w1, w2, w3);
                dd[4] = mac4x2(dd[4], subgroupBroadcast(xd, 4u), w0, w1, w2, w3);
                dd[5] = mac4x2(dd[5], subgroupBroadcast(xd, 5u), w0, w1, w2, w3);
                dd[6] = mac4x2(dd[6], subgroupBroadcast(xd, 6u), w0, w1, w2, w3);
                dd[7] = mac4x2(dd[7], subgroupBroadcast(xd, 7u), w0, w1, w2, w3);
            }
        }
    }
    store_output_tile2(m0, q, o2, a);
    store_output_tile2(m0 + 1u * SG, q, o2, b);
    store_output_tile2(m0 + 2u * SG, q, o2, cc);
    store_output_tile2(m0 + 3u * SG, q, o2, dd);
}

@compute @workgroup_size(64)
fn conv2d_forward_sg_c4_o16(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let tiles = forward_tiles(2u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_forward_sg_c4_o16_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// (Σ_k b[k]·w_j[k])_j for 4 weight rows w_j: one broadcast vec4 of dout against the 4 channels.
fn dot4(b: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(b, w0), dot(b, w1), dot(b, w2), dot(b, w3));
}

// Input pixel m with its padded coordinates divided by the stride: x + pad_l = qx·SW + rx,
// y + pad_t = qy·SH + ry (the remainders are its tile's phase; the divisions once per
// pixel), and the first output row of its image.
struct InPixel { qx: i32, qy: i32, nb: u32 }

fn in_pixel(m: u32) -> InPixel {
    let t = m / p.w;
    let x = m % p.w + p.pad_l;
    let y = t % p.h + p.pad_t;
    return InPixel(i32(x / p.sw), i32(y / p.sh), (t / p.h) * p.out_h);
}

// Pixel j of tile t's phase (j counts from the tile's first), or N·H·W when past the
// phase's pixels.
fn phase_pixel(t: Phase, j: u32) -> u32 { return phase_pixel_at(t.ry, t.rx, t.first + j); }

// dout4 offset of the tap (ky, kx) = kq·(SH, SW) + the tile's phase of input pixel q, and
// whether that tap exists: the output pixel oy = (y + pad_t − ky) / SH = qy − kq.y must lie
// inside the output (it divides exactly: the phase is the tap's remainder; lanes past the
// phase's pixels read a clamped pixel of any phase, in bounds, and store nothing); the same in x.
fn dout_tap(q: InPixel, kq: vec2<u32>, o4: u32) -> vec2<u32> {
    let oy = q.qy - i32(kq.y);
    let ox = q.qx - i32(kq.x);
    let ok = oy >= 0 && oy < i32(p.out_h) && ox >= 0 && ox < i32(p.out_w);
    return vec2<u32>(select(0u, ((q.nb + u32(oy)) * p.out_w + u32(ox)) * o4, ok), u32(ok));
}

// Every lane's `m`: the pixels of a tile whose lane i computed pixel i (call it with the
// whole subgroup active).
fn lane_pixels(m: u32) -> array<u32, 8> {
    return array<u32, 8>(subgroupBroadcast(m, 0u), subgroupBroadcast(m, 1u),
        subgroupBroadcast(m, 2u), subgroupBroadcast(m, 3u), subgroupBroadcast(m, 4u),
        subgroupBroadcast(m, 5u), subgroupBroadcast(m, 6u), subgroupBroadcast(m, 7u));
}

// Stores a tile of pixels `m` (N·H·W: none).
fn store_dinput_tile(m: array<u32, 8>, q: u32, cq: u32, acc: array<vec4<f32>, 8>) {
    let m_total = p.n * p.h * p.w;
    if (q >= cq) { return; }
    for (var i = 0u; i < SG; i++) {
        if (m[i] < m_total) { dinput4[m[i] * cq + q] = acc[i]; }
    }
}

// dinput[n,y,x,c] = Σ_{ky,kx,o} dout[n, oy, ox, o] · weight[ky,kx,c,o] over the taps with
// oy·SH + ky − pad_t = y (and the same in x): the lanes own 4 input channels each, a subgroup
// 32 pixels of one stride phase (four tiles of 8, as conv2d_forward_sg_c4: each weight fetch
// feeds all four); the reduction runs over output channels 4 at a time (a vec4 of dout,
// broadcast from the lane of its pixel, dotted with 4 weight rows of the lane's channels).
fn conv2d_backward_input_sg_tile(t: u32, lane: u32) {
    let m_total = p.n * p.h * p.w;
    let o4 = p.o / 4u;
    let cq = p.c / 4u;
    let ctiles = (cq + SG - 1u) / SG;
    let q = (t % ctiles) * SG + lane;
    let qc = min(q, cq - 1u);
    let tile = stride_phase(t / ctiles, TILE);
    let ma = phase_pixel(tile, lane);
    let mb = phase_pixel(tile, SG + lane);
    let mc = phase_pixel(tile, 2u * SG + lane);
    let md = phase_pixel(tile, 3u * SG + lane);
    let pa = in_pixel(min(ma, m_total - 1u));
    let pb = in_pixel(min(mb, m_total - 1u));
    let pc = in_pixel(min(mc, m_total - 1u));
    let pd = in_pixel(min(md, m_total - 1u));
    let z = vec4<f32>(0.0);
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var c2 = array<vec4<f32>, 8>();
    var d2 = array<vec4<f32>, 8>();
    // The taps of the tile's phase: (ky, kx) = kq·(SH, SW) + (ry, rx).
    var kq = vec2<u32>(0u);
    for (var ky = tile.ry; ky < p.kh; ky += p.sh) {
        kq.x = 0u;
        for (var kx = tile.rx; kx < p.kw; kx += p.sw) {
            let ta = dout_tap(pa, kq, o4);
            let tb = dout_tap(pb, kq, o4);
            let tc = dout_tap(pc, kq, o4);
            let td = dout_tap(pd, kq, o4);
            // Rows of this lane's 4 channels at this tap, o-quad 0.
            var wr = ((ky * p.kw + kx) * p.c + 4u * qc) * o4;
            for (var oq = 0u; oq < o4; oq++) {
                let d = select(z, dout4[ta.x + oq], ta.y != 0u);
                let e = select(z, dout4[tb.x + oq], tb.y != 0u);
                let f = select(z, dout4[tc.x + oq], tc.y != 0u);
                let g = select(z, dout4[td.x + oq], td.y != 0u);
                let w0 = weight_vec4(wr);
                let w1 = weight_vec4(wr + o4);
                let w2 = weight_vec4(wr + 2u * o4);
                let w3 = weight_vec4(wr + 3u * o4);
                wr += 1u;
                a[0] += dot4(subgroupBroadcast(d, 0u), w0, w1, w2, w3);
                a[1] += dot4(subgroupBroadcast(d, 1u), w0, w1, w2, w3);
                a[2] += dot4(subgroupBroadcast(d, 2u), w0, w1, w2, w3);
                a[3] += dot4(subgroupBroadcast(d, 3u), w0, w1, w2, w3);
                a[4] += dot4(subgroupBroadcast(d, 4u), w0, w1, w2, w3);
                a[5] += dot4(subgroupBroadcast(d, 5u), w0, w1, w2, w3);
                a[6] += dot4(subgroupBroadcast(d, 6u), w0, w1, w2, w3);
                a[7] += dot4(subgroupBroadcast(d, 7u), w0, w1, w2, w3);
                b[0] += dot4(subgroupBroadcast(e, 0u), w0, w1, w2, w3);
                b[1] += dot4(subgroupBroadcast(e, 1u), w0, w1, w2, w3);
                b[2] += dot4(subgroupBroadcast(e, 2u), w0, w1, w2, w3);
                b[3] += dot4(subgroupBroadcast(e, 3u), w0, w1, w2, w3);
                b[4] += dot4(subgroupBroadcast(e, 4u), w0, w1, w2, w3);
                b[5] += dot4(subgroupBroadcast(e, 5u), w0, w1, w2, w3);
                b[6] += dot4(subgroupBroadcast(e, 6u), w0, w1, w2, w3);
                b[7] += dot4(subgroupBroadcast(e, 7u), w0, w1, w2, w3);
                c2[0] += dot4(subgroupBroadcast(f, 0u), w0, w1, w2, w3);
                c2[1] += dot4(subgroupBroadcast(f, 1u), w0, w1, w2, w3);
                c2[2] += dot4(subgroupBroadcast(f, 2u), w0, w1, w2, w3);
                c2[3] += dot4(subgroupBroadcast(f, 3u), w0, w1, w2, w3);
                c2[4] += dot4(subgroupBroadcast(f, 4u), w0, w1, w2, w3);
                c2[5] += dot4(subgroupBroadcast(f, 5u), w0, w1, w2, w3);
                c2[6] += dot4(subgroupBroadcast(f, 6u), w0, w1, w2, w3);
                c2[7] += dot4(subgroupBroadcast(f, 7u), w0, w1, w2, w3);
                d2[0] += dot4(subgroupBroadcast(g, 0u), w0, w1, w2, w3);
                d2[1] += dot4(subgroupBroadcast(g, 1u), w0, w1, w2, w3);
                d2[2] += dot4(subgroupBroadcast(g, 2u), w0, w1, w2, w3);
                d2[3] += dot4(subgroupBroadcast(g, 3u), w0, w1, w2, w3);
                d2[4] += dot4(subgroupBroadcast(g, 4u), w0, w1, w2, w3);
                d2[5] += dot4(subgroupBroadcast(g, 5u), w0, w1, w2, w3);
                d2[6] += dot4(subgroupBroadcast(g, 6u), w0, w1, w2, w3);
                d2[7] += dot4(subgroupBroadcast(g, 7u), w0, w1, w2, w3);
            }
            kq.x += 1u;
        }
        kq.y += 1u;
    }
    store_dinput_tile(lane_pixels(ma), q, cq, a);
    store_dinput_tile(lane_pixels(mb), q, cq, b);
    store_dinput_tile(lane_pixels(mc), q, cq, c2);
    store_dinput_tile(lane_pixels(md), q, cq, d2);
}

@compute @workgroup_size(64)
fn conv2d_backward_input_sg(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let tiles = input_tiles(4u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_backward_input_sg_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// 16-channel tiles of dinput: lane i owns input channels 2q, 2q + 1 (their two weight rows per
// o-quad) of 32 pixels; the same reduction order as conv2d_backward_input_sg. C % 2 == 0 (the
// launcher: C % 4 == 0, C <= 16), O % 4 == 0. 1.6× conv2d_backward_input_sg at C = 16 on
// lavapipe (both with two pixel tiles per subgroup; four: another ~1.12× on a Zen 5 EPYC).
fn dot2(b: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(dot(b, w0), dot(b, w1));
}

fn store_dinput_tile2(m: array<u32, 8>, q: u32, c2: u32, acc: array<vec2<f32>, 8>) {
    let m_total = p.n * p.h * p.w;
    if (q >= c2) { return; }
    for (var i = 0u; i < SG; i++) {
        if (m[i] < m_total) { dinput2[m[i] * c2 + q] = acc[i]; }
    }
}

fn conv2d_backward_input_sg_c16_tile(t: u32, lane: u32) {
    let m_total = p.n * p.h * p.w;
    let o4 = p.o / 4u;
    let c2 = p.c / 2u;
    let ctiles = (c2 + SG - 1u) / SG;
    let q = (t % ctiles) * SG + lane;
    let qc = min(q, c2 - 1u);
    let tile = stride_phase(t / ctiles, TILE);
    let ma = phase_pixel(tile, lane);
    let mb = phase_pixel(tile, SG + lane);
    let mc = phase_pixel(tile, 2u * SG + lane);
    let md = phase_pixel(tile, 3u * SG + lane);
    let pa = in_pixel(min(ma, m_total - 1u));
    let pb = in_pixel(min(mb, m_total - 1u));
    let pc = in_pixel(min(mc, m_total - 1u));
    let pd = in_pixel(min(md, m_total - 1u));
    let z = vec4<f32>(0.0);
    var a = array<vec2<f32>, 8>();
    var b = array<vec2<f32>, 8>();
    var cc = array<vec2<f32>, 8>();
    var dd = array<vec2<f32>, 8>();
    // The taps of the tile's phase: (ky, kx) = kq·(SH, SW) + (ry, rx).
    var kq = vec2<u32>(0u);
    for (var ky = tile.ry; ky < p.kh; ky += p.sh) {
        kq.x = 0u;
        for (var kx = tile.rx; kx < p.kw; kx += p.sw) {
            let ta = dout_tap(pa, kq, o4);
            let tb = dout_tap(pb, kq, o4);
            let tc = dout_tap(pc, kq, o4);
            let td = dout_tap(pd, kq, o4);
            // Rows of this lane's 2 channels at this tap, o-quad 0.
            var wr = ((ky * p.kw + kx) * p.c + 2u * qc) * o4;
            for (var oq = 0u; oq < o4; oq++) {
                let da = select(z, dout4[ta.x + oq], ta.y != 0u);
                let db = select(z, dout4[tb.x + oq], tb.y != 0u);
                let dc = select(z, dout4[tc.x + oq], tc.y != 0u);
                let dd4 = select(z, dout4[td.x + oq], td.y != 0u);
                let w0 = weight_vec4(wr);
                let w1 = weight_vec4(wr + o4);
                wr += 1u;
                a[0] += dot2(subgroupBroadcast(da, 0u), w0, w1);
                a[1] += dot2(subgroupBroadcast(da, 1u), w0, w1);
                a[2] += dot2(subgroupBroadcast(da, 2u), w0, w1);
                a[3] += dot2(subgroupBroadcast(da, 3u), w0, w1);
                a[4] += dot2(subgroupBroadcast(da, 4u), w0, w1);
                a[5] += dot2(subgroupBroadcast(da, 5u), w0, w1);
                a[6] += dot2(subgroupBroadcast(da, 6u), w0, w1);
                a[7] += dot2(subgroupBroadcast(da, 7u), w0, w1);
                b[0] += dot2(subgroupBroadcast(db, 0u), w0, w1);
                b[1] += dot2(subgroupBroadcast(db, 1u), w0, w1);
                b[2] += dot2(subgroupBroadcast(db, 2u), w0, w1);
                b[3] += dot2(subgroupBroadcast(db, 3u), w0, w1);
                b[4] += dot2(subgroupBroadcast(db, 4u), w0, w1);
                b[5] += dot2(subgroupBroadcast(db, 5u), w0, w1);
                b[6] += dot2(subgroupBroadcast(db, 6u), w0, w1);
                b[7] += dot2(subgroupBroadcast(db, 7u), w0, w1);
                cc[0] += dot2(subgroupBroadcast(dc, 0u), w0, w1);
                cc[1] += dot2(subgroupBroadcast(dc, 1u), w0, w1);
                cc[2] += dot2(subgroupBroadcast(dc, 2u), w0, w1);
                cc[3] += dot2(subgroupBroadcast(dc, 3u), w0, w1);
                cc[4] += dot2(subgroupBroadcast(dc, 4u), w0, w1);
                cc[5] += dot2(subgroupBroadcast(dc, 5u), w0, w1);
                cc[6] += dot2(subgroupBroadcast(dc, 6u), w0, w1);
                cc[7] += dot2(subgroupBroadcast(dc, 7u), w0, w1);
                dd[0] += dot2(subgroupBroadcast(dd4, 0u), w0, w1);
                dd[1] += dot2(subgroupBroadcast(dd4, 1u), w0, w1);
                dd[2] += dot2(subgroupBroadcast(dd4, 2u), w0, w1);
                dd[3] += dot2(subgroupBroadcast(dd4, 3u), w0, w1);
                dd[4] += dot2(subgroupBroadcast(dd4, 4u), w0, w1);
                dd[5] += dot2(subgroupBroadcast(dd4, 5u), w0, w1);
                dd[6] += dot2(subgroupBroadcast(dd4, 6u), w0, w1);
                dd[7] += dot2(subgroupBroadcast(dd4, 7u), w0, w1);
            }
            kq.x += 1u;
        }
        kq.y += 1u;
    }
    store_dinput_tile2(lane_pixels(ma), q, c2, a);
    store_dinput_tile2(lane_pixels(mb), q, c2, b);
    store_dinput_tile2(lane_pixels(mc), q, c2, cc);
    store_dinput_tile2(lane_pixels(md), q, c2, dd);
}

@compute @workgroup_size(64)
fn conv2d_backward_input_sg_c16(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let tiles = input_tiles(2u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_backward_input_sg_c16_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// partials[s, r, o] = Σ_{m in split s} A[m, r] · dout[m, o] as in conv2d.wgsl (row KH·KW·C is the
// bias row of ones). A subgroup owns 32 rows (four tiles of 8) × 32 output channels: in each
// tile lane i loads row i's input tap, broadcast to every lane, and each lane loads its own
// vec4 of dout once for the four tiles. Pixels go 4 per step
// (one accumulator update per 4 products; the loop mask costs a blend per update).
struct Pixel { x: u32, y: u32, n: u32 }

fn next_pixel(q: Pixel) -> Pixel {
    var r = Pixel(q.x + 1u, q.y, q.n);
    if (r.x == p.out_w) {
        r.x = 0u;
        r.y += 1u;
        if (r.y == p.out_h) { r.y = 0u; r.n += 1u; }
    }
    return r;
}

// Row r's input tap at output pixel q (0 in the padding; `fill` for the bias row and past it).
fn tap(q: Pixel, dy: i32, dx: i32, c: u32, is_w: bool, fill: f32) -> f32 {
    let iy = i32(q.y * p.sh) + dy;
    let ix = i32(q.x * p.sw) + dx;
    let ok = is_w && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
    let off = select(0u, ((q.n * p.h + u32(iy)) * p.w + u32(ix)) * p.c + c, ok);
    return select(fill, input[off], ok);
}

// Row r's coordinates for the weight gradient: (dy, dx) of its tap, its channel, and what it
// reads outside the image: 1 for the bias row (r = KH·KW·C), else 0.
struct Row { dy: i32, dx: i32, c: u32, is_w: bool, fill: f32 }

fn weight_row(r: u32) -> Row {
    let kkc = p.kh * p.kw * p.c;
    let is_w = r < kkc;
    let rc = select(0u, r, is_w);
    return Row(i32(rc / (p.c * p.kw)) - i32(p.pad_t), i32((rc / p.c) % p.kw) - i32(p.pad_l),
               rc % p.c, is_w, select(0.0, 1.0, r == kkc));
}

fn row_tap(q: Pixel, w: Row) -> f32 {
    return tap(q, w.dy, w.dx, w.c, w.is_w, w.fill);
}

// Rows are laid out KH·KW·C + 1 per split; the bias row is stored only with a bias (with one
// split and no bias the partials are exactly the weight gradient, nothing after it).
fn store_partial_tile(s: u32, r0: u32, q: u32, o4: u32, acc: array<vec4<f32>, 8>) {
    let rows = p.kh * p.kw * p.c + 1u;
    let stored = rows - 1u + p.bias;
    if (q >= o4) { return; }
    for (var i = 0u; i < SG; i++) {
        if (r0 + i < stored) { partials4[(s * rows + r0 + i) * o4 + q] = acc[i]; }
    }
}

// A subgroup owns 32 rows (four tiles of 8) × 32 output channels: each dout fetch feeds the
// four tiles (as conv2d_forward_sg_c4's weight fetches).
fn conv2d_backward_weight_sg_tile(t: u32, lane: u32) {
    let kkc = p.kh * p.kw * p.c;
    let rows = kkc + 1u;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let rtiles = (rows + 4u * SG - 1u) / (4u * SG);
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let r0 = ((t / otiles) % rtiles) * 4u * SG;
    let s = t / (otiles * rtiles);
    // The rows this lane loads (a weight row, the bias row, or past the end: zeros).
    let ra = weight_row(r0 + lane);
    let rb = weight_row(r0 + SG + lane);
    let rc = weight_row(r0 + 2u * SG + lane);
    let rd = weight_row(r0 + 3u * SG + lane);

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    var px = Pixel(m_begin % p.out_w, (m_begin / p.out_w) % p.out_h, m_begin / (p.out_w * p.out_h));
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var cc = array<vec4<f32>, 8>();
    var dd = array<vec4<f32>, 8>();
    var mi = m_begin;
    for (; mi + 4u <= m_end; mi += 4u) {
        let p1 = next_pixel(px);
        let p2 = next_pixel(p1);
        let p3 = next_pixel(p2);
        let e0 = row_tap(px, ra);
        let e1 = row_tap(p1, ra);
        let e2 = row_tap(p2, ra);
        let e3 = row_tap(p3, ra);
        let f0 = row_tap(px, rb);
        let f1 = row_tap(p1, rb);
        let f2 = row_tap(p2, rb);
        let f3 = row_tap(p3, rb);
        let g0 = row_tap(px, rc);
        let g1 = row_tap(p1, rc);
        let g2 = row_tap(p2, rc);
        let g3 = row_tap(p3, rc);
        let h0 = row_tap(px, rd);
        let h1 = row_tap(p1, rd);
        let h2 = row_tap(p2, rd);
        let h3 = row_tap(p3, rd);
        px = next_pixel(p3);
        let d0 = dout_vec4(mi * o4 + qc);
        let d1 = dout_vec4((mi + 1u) * o4 + qc);
        let d2 = dout_vec4((mi + 2u) * o4 + qc);
        let d3 = dout_vec4((mi + 3u) * o4 + qc);
        a[0] += subgroupBroadcast(e0, 0u) * d0 + subgroupBroadcast(e1, 0u) * d1
            + subgroupBroadcast(e2, 0u) * d2 + subgroupBroadcast(e3, 0u) * d3;
        a[1] += subgroupBroadcast(e0, 1u) * d0 + subgroupBroadcast(e1, 1u) * d1
            + subgroupBroadcast(e2, 1u) * d2 + subgroupBroadcast(e3, 1u) * d3;
        a[2] += subgroupBroadcast(e0, 2u) * d0 + subgroupBroadcast(e1, 2u) * d1
            + subgroupBroadcast(e2, 2u) * d2 + subgroupBroadcast(e3, 2u) * d3;
        a[3] += subgroupBroadcast(e0, 3u) * d0 + subgroupBroadcast(e1, 3u) * d1
            + subgroupBroadcast(e2, 3u) * d2 + subgroupBroadcast(e3, 3u) * d3;
        a[4] += subgroupBroadcast(e0, 4u) * d0 + subgroupBroadcast(e1, 4u) * d1
            + subgroupBroadcast(e2, 4u) * d2 + subgroupBroadcast(e3, 4u) * d3;
        a[5] += subgroupBroadcast(e0, 5u) * d0 + subgroupBroadcast(e1, 5u) * d1
            + subgroupBroadcast(e2, 5u) * d2 + subgroupBroadcast(e3, 5u) * d3;
        a[6] += subgroupBroadcast(e0, 6u) * d0 + subgroupBroadcast(e1, 6u) * d1
            + subgroupBroadcast(e2, 6u) * d2 + subgroupBroadcast(e3, 6u) * d3;
        a[7] += subgroupBroadcast(e0, 7u) * d0 + subgroupBroadcast(e1, 7u) * d1
            + subgroupBroadcast(e2, 7u) * d2 + subgroupBroadcast(e3, 7u) * d3;
        b[0] += subgroupBroadcast(f0, 0u) * d0 + subgroupBroadcast(f1, 0u) * d1
            + subgroupBroadcast(f2, 0u) * d2 + subgroupBroadcast(f3, 0u) * d3;
        b[1] += subgroupBroadcast(f0, 1u) * d0 + subgroupBroadcast(f1, 1u) * d1
            + subgroupBroadcast(f2, 1u) * d2 + subgroupBroadcast(f3, 1u) * d3;
        b[2] += subgroupBroadcast(f0, 2u) * d0 + subgroupBroadcast(f1, 2u) * d1
            + subgroupBroadcast(f2, 2u) * d2 + subgroupBroadcast(f3, 2u) * d3;
        b[3] += subgroupBroadcast(f0, 3u) * d0 + subgroupBroadcast(f1, 3u) * d1
            + subgroupBroadcast(f2, 3u) * d2 + subgroupBroadcast(f3, 3u) * d3;
        b[4] += subgroupBroadcast(f0, 4u) * d0 + subgroupBroadcast(f1, 4u) * d1
            + subgroupBroadcast(f2, 4u) * d2 + subgroupBroadcast(f3, 4u) * d3;
        b[5] += subgroupBroadcast(f0, 5u) * d0 + subgroupBroadcast(f1, 5u) * d1
            + subgroupBroadcast(f2, 5u) * d2 + subgroupBroadcast(f3, 5u) * d3;
        b[6] += subgroupBroadcast(f0, 6u) * d0 + subgroupBroadcast(f1, 6u) * d1
            + subgroupBroadcast(f2, 6u) * d2 + subgroupBroadcast(f3, 6u) * d3;
        b[7] += subgroupBroadcast(f0, 7u) * d0 + subgroupBroadcast(f1, 7u) * d1
            + subgroupBroadcast(f2, 7u) * d2 + subgroupBroadcast(f3, 7u) * d3;
        cc[0] += subgroupBroadcast(g0, 0u) * d0 + subgroupBroadcast(g1, 0u) * d1
            + subgroupBroadcast(g2, 0u) * d2 + subgroupBroadcast(g3, 0u) * d3;
        cc[1] += subgroupBroadcast(g0, 1u) * d0 + subgroupBroadcast(g1, 1u) * d1
            + subgroupBroadcast(g2, 1u) * d2 + subgroupBroadcast(g3, 1u) * d3;
        cc[2] += subgroupBroadcast(g0, 2u) * d0 + subgroupBroadcast(g1, 2u) * d1
            + subgroupBroadcast(g2, 2u) * d2 + subgroupBroadcast(g3, 2u) * d3;
        cc[3] += subgroupBroadcast(g0, 3u) * d0 + subgroupBroadcast(g1, 3u) * d1
            + subgroupBroadcast(g2, 3u) * d2 + subgroupBroadcast(g3, 3u) * d3;
        cc[4] += subgroupBroadcast(g0, 4u) * d0 + subgroupBroadcast(g1, 4u) * d1
            + subgroupBroadcast(g2, 4u) * d2 + subgroupBroadcast(g3, 4u) * d3;
        cc[5] += subgroupBroadcast(g0, 5u) * d0 + subgroupBroadcast(g1, 5u) * d1
            + subgroupBroadcast(g2, 5u) * d2 + subgroupBroadcast(g3, 5u) * d3;
        cc[6] += subgroupBroadcast(g0, 6u) * d0 + subgroupBroadcast(g1, 6u) * d1
            + subgroupBroadcast(g2, 6u) * d2 + subgroupBroadcast(g3, 6u) * d3;
        cc[7] += subgroupBroadcast(g0, 7u) * d0 + subgroupBroadcast(g1, 7u) * d1
            + subgroupBroadcast(g2, 7u) * d2 + subgroupBroadcast(g3, 7u) * d3;
        dd[0] += subgroupBroadcast(h0, 0u) * d0 + subgroupBroadcast(h1, 0u) * d1
            + subgroupBroadcast(h2, 0u) * d2 + subgroupBroadcast(h3, 0u) * d3;
        dd[1] += subgroupBroadcast(h0, 1u) * d0 + subgroupBroadcast(h1, 1u) * d1
            + subgroupBroadcast(h2, 1u) * d2 + subgroupBroadcast(h3, 1u) * d3;
        dd[2] += subgroupBroadcast(h0, 2u) * d0 + subgroupBroadcast(h1, 2u) * d1
            + subgroupBroadcast(h2, 2u) * d2 + subgroupBroadcast(h3, 2u) * d3;
        dd[3] += subgroupBroadcast(h0, 3u) * d0 + subgroupBroadcast(h1, 3u) * d1
            + subgroupBroadcast(h2, 3u) * d2 + subgroupBroadcast(h3, 3u) * d3;
        dd[4] += subgroupBroadcast(h0, 4u) * d0 + subgroupBroadcast(h1, 4u) * d1
            + subgroupBroadcast(h2, 4u) * d2 + subgroupBroadcast(h3, 4u) * d3;
        dd[5] += subgroupBroadcast(h0, 5u) * d0 + subgroupBroadcast(h1, 5u) * d1
            + subgroupBroadcast(h2, 5u) * d2 + subgroupBroadcast(h3, 5u) * d3;
        dd[6] += subgroupBroadcast(h0, 6u) * d0 + subgroupBroadcast(h1, 6u) * d1
            + subgroupBroadcast(h2, 6u) * d2 + subgroupBroadcast(h3, 6u) * d3;
        dd[7] += subgroupBroadcast(h0, 7u) * d0 + subgroupBroadcast(h1, 7u) * d1
            + subgroupBroadcast(h2, 7u) * d2 + subgroupBroadcast(h3, 7u) * d3;
    }
    for (; mi < m_end; mi++) {
        let e = row_tap(px, ra);
        let f = row_tap(px, rb);
        let g = row_tap(px, rc);
        let h = row_tap(px, rd);
        px = next_pixel(px);
        let d = dout_vec4(mi * o4 + qc);
        a[0] += subgroupBroadcast(e, 0u) * d;
        a[1] += subgroupBroadcast(e, 1u) * d;
        a[2] += subgroupBroadcast(e, 2u) * d;
        a[3] += subgroupBroadcast(e, 3u) * d;
        a[4] += subgroupBroadcast(e, 4u) * d;
        a[5] += subgroupBroadcast(e, 5u) * d;
        a[6] += subgroupBroadcast(e, 6u) * d;
        a[7] += subgroupBroadcast(e, 7u) * d;
        b[0] += subgroupBroadcast(f, 0u) * d;
        b[1] += subgroupBroadcast(f, 1u) * d;
        b[2] += subgroupBroadcast(f, 2u) * d;
        b[3] += subgroupBroadcast(f, 3u) * d;
        b[4] += subgroupBroadcast(f, 4u) * d;
        b[5] += subgroupBroadcast(f, 5u) * d;
        b[6] += subgroupBroadcast(f, 6u) * d;
        b[7] += subgroupBroadcast(f, 7u) * d;
        cc[0] += subgroupBroadcast(g, 0u) * d;
        cc[1] += subgroupBroadcast(g, 1u) * d;
        cc[2] += subgroupBroadcast(g, 2u) * d;
        cc[3] += subgroupBroadcast(g, 3u) * d;
        cc[4] += subgroupBroadcast(g, 4u) * d;
        cc[5] += subgroupBroadcast(g, 5u) * d;
        cc[6] += subgroupBroadcast(g, 6u) * d;
        cc[7] += subgroupBroadcast(g, 7u) * d;
        dd[0] += subgroupBroadcast(h, 0u) * d;
        dd[1] += subgroupBroadcast(h, 1u) * d;
        dd[2] += subgroupBroadcast(h, 2u) * d;
        dd[3] += subgroupBroadcast(h, 3u) * d;
        dd[4] += subgroupBroadcast(h, 4u) * d;
        dd[5] += subgroupBroadcast(h, 5u) * d;
        dd[6] += subgroupBroadcast(h, 6u) * d;
        dd[7] += subgroupBroadcast(h, 7u) * d;
    }
    store_partial_tile(s, r0, q, o4, a);
    store_partial_tile(s, r0 + SG, q, o4, b);
    store_partial_tile(s, r0 + 2u * SG, q, o4, cc);
    store_partial_tile(s, r0 + 3u * SG, q, o4, dd);
}

@compute @workgroup_size(64)
fn conv2d_backward_weight_sg(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let tiles = weight_tiles(4u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_backward_weight_sg_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// C % 4 == 0: the same sums, with the input taps loaded as vec4s. Rows r0 + 4h .. r0 + 4h + 3
// (r0 the first row of an 8-row tile) are 4 channels of one tap, so lane 2k + h loads them at pixel k of the
// step in one vec4 where conv2d_backward_weight_sg has every lane load its own row at each of
// the 4 pixels (4 scalar loads, each a per-lane loop on lavapipe): 4 vec4 loads per step
// instead of 16 scalar ones. Same values in the same order: bitwise equal to it.
fn row4_tap(q: Pixel, w: Row) -> vec4<f32> {
    let iy = i32(q.y * p.sh) + w.dy;
    let ix = i32(q.x * p.sw) + w.dx;
    let ok = w.is_w && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
    let off = select(0u, (((q.n * p.h + u32(iy)) * p.w + u32(ix)) * p.c + w.c) / 4u, ok);
    // Outside the image 0; the bias row (r = KH·KW·C, a multiple of 4) 1, the rows after it 0.
    return select(vec4<f32>(w.fill, 0.0, 0.0, 0.0), input4[off], ok);
}

// Pixel k (0..3) of a 4-pixel step.
fn step_pixel(p0: Pixel, p1: Pixel, p2: Pixel, p3: Pixel, k: u32) -> Pixel {
    return Pixel(select(select(select(p0.x, p1.x, k == 1u), p2.x, k == 2u), p3.x, k == 3u),
                 select(select(select(p0.y, p1.y, k == 1u), p2.y, k == 2u), p3.y, k == 3u),
                 select(select(select(p0.n, p1.n, k == 1u), p2.n, k == 2u), p3.n, k == 3u));
}

// One row's tap from the vec4 view (the single-pixel tail).
fn row_tap4(q: Pixel, w: Row) -> f32 {
    let iy = i32(q.y * p.sh) + w.dy;
    let ix = i32(q.x * p.sw) + w.dx;
    let ok = w.is_w && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
    let off = select(0u, ((q.n * p.h + u32(iy)) * p.w + u32(ix)) * p.c + w.c, ok);
    return select(w.fill, input4[off / 4u][off % 4u], ok);
}

// A subgroup owns 32 rows (four tiles of 8, r0 a multiple of 32) × 32 output channels: each
// dout fetch feeds four tiles (as conv2d_forward_sg_c4's weight fetches).
fn conv2d_backward_weight_sg_c4_tile(t: u32, lane: u32) {
    let kkc = p.kh * p.kw * p.c;
    let rows = kkc + 1u;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let rtiles = (rows + 4u * SG - 1u) / (4u * SG);
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let r0 = ((t / otiles) % rtiles) * 4u * SG;
    let s = t / (otiles * rtiles);
    // The pixel of the step this lane loads (k) and which 4 rows of each tile (h).
    let k = lane / 2u;
    let h = lane % 2u;
    let ra4 = weight_row(r0 + 4u * h);
    let rb4 = weight_row(r0 + SG + 4u * h);
    let rc4 = weight_row(r0 + 2u * SG + 4u * h);
    let rd4 = weight_row(r0 + 3u * SG + 4u * h);

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    var px = Pixel(m_begin % p.out_w, (m_begin / p.out_w) % p.out_h, m_begin / (p.out_w * p.out_h));
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var cc = array<vec4<f32>, 8>();
    var dd = array<vec4<f32>, 8>();
    var mi = m_begin;
    for (; mi + 4u <= m_end; mi += 4u) {
        let p1 = next_pixel(px);
        let p2 = next_pixel(p1);
        let p3 = next_pixel(p2);
        let pk = step_pixel(px, p1, p2, p3, k);
        let e = row4_tap(pk, ra4);
        let f = row4_tap(pk, rb4);
        let g = row4_tap(pk, rc4);
        let h4 = row4_tap(pk, rd4);
        px = next_pixel(p3);
        let d0 = dout_vec4(mi * o4 + qc);
        let d1 = dout_vec4((mi + 1u) * o4 + qc);
        let d2 = dout_vec4((mi + 2u) * o4 + qc);
        let d3 = dout_vec4((mi + 3u) * o4 + qc);
        // Row i of pixel j: component i % 4 of lane 2j + i / 4.
        a = wgrad_tile(a, e, d0, d1, d2, d3);
        b = wgrad_tile(b, f, d0, d1, d2, d3);
        cc = wgrad_tile(cc, g, d0, d1, d2, d3);
        dd = wgrad_tile(dd, h4, d0, d1, d2, d3);
    }
    let ra = weight_row(r0 + lane);
    let rb = weight_row(r0 + SG + lane);
    let rc = weight_row(r0 + 2u * SG + lane);
    let rd = weight_row(r0 + 3u * SG + lane);
    for (; mi < m_end; mi++) {
        let e = row_tap4(px, ra);
        let f = row_tap4(px, rb);
        let g = row_tap4(px, rc);
        let h4 = row_tap4(px, rd);
        px = next_pixel(px);
        let d = dout_vec4(mi * o4 + qc);
        a[0] += subgroupBroadcast(e, 0u) * d;
        a[1] += subgroupBroadcast(e, 1u) * d;
        a[2] += subgroupBroadcast(e, 2u) * d;
        a[3] += subgroupBroadcast(e, 3u) * d;
        a[4] += subgroupBroadcast(e, 4u) * d;
        a[5] += subgroupBroadcast(e, 5u) * d;
        a[6] += subgroupBroadcast(e, 6u) * d;
        a[7] += subgroupBroadcast(e, 7u) * d;
        b[0] += subgroupBroadcast(f, 0u) * d;
        b[1] += subgroupBroadcast(f, 1u) * d;
        b[2] += subgroupBroadcast(f, 2u) * d;
        b[3] += subgroupBroadcast(f, 3u) * d;
        b[4] += subgroupBroadcast(f, 4u) * d;
        b[5] += subgroupBroadcast(f, 5u) * d;
        b[6] += subgroupBroadcast(f, 6u) * d;
        b[7] += subgroupBroadcast(f, 7u) * d;
        cc[0] += subgroupBroadcast(g, 0u) * d;
        cc[1] += subgroupBroadcast(g, 1u) * d;
        cc[2] += subgroupBroadcast(g, 2u) * d;
        cc[3] += subgroupBroadcast(g, 3u) * d;
        cc[4] += subgroupBroadcast(g, 4u) * d;
        cc[5] += subgroupBroadcast(g, 5u) * d;
        cc[6] += subgroupBroadcast(g, 6u) * d;
        cc[7] += subgroupBroadcast(g, 7u) * d;
        dd[0] += subgroupBroadcast(h4, 0u) * d;
        dd[1] += subgroupBroadcast(h4, 1u) * d;
        dd[2] += subgroupBroadcast(h4, 2u) * d;
        dd[3] += subgroupBroadcast(h4, 3u) * d;
        dd[4] += subgroupBroadcast(h4, 4u) * d;
        dd[5] += subgroupBroadcast(h4, 5u) * d;
        dd[6] += subgroupBroadcast(h4, 6u) * d;
        dd[7] += subgroupBroadcast(h4, 7u) * d;
    }
    store_partial_tile(s, r0, q, o4, a);
    store_partial_tile(s, r0 + SG, q, o4, b);
    store_partial_tile(s, r0 + 2u * SG, q, o4, cc);
    store_partial_tile(s, r0 + 3u * SG, q, o4, dd);
}

@compute @workgroup_size(64)
fn conv2d_backward_weight_sg_c4(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let tiles = weight_tiles(4u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_backward_weight_sg_c4_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

fn store_partial_tile2(s: u32, r0: u32, q: u32, o2: u32, acc: array<vec2<f32>, 8>) {
    let rows = p.kh * p.kw * p.c + 1u;
    let stored = rows - 1u + p.bias;
    if (q >= o2) { return; }
    for (var i = 0u; i < SG; i++) {
        if (r0 + i < stored) { partials2[(s * rows + r0 + i) * o2 + q] = acc[i]; }
    }
}

// 16-channel tiles: a subgroup owns 32 rows × 16 output channels, lane i channels 2q, 2q + 1
// (one vec2 of dout per pixel); the same order as conv2d_backward_weight_sg. O % 2 == 0 (the
// launcher: O <= 16). 1.7× conv2d_backward_weight_sg at O = 16 on lavapipe (with 16 rows per
// subgroup each; 32 rows here and in _o16_c4 ~1.25× over 16 on a Zen 5 EPYC).
fn conv2d_backward_weight_sg_o16_tile(t: u32, lane: u32) {
    let kkc = p.kh * p.kw * p.c;
    let rows = kkc + 1u;
    let o2 = p.o / 2u;
    let otiles = (o2 + SG - 1u) / SG;
    let rtiles = (rows + 4u * SG - 1u) / (4u * SG);
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o2 - 1u);
    let r0 = ((t / otiles) % rtiles) * 4u * SG;
    let s = t / (otiles * rtiles);
    // The rows this lane loads (a weight row, the bias row, or past the end: zeros).
    let ra = weight_row(r0 + lane);
    let rb = weight_row(r0 + SG + lane);
    let rc = weight_row(r0 + 2u * SG + lane);
    let rd = weight_row(r0 + 3u * SG + lane);

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    var px = Pixel(m_begin % p.out_w, (m_begin / p.out_w) % p.out_h, m_begin / (p.out_w * p.out_h));
    var a = array<vec2<f32>, 8>();
    var b = array<vec2<f32>, 8>();
    var cc = array<vec2<f32>, 8>();
    var dd = array<vec2<f32>, 8>();
    var mi = m_begin;
    for (; mi + 4u <= m_end; mi += 4u) {
        let p1 = next_pixel(px);
        let p2 = next_pixel(p1);
        let p3 = next_pixel(p2);
        let e0 = row_tap(px, ra);
        let e1 = row_tap(p1, ra);
        let e2 = row_tap(p2, ra);
        let e3 = row_tap(p3, ra);
        let f0 = row_tap(px, rb);
        let f1 = row_tap(p1, rb);
        let f2 = row_tap(p2, rb);
        let f3 = row_tap(p3, rb);
        let g0 = row_tap(px, rc);
        let g1 = row_tap(p1, rc);
        let g2 = row_tap(p2, rc);
        let g3 = row_tap(p3, rc);
        let h40 = row_tap(px, rd);
        let h41 = row_tap(p1, rd);
        let h42 = row_tap(p2, rd);
        let h43 = row_tap(p3, rd);
        px = next_pixel(p3);
        let d0 = dout_vec2(mi * o2 + qc);
        let d1 = dout_vec2((mi + 1u) * o2 + qc);
        let d2 = dout_vec2((mi + 2u) * o2 + qc);
        let d3 = dout_vec2((mi + 3u) * o2 + qc);
        a[0] += subgroupBroadcast(e0, 0u) * d0 + subgroupBroadcast(e1, 0u) * d1
            + subgroupBroadcast(e2, 0u) * d2 + subgroupBroadcast(e3, 0u) * d3;
        a[1] += subgroupBroadcast(e0, 1u) * d0 + subgroupBroadcast(e1, 1u) * d1
            + subgroupBroadcast(e2, 1u) * d2 + subgroupBroadcast(e3, 1u) * d3;
        a[2] += subgroupBroadcast(e0, 2u) * d0 + subgroupBroadcast(e1, 2u) * d1
            + subgroupBroadcast(e2, 2u) * d2 + subgroupBroadcast(e3, 2u) * d3;
        a[3] += subgroupBroadcast(e0, 3u) * d0 + subgroupBroadcast(e1, 3u) * d1
            + subgroupBroadcast(e2, 3u) * d2 + subgroupBroadcast(e3, 3u) * d3;
        a[4] += subgroupBroadcast(e0, 4u) * d0 + subgroupBroadcast(e1, 4u) * d1
            + subgroupBroadcast(e2, 4u) * d2 + subgroupBroadcast(e3, 4u) * d3;
        a[5] += subgroupBroadcast(e0, 5u) * d0 + subgroupBroadcast(e1, 5u) * d1
            + subgroupBroadcast(e2, 5u) * d2 + subgroupBroadcast(e3, 5u) * d3;
        a[6] += subgroupBroadcast(e0, 6u) * d0 + subgroupBroadcast(e1, 6u) * d1
            + subgroupBroadcast(e2, 6u) * d2 + subgroupBroadcast(e3, 6u) * d3;
        a[7] += subgroupBroadcast(e0, 7u) * d0 + subgroupBroadcast(e1, 7u) * d1
            + subgroupBroadcast(e2, 7u) * d2 + subgroupBroadcast(e3, 7u) * d3;
        b[0] += subgroupBroadcast(f0, 0u) * d0 + subgroupBroadcast(f1, 0u) * d1
            + subgroupBroadcast(f2, 0u) * d2 + subgroupBroadcast(f3, 0u) * d3;
        b[1] += subgroupBroadcast(f0, 1u) * d0 + subgroupBroadcast(f1, 1u) * d1
            + subgroupBroadcast(f2, 1u) * d2 + subgroupBroadcast(f3, 1u) * d3;
        b[2] += subgroupBroadcast(f0, 2u) * d0 + subgroupBroadcast(f1, 2u) * d1
            + subgroupBroadcast(f2, 2u) * d2 + subgroupBroadcast(f3, 2u) * d3;
        b[3] += subgroupBroadcast(f0, 3u) * d0 + subgroupBroadcast(f1, 3u) * d1
            + subgroupBroadcast(f2, 3u) * d2 + subgroupBroadcast(f3, 3u) * d3;
        b[4] += subgroupBroadcast(f0, 4u) * d0 + subgroupBroadcast(f1, 4u) * d1
            + subgroupBroadcast(f2, 4u) * d2 + subgroupBroadcast(f3, 4u) * d3;
        b[5] += subgroupBroadcast(f0, 5u) * d0 + subgroupBroadcast(f1, 5u) * d1
            + subgroupBroadcast(f2, 5u) * d2 + subgroupBroadcast(f3, 5u) * d3;
        b[6] += subgroupBroadcast(f0, 6u) * d0 + subgroupBroadcast(f1, 6u) * d1
            + subgroupBroadcast(f2, 6u) * d2 + subgroupBroadcast(f3, 6u) * d3;
        b[7] += subgroupBroadcast(f0, 7u) * d0 + subgroupBroadcast(f1, 7u) * d1
            + subgroupBroadcast(f2, 7u) * d2 + subgroupBroadcast(f3, 7u) * d3;
        cc[0] += subgroupBroadcast(g0, 0u) * d0 + subgroupBroadcast(g1, 0u) * d1
            + subgroupBroadcast(g2, 0u) * d2 + subgroupBroadcast(g3, 0u) * d3;
        cc[1] += subgroupBroadcast(g0, 1u) * d0 + subgroupBroadcast(g1, 1u) * d1
            + subgroupBroadcast(g2, 1u) * d2 + subgroupBroadcast(g3, 1u) * d3;
        cc[2] += subgroupBroadcast(g0, 2u) * d0 + subgroupBroadcast(g1, 2u) * d1
            + subgroupBroadcast(g2, 2u) * d2 + subgroupBroadcast(g3, 2u) * d3;
        cc[3] += subgroupBroadcast(g0, 3u) * d0 + subgroupBroadcast(g1, 3u) * d1
            + subgroupBroadcast(g2, 3u) * d2 + subgroupBroadcast(g3, 3u) * d3;
        cc[4] += subgroupBroadcast(g0, 4u) * d0 + subgroupBroadcast(g1, 4u) * d1
            + subgroupBroadcast(g2, 4u) * d2 + subgroupBroadcast(g3, 4u) * d3;
        cc[5] += subgroupBroadcast(g0, 5u) * d0 + subgroupBroadcast(g1, 5u) * d1
            + subgroupBroadcast(g2, 5u) * d2 + subgroupBroadcast(g3, 5u) * d3;
        cc[6] += subgroupBroadcast(g0, 6u) * d0 + subgroupBroadcast(g1, 6u) * d1
            + subgroupBroadcast(g2, 6u) * d2 + subgroupBroadcast(g3, 6u) * d3;
        cc[7] += subgroupBroadcast(g0, 7u) * d0 + subgroupBroadcast(g1, 7u) * d1
            + subgroupBroadcast(g2, 7u) * d2 + subgroupBroadcast(g3, 7u) * d3;
        dd[0] += subgroupBroadcast(h40, 0u) * d0 + subgroupBroadcast(h41, 0u) * d1
            + subgroupBroadcast(h42, 0u) * d2 + subgroupBroadcast(h43, 0u) * d3;
        dd[1] += subgroupBroadcast(h40, 1u) * d0 + subgroupBroadcast(h41, 1u) * d1
            + subgroupBroadcast(h42, 1u) * d2 + subgroupBroadcast(h43, 1u) * d3;
        dd[2] += subgroupBroadcast(h40, 2u) * d0 + subgroupBroadcast(h41, 2u) * d1
            + subgroupBroadcast(h42, 2u) * d2 + subgroupBroadcast(h43, 2u) * d3;
        dd[3] += subgroupBroadcast(h40, 3u) * d0 + subgroupBroadcast(h41, 3u) * d1
            + subgroupBroadcast(h42, 3u) * d2 + subgroupBroadcast(h43, 3u) * d3;
        dd[4] += subgroupBroadcast(h40, 4u) * d0 + subgroupBroadcast(h41, 4u) * d1
            + subgroupBroadcast(h42, 4u) * d2 + subgroupBroadcast(h43, 4u) * d3;
        dd[5] += subgroupBroadcast(h40, 5u) * d0 + subgroupBroadcast(h41, 5u) * d1
            + subgroupBroadcast(h42, 5u) * d2 + subgroupBroadcast(h43, 5u) * d3;
        dd[6] += subgroupBroadcast(h40, 6u) * d0 + subgroupBroadcast(h41, 6u) * d1
            + subgroupBroadcast(h42, 6u) * d2 + subgroupBroadcast(h43, 6u) * d3;
        dd[7] += subgroupBroadcast(h40, 7u) * d0 + subgroupBroadcast(h41, 7u) * d1
            + subgroupBroadcast(h42, 7u) * d2 + subgroupBroadcast(h43, 7u) * d3;
    }
    for (; mi < m_end; mi++) {
        let e = row_tap(px, ra);
        let f = row_tap(px, rb);
        let g = row_tap(px, rc);
        let h4 = row_tap(px, rd);
        px = next_pixel(px);
        let d = dout_vec2(mi * o2 + qc);
        a[0] += subgroupBroadcast(e, 0u) * d;
        a[1] += subgroupBroadcast(e, 1u) * d;
        a[2] += subgroupBroadcast(e, 2u) * d;
        a[3] += subgroupBroadcast(e, 3u) * d;
        a[4] += subgroupBroadcast(e, 4u) * d;
        a[5] += subgroupBroadcast(e, 5u) * d;
        a[6] += subgroupBroadcast(e, 6u) * d;
        a[7] += subgroupBroadcast(e, 7u) * d;
        b[0] += subgroupBroadcast(f, 0u) * d;
        b[1] += subgroupBroadcast(f, 1u) * d;
        b[2] += subgroupBroadcast(f, 2u) * d;
        b[3] += subgroupBroadcast(f, 3u) * d;
        b[4] += subgroupBroadcast(f, 4u) * d;
        b[5] += subgroupBroadcast(f, 5u) * d;
        b[6] += subgroupBroadcast(f, 6u) * d;
        b[7] += subgroupBroadcast(f, 7u) * d;
        cc[0] += subgroupBroadcast(g, 0u) * d;
        cc[1] += subgroupBroadcast(g, 1u) * d;
        cc[2] += subgroupBroadcast(g, 2u) * d;
        cc[3] += subgroupBroadcast(g, 3u) * d;
        cc[4] += subgroupBroadcast(g, 4u) * d;
        cc[5] += subgroupBroadcast(g, 5u) * d;
        cc[6] += subgroupBroadcast(g, 6u) * d;
        cc[7] += subgroupBroadcast(g, 7u) * d;
        dd[0] += subgroupBroadcast(h4, 0u) * d;
        dd[1] += subgroupBroadcast(h4, 1u) * d;
        dd[2] += subgroupBroadcast(h4, 2u) * d;
        dd[3] += subgroupBroadcast(h4, 3u) * d;
        dd[4] += subgroupBroadcast(h4, 4u) * d;
        dd[5] += subgroupBroadcast(h4, 5u) * d;
        dd[6] += subgroupBroadcast(h4, 6u) * d;
        dd[7] += subgroupBroadcast(h4, 7u) * d;
    }
    store_partial_tile2(s, r0, q, o2, a);
    store_partial_tile2(s, r0 + SG, q, o2, b);
    store_partial_tile2(s, r0 + 2u * SG, q, o2, cc);
    store_partial_tile2(s, r0 + 3u * SG, q, o2, dd);
}

@compute @workgroup_size(64)
fn conv2d_backward_weight_sg_o16(@builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
    let tiles = weight_tiles(2u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_backward_weight_sg_o16_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// The 16-channel tiles of conv2d_backward_weight_sg_o16 with the input taps of the `_c4` kernel
// above (C % 4 == 0): bitwise equal to conv2d_backward_weight_sg_o16.
fn conv2d_backward_weight_sg_o16_c4_tile(t: u32, lane: u32) {
    let kkc = p.kh * p.kw * p.c;
    let rows = kkc + 1u;
    let o2 = p.o / 2u;
    let otiles = (o2 + SG - 1u) / SG;
    let rtiles = (rows + 4u * SG - 1u) / (4u * SG);
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o2 - 1u);
    let r0 = ((t / otiles) % rtiles) * 4u * SG;
    let s = t / (otiles * rtiles);
    // The pixel of the step this lane loads (k) and which 4 rows of each tile (h).
    let k = lane / 2u;
    let h = lane % 2u;
    let ra4 = weight_row(r0 + 4u * h);
    let rb4 = weight_row(r0 + SG + 4u * h);
    let rc4 = weight_row(r0 + 2u * SG + 4u * h);
    let rd4 = weight_row(r0 + 3u * SG + 4u * h);
    let ra = weight_row(r0 + lane);
    let rb = weight_row(r0 + SG + lane);
    let rc = weight_row(r0 + 2u * SG + lane);
    let rd = weight_row(r0 + 3u * SG + lane);

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    var px = Pixel(m_begin % p.out_w, (m_begin / p.out_w) % p.out_h, m_begin / (p.out_w * p.out_h));
    var a = array<vec2<f32>, 8>();
    var b = array<vec2<f32>, 8>();
    var cc = array<vec2<f32>, 8>();
    var dd = array<vec2<f32>, 8>();
    var mi = m_begin;
    for (; mi + 4u <= m_end; mi += 4u) {
        let p1 = next_pixel(px);
        let p2 = next_pixel(p1);
        let p3 = next_pixel(p2);
        let pk = step_pixel(px, p1, p2, p3, k);
        let e = row4_tap(pk, ra4);
        let f = row4_tap(pk, rb4);
        let g = row4_tap(pk, rc4);
        let h4 = row4_tap(pk, rd4);
        px = next_pixel(p3);
        let d0 = dout_vec2(mi * o2 + qc);
        let d1 = dout_vec2((mi + 1u) * o2 + qc);
        let d2 = dout_vec2((mi + 2u) * o2 + qc);
        let d3 = dout_vec2((mi + 3u) * o2 + qc);
        // Row i of pixel j: component i % 4 of lane 2j + i / 4.
        a = wgrad_tile2(a, e, d0, d1, d2, d3);
        b = wgrad_tile2(b, f, d0, d1, d2, d3);
        cc = wgrad_tile2(cc, g, d0, d1, d2, d3);
        dd = wgrad_tile2(dd, h4, d0, d1, d2, d3);
    }
    for (; mi < m_end; mi++) {
        let e = row_tap4(px, ra);
        let f = row_tap4(px, rb);
        let g = row_tap4(px, rc);
        let h4 = row_tap4(px, rd);
        px = next_pixel(px);
        let d = dout_vec2(mi * o2 + qc);
        a[0] += subgroupBroadcast(e, 0u) * d;
        a[1] += subgroupBroadcast(e, 1u) * d;
        a[2] += subgroupBroadcast(e, 2u) * d;
        a[3] += subgroupBroadcast(e, 3u) * d;
        a[4] += subgroupBroadcast(e, 4u) * d;
        a[5] += subgroupBroadcast(e, 5u) * d;
        a[6] += subgroupBroadcast(e, 6u) * d;
        a[7] += subgroupBroadcast(e, 7u) * d;
        b[0] += subgroupBroadcast(f, 0u) * d;
        b[1] += subgroupBroadcast(f, 1u) * d;
        b[2] += subgroupBroadcast(f, 2u) * d;
        b[3] += subgroupBroadcast(f, 3u) * d;
        b[4] += subgroupBroadcast(f, 4u) * d;
        b[5] += subgroupBroadcast(f, 5u) * d;
        b[6] += subgroupBroadcast(f, 6u) * d;
        b[7] += subgroupBroadcast(f, 7u) * d;
        cc[0] += subgroupBroadcast(g, 0u) * d;
        cc[1] += subgroupBroadcast(g, 1u) * d;
        cc[2] += subgroupBroadcast(g, 2u) * d;
        cc[3] += subgroupBroadcast(g, 3u) * d;
        cc[4] += subgroupBroadcast(g, 4u) * d;
        cc[5] += subgroupBroadcast(g, 5u) * d;
        cc[6] += subgroupBroadcast(g, 6u) * d;
        cc[7] += subgroupBroadcast(g, 7u) * d;
        dd[0] += subgroupBroadcast(h4, 0u) * d;
        dd[1] += subgroupBroadcast(h4, 1u) * d;
        dd[2] += subgroupBroadcast(h4, 2u) * d;
        dd[3] += subgroupBroadcast(h4, 3u) * d;
        dd[4] += subgroupBroadcast(h4, 4u) * d;
        dd[5] += subgroupBroadcast(h4, 5u) * d;
        dd[6] += subgroupBroadcast(h4, 6u) * d;
        dd[7] += subgroupBroadcast(h4, 7u) * d;
    }
    store_partial_tile2(s, r0, q, o2, a);
    store_partial_tile2(s, r0 + SG, q, o2, b);
    store_partial_tile2(s, r0 + 2u * SG, q, o2, cc);
    store_partial_tile2(s, r0 + 3u * SG, q, o2, dd);
}

@compute @workgroup_size(64)
fn conv2d_backward_weight_sg_o16_c4(@builtin(workgroup_id) wid: vec3<u32>,
                                    @builtin(num_workgroups) nwg: vec3<u32>,
                                    @builtin(local_invocation_index) lid: u32) {
    let tiles = weight_tiles(2u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        conv2d_backward_weight_sg_o16_c4_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// Winograd F(4×4, 3×3) GEMMs (winograd.wgsl: the transforms and their layouts). Tile count of
// the convolution p: N·ceil(H/4)·ceil(W/4).
fn wino_tiles() -> u32 {
    return p.n * ((p.h + 3u) / 4u) * ((p.w + 3u) / 4u);
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

// Rows (tiles) r0..r0+7 of M[·][ξ], channels 4q..4q+3.
fn store_gemm_tile(xi: u32, r0: u32, rows: u32, q: u32, o4: u32, acc: array<vec4<f32>, 8>) {
    if (q >= o4) { return; }
    for (var i = 0u; i < SG; i++) {
        if (r0 + i < rows) { output4[((r0 + i) * 36u + xi) * o4 + q] = acc[i]; }
    }
}

// M[·][ξ] (T × O) = V[·][ξ] (T × C, binding 12) · U[ξ] (C × O, through the weight texture): the
// forward (and, with c and o swapped, D as V and Uᵀ as U, the input gradient's E) of a
// Winograd convolution. conv2d_forward_sg_c4's scheme with the tile's 32 rows being Winograd
// tiles instead of pixels: 36 · ceil(O/32) · ceil(T/32) subgroup tiles. C % 4 == 0, O % 4 == 0.
fn winograd_gemm_sg_tile(t: u32, lane: u32) {
    let rows = wino_tiles();
    let c4 = p.c / 4u;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let rtiles = (rows + TILE - 1u) / TILE;
    // The 36 points of one block of tiles and channels one after another: their V rows and M
    // rows are neighbours (tile-major layouts), so the block stays in the caches.
    let xi = t % 36u;
    let q = ((t / 36u) % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let r0 = (t / (36u * otiles)) * TILE;
    let va = (min(r0 + lane, rows - 1u) * 36u + xi) * c4;
    let vb = (min(r0 + SG + lane, rows - 1u) * 36u + xi) * c4;
    let vc = (min(r0 + 2u * SG + lane, rows - 1u) * 36u + xi) * c4;
    let vd = (min(r0 + 3u * SG + lane, rows - 1u) * 36u + xi) * c4;
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var cc = array<vec4<f32>, 8>();
    var dd = array<vec4<f32>, 8>();
    var wr = xi * p.c * o4 + qc;
    for (var c = 0u; c < c4; c++) {
        let xa = input4[va + c];
        let xb = input4[vb + c];
        let xc = input4[vc + c];
        let xd = input4[vd + c];
        let w0 = weight_vec4(wr);
        let w1 = weight_vec4(wr + o4);
        let w2 = weight_vec4(wr + 2u * o4);
        let w3 = weight_vec4(wr + 3u * o4);
        wr += 4u * o4;
        a = mac_tile(a, xa, w0, w1, w2, w3);
        b = mac_tile(b, xb, w0, w1, w2, w3);
        cc = mac_tile(cc, xc, w0, w1, w2, w3);
        dd = mac_tile(dd, xd, w0, w1, w2, w3);
    }
    store_gemm_tile(xi, r0, rows, q, o4, a);
    store_gemm_tile(xi, r0 + SG, rows, q, o4, b);
    store_gemm_tile(xi, r0 + 2u * SG, rows, q, o4, cc);
    store_gemm_tile(xi, r0 + 3u * SG, rows, q, o4, dd);
}

@compute @workgroup_size(64)
fn winograd_gemm_sg(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let tiles = 36u * ((p.o / 4u + SG - 1u) / SG) * ((wino_tiles() + TILE - 1u) / TILE);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        winograd_gemm_sg_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
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

// One step: row i is lane i's scalar `e`, times the output gradient d.
fn wgrad_tile1(acc: array<vec4<f32>, 8>, e: f32, d: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        acc[0] + subgroupBroadcast(e, 0u) * d, acc[1] + subgroupBroadcast(e, 1u) * d,
        acc[2] + subgroupBroadcast(e, 2u) * d, acc[3] + subgroupBroadcast(e, 3u) * d,
        acc[4] + subgroupBroadcast(e, 4u) * d, acc[5] + subgroupBroadcast(e, 5u) * d,
        acc[6] + subgroupBroadcast(e, 6u) * d, acc[7] + subgroupBroadcast(e, 7u) * d);
}

// Rows r0..r0+7 (input channels) of S[ξ], channels 4q..4q+3.
fn store_wgrad_tile(xi: u32, r0: u32, q: u32, o4: u32, acc: array<vec4<f32>, 8>) {
    if (q >= o4) { return; }
    for (var i = 0u; i < SG; i++) {
        if (r0 + i < p.c) { partials4[(xi * p.c + r0 + i) * o4 + q] = acc[i]; }
    }
}

// Row `row` (tile t·36 + ξ) of V: the vec4 of channels c..c+3 (zeros past C).
fn wino_v4(row: u32, c: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), input4[row * (p.c / 4u) + min(c, p.c - 4u) / 4u], c < p.c);
}

// S[ξ] (C × O, binding 17) = Σ_t V[t][ξ]ᵀ (binding 12) · D[t][ξ] (through the dout texture):
// the weight gradient of a Winograd convolution in the transformed domain, in tile order.
// conv2d_backward_weight_sg_c4's scheme (32 rows, here input channels, × 32 output channels per
// subgroup; 4 tiles per step, each lane loading one vec4 of 4 rows), no split:
// 36 · ceil(O/32) · ceil(C/32) subgroup tiles.
fn winograd_gemm_weight_sg_tile(t: u32, lane: u32) {
    let rows = wino_tiles();
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let ctiles = (p.c + TILE - 1u) / TILE;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let r0 = ((t / otiles) % ctiles) * TILE;
    let xi = t / (otiles * ctiles);
    let k = lane / 2u;
    let h = 4u * (lane % 2u);
    var a = array<vec4<f32>, 8>();
    var b = array<vec4<f32>, 8>();
    var cc = array<vec4<f32>, 8>();
    var dd = array<vec4<f32>, 8>();
    var ti = 0u;
    for (; ti + 4u <= rows; ti += 4u) {
        let row = (ti + k) * 36u + xi;
        let e = wino_v4(row, r0 + h);
        let f = wino_v4(row, r0 + SG + h);
        let g = wino_v4(row, r0 + 2u * SG + h);
        let h4 = wino_v4(row, r0 + 3u * SG + h);
        let d0 = dout_vec4((ti * 36u + xi) * o4 + qc);
        let d1 = dout_vec4(((ti + 1u) * 36u + xi) * o4 + qc);
        let d2 = dout_vec4(((ti + 2u) * 36u + xi) * o4 + qc);
        let d3 = dout_vec4(((ti + 3u) * 36u + xi) * o4 + qc);
        a = wgrad_tile(a, e, d0, d1, d2, d3);
        b = wgrad_tile(b, f, d0, d1, d2, d3);
        cc = wgrad_tile(cc, g, d0, d1, d2, d3);
        dd = wgrad_tile(dd, h4, d0, d1, d2, d3);
    }
    for (; ti < rows; ti++) {
        let row = ti * 36u + xi;
        let d = dout_vec4(row * o4 + qc);
        let ra = r0 + lane;
        let rb = r0 + SG + lane;
        let rc = r0 + 2u * SG + lane;
        let rd = r0 + 3u * SG + lane;
        a = wgrad_tile1(a, wino_v4(row, ra & ~3u)[ra % 4u], d);
        b = wgrad_tile1(b, wino_v4(row, rb & ~3u)[rb % 4u], d);
        cc = wgrad_tile1(cc, wino_v4(row, rc & ~3u)[rc % 4u], d);
        dd = wgrad_tile1(dd, wino_v4(row, rd & ~3u)[rd % 4u], d);
    }
    store_wgrad_tile(xi, r0, q, o4, a);
    store_wgrad_tile(xi, r0 + SG, q, o4, b);
    store_wgrad_tile(xi, r0 + 2u * SG, q, o4, cc);
    store_wgrad_tile(xi, r0 + 3u * SG, q, o4, dd);
}

@compute @workgroup_size(64)
fn winograd_gemm_weight_sg(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let tiles = 36u * ((p.o / 4u + SG - 1u) / SG) * ((p.c + TILE - 1u) / TILE);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        winograd_gemm_weight_sg_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// Column k of Aᵀ, the output transform's weights of point k along one axis: (1, k̂, k̂², k̂³)
// for the finite points k̂ = 0, 1, −1, 2, −2 (k = 0..4) and (0, 0, 0, 1) for ∞ (k = 5).
fn at_col(k: u32) -> vec4<f32> {
    let s = f32((k + 1u) / 2u) * select(-1.0, 1.0, k % 2u == 1u);
    return select(vec4<f32>(1.0, s, s * s, s * s * s), vec4<f32>(0.0, 0.0, 0.0, 1.0), k == 5u);
}

// One product m = M[a][b] of a tile into its row sums r[j] += Aᵀ[j][b] m.
fn wino_row(r: array<vec4<f32>, 4>, m: vec4<f32>, k: vec4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(r[0] + k.x * m, r[1] + k.y * m, r[2] + k.z * m, r[3] + k.w * m);
}

// A finished row a of a tile into its outputs y[4i + j] += Aᵀ[i][a] r[j].
fn wino_out(y: array<vec4<f32>, 16>, r: array<vec4<f32>, 4>, k: vec4<f32>) -> array<vec4<f32>, 16> {
    return array<vec4<f32>, 16>(
        y[0] + k.x * r[0], y[1] + k.x * r[1], y[2] + k.x * r[2], y[3] + k.x * r[3],
        y[4] + k.y * r[0], y[5] + k.y * r[1], y[6] + k.y * r[2], y[7] + k.y * r[3],
        y[8] + k.z * r[0], y[9] + k.z * r[1], y[10] + k.z * r[2], y[11] + k.z * r[3],
        y[12] + k.w * r[0], y[13] + k.w * r[1], y[14] + k.w * r[2], y[15] + k.w * r[3]);
}

// Pixel k (row k / 4, column k % 4) of tile (n, ty, tx), if inside the image.
fn wino_pixel(n: u32, ty: u32, tx: u32, k: u32) -> u32 {
    let y = 4u * ty + k / 4u;
    let x = 4u * tx + k % 4u;
    return select(0xffffffffu, (n * p.h + y) * p.w + x, y < p.h && x < p.w);
}

// The ReLU mask word of one pixel of a tile for the subgroup's 32 channels.
fn wino_mask_word(v: vec4<f32>, lane: u32) -> u32 {
    let s = vec4<u32>(v > vec4<f32>(0.0)) << vec4<u32>(0u, 1u, 2u, 3u);
    return subgroupOr((s.x | s.y | s.z | s.w) << (4u * lane));
}

// The forward's epilogue for one tile's outputs y (4×4 pixels, channels 4q..): + bias, ReLU
// (p.relu), the output (or with p.mask its signs), with p.pool the 2×2 average pool; as
// winograd_output. Every lane takes part (the mask's ORs); `tt` past the tiles stores nothing.
fn wino_epilogue(tt: u32, q: u32, o4: u32, y_in: array<vec4<f32>, 16>, b: vec4<f32>) {
    let tw = (p.w + 3u) / 4u;
    let th = (p.h + 3u) / 4u;
    let live = tt < wino_tiles() && q < o4;
    let tx = tt % tw;
    let ty = (tt / tw) % th;
    let n = tt / (tw * th);
    let relu = p.relu != 0u;
    var y = y_in;
    y[0] = select(y[0] + b, max(y[0] + b, vec4<f32>(0.0)), relu);
    y[1] = select(y[1] + b, max(y[1] + b, vec4<f32>(0.0)), relu);
    y[2] = select(y[2] + b, max(y[2] + b, vec4<f32>(0.0)), relu);
    y[3] = select(y[3] + b, max(y[3] + b, vec4<f32>(0.0)), relu);
    y[4] = select(y[4] + b, max(y[4] + b, vec4<f32>(0.0)), relu);
    y[5] = select(y[5] + b, max(y[5] + b, vec4<f32>(0.0)), relu);
    y[6] = select(y[6] + b, max(y[6] + b, vec4<f32>(0.0)), relu);
    y[7] = select(y[7] + b, max(y[7] + b, vec4<f32>(0.0)), relu);
    y[8] = select(y[8] + b, max(y[8] + b, vec4<f32>(0.0)), relu);
    y[9] = select(y[9] + b, max(y[9] + b, vec4<f32>(0.0)), relu);
    y[10] = select(y[10] + b, max(y[10] + b, vec4<f32>(0.0)), relu);
    y[11] = select(y[11] + b, max(y[11] + b, vec4<f32>(0.0)), relu);
    y[12] = select(y[12] + b, max(y[12] + b, vec4<f32>(0.0)), relu);
    y[13] = select(y[13] + b, max(y[13] + b, vec4<f32>(0.0)), relu);
    y[14] = select(y[14] + b, max(y[14] + b, vec4<f32>(0.0)), relu);
    y[15] = select(y[15] + b, max(y[15] + b, vec4<f32>(0.0)), relu);
    let lane = q % SG;
    if (p.mask != 0u) {
        // Lane j stores pixels j and j + 8 of the tile.
        let lo = array<u32, 8>(
            wino_mask_word(y[0], lane), wino_mask_word(y[1], lane), wino_mask_word(y[2], lane),
            wino_mask_word(y[3], lane), wino_mask_word(y[4], lane), wino_mask_word(y[5], lane),
            wino_mask_word(y[6], lane), wino_mask_word(y[7], lane));
        let hi = array<u32, 8>(
            wino_mask_word(y[8], lane), wino_mask_word(y[9], lane), wino_mask_word(y[10], lane),
            wino_mask_word(y[11], lane), wino_mask_word(y[12], lane), wino_mask_word(y[13], lane),
            wino_mask_word(y[14], lane), wino_mask_word(y[15], lane));
        let ma = wino_pixel(n, ty, tx, lane);
        let mb = wino_pixel(n, ty, tx, lane + 8u);
        if (tt < wino_tiles() && ma != 0xffffffffu) { relu_mask[ma * (o4 / 8u) + q / 8u] = lo[lane]; }
        if (tt < wino_tiles() && mb != 0xffffffffu) { relu_mask[mb * (o4 / 8u) + q / 8u] = hi[lane]; }
    }
    if (!live) { return; }
    if (p.mask == 0u) {
        for (var k = 0u; k < 16u; k++) {
            let m = wino_pixel(n, ty, tx, k);
            if (m != 0xffffffffu) { output4[m * o4 + q] = y[k]; }
        }
    }
    if (p.pool != 0u) {
        let ph = p.h / 2u;
        let pw = p.w / 2u;
        let py = 2u * ty;
        let px = 2u * tx;
        let base = (n * ph + py) * pw + px;
        if (py < ph && px < pw) { pooled4[base * o4 + q] = (y[0] + y[1] + y[4] + y[5]) * 0.25; }
        if (py < ph && px + 1u < pw) { pooled4[(base + 1u) * o4 + q] = (y[2] + y[3] + y[6] + y[7]) * 0.25; }
        if (py + 1u < ph && px < pw) { pooled4[(base + pw) * o4 + q] = (y[8] + y[9] + y[12] + y[13]) * 0.25; }
        if (py + 1u < ph && px + 1u < pw) { pooled4[(base + pw + 1u) * o4 + q] = (y[10] + y[11] + y[14] + y[15]) * 0.25; }
    }
}

// The Winograd forward with its output transform fused: for 24 tiles × 32 output channels
// (three 8-tile groups, winograd_gemm_sg's scheme: every weight texel feeds three groups), the
// 36 products of a point ξ = (a, b) go straight into Y = Aᵀ M A: into the 4 row sums of row a
// (s0..s23, registers), and after the row's 6 points into the 16 outputs (ys), then through the
// forward's epilogue. M never goes to memory: lavapipe stores and loads storage lane by lane,
// and M is 36/16 of the output (docs/benchmarks.md, fourteenth session: seed Conv_1's forward
// 13.6 → ~8 ms). ys stays one array indexed by the epilogue's loop counter: lavapipe keeps it
// in memory (plain vector loads and stores where the index is a constant, as in the row
// updates); 24 epilogues inlined instead took ~50 s to compile on lavapipe, this ~1.5 s.
// ceil(O/32) · ceil(T/24) subgroup tiles. C % 4 == 0, O % 4 == 0 (p.mask: O % 32 == 0).
// Sums: over channels in order per point (as winograd_gemm_sg), then the transform's in the
// order above; cpu/winograd.rs output_transform_rows is that order.
fn winograd_gemm_out_sg_tile(t: u32, lane: u32) {
    let rows = wino_tiles();
    let c4 = p.c / 4u;
    let o4 = p.o / 4u;
    let otiles = (o4 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o4 - 1u);
    let r0 = (t / otiles) * 24u;
    let vrow0 = min(r0 + 0u * SG + lane, rows - 1u) * 36u * c4;
    let vrow1 = min(r0 + 1u * SG + lane, rows - 1u) * 36u * c4;
    let vrow2 = min(r0 + 2u * SG + lane, rows - 1u) * 36u * c4;
    var ys = array<array<vec4<f32>, 16>, 24>();
    for (var a = 0u; a < 6u; a++) {
        var s0 = array<vec4<f32>, 4>();
        var s1 = array<vec4<f32>, 4>();
        var s2 = array<vec4<f32>, 4>();
        var s3 = array<vec4<f32>, 4>();
        var s4 = array<vec4<f32>, 4>();
        var s5 = array<vec4<f32>, 4>();
        var s6 = array<vec4<f32>, 4>();
        var s7 = array<vec4<f32>, 4>();
        var s8 = array<vec4<f32>, 4>();
        var s9 = array<vec4<f32>, 4>();
        var s10 = array<vec4<f32>, 4>();
        var s11 = array<vec4<f32>, 4>();
        var s12 = array<vec4<f32>, 4>();
        var s13 = array<vec4<f32>, 4>();
        var s14 = array<vec4<f32>, 4>();
        var s15 = array<vec4<f32>, 4>();
        var s16 = array<vec4<f32>, 4>();
        var s17 = array<vec4<f32>, 4>();
        var s18 = array<vec4<f32>, 4>();
        var s19 = array<vec4<f32>, 4>();
        var s20 = array<vec4<f32>, 4>();
        var s21 = array<vec4<f32>, 4>();
        var s22 = array<vec4<f32>, 4>();
        var s23 = array<vec4<f32>, 4>();
        for (var b = 0u; b < 6u; b++) {
            let xi = 6u * a + b;
            var wr = xi * p.c * o4 + qc;
            var acc0 = array<vec4<f32>, 8>();
            let va0 = vrow0 + xi * c4;
            var acc1 = array<vec4<f32>, 8>();
            let va1 = vrow1 + xi * c4;
            var acc2 = array<vec4<f32>, 8>();
            let va2 = vrow2 + xi * c4;
            for (var c = 0u; c < c4; c++) {
                let x0 = input4[va0 + c];
                let x1 = input4[va1 + c];
                let x2 = input4[va2 + c];
                let w0 = weight_vec4(wr);
                let w1 = weight_vec4(wr + o4);
                let w2 = weight_vec4(wr + 2u * o4);
                let w3 = weight_vec4(wr + 3u * o4);
                wr += 4u * o4;
                acc0 = mac_tile(acc0, x0, w0, w1, w2, w3);
                acc1 = mac_tile(acc1, x1, w0, w1, w2, w3);
                acc2 = mac_tile(acc2, x2, w0, w1, w2, w3);
            }
            let kb = at_col(b);
            s0 = wino_row(s0, acc0[0], kb);
            s1 = wino_row(s1, acc0[1], kb);
            s2 = wino_row(s2, acc0[2], kb);
            s3 = wino_row(s3, acc0[3], kb);
            s4 = wino_row(s4, acc0[4], kb);
            s5 = wino_row(s5, acc0[5], kb);
            s6 = wino_row(s6, acc0[6], kb);
            s7 = wino_row(s7, acc0[7], kb);
            s8 = wino_row(s8, acc1[0], kb);
            s9 = wino_row(s9, acc1[1], kb);
            s10 = wino_row(s10, acc1[2], kb);
            s11 = wino_row(s11, acc1[3], kb);
            s12 = wino_row(s12, acc1[4], kb);
            s13 = wino_row(s13, acc1[5], kb);
            s14 = wino_row(s14, acc1[6], kb);
            s15 = wino_row(s15, acc1[7], kb);
            s16 = wino_row(s16, acc2[0], kb);
            s17 = wino_row(s17, acc2[1], kb);
            s18 = wino_row(s18, acc2[2], kb);
            s19 = wino_row(s19, acc2[3], kb);
            s20 = wino_row(s20, acc2[4], kb);
            s21 = wino_row(s21, acc2[5], kb);
            s22 = wino_row(s22, acc2[6], kb);
            s23 = wino_row(s23, acc2[7], kb);
        }
        let ka = at_col(a);
        ys[0] = wino_out(ys[0], s0, ka);
        ys[1] = wino_out(ys[1], s1, ka);
        ys[2] = wino_out(ys[2], s2, ka);
        ys[3] = wino_out(ys[3], s3, ka);
        ys[4] = wino_out(ys[4], s4, ka);
        ys[5] = wino_out(ys[5], s5, ka);
        ys[6] = wino_out(ys[6], s6, ka);
        ys[7] = wino_out(ys[7], s7, ka);
        ys[8] = wino_out(ys[8], s8, ka);
        ys[9] = wino_out(ys[9], s9, ka);
        ys[10] = wino_out(ys[10], s10, ka);
        ys[11] = wino_out(ys[11], s11, ka);
        ys[12] = wino_out(ys[12], s12, ka);
        ys[13] = wino_out(ys[13], s13, ka);
        ys[14] = wino_out(ys[14], s14, ka);
        ys[15] = wino_out(ys[15], s15, ka);
        ys[16] = wino_out(ys[16], s16, ka);
        ys[17] = wino_out(ys[17], s17, ka);
        ys[18] = wino_out(ys[18], s18, ka);
        ys[19] = wino_out(ys[19], s19, ka);
        ys[20] = wino_out(ys[20], s20, ka);
        ys[21] = wino_out(ys[21], s21, ka);
        ys[22] = wino_out(ys[22], s22, ka);
        ys[23] = wino_out(ys[23], s23, ka);
    }
    let bq = 4u * qc;
    let b = select(vec4<f32>(0.0),
        vec4<f32>(bias[bq], bias[bq + 1u], bias[bq + 2u], bias[bq + 3u]), p.bias != 0u);
    for (var k = 0u; k < 24u; k++) { wino_epilogue(r0 + k, q, o4, ys[k], b); }
}

@compute @workgroup_size(64)
fn winograd_gemm_out_sg(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let tiles = ((p.o / 4u + SG - 1u) / SG) * ((wino_tiles() + 23u) / 24u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        winograd_gemm_out_sg_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}

// The 16-channel tiles' forms (lanes own 2 output channels, vec2s, as conv2d_forward_sg_c4_o16)
// of the fused forward's helpers: a mac_tile of vec2 weights, the row sums, the outputs.
fn mac_tile2(acc: array<vec2<f32>, 8>, x: vec4<f32>, w0: vec2<f32>, w1: vec2<f32>,
             w2: vec2<f32>, w3: vec2<f32>) -> array<vec2<f32>, 8> {
    return array<vec2<f32>, 8>(
        mac4x2(acc[0], subgroupBroadcast(x, 0u), w0, w1, w2, w3),
        mac4x2(acc[1], subgroupBroadcast(x, 1u), w0, w1, w2, w3),
        mac4x2(acc[2], subgroupBroadcast(x, 2u), w0, w1, w2, w3),
        mac4x2(acc[3], subgroupBroadcast(x, 3u), w0, w1, w2, w3),
        mac4x2(acc[4], subgroupBroadcast(x, 4u), w0, w1, w2, w3),
        mac4x2(acc[5], subgroupBroadcast(x, 5u), w0, w1, w2, w3),
        mac4x2(acc[6], subgroupBroadcast(x, 6u), w0, w1, w2, w3),
        mac4x2(acc[7], subgroupBroadcast(x, 7u), w0, w1, w2, w3));
}

fn wino_row2(r: array<vec2<f32>, 4>, m: vec2<f32>, k: vec4<f32>) -> array<vec2<f32>, 4> {
    return array<vec2<f32>, 4>(r[0] + k.x * m, r[1] + k.y * m, r[2] + k.z * m, r[3] + k.w * m);
}

fn wino_out2(y: array<vec2<f32>, 16>, r: array<vec2<f32>, 4>, k: vec4<f32>) -> array<vec2<f32>, 16> {
    return array<vec2<f32>, 16>(
        y[0] + k.x * r[0], y[1] + k.x * r[1], y[2] + k.x * r[2], y[3] + k.x * r[3],
        y[4] + k.y * r[0], y[5] + k.y * r[1], y[6] + k.y * r[2], y[7] + k.y * r[3],
        y[8] + k.z * r[0], y[9] + k.z * r[1], y[10] + k.z * r[2], y[11] + k.z * r[3],
        y[12] + k.w * r[0], y[13] + k.w * r[1], y[14] + k.w * r[2], y[15] + k.w * r[3]);
}

// One tile's outputs (channels 2q, 2q + 1): + bias, ReLU (p.relu), stored inside the image.
fn wino_epilogue2(tt: u32, q: u32, o2: u32, y: array<vec2<f32>, 16>, b: vec2<f32>) {
    if (tt >= wino_tiles() || q >= o2) { return; }
    let tw = (p.w + 3u) / 4u;
    let th = (p.h + 3u) / 4u;
    let tx = tt % tw;
    let ty = (tt / tw) % th;
    let n = tt / (tw * th);
    let relu = p.relu != 0u;
    for (var k = 0u; k < 16u; k++) {
        let m = wino_pixel(n, ty, tx, k);
        let v = y[k] + b;
        if (m != 0xffffffffu) { output2[m * o2 + q] = select(v, max(v, vec2<f32>(0.0)), relu); }
    }
}

// winograd_gemm_out_sg with 16-channel tiles, for layers of at most 16 output channels
// (ResNet-20's first stage), where the 32-channel tiles leave half the lanes idle: every lane
// owns 2 output channels, the transformed weights come through the rg32float mirror (binding
// 32). No pool or mask epilogue. ceil(O/16) · ceil(T/24) subgroup tiles. C % 4 == 0,
// O % 2 == 0.
fn winograd_gemm_out_sg_o16_tile(t: u32, lane: u32) {
    let rows = wino_tiles();
    let c4 = p.c / 4u;
    let o2 = p.o / 2u;
    let otiles = (o2 + SG - 1u) / SG;
    let q = (t % otiles) * SG + lane;
    let qc = min(q, o2 - 1u);
    let r0 = (t / otiles) * 24u;
    let vrow0 = min(r0 + 0u * SG + lane, rows - 1u) * 36u * c4;
    let vrow1 = min(r0 + 1u * SG + lane, rows - 1u) * 36u * c4;
    let vrow2 = min(r0 + 2u * SG + lane, rows - 1u) * 36u * c4;
    var ys = array<array<vec2<f32>, 16>, 24>();
    for (var a = 0u; a < 6u; a++) {
        var s0 = array<vec2<f32>, 4>();
        var s1 = array<vec2<f32>, 4>();
        var s2 = array<vec2<f32>, 4>();
        var s3 = array<vec2<f32>, 4>();
        var s4 = array<vec2<f32>, 4>();
        var s5 = array<vec2<f32>, 4>();
        var s6 = array<vec2<f32>, 4>();
        var s7 = array<vec2<f32>, 4>();
        var s8 = array<vec2<f32>, 4>();
        var s9 = array<vec2<f32>, 4>();
        var s10 = array<vec2<f32>, 4>();
        var s11 = array<vec2<f32>, 4>();
        var s12 = array<vec2<f32>, 4>();
        var s13 = array<vec2<f32>, 4>();
        var s14 = array<vec2<f32>, 4>();
        var s15 = array<vec2<f32>, 4>();
        var s16 = array<vec2<f32>, 4>();
        var s17 = array<vec2<f32>, 4>();
        var s18 = array<vec2<f32>, 4>();
        var s19 = array<vec2<f32>, 4>();
        var s20 = array<vec2<f32>, 4>();
        var s21 = array<vec2<f32>, 4>();
        var s22 = array<vec2<f32>, 4>();
        var s23 = array<vec2<f32>, 4>();
        for (var b = 0u; b < 6u; b++) {
            let xi = 6u * a + b;
            var wr = xi * p.c * o2 + qc;
            var acc0 = array<vec2<f32>, 8>();
            let va0 = vrow0 + xi * c4;
            var acc1 = array<vec2<f32>, 8>();
            let va1 = vrow1 + xi * c4;
            var acc2 = array<vec2<f32>, 8>();
            let va2 = vrow2 + xi * c4;
            for (var c = 0u; c < c4; c++) {
                let x0 = input4[va0 + c];
                let x1 = input4[va1 + c];
                let x2 = input4[va2 + c];
                let w0 = weight_vec2(wr);
                let w1 = weight_vec2(wr + o2);
                let w2 = weight_vec2(wr + 2u * o2);
                let w3 = weight_vec2(wr + 3u * o2);
                wr += 4u * o2;
                acc0 = mac_tile2(acc0, x0, w0, w1, w2, w3);
                acc1 = mac_tile2(acc1, x1, w0, w1, w2, w3);
                acc2 = mac_tile2(acc2, x2, w0, w1, w2, w3);
            }
            let kb = at_col(b);
            s0 = wino_row2(s0, acc0[0], kb);
            s1 = wino_row2(s1, acc0[1], kb);
            s2 = wino_row2(s2, acc0[2], kb);
            s3 = wino_row2(s3, acc0[3], kb);
            s4 = wino_row2(s4, acc0[4], kb);
            s5 = wino_row2(s5, acc0[5], kb);
            s6 = wino_row2(s6, acc0[6], kb);
            s7 = wino_row2(s7, acc0[7], kb);
            s8 = wino_row2(s8, acc1[0], kb);
            s9 = wino_row2(s9, acc1[1], kb);
            s10 = wino_row2(s10, acc1[2], kb);
            s11 = wino_row2(s11, acc1[3], kb);
            s12 = wino_row2(s12, acc1[4], kb);
            s13 = wino_row2(s13, acc1[5], kb);
            s14 = wino_row2(s14, acc1[6], kb);
            s15 = wino_row2(s15, acc1[7], kb);
            s16 = wino_row2(s16, acc2[0], kb);
            s17 = wino_row2(s17, acc2[1], kb);
            s18 = wino_row2(s18, acc2[2], kb);
            s19 = wino_row2(s19, acc2[3], kb);
            s20 = wino_row2(s20, acc2[4], kb);
            s21 = wino_row2(s21, acc2[5], kb);
            s22 = wino_row2(s22, acc2[6], kb);
            s23 = wino_row2(s23, acc2[7], kb);
        }
        let ka = at_col(a);
        ys[0] = wino_out2(ys[0], s0, ka);
        ys[1] = wino_out2(ys[1], s1, ka);
        ys[2] = wino_out2(ys[2], s2, ka);
        ys[3] = wino_out2(ys[3], s3, ka);
        ys[4] = wino_out2(ys[4], s4, ka);
        ys[5] = wino_out2(ys[5], s5, ka);
        ys[6] = wino_out2(ys[6], s6, ka);
        ys[7] = wino_out2(ys[7], s7, ka);
        ys[8] = wino_out2(ys[8], s8, ka);
        ys[9] = wino_out2(ys[9], s9, ka);
        ys[10] = wino_out2(ys[10], s10, ka);
        ys[11] = wino_out2(ys[11], s11, ka);
        ys[12] = wino_out2(ys[12], s12, ka);
        ys[13] = wino_out2(ys[13], s13, ka);
        ys[14] = wino_out2(ys[14], s14, ka);
        ys[15] = wino_out2(ys[15], s15, ka);
        ys[16] = wino_out2(ys[16], s16, ka);
        ys[17] = wino_out2(ys[17], s17, ka);
        ys[18] = wino_out2(ys[18], s18, ka);
        ys[19] = wino_out2(ys[19], s19, ka);
        ys[20] = wino_out2(ys[20], s20, ka);
        ys[21] = wino_out2(ys[21], s21, ka);
        ys[22] = wino_out2(ys[22], s22, ka);
        ys[23] = wino_out2(ys[23], s23, ka);
    }
    let b = select(vec2<f32>(0.0), vec2<f32>(bias[2u * qc], bias[2u * qc + 1u]), p.bias != 0u);
    for (var k = 0u; k < 24u; k++) { wino_epilogue2(r0 + k, q, o2, ys[k], b); }
}

@compute @workgroup_size(64)
fn winograd_gemm_out_sg_o16(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let tiles = ((p.o / 2u + SG - 1u) / SG) * ((wino_tiles() + 23u) / 24u);
    for (var t = first_tile(wid, nwg, lid); t < tiles; t = next_tile(lid)) {
        winograd_gemm_out_sg_o16_tile(t, lid % SG);
    }
    leave_queue(nwg, lid);
}
