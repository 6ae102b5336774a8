// conv2d_wg.wgsl — conv2d (and, with K = 1 and H = W = 1, dense) kernels for GPUs: implicit
// GEMMs in 64×64 output tiles, each K-slice staged through workgroup memory. Same math, layouts
// and parameters as conv2d.wgsl (NHWC, HWIO, any kernel, stride and padding,
// output[n,y,x,o] = bias[o] + Σ input · weight, the bias only when p.bias = 1); only the work
// split differs.
//
// Why: on a GPU the register-tiled kernels of conv2d.wgsl load every operand from global memory
// (through the cache) once per 4×4 or 4×8 block of multiply-adds. Here a workgroup of 256
// invocations stages a 64×16 slice of A and a 16×64 slice of B in workgroup memory (8 KiB, half
// of WebGPU's guaranteed 16 KiB) with one or a few loads per invocation, then every invocation
// reads a vec4 of each per step and does 16 multiply-adds into its 4×4 register block: 64 × 64 ×
// 16 multiply-adds per workgroup per slice for 2 × 1024 global loads (a 64-fold reuse, vs 4–5 for
// the register tiles). CPU-type adapters such as lavapipe run workgroup memory and barriers in
// software and gain nothing from the reuse (their caches already hold the operands): the planner
// keeps them on the subgroup or register-tiled kernels, and tests force this family there.
//
// The three GEMMs (M×N outputs, K the reduction; A is gathered through the convolution's indices,
// never materialised):
//   conv2d_forward_wg          output = conv(input, weight) + bias (then ReLU when p.relu = 1)
//                              M = N·OH·OW pixels, N = O, K = KH·KW·C (k = (ky·KW + kx)·C + c)
//   conv2d_backward_input_wg   dinput = conv_transpose(dout, weight)
//                              M = N·H·W pixels, N = C, K = the taps of the tile's stride
//                              phase × O (k = tap·O + o; every tap when unstrided): a tap
//                              contributes only where y + pad_t − ky is a multiple of SH (and
//                              the same in x), so pixels are tiled by that remainder
//   conv2d_backward_weight_wg  partials[s] as conv2d_backward_weight (rows KH·KW·C plus the bias
//                              row of ones, columns O), K = the output pixels of split s (split-K,
//                              sized by the planner from the tile count); the fixed-order sum
//                              over splits is conv2d.wgsl's conv2d_backward_weight_reduce (with
//                              one split, as for dense layers, the partials are the gradients)
// The *_vec4 variants load through the vec4 views of the same buffers (input4, weight4, dout4):
// forward and weight gradient need C % 4 == 0 and O % 4 == 0, the input gradient O % 4 == 0.
// (Separate entry points rather than a branch: an entry point must bind every view it names, and
// a buffer of fewer than 4 floats cannot be bound as array<vec4<f32>>.)
//
// Every output element is one invocation's sum over k in increasing order (and the split-K
// partials are summed in split order): deterministic, no atomics. All entry points write with =.
// Loads past the end of a tensor (or in the padding) read 0, stores past the end are masked, so
// any shape works; a workgroup past the end of the grid returns at once (grids fold into y).

// Conv2dParams and the uniform p: conv2d_common.wgsl.
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dinput: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;

// Output tile BM × BN per workgroup, K-slices of BK; 256 invocations as 16 × 16 blocks of 4×4.
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// K-slices, [BK][64] as 16 vec4s per k: a_tile[k·16 + m/4][m % 4] = A[m0 + m, k0 + k],
// b_tile[k·16 + n/4][n % 4] = B[k0 + k, n0 + n].
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

// The 4×4 block of this invocation: rows 4·ty + i (acc_i), columns 4·tx .. 4·tx + 3.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

fn tile_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Staging roles of invocation lid within a slice. "Row": slice row lid / 16, the 4 columns from
// 4·(lid % 16) (operands contiguous along the tile's columns). "Column": tile column lid / 4, the
// 4 slice rows from 4·(lid % 4) (operands contiguous along k).
fn put_a_row(lid: u32, v: vec4<f32>) {
    a_tile[lid] = v;
}
fn put_b_row(lid: u32, v: vec4<f32>) {
    b_tile[lid] = v;
}
fn put_a_col(lid: u32, v: vec4<f32>) {
    let col = lid / 4u;
    let k = 4u * (lid % 4u);
    let i = k * 16u + col / 4u;
    let j = col % 4u;
    a_tile[i][j] = v.x;
    a_tile[i + 16u][j] = v.y;
    a_tile[i + 32u][j] = v.z;
    a_tile[i + 48u][j] = v.w;
}
fn put_b_col(lid: u32, v: vec4<f32>) {
    let col = lid / 4u;
    let k = 4u * (lid % 4u);
    let i = k * 16u + col / 4u;
    let j = col % 4u;
    b_tile[i][j] = v.x;
    b_tile[i + 16u][j] = v.y;
    b_tile[i + 32u][j] = v.z;
    b_tile[i + 48u][j] = v.w;
}

// One staged slice into the register block (between two barriers).
fn multiply_slice(lid: u32) {
    let tx = lid % 16u;
    let ty = lid / 16u;
    for (var k = 0u; k < BK; k++) {
        let a = a_tile[k * 16u + ty];
        let b = b_tile[k * 16u + tx];
        acc0 += a.x * b;
        acc1 += a.y * b;
        acc2 += a.z * b;
        acc3 += a.w * b;
    }
}

// ---- forward -----------------------------------------------------------------------------------

// The first tap of output pixel m in input coordinates: (n·H, oy·SH − pad_t, ox·SW − pad_l), and
// whether m is a pixel at all.
struct OutPixel { nh: u32, iy: i32, ix: i32, ok: bool }

fn out_pixel(m: u32) -> OutPixel {
    let m_total = p.n * p.out_h * p.out_w;
    let mc = min(m, m_total - 1u);
    let ox = mc % p.out_w;
    let t = mc / p.out_w;
    let oy = t % p.out_h;
    return OutPixel((t / p.out_h) * p.h, i32(oy * p.sh) - i32(p.pad_t),
                    i32(ox * p.sw) - i32(p.pad_l), m < m_total);
}

// input[n, iy + ky, ix + kx, c] for k = (ky·KW + kx)·C + c; the offset (in floats) of tap k, or
// -1 in the padding or past K.
fn fwd_offset(px: OutPixel, k: u32) -> i32 {
    if (!px.ok || k >= p.kh * p.kw * p.c) { return -1; }
    let c = k % p.c;
    let tap = k / p.c;
    let iy = px.iy + i32(tap / p.kw);
    let ix = px.ix + i32(tap % p.kw);
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return -1; }
    return i32(((px.nh + u32(iy)) * p.w + u32(ix)) * p.c + c);
}

fn input_at(off: i32) -> f32 {
    return select(0.0, input[max(off, 0)], off >= 0);
}

// A[m, k .. k + 3] (4 taps of one pixel).
fn fwd_a(px: OutPixel, k: u32) -> vec4<f32> {
    return vec4<f32>(input_at(fwd_offset(px, k)), input_at(fwd_offset(px, k + 1u)),
                     input_at(fwd_offset(px, k + 2u)), input_at(fwd_offset(px, k + 3u)));
}
// The same for C % 4 == 0 and k % 4 == 0: one tap, 4 channels, one vec4.
fn fwd_a4(px: OutPixel, k: u32) -> vec4<f32> {
    let off = fwd_offset(px, k);
    return select(vec4<f32>(0.0), input4[max(off, 0) / 4], off >= 0);
}

// B[k, n .. n + 3] of a row-major [rows][cols] matrix, zero outside.
fn weight_row(k: u32, n: u32, rows: u32, cols: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k < rows) {
        for (var j = 0u; j < 4u; j++) {
            if (n + j < cols) { v[j] = weight[k * cols + n + j]; }
        }
    }
    return v;
}
fn weight_row4(k: u32, n: u32, rows: u32, cols: u32) -> vec4<f32> {
    if (k >= rows || n >= cols) { return vec4<f32>(0.0); }
    return weight4[(k * cols + n) / 4u];
}

fn store_output(m: u32, n0: u32, v_in: vec4<f32>) {
    if (m >= p.n * p.out_h * p.out_w) { return; }
    var v = v_in;
    for (var j = 0u; j < 4u; j++) {
        if (n0 + j < p.o) {
            if (p.bias != 0u) { v[j] += bias[n0 + j]; }
            if (p.relu != 0u) { v[j] = max(v[j], 0.0); }
            output[m * p.o + n0 + j] = v[j];
        }
    }
}

fn forward_epilogue(lid: u32, m0: u32, n0: u32) {
    let m = m0 + 4u * (lid / 16u);
    let n = n0 + 4u * (lid % 16u);
    store_output(m, n, acc0);
    store_output(m + 1u, n, acc1);
    store_output(m + 2u, n, acc2);
    store_output(m + 3u, n, acc3);
}

@compute @workgroup_size(256)
fn conv2d_forward_wg(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let m_total = p.n * p.out_h * p.out_w;
    let k_total = p.kh * p.kw * p.c;
    let ntiles = (p.o + BN - 1u) / BN;
    let t = tile_index(wid, nwg);
    if (t >= ntiles * ((m_total + BM - 1u) / BM)) { return; }
    let n0 = (t % ntiles) * BN;
    let m0 = (t / ntiles) * BM;
    let px = out_pixel(m0 + lid / 4u);
    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        put_a_col(lid, fwd_a(px, k0 + 4u * (lid % 4u)));
        put_b_row(lid, weight_row(k0 + lid / 16u, n0 + 4u * (lid % 16u), k_total, p.o));
        workgroupBarrier();
        multiply_slice(lid);
        workgroupBarrier();
    }
    forward_epilogue(lid, m0, n0);
}

// C % 4 == 0 and O % 4 == 0.
@compute @workgroup_size(256)
fn conv2d_forward_wg_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let m_total = p.n * p.out_h * p.out_w;
    let k_total = p.kh * p.kw * p.c;
    let ntiles = (p.o + BN - 1u) / BN;
    let t = tile_index(wid, nwg);
    if (t >= ntiles * ((m_total + BM - 1u) / BM)) { return; }
    let n0 = (t % ntiles) * BN;
    let m0 = (t / ntiles) * BM;
    let px = out_pixel(m0 + lid / 4u);
    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        put_a_col(lid, fwd_a4(px, k0 + 4u * (lid % 4u)));
        put_b_row(lid, weight_row4(k0 + lid / 16u, n0 + 4u * (lid % 16u), k_total, p.o));
        workgroupBarrier();
        multiply_slice(lid);
        workgroupBarrier();
    }
    forward_epilogue(lid, m0, n0);
}

// ---- input gradient ------------------------------------------------------------------------------

// Input pixels tiled by stride phase (conv2d_common.wgsl), BM per workgroup: its K runs over
// only the taps that reach them, (ky, kx) = (ry, rx) + (a·SH, b·SW). The sum over k keeps the
// order of the taps that contribute (the skipped ones read 0): the same results.
struct PhaseTile { ry: u32, rx: u32, first: u32, taps_x: u32, k_total: u32 }

fn phase_tile(pt: u32) -> PhaseTile {
    let ph = stride_phase(pt, BM);
    // Taps ry, ry + SH, … below KH (none when the stride exceeds the kernel); the same in x.
    let taps_y = select(0u, (p.kh - ph.ry + p.sh - 1u) / p.sh, ph.ry < p.kh);
    let taps_x = select(0u, (p.kw - ph.rx + p.sw - 1u) / p.sw, ph.rx < p.kw);
    return PhaseTile(ph.ry, ph.rx, ph.first, taps_x, taps_y * taps_x * p.o);
}

// Pixel j of tile t's phase, or N·H·W when past the phase's pixels.
fn phase_pixel(t: PhaseTile, j: u32) -> u32 { return phase_pixel_at(t.ry, t.rx, t.first + j); }

// Tap number `tap` of tile t's phase as (ky, kx).
fn phase_tap(t: PhaseTile, tap: u32) -> vec2<u32> {
    return vec2<u32>(t.ry + (tap / t.taps_x) * p.sh, t.rx + (tap % t.taps_x) * p.sw);
}

// Input pixel m as (n·OH, y + pad_t, x + pad_l), and whether m is a pixel at all.
struct InPixel { noh: u32, yp: i32, xp: i32, ok: bool }

fn in_pixel(m: u32) -> InPixel {
    let m_total = p.n * p.h * p.w;
    let mc = min(m, m_total - 1u);
    let x = mc % p.w;
    let t = mc / p.w;
    let y = t % p.h;
    return InPixel((t / p.h) * p.out_h, i32(y + p.pad_t), i32(x + p.pad_l), m < m_total);
}

// dout[n, oy, ox, o] for k = tap·O + o, (ky, kx) the tile's phase tap number `tap`, where
// oy·SH + ky = y + pad_t (and the same in x): its offset, or -1 where the tap lands outside
// the output or k is past the tile's K. (The phase makes y + pad_t − ky a multiple of SH.)
fn bwi_offset(t: PhaseTile, px: InPixel, k: u32) -> i32 {
    if (!px.ok || k >= t.k_total) { return -1; }
    let o = k % p.o;
    let kk = phase_tap(t, k / p.o);
    let dy = px.yp - i32(kk.x);
    let dx = px.xp - i32(kk.y);
    if (dy < 0 || dx < 0) { return -1; }
    let oy = u32(dy) / p.sh;
    let ox = u32(dx) / p.sw;
    if (oy >= p.out_h || ox >= p.out_w) { return -1; }
    return i32(((px.noh + oy) * p.out_w + ox) * p.o + o);
}

fn dout_at(off: i32) -> f32 {
    return select(0.0, dout[max(off, 0)], off >= 0);
}

fn bwi_a(t: PhaseTile, px: InPixel, k: u32) -> vec4<f32> {
    return vec4<f32>(dout_at(bwi_offset(t, px, k)), dout_at(bwi_offset(t, px, k + 1u)),
                     dout_at(bwi_offset(t, px, k + 2u)), dout_at(bwi_offset(t, px, k + 3u)));
}
fn bwi_a4(t: PhaseTile, px: InPixel, k: u32) -> vec4<f32> {
    let off = bwi_offset(t, px, k);
    return select(vec4<f32>(0.0), dout4[max(off, 0) / 4], off >= 0);
}

// B[k, c] = weight[ky, kx, c, o] for k = tap·O + o, (ky, kx) the tile's phase tap number
// `tap`: the offset, or -1 outside.
fn bwi_b_offset(t: PhaseTile, k: u32, c: u32) -> i32 {
    if (c >= p.c || k >= t.k_total) { return -1; }
    let kk = phase_tap(t, k / p.o);
    return i32(((kk.x * p.kw + kk.y) * p.c + c) * p.o + k % p.o);
}

fn weight_at(off: i32) -> f32 {
    return select(0.0, weight[max(off, 0)], off >= 0);
}

// B[k .. k + 3, c].
fn bwi_b(t: PhaseTile, k: u32, c: u32) -> vec4<f32> {
    return vec4<f32>(weight_at(bwi_b_offset(t, k, c)), weight_at(bwi_b_offset(t, k + 1u, c)),
                     weight_at(bwi_b_offset(t, k + 2u, c)), weight_at(bwi_b_offset(t, k + 3u, c)));
}
fn bwi_b4(t: PhaseTile, k: u32, c: u32) -> vec4<f32> {
    let off = bwi_b_offset(t, k, c);
    return select(vec4<f32>(0.0), weight4[max(off, 0) / 4], off >= 0);
}

fn store_dinput(m: u32, c0: u32, v: vec4<f32>) {
    if (m >= p.n * p.h * p.w) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (c0 + j < p.c) { dinput[m * p.c + c0 + j] = v[j]; }
    }
}

fn backward_input_epilogue(lid: u32, t: PhaseTile, c0: u32) {
    let j = 4u * (lid / 16u);
    let c = c0 + 4u * (lid % 16u);
    store_dinput(phase_pixel(t, j), c, acc0);
    store_dinput(phase_pixel(t, j + 1u), c, acc1);
    store_dinput(phase_pixel(t, j + 2u), c, acc2);
    store_dinput(phase_pixel(t, j + 3u), c, acc3);
}

@compute @workgroup_size(256)
fn conv2d_backward_input_wg(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let ctiles = (p.c + BN - 1u) / BN;
    let t = tile_index(wid, nwg);
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    if (t >= ctiles * p.sh * p.sw * ((p.n * hq * wq + BM - 1u) / BM)) { return; }
    let c0 = (t % ctiles) * BN;
    let tile = phase_tile(t / ctiles);
    let px = in_pixel(phase_pixel(tile, lid / 4u));
    let c = c0 + lid / 4u;
    for (var k0 = 0u; k0 < tile.k_total; k0 += BK) {
        let k = k0 + 4u * (lid % 4u);
        put_a_col(lid, bwi_a(tile, px, k));
        put_b_col(lid, bwi_b(tile, k, c));
        workgroupBarrier();
        multiply_slice(lid);
        workgroupBarrier();
    }
    backward_input_epilogue(lid, tile, c0);
}

// O % 4 == 0.
@compute @workgroup_size(256)
fn conv2d_backward_input_wg_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
    let ctiles = (p.c + BN - 1u) / BN;
    let t = tile_index(wid, nwg);
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    if (t >= ctiles * p.sh * p.sw * ((p.n * hq * wq + BM - 1u) / BM)) { return; }
    let c0 = (t % ctiles) * BN;
    let tile = phase_tile(t / ctiles);
    let px = in_pixel(phase_pixel(tile, lid / 4u));
    let c = c0 + lid / 4u;
    for (var k0 = 0u; k0 < tile.k_total; k0 += BK) {
        let k = k0 + 4u * (lid % 4u);
        put_a_col(lid, bwi_a4(tile, px, k));
        put_b_col(lid, bwi_b4(tile, k, c));
        workgroupBarrier();
        multiply_slice(lid);
        workgroupBarrier();
    }
    backward_input_epilogue(lid, tile, c0);
}

// ---- weight gradient -----------------------------------------------------------------------------

// Weight row r = (ky·KW + kx)·C + c as (ky − pad_t, kx − pad_l, c) and its kind: 0 a weight row,
// 1 the bias row (r = KH·KW·C, A = 1), 2 past the end (A = 0).
struct Row { dy: i32, dx: i32, c: u32, kind: u32 }

fn weight_row_of(r: u32) -> Row {
    let kkc = p.kh * p.kw * p.c;
    let rc = min(r, kkc - 1u);
    let tap = rc / p.c;
    return Row(i32(tap / p.kw) - i32(p.pad_t), i32(tap % p.kw) - i32(p.pad_l), rc % p.c,
               select(select(2u, 1u, r == kkc), 0u, r < kkc));
}

// Output pixel m as (n·H, oy·SH, ox·SW), and whether it lies in [m, m_end).
fn split_pixel(m: u32, m_end: u32) -> OutPixel {
    let mc = min(m, m_end - 1u);
    let ox = mc % p.out_w;
    let t = mc / p.out_w;
    let oy = t % p.out_h;
    return OutPixel((t / p.out_h) * p.h, i32(oy * p.sh), i32(ox * p.sw), m < m_end);
}

// The offset of input[n, oy·SH + ky − pad_t, ox·SW + kx − pad_l, c], or -1 in the padding.
fn row_offset(px: OutPixel, row: Row) -> i32 {
    let iy = px.iy + row.dy;
    let ix = px.ix + row.dx;
    if (!px.ok || row.kind != 0u || iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return -1;
    }
    return i32(((px.nh + u32(iy)) * p.w + u32(ix)) * p.c + row.c);
}

fn row_value(px: OutPixel, row: Row) -> f32 {
    return select(input_at(row_offset(px, row)), 1.0, px.ok && row.kind == 1u);
}

// dout[m, o .. o + 3], zero past the split or O.
fn dout_row(px: OutPixel, m: u32, o: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (px.ok) {
        for (var j = 0u; j < 4u; j++) {
            if (o + j < p.o) { v[j] = dout[m * p.o + o + j]; }
        }
    }
    return v;
}
fn dout_row4(px: OutPixel, m: u32, o: u32) -> vec4<f32> {
    if (!px.ok || o >= p.o) { return vec4<f32>(0.0); }
    return dout4[(m * p.o + o) / 4u];
}

fn store_partial(s: u32, r: u32, o0: u32, v: vec4<f32>) {
    let kkc = p.kh * p.kw * p.c;
    // The bias row only with a bias: with one split the partials may be exactly [dweight].
    if (r > kkc || (r == kkc && p.bias == 0u)) { return; }
    let b = (s * (kkc + 1u) + r) * p.o;
    for (var j = 0u; j < 4u; j++) {
        if (o0 + j < p.o) { partials[b + o0 + j] = v[j]; }
    }
}

fn backward_weight_epilogue(lid: u32, s: u32, r0: u32, o0: u32) {
    let r = r0 + 4u * (lid / 16u);
    let o = o0 + 4u * (lid % 16u);
    store_partial(s, r, o, acc0);
    store_partial(s, r + 1u, o, acc1);
    store_partial(s, r + 2u, o, acc2);
    store_partial(s, r + 3u, o, acc3);
}

// The tile of workgroup t: (split, first row, first output channel), or none past the grid.
struct WeightTile { s: u32, r0: u32, o0: u32, ok: bool }

fn weight_tile(t: u32) -> WeightTile {
    let rows = p.kh * p.kw * p.c + 1u;
    let otiles = (p.o + BN - 1u) / BN;
    let rtiles = (rows + BM - 1u) / BM;
    return WeightTile(t / (otiles * rtiles), ((t / otiles) % rtiles) * BM, (t % otiles) * BN,
                      t < otiles * rtiles * p.splits);
}

@compute @workgroup_size(256)
fn conv2d_backward_weight_wg(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let wt = weight_tile(tile_index(wid, nwg));
    if (!wt.ok) { return; }
    let m_begin = wt.s * p.chunk;
    let m_end = min(m_begin + p.chunk, p.n * p.out_h * p.out_w);
    // Staging: slice row (pixel) lid / 16; A' columns (weight rows) and dout columns 4·(lid % 16)..
    let r = wt.r0 + 4u * (lid % 16u);
    let row0 = weight_row_of(r);
    let row1 = weight_row_of(r + 1u);
    let row2 = weight_row_of(r + 2u);
    let row3 = weight_row_of(r + 3u);
    let o = wt.o0 + 4u * (lid % 16u);
    for (var k0 = m_begin; k0 < m_end; k0 += BK) {
        let m = k0 + lid / 16u;
        let px = split_pixel(m, m_end);
        put_a_row(lid, vec4<f32>(row_value(px, row0), row_value(px, row1),
                                 row_value(px, row2), row_value(px, row3)));
        put_b_row(lid, dout_row(px, m, o));
        workgroupBarrier();
        multiply_slice(lid);
        workgroupBarrier();
    }
    backward_weight_epilogue(lid, wt.s, wt.r0, wt.o0);
}

// C % 4 == 0 and O % 4 == 0: each group of 4 weight rows is one tap's 4 channels (or the bias
// row and 3 rows past the end).
@compute @workgroup_size(256)
fn conv2d_backward_weight_wg_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                                  @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32) {
    let wt = weight_tile(tile_index(wid, nwg));
    if (!wt.ok) { return; }
    let m_begin = wt.s * p.chunk;
    let m_end = min(m_begin + p.chunk, p.n * p.out_h * p.out_w);
    let row = weight_row_of(wt.r0 + 4u * (lid % 16u));
    let ones = select(vec4<f32>(0.0), vec4<f32>(1.0, 0.0, 0.0, 0.0), row.kind == 1u);
    let o = wt.o0 + 4u * (lid % 16u);
    for (var k0 = m_begin; k0 < m_end; k0 += BK) {
        let m = k0 + lid / 16u;
        let px = split_pixel(m, m_end);
        let off = row_offset(px, row);
        put_a_row(lid, select(select(vec4<f32>(0.0), ones, px.ok), input4[max(off, 0) / 4],
                              off >= 0));
        put_b_row(lid, dout_row4(px, m, o));
        workgroupBarrier();
        multiply_slice(lid);
        workgroupBarrier();
    }
    backward_weight_epilogue(lid, wt.s, wt.r0, wt.o0);
}
