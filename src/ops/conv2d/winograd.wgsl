// winograd.wgsl — the transforms of Winograd's minimal filtering F(4×4, 3×3) for 3×3, stride-1,
// "SAME" (pad 1) convolutions: a 4×4 block of outputs from a 6×6 block of inputs with 36
// multiplications per channel pair instead of 144. The multiplications form 36 independent
// GEMMs (one per point ξ of the 6×6 transformed tile), run by `winograd_gemm_sg` and
// `winograd_gemm_weight_sg` in winograd_gemm_sg.wgsl; the kernels here move tensors in and out
// of that domain. Up to 128 input channels the forward's GEMM and output transform are one
// kernel (`winograd_gemm_out_sg`, winograd_gemm_sg.wgsl), and `winograd_output` serves the
// wider layers (docs/notes/winograd.md). Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks" (2016), matrices of F(4, 3) with the points 0, ±1, ±2 and ∞:
//   forward   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A      (4×4 outputs of one tile and channel pair)
//   weight    dW = Gᵀ [ Σ_tiles (Bᵀ d B) ⊙ (A dY Aᵀ) ] G   (3×3, the same identity transposed)
//   input     dd = B [ Σ_o (G g Gᵀ) ⊙ (A dY Aᵀ) ] Bᵀ    (the forward's adjoint: 6×6 blocks that
//             overlap by 2 pixels and are added up), sharing D = A dY Aᵀ with the weight's.
// Same parameters as the convolution kernels (Conv2dParams; the input gradient's launcher swaps
// c and o); N·ceil(H/4)·ceil(W/4) tiles, tile t = (n, ty, tx) row-major, its 6×6 input block at
// (4ty − 1, 4tx − 1). Layouts, all channel-fastest in vec4s (C % 4 == 0, O % 4 == 0):
//   U[ξ][c][o] (transformed weights), V[t][ξ][c] (transformed inputs),
//   M[t][ξ][o] (products, from the GEMM), D[t][ξ][o] (transformed output gradients),
//   E[t][ξ][c] (the input gradient's products, turned into the 6×6 blocks P in place),
//   S[ξ][c][o] (the weight gradient in the transformed domain, from the GEMM).
// V, M, D and E are tile-major: an invocation's 36 points lie together (point-major layouts
// give each invocation 36 strided streams, which miss lavapipe's caches; docs/notes/winograd.md).
// One invocation per (tile or weight row, vec4 of channels), channels fastest. Edge tiles read
// zeros outside the image and store only the pixels inside it. The reference:
// ops/conv2d/winograd/cpu.rs, the same transforms in the same order.

@group(0) @binding(2) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> output4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> pooled4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read_write> relu_mask: array<u32>;
@group(0) @binding(27) var<storage, read_write> dweight4: array<vec4<f32>>;
@group(0) @binding(28) var<storage, read_write> dbias4: array<vec4<f32>>;
@group(0) @binding(50) var<storage, read_write> wu4: array<vec4<f32>>;
@group(0) @binding(52) var<storage, read_write> wv4_out: array<vec4<f32>>;
@group(0) @binding(53) var<storage, read> wm4: array<vec4<f32>>;
@group(0) @binding(54) var<storage, read_write> wd4_out: array<vec4<f32>>;
@group(0) @binding(55) var<storage, read> ws4: array<vec4<f32>>;
@group(0) @binding(56) var<storage, read> wd4: array<vec4<f32>>;
@group(0) @binding(57) var<storage, read_write> wu_t: array<f32>;
@group(0) @binding(58) var<storage, read_write> we4: array<vec4<f32>>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn tiles_h() -> u32 { return (p.h + 3u) / 4u; }
fn tiles_w() -> u32 { return (p.w + 3u) / 4u; }
fn tile_count() -> u32 { return p.n * tiles_h() * tiles_w(); }

// Bᵀ d: the data transform of 6 values.
fn bt6(d: array<vec4<f32>, 6>) -> array<vec4<f32>, 6> {
    return array<vec4<f32>, 6>(
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * d[1] - 4.0 * d[2] + d[3] + d[4],
        4.0 * d[1] - 4.0 * d[2] - d[3] + d[4],
        -2.0 * d[1] - d[2] + 2.0 * d[3] + d[4],
        2.0 * d[1] - d[2] - 2.0 * d[3] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5]);
}

// G g: the filter transform of 3 taps.
fn g3(g: array<vec4<f32>, 3>) -> array<vec4<f32>, 6> {
    return array<vec4<f32>, 6>(
        g[0] * 0.25,
        (g[0] + g[1] + g[2]) * (-1.0 / 6.0),
        (g[0] - g[1] + g[2]) * (-1.0 / 6.0),
        g[0] * (1.0 / 24.0) + g[1] * (1.0 / 12.0) + g[2] * (1.0 / 6.0),
        g[0] * (1.0 / 24.0) - g[1] * (1.0 / 12.0) + g[2] * (1.0 / 6.0),
        g[2]);
}

// Aᵀ m: the output transform of 6 values.
fn at6(m: array<vec4<f32>, 6>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        m[0] + m[1] + m[2] + m[3] + m[4],
        m[1] - m[2] + 2.0 * (m[3] - m[4]),
        m[1] + m[2] + 4.0 * (m[3] + m[4]),
        m[1] - m[2] + 8.0 * (m[3] - m[4]) + m[5]);
}

// A f: the output gradient's transform of 4 values (weight gradient).
fn a4(f: array<vec4<f32>, 4>) -> array<vec4<f32>, 6> {
    return array<vec4<f32>, 6>(
        f[0],
        f[0] + f[1] + f[2] + f[3],
        f[0] - f[1] + f[2] - f[3],
        f[0] + 2.0 * f[1] + 4.0 * f[2] + 8.0 * f[3],
        f[0] - 2.0 * f[1] + 4.0 * f[2] - 8.0 * f[3],
        f[3]);
}

// Gᵀ s: back from the transformed domain to 3 taps (weight gradient).
fn gt6(s: array<vec4<f32>, 6>) -> array<vec4<f32>, 3> {
    return array<vec4<f32>, 3>(
        s[0] * 0.25 - (s[1] + s[2]) * (1.0 / 6.0) + (s[3] + s[4]) * (1.0 / 24.0),
        (s[2] - s[1]) * (1.0 / 6.0) + (s[3] - s[4]) * (1.0 / 12.0),
        (s[3] + s[4] - s[1] - s[2]) * (1.0 / 6.0) + s[5]);
}

// U[ξ][c][o4] = (G g Gᵀ)[ξ], g the 3×3 taps of weight (c, o4) (HWIO). With `transposed`
// (the input gradient's GEMM contracts over o) it is stored as U[ξ][o][c] instead, one scalar
// at a time (binding 57; the entries declare both bindings, the launcher binds one tensor).
// With `flipped` the taps are taken rotated by 180° (g[ky][kx] = w[2 − ky][2 − kx]): stored
// transposed, those are the weights of the transposed convolution (the input gradient as a
// forward of dout, `winograd_weight_flip_t`).
fn weight_transform(i: u32, transposed: bool, flipped: bool) {
    let o4 = p.o / 4u;
    if (i >= p.c * o4) { return; }
    let c = i / o4;
    let q = i % o4;
    var g = array<vec4<f32>, 9>();
    for (var k = 0u; k < 9u; k++) {
        g[k] = weight4[(select(k, 8u - k, flipped) * p.c + c) * o4 + q];
    }
    // Rows (ky) first: r[ky][ξx] = G · (taps of row ky), then columns.
    var r = array<array<vec4<f32>, 6>, 3>();
    for (var ky = 0u; ky < 3u; ky++) {
        r[ky] = g3(array<vec4<f32>, 3>(g[3u * ky], g[3u * ky + 1u], g[3u * ky + 2u]));
    }
    for (var x = 0u; x < 6u; x++) {
        let col = g3(array<vec4<f32>, 3>(r[0][x], r[1][x], r[2][x]));
        for (var y = 0u; y < 6u; y++) {
            let xi = y * 6u + x;
            if (transposed) {
                for (var j = 0u; j < 4u; j++) {
                    wu_t[(xi * p.o + 4u * q + j) * p.c + c] = col[y][j];
                }
            } else {
                wu4[(xi * p.c + c) * o4 + q] = col[y];
            }
        }
    }
}

@compute @workgroup_size(64)
fn winograd_weight(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    weight_transform(flat_id(gid, nwg), false, false);
}

@compute @workgroup_size(64)
fn winograd_weight_t(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    weight_transform(flat_id(gid, nwg), true, false);
}

@compute @workgroup_size(64)
fn winograd_weight_flip_t(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    weight_transform(flat_id(gid, nwg), true, true);
}

// Bᵀ times input row iy of the 6×6 block at columns x0..x0+5 (zeros outside the image).
fn input_row(n: u32, iy: i32, x0: i32, q: u32, c4: u32) -> array<vec4<f32>, 6> {
    let row_ok = iy >= 0 && iy < i32(p.h);
    let base = (n * p.h + u32(max(iy, 0))) * p.w;
    return bt6(array<vec4<f32>, 6>(input_at(base, x0, row_ok, q, c4),
                                   input_at(base, x0 + 1, row_ok, q, c4),
                                   input_at(base, x0 + 2, row_ok, q, c4),
                                   input_at(base, x0 + 3, row_ok, q, c4),
                                   input_at(base, x0 + 4, row_ok, q, c4),
                                   input_at(base, x0 + 5, row_ok, q, c4)));
}

fn input_at(base: u32, ix: i32, row_ok: bool, q: u32, c4: u32) -> vec4<f32> {
    let ok = row_ok && ix >= 0 && ix < i32(p.w);
    return select(vec4<f32>(0.0), input4[select(0u, (base + u32(ix)) * c4 + q, ok)], ok);
}

// Column x of a transformed 6×6 tile (rows r0..r5 already transformed), transformed by Bᵀ and
// stored at points (y, x), y = 0..5 (`i` the element of point 0, `s` the stride between points).
fn store_v_col(i: u32, s: u32, x: u32, r0: array<vec4<f32>, 6>, r1: array<vec4<f32>, 6>,
               r2: array<vec4<f32>, 6>, r3: array<vec4<f32>, 6>, r4: array<vec4<f32>, 6>,
               r5: array<vec4<f32>, 6>) {
    let c = bt6(array<vec4<f32>, 6>(r0[x], r1[x], r2[x], r3[x], r4[x], r5[x]));
    wv4_out[i + x * s] = c[0];
    wv4_out[i + (6u + x) * s] = c[1];
    wv4_out[i + (12u + x) * s] = c[2];
    wv4_out[i + (18u + x) * s] = c[3];
    wv4_out[i + (24u + x) * s] = c[4];
    wv4_out[i + (30u + x) * s] = c[5];
}

// V[t][ξ][c4] = (Bᵀ d B)[ξ], d the 6×6 input block of tile t (zeros outside the image).
// Straight-line code: lavapipe keeps arrays indexed by loop counters in memory, lane by lane.
@compute @workgroup_size(64)
fn winograd_input(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let c4 = p.c / 4u;
    let tiles = tile_count();
    let i = flat_id(gid, nwg);
    if (i >= tiles * c4) { return; }
    let t = i / c4;
    let q = i % c4;
    let tx = t % tiles_w();
    let ty = (t / tiles_w()) % tiles_h();
    let n = t / (tiles_w() * tiles_h());
    let y0 = i32(4u * ty) - 1;
    let x0 = i32(4u * tx) - 1;
    let r0 = input_row(n, y0, x0, q, c4);
    let r1 = input_row(n, y0 + 1, x0, q, c4);
    let r2 = input_row(n, y0 + 2, x0, q, c4);
    let r3 = input_row(n, y0 + 3, x0, q, c4);
    let r4 = input_row(n, y0 + 4, x0, q, c4);
    let r5 = input_row(n, y0 + 5, x0, q, c4);
    let s = c4;
    let j = t * 36u * c4 + q;
    store_v_col(j, s, 0u, r0, r1, r2, r3, r4, r5);
    store_v_col(j, s, 1u, r0, r1, r2, r3, r4, r5);
    store_v_col(j, s, 2u, r0, r1, r2, r3, r4, r5);
    store_v_col(j, s, 3u, r0, r1, r2, r3, r4, r5);
    store_v_col(j, s, 4u, r0, r1, r2, r3, r4, r5);
    store_v_col(j, s, 5u, r0, r1, r2, r3, r4, r5);
}

// Row y of M for one tile and vec4 of channels (`i` its first element, `s` the stride between
// points), times A: (M A)[y][0..3]. Straight-line code: lavapipe keeps arrays indexed by loop
// counters in memory, lane by lane.
fn m_row(i: u32, s: u32, y: u32) -> array<vec4<f32>, 4> {
    let j = i + 6u * y * s;
    return at6(array<vec4<f32>, 6>(wm4[j], wm4[j + s], wm4[j + 2u * s], wm4[j + 3u * s],
                                   wm4[j + 4u * s], wm4[j + 5u * s]));
}

// Column x of Aᵀ (M A), + bias, ReLU with p.relu: the outputs (0..3, x) of the tile.
fn out_col(r0: array<vec4<f32>, 4>, r1: array<vec4<f32>, 4>, r2: array<vec4<f32>, 4>,
           r3: array<vec4<f32>, 4>, r4: array<vec4<f32>, 4>, r5: array<vec4<f32>, 4>, x: u32,
           b: vec4<f32>) -> array<vec4<f32>, 4> {
    let c = at6(array<vec4<f32>, 6>(r0[x], r1[x], r2[x], r3[x], r4[x], r5[x]));
    let z = vec4<f32>(0.0);
    let relu = p.relu != 0u;
    return array<vec4<f32>, 4>(select(c[0] + b, max(c[0] + b, z), relu),
                               select(c[1] + b, max(c[1] + b, z), relu),
                               select(c[2] + b, max(c[2] + b, z), relu),
                               select(c[3] + b, max(c[3] + b, z), relu));
}

// Output pixel (y, x) of the image, channels 4q.., if inside it.
fn store_out(n: u32, y: u32, x: u32, q: u32, o4: u32, v: vec4<f32>) {
    if (y < p.h && x < p.w) { output4[((n * p.h + y) * p.w + x) * o4 + q] = v; }
}

// The ReLU mask word of pixel (y, x) for channels 32·(q / 8)..: the 8 lanes' sign nibbles OR-ed
// (lane = q % 8).
fn mask_word(v: vec4<f32>, q: u32) -> u32 {
    let s = vec4<u32>(v > vec4<f32>(0.0)) << vec4<u32>(0u, 1u, 2u, 3u);
    return subgroupOr((s.x | s.y | s.z | s.w) << (4u * (q % 8u)));
}

fn store_mask(n: u32, y: u32, x: u32, q: u32, o4: u32, word: u32) {
    if (y < p.h && x < p.w) { relu_mask[((n * p.h + y) * p.w + x) * (o4 / 8u) + q / 8u] = word; }
}

// The 2×2 window (a, b; c, d) of pooled pixel (py, px), if inside the pooled image.
fn store_pool(n: u32, py: u32, px: u32, q: u32, o4: u32, a: vec4<f32>, b: vec4<f32>,
              c: vec4<f32>, d: vec4<f32>) {
    let ph = p.h / 2u;
    let pw = p.w / 2u;
    if (py < ph && px < pw) { pooled4[((n * ph + py) * pw + px) * o4 + q] = (a + b + c + d) * 0.25; }
}

// Y = Aᵀ M A for tile t and output channels 4q..4q+3 (layers of more than 128 input channels;
// ops/conv2d/winograd/mod.rs fuses_output), then the forward's epilogue (conv2d_sg_forward.wgsl's
// store_output_tile): + bias, ReLU (p.relu), the output (or with p.mask its signs), and with
// p.pool the 2×2 average pool (a tile holds 2×2 whole windows; H and W even).
// p.mask needs O % 32 == 0: the 8 lanes of a subgroup are then 32 channels of one tile (lane =
// q % 8: subgroups are 8 consecutive invocations, as the launcher's layout probe confirmed).
@compute @workgroup_size(64)
fn winograd_output(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let o4 = p.o / 4u;
    let tiles = tile_count();
    let i = flat_id(gid, nwg);
    if (i >= tiles * o4) { return; }
    let t = i / o4;
    let q = i % o4;
    let tx = t % tiles_w();
    let ty = (t / tiles_w()) % tiles_h();
    let n = t / (tiles_w() * tiles_h());
    let s = o4;
    let j = t * 36u * o4 + q;
    let r0 = m_row(j, s, 0u);
    let r1 = m_row(j, s, 1u);
    let r2 = m_row(j, s, 2u);
    let r3 = m_row(j, s, 3u);
    let r4 = m_row(j, s, 4u);
    let r5 = m_row(j, s, 5u);
    let b = select(vec4<f32>(0.0), bias4[min(q, arrayLength(&bias4) - 1u)], p.bias != 0u);
    // Columns x = 0..3 of the 4×4 outputs: cx[y].
    let c0 = out_col(r0, r1, r2, r3, r4, r5, 0u, b);
    let c1 = out_col(r0, r1, r2, r3, r4, r5, 1u, b);
    let c2 = out_col(r0, r1, r2, r3, r4, r5, 2u, b);
    let c3 = out_col(r0, r1, r2, r3, r4, r5, 3u, b);
    let y = 4u * ty;
    let x = 4u * tx;
    if (p.mask != 0u) {
        // Lane j stores pixels j (row j / 4, column j % 4) and j + 8 of the tile.
        let lane = q % 8u;
        var w0 = 0u;
        var w1 = 0u;
        let k0 = mask_word(c0[0], q); let k1 = mask_word(c1[0], q);
        let k2 = mask_word(c2[0], q); let k3 = mask_word(c3[0], q);
        let k4 = mask_word(c0[1], q); let k5 = mask_word(c1[1], q);
        let k6 = mask_word(c2[1], q); let k7 = mask_word(c3[1], q);
        let k8 = mask_word(c0[2], q); let k9 = mask_word(c1[2], q);
        let k10 = mask_word(c2[2], q); let k11 = mask_word(c3[2], q);
        let k12 = mask_word(c0[3], q); let k13 = mask_word(c1[3], q);
        let k14 = mask_word(c2[3], q); let k15 = mask_word(c3[3], q);
        let lo = array<u32, 8>(k0, k1, k2, k3, k4, k5, k6, k7);
        let hi = array<u32, 8>(k8, k9, k10, k11, k12, k13, k14, k15);
        store_mask(n, y + lane / 4u, x + lane % 4u, q, o4, lo[lane]);
        store_mask(n, y + 2u + lane / 4u, x + lane % 4u, q, o4, hi[lane]);
    } else {
        store_out(n, y, x, q, o4, c0[0]);
        store_out(n, y, x + 1u, q, o4, c1[0]);
        store_out(n, y, x + 2u, q, o4, c2[0]);
        store_out(n, y, x + 3u, q, o4, c3[0]);
        store_out(n, y + 1u, x, q, o4, c0[1]);
        store_out(n, y + 1u, x + 1u, q, o4, c1[1]);
        store_out(n, y + 1u, x + 2u, q, o4, c2[1]);
        store_out(n, y + 1u, x + 3u, q, o4, c3[1]);
        store_out(n, y + 2u, x, q, o4, c0[2]);
        store_out(n, y + 2u, x + 1u, q, o4, c1[2]);
        store_out(n, y + 2u, x + 2u, q, o4, c2[2]);
        store_out(n, y + 2u, x + 3u, q, o4, c3[2]);
        store_out(n, y + 3u, x, q, o4, c0[3]);
        store_out(n, y + 3u, x + 1u, q, o4, c1[3]);
        store_out(n, y + 3u, x + 2u, q, o4, c2[3]);
        store_out(n, y + 3u, x + 3u, q, o4, c3[3]);
    }
    if (p.pool != 0u) {
        store_pool(n, 2u * ty, 2u * tx, q, o4, c0[0], c1[0], c0[1], c1[1]);
        store_pool(n, 2u * ty, 2u * tx + 1u, q, o4, c2[0], c3[0], c2[1], c3[1]);
        store_pool(n, 2u * ty + 1u, 2u * tx, q, o4, c0[2], c1[2], c0[3], c1[3]);
        store_pool(n, 2u * ty + 1u, 2u * tx + 1u, q, o4, c2[2], c3[2], c2[3], c3[3]);
    }
}

// A times row iy of the tile's 4×4 output gradient block at columns x0..x0+3 (zeros outside).
fn dout_row(n: u32, iy: u32, x0: u32, q: u32, o4: u32, pooled: bool) -> array<vec4<f32>, 6> {
    return a4(array<vec4<f32>, 4>(dout_at(n, iy, x0, q, o4, pooled),
                                  dout_at(n, iy, x0 + 1u, q, o4, pooled),
                                  dout_at(n, iy, x0 + 2u, q, o4, pooled),
                                  dout_at(n, iy, x0 + 3u, q, o4, pooled)));
}

// The output gradient at (iy, ix), channels 4q..: from the tensor (binding 11), or with
// `pooled` from the gradient of the 2×2 average pool that follows the layer's ReLU (binding 11
// then holds the pooled gradient, binding 19 the ReLU mask): what avgpool_backward_relu_k2_mask
// would have stored there, computed the same way (bitwise equal).
fn dout_at(n: u32, iy: u32, ix: u32, q: u32, o4: u32, pooled: bool) -> vec4<f32> {
    let ok = iy < p.h && ix < p.w;
    let pix = (n * p.h + min(iy, p.h - 1u)) * p.w + min(ix, p.w - 1u);
    if (pooled) {
        let g = dout4[((n * (p.h / 2u) + min(iy, p.h - 1u) / 2u) * (p.w / 2u)
                       + min(ix, p.w - 1u) / 2u) * o4 + q] * 0.25;
        return select(vec4<f32>(0.0), g, mask4(pix, q, (p.o + 31u) / 32u) & vec4<bool>(ok));
    }
    return select(vec4<f32>(0.0), dout4[pix * o4 + q], ok);
}

// Column x of A (rows r0..r3) stored at points (y, x), y = 0..5.
fn store_d_col(i: u32, s: u32, x: u32, r0: array<vec4<f32>, 6>, r1: array<vec4<f32>, 6>,
               r2: array<vec4<f32>, 6>, r3: array<vec4<f32>, 6>) {
    let c = a4(array<vec4<f32>, 4>(r0[x], r1[x], r2[x], r3[x]));
    wd4_out[i + x * s] = c[0];
    wd4_out[i + (6u + x) * s] = c[1];
    wd4_out[i + (12u + x) * s] = c[2];
    wd4_out[i + (18u + x) * s] = c[3];
    wd4_out[i + (24u + x) * s] = c[4];
    wd4_out[i + (30u + x) * s] = c[5];
}

// D[t][ξ][o4] = (A f Aᵀ)[ξ], f the 4×4 output gradient block of tile t (zeros outside).
fn dout_transform(i: u32, pooled: bool) {
    let o4 = p.o / 4u;
    let tiles = tile_count();
    if (i >= tiles * o4) { return; }
    let t = i / o4;
    let q = i % o4;
    let tx = t % tiles_w();
    let ty = (t / tiles_w()) % tiles_h();
    let n = t / (tiles_w() * tiles_h());
    let r0 = dout_row(n, 4u * ty, 4u * tx, q, o4, pooled);
    let r1 = dout_row(n, 4u * ty + 1u, 4u * tx, q, o4, pooled);
    let r2 = dout_row(n, 4u * ty + 2u, 4u * tx, q, o4, pooled);
    let r3 = dout_row(n, 4u * ty + 3u, 4u * tx, q, o4, pooled);
    let s = o4;
    let j = t * 36u * o4 + q;
    store_d_col(j, s, 0u, r0, r1, r2, r3);
    store_d_col(j, s, 1u, r0, r1, r2, r3);
    store_d_col(j, s, 2u, r0, r1, r2, r3);
    store_d_col(j, s, 3u, r0, r1, r2, r3);
    store_d_col(j, s, 4u, r0, r1, r2, r3);
    store_d_col(j, s, 5u, r0, r1, r2, r3);
}

@compute @workgroup_size(64)
fn winograd_dout(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    dout_transform(flat_id(gid, nwg), false);
}

// The same from the pooled gradient and the ReLU mask (the layer's ReLU → 2×2 average pool
// backward fused in; H and W even, O % 4 == 0): the full-resolution gradient is never stored.
@compute @workgroup_size(64)
fn winograd_dout_pool(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    dout_transform(flat_id(gid, nwg), true);
}

// dW[ky][kx][c][o4] = (Gᵀ S G)[ky][kx]; with p.bias the invocations of row c = 0 also write
// dbias[o4] = Σ_t D[t][ξ = (1, 1)][o4] (A's row 1 is all ones: that point is the tile's sum),
// in tile order.
@compute @workgroup_size(64)
fn winograd_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let o4 = p.o / 4u;
    let i = flat_id(gid, nwg);
    if (i >= p.c * o4) { return; }
    let c = i / o4;
    let q = i % o4;
    var r = array<array<vec4<f32>, 3>, 6>();
    for (var y = 0u; y < 6u; y++) {
        var s = array<vec4<f32>, 6>();
        for (var x = 0u; x < 6u; x++) {
            s[x] = ws4[((y * 6u + x) * p.c + c) * o4 + q];
        }
        r[y] = gt6(s);
    }
    for (var kx = 0u; kx < 3u; kx++) {
        let col = gt6(array<vec4<f32>, 6>(r[0][kx], r[1][kx], r[2][kx], r[3][kx], r[4][kx], r[5][kx]));
        for (var ky = 0u; ky < 3u; ky++) {
            dweight4[((ky * 3u + kx) * p.c + c) * o4 + q] = col[ky];
        }
    }
    if (p.bias != 0u && c == 0u) {
        let tiles = tile_count();
        var sum = vec4<f32>(0.0);
        for (var t = 0u; t < tiles; t++) {
            sum += wd4[(t * 36u + 7u) * o4 + q];
        }
        dbias4[q] = sum;
    }
}

// B e: the adjoint of the data transform (Bᵀ's transpose), 6 → 6.
fn b6(e: array<vec4<f32>, 6>) -> array<vec4<f32>, 6> {
    return array<vec4<f32>, 6>(
        4.0 * e[0],
        -4.0 * e[1] + 4.0 * e[2] - 2.0 * e[3] + 2.0 * e[4] + 4.0 * e[5],
        -5.0 * e[0] - 4.0 * e[1] - 4.0 * e[2] - e[3] - e[4],
        e[1] - e[2] + 2.0 * e[3] - 2.0 * e[4] - 5.0 * e[5],
        e[0] + e[1] + e[2] + e[3] + e[4],
        e[5]);
}

// Row y of E for one tile and vec4 of channels times B (element `i` of point 0, stride `s`).
fn e_row(i: u32, s: u32, y: u32) -> array<vec4<f32>, 6> {
    let j = i + 6u * y * s;
    return b6(array<vec4<f32>, 6>(we4[j], we4[j + s], we4[j + 2u * s], we4[j + 3u * s],
                                  we4[j + 4u * s], we4[j + 5u * s]));
}

fn store_p_col(i: u32, s: u32, x: u32, r0: array<vec4<f32>, 6>, r1: array<vec4<f32>, 6>,
               r2: array<vec4<f32>, 6>, r3: array<vec4<f32>, 6>, r4: array<vec4<f32>, 6>,
               r5: array<vec4<f32>, 6>) {
    let c = b6(array<vec4<f32>, 6>(r0[x], r1[x], r2[x], r3[x], r4[x], r5[x]));
    we4[i + x * s] = c[0];
    we4[i + (6u + x) * s] = c[1];
    we4[i + (12u + x) * s] = c[2];
    we4[i + (18u + x) * s] = c[3];
    we4[i + (24u + x) * s] = c[4];
    we4[i + (30u + x) * s] = c[5];
}

// The input gradient's tiles (p: the transposed convolution's params, p.o = the layer's C):
// E[t][ξ][c4] (= Σ_o D[t][ξ][o] U[ξ][c][o], from the GEMM) becomes P = B E Bᵀ in place, the
// gradient of tile t's 6×6 input block at (4ty − 1, 4tx − 1) — the adjoint of winograd_input.
// The blocks overlap by 2 pixels; winograd_gather adds them up.
@compute @workgroup_size(64)
fn winograd_adjoint(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let o4 = p.o / 4u;
    let tiles = tile_count();
    let i = flat_id(gid, nwg);
    if (i >= tiles * o4) { return; }
    let t = i / o4;
    let q = i % o4;
    let j = t * 36u * o4 + q;
    let r0 = e_row(j, o4, 0u);
    let r1 = e_row(j, o4, 1u);
    let r2 = e_row(j, o4, 2u);
    let r3 = e_row(j, o4, 3u);
    let r4 = e_row(j, o4, 4u);
    let r5 = e_row(j, o4, 5u);
    store_p_col(j, o4, 0u, r0, r1, r2, r3, r4, r5);
    store_p_col(j, o4, 1u, r0, r1, r2, r3, r4, r5);
    store_p_col(j, o4, 2u, r0, r1, r2, r3, r4, r5);
    store_p_col(j, o4, 3u, r0, r1, r2, r3, r4, r5);
    store_p_col(j, o4, 4u, r0, r1, r2, r3, r4, r5);
    store_p_col(j, o4, 5u, r0, r1, r2, r3, r4, r5);
}

// dinput[n, y, x, c4] = Σ P_t[y − 4ty + 1][x − 4tx + 1] over the (1, 2 or 4) tiles whose
// blocks hold the pixel, in a fixed order (up/left tile first): one invocation per vec4 of the
// output (p as winograd_adjoint's; P from binding 53). With `pooled` the input gradient is that
// of a 2×2 average pool after a ReLU (the layer before): instead of it, the pool and ReLU
// backward's output is stored, the 4 pixels of the window at full resolution (binding 14, the
// ReLU mask at binding 19), as avgpool_backward_relu_k2_mask computes them (bitwise equal).
fn gather(i: u32, pooled: bool) {
    let o4 = p.o / 4u;
    if (i >= p.n * p.h * p.w * o4) { return; }
    let q = i % o4;
    let m = i / o4;
    let x = m % p.w;
    let y = (m / p.w) % p.h;
    let n = m / (p.w * p.h);
    let th = tiles_h();
    let tw = tiles_w();
    // The tile whose block holds (y, x) at position (y % 4 + 1, x % 4 + 1), and whether the
    // tile above (position 5) or left (position 5) holds it too.
    let ty = y / 4u;
    let tx = x / 4u;
    let up = y % 4u == 0u && ty > 0u;
    let left = x % 4u == 0u && tx > 0u;
    let down = y % 4u == 3u && ty + 1u < th;
    let right = x % 4u == 3u && tx + 1u < tw;
    var sum = vec4<f32>(0.0);
    for (var dy = 0u; dy < 3u; dy++) {
        // dy: 0 the tile above, 1 this one, 2 the one below.
        let use_y = select(select(down, true, dy == 1u), up, dy == 0u);
        let py = select(select(0u, y % 4u + 1u, dy == 1u), 5u, dy == 0u);
        let tyy = ty + dy - 1u;
        for (var dx = 0u; dx < 3u; dx++) {
            let use_x = select(select(right, true, dx == 1u), left, dx == 0u);
            let px = select(select(0u, x % 4u + 1u, dx == 1u), 5u, dx == 0u);
            let txx = tx + dx - 1u;
            if (use_y && use_x) {
                let t = (n * th + tyy) * tw + txx;
                sum += wm4[(t * 36u + py * 6u + px) * o4 + q];
            }
        }
    }
    if (!pooled) {
        output4[i] = sum;
        return;
    }
    let g = sum * 0.25;
    let z = vec4<f32>(0.0);
    let words = (p.o + 31u) / 32u;
    let a = (n * 2u * p.h + 2u * y) * 2u * p.w + 2u * x;
    let b = a + 2u * p.w;
    output4[a * o4 + q] = select(z, g, mask4(a, q, words));
    output4[(a + 1u) * o4 + q] = select(z, g, mask4(a + 1u, q, words));
    output4[b * o4 + q] = select(z, g, mask4(b, q, words));
    output4[(b + 1u) * o4 + q] = select(z, g, mask4(b + 1u, q, words));
}

// The ReLU mask of channels 4q .. 4q + 3 at pixel `pix` (avgpool.wgsl's).
fn mask4(pix: u32, q: u32, words: u32) -> vec4<bool> {
    let nib = relu_mask[pix * words + q / 8u] >> (4u * (q % 8u));
    return (vec4<u32>(nib) & vec4<u32>(1u, 2u, 4u, 8u)) != vec4<u32>(0u);
}

@compute @workgroup_size(64)
fn winograd_gather(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(flat_id(gid, nwg), false);
}

@compute @workgroup_size(64)
fn winograd_gather_pool(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(flat_id(gid, nwg), true);
}
