// conv2d.wgsl — 2-D convolution with any kernel KH×KW, stride SH×SW and padding (top/left given,
// bottom/right implied by OH, OW), with or without bias.
//
// Layouts: input/dinput NHWC [N,H,W,C]; weight HWIO [KH,KW,C,O] (= a row-major [KH·KW·C, O]
// matrix); bias [O]; output/dout NHWC [N,OH,OW,O].
//   output[n,y,x,o] = bias[o] + Σ_{ky,kx,c} input[n, y·SH+ky−pad_t, x·SW+kx−pad_l, c] · weight[ky,kx,c,o]
// (bias[o] read only when p.bias = 1; without a bias the weight gradient leaves dbias alone).
// Every entry point is an implicit GEMM over those indices, never materialising an im2col matrix.
// Forward keeps nothing for backward beyond its input (the caller keeps it).
//
// Entry points (all write their outputs with =, none accumulate):
//   conv2d_forward                 output  = conv(input, weight) + bias       M = N·OH·OW, N = O
//                                  (then max(·, 0) when p.relu = 1: the layer's ReLU, fused)
//   conv2d_backward_input          dinput  = conv_transpose(dout, weight)     M = N·H·W,   N = C
//   conv2d_backward_weight         partials[s] = Σ_{pixels in split s} input ⊗ dout (split-K)
//   conv2d_backward_weight_reduce  dweight, dbias = Σ_s partials[s] in fixed order (deterministic)
// Variants for O % 4 == 0, chosen by the launcher, same results up to rounding:
//   conv2d_forward_vec4, conv2d_backward_input_vec4, conv2d_backward_weight_vec4 — 4×8 tiles,
//   vec4 loads through the weight4/dout4 views of the same buffers: fewer load instructions
//   per multiply-add;
//   conv2d_backward_weight_c4 (also C % 4 == 0) — input read as vec4 too.
// These are the fastest of the shapes compared on lavapipe (`examples/variants.rs` times them
// side by side; docs/notes/workgroup-kernels.md, docs/notes/lavapipe.md): the forward reads
// its input as scalars because with vec4 input loads its unrolled channel loop spills, and 4×8
// tiles without vec4 loads, or 2 pixels × 16 channels with them, lose to the 4×8 tiles with
// vec4 loads.
//
// Each invocation computes a 4×4 register tile (4 pixels × 4 channels): CPU-type adapters such as
// lavapipe vectorise across invocations and reward register blocking; 64 invocations per group
// is a multiple of every common SIMD/warp width. Indices past the end are clamped for loads and
// masked for stores, so any N, H, W, C, O work.

// Conv2dParams and the uniform p: conv2d_common.wgsl.
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dinput: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(8) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(9) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(10) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> input4: array<vec4<f32>>;
// The reduction's vec4 views (O % 4 == 0).
@group(0) @binding(26) var<storage, read> partials_in4: array<vec4<f32>>;
@group(0) @binding(27) var<storage, read_write> dweight4: array<vec4<f32>>;
@group(0) @binding(28) var<storage, read_write> dbias4: array<vec4<f32>>;

const WG: u32 = 64u;

// Dispatches larger than 65,535 groups are folded into y; this recovers the flat index.
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn clamp4(base: u32, last: u32) -> vec4<u32> {
    return min(vec4<u32>(base, base + 1u, base + 2u, base + 3u), vec4<u32>(last));
}

fn load_weight_cols(row: u32, cols: vec4<u32>) -> vec4<f32> {
    let b = row * p.o;
    return vec4<f32>(weight[b + cols.x], weight[b + cols.y], weight[b + cols.z], weight[b + cols.w]);
}

fn store_output(m: u32, o0: u32, v_in: vec4<f32>) {
    if (m >= p.n * p.out_h * p.out_w) { return; }
    let b = m * p.o;
    let v = select(v_in, max(v_in, vec4<f32>(0.0)), p.relu != 0u);
    for (var j = 0u; j < 4u; j++) {
        if (o0 + j < p.o) { output[b + o0 + j] = v[j]; }
    }
}

@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let m_total = p.n * p.out_h * p.out_w;
    let otiles = (p.o + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= otiles * ((m_total + 3u) / 4u)) { return; }
    let o0 = (idx % otiles) * 4u;
    let m0 = (idx / otiles) * 4u;

    // Top-left tap of each of the 4 output pixels, in input coordinates.
    let m = clamp4(m0, m_total - 1u);
    let ox = m % p.out_w;
    let t = m / p.out_w;
    let oy = t % p.out_h;
    let nb = (t / p.out_h) * p.h;
    let iy0 = vec4<i32>(oy * p.sh) - i32(p.pad_t);
    let ix0 = vec4<i32>(ox * p.sw) - i32(p.pad_l);
    let cols = clamp4(o0, p.o - 1u);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = iy0 + i32(ky);
        let oky = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)));
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = ix0 + i32(kx);
            let ok = oky & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
            // Out-of-image taps read element 0.. and are zeroed by the select below.
            let off = select(vec4<u32>(0u), ((nb + vec4<u32>(iy)) * p.w + vec4<u32>(ix)) * p.c, ok);
            let wrow = (ky * p.kw + kx) * p.c;
            for (var c = 0u; c < p.c; c++) {
                let wv = load_weight_cols(wrow + c, cols);
                let a = select(vec4<f32>(0.0),
                    vec4<f32>(input[off.x + c], input[off.y + c], input[off.z + c], input[off.w + c]), ok);
                acc0 += a.x * wv;
                acc1 += a.y * wv;
                acc2 += a.z * wv;
                acc3 += a.w * wv;
            }
        }
    }
    let b = select(vec4<f32>(0.0), vec4<f32>(bias[cols.x], bias[cols.y], bias[cols.z], bias[cols.w]),
                   p.bias != 0u);
    store_output(m0, o0, acc0 + b);
    store_output(m0 + 1u, o0, acc1 + b);
    store_output(m0 + 2u, o0, acc2 + b);
    store_output(m0 + 3u, o0, acc3 + b);
}

// conv2d_forward for O % 4 == 0: 4 pixels × 8 output channels per invocation, weights read as
// vec4 (2 vector loads + 4 input loads feed 32 FMAs).
@compute @workgroup_size(64)
fn conv2d_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let m_total = p.n * p.out_h * p.out_w;
    let otiles = (p.o + 7u) / 8u;
    let idx = flat_id(gid, nwg);
    if (idx >= otiles * ((m_total + 3u) / 4u)) { return; }
    let o0 = (idx % otiles) * 8u;
    let m0 = (idx / otiles) * 4u;
    let m = clamp4(m0, m_total - 1u);
    let ox = m % p.out_w;
    let t = m / p.out_w;
    let oy = t % p.out_h;
    let nb = (t / p.out_h) * p.h;
    let iy0 = vec4<i32>(oy * p.sh) - i32(p.pad_t);
    let ix0 = vec4<i32>(ox * p.sw) - i32(p.pad_l);
    let o4 = p.o / 4u;
    let qa = o0 / 4u;
    let qb = min(qa + 1u, o4 - 1u);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = iy0 + i32(ky);
        let oky = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)));
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = ix0 + i32(kx);
            let ok = oky & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
            let off = select(vec4<u32>(0u), ((nb + vec4<u32>(iy)) * p.w + vec4<u32>(ix)) * p.c, ok);
            var wrow = (ky * p.kw + kx) * p.c * o4;
            for (var c = 0u; c < p.c; c++) {
                let wa = weight4[wrow + qa];
                let wb = weight4[wrow + qb];
                wrow += o4;
                let a = select(vec4<f32>(0.0),
                    vec4<f32>(input[off.x + c], input[off.y + c], input[off.z + c], input[off.w + c]), ok);
                a0 += a.x * wa;
                a1 += a.y * wa;
                a2 += a.z * wa;
                a3 += a.w * wa;
                b0 += a.x * wb;
                b1 += a.y * wb;
                b2 += a.z * wb;
                b3 += a.w * wb;
            }
        }
    }
    let ca = clamp4(o0, p.o - 1u);
    let cb = clamp4(o0 + 4u, p.o - 1u);
    let hb = p.bias != 0u;
    let ba = select(vec4<f32>(0.0), vec4<f32>(bias[ca.x], bias[ca.y], bias[ca.z], bias[ca.w]), hb);
    let bb = select(vec4<f32>(0.0), vec4<f32>(bias[cb.x], bias[cb.y], bias[cb.z], bias[cb.w]), hb);
    store_output(m0, o0, a0 + ba);
    store_output(m0 + 1u, o0, a1 + ba);
    store_output(m0 + 2u, o0, a2 + ba);
    store_output(m0 + 3u, o0, a3 + ba);
    if (o0 + 4u < p.o) {
        store_output(m0, o0 + 4u, b0 + bb);
        store_output(m0 + 1u, o0 + 4u, b1 + bb);
        store_output(m0 + 2u, o0 + 4u, b2 + bb);
        store_output(m0 + 3u, o0 + 4u, b3 + bb);
    }
}

fn store_dinput(m: u32, c0: u32, v: vec4<f32>) {
    if (m >= p.n * p.h * p.w) { return; }
    let b = m * p.c;
    for (var j = 0u; j < 4u; j++) {
        if (c0 + j < p.c) { dinput[b + c0 + j] = v[j]; }
    }
}

// Input pixels tiled by stride phase (conv2d_common.wgsl), 4 per invocation.
fn phase_tile4(pt: u32) -> Phase { return stride_phase(pt, 4u); }

// The 4 pixels of tile t (N·H·W for those past the phase's pixels).
fn phase_pixels4(t: Phase) -> vec4<u32> {
    return vec4<u32>(phase_pixel_at(t.ry, t.rx, t.first), phase_pixel_at(t.ry, t.rx, t.first + 1u),
                     phase_pixel_at(t.ry, t.rx, t.first + 2u), phase_pixel_at(t.ry, t.rx, t.first + 3u));
}

// dinput[n,y,x,c] = Σ_{ky,kx,o} dout[n, oy, ox, o] · weight[ky,kx,c,o] over the taps with
// oy·SH + ky − pad_t = y (and the same in x): the taps of the pixels' phase, where with
// y + pad_t = qy·SH + ry (once per pixel) oy = qy − kq.y: no division per tap.
@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let m_total = p.n * p.h * p.w;
    let ctiles = (p.c + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    if (idx >= ctiles * p.sh * p.sw * ((p.n * hq * wq + 3u) / 4u)) { return; }
    let c0 = (idx % ctiles) * 4u;
    let tile = phase_tile4(idx / ctiles);
    let ms = phase_pixels4(tile);

    let m = min(ms, vec4<u32>(m_total - 1u));
    let x = m % p.w;
    let t = m / p.w;
    let y = t % p.h;
    let nb = (t / p.h) * p.out_h;
    let qy = vec4<i32>((y + p.pad_t) / p.sh);
    let qx = vec4<i32>((x + p.pad_l) / p.sw);
    let chans = clamp4(c0, p.c - 1u);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // The taps of the phase: (ky, kx) = (ry, rx) + kq·(SH, SW).
    var kq = vec2<u32>(0u);
    for (var ky = tile.ry; ky < p.kh; ky += p.sh) {
        let oy = qy - i32(kq.y);
        let oky = (oy >= vec4<i32>(0)) & (oy < vec4<i32>(i32(p.out_h)));
        kq.x = 0u;
        for (var kx = tile.rx; kx < p.kw; kx += p.sw) {
            let ox = qx - i32(kq.x);
            let ok = oky & (ox >= vec4<i32>(0)) & (ox < vec4<i32>(i32(p.out_w)));
            let off = select(vec4<u32>(0u), ((nb + vec4<u32>(oy)) * p.out_w + vec4<u32>(ox)) * p.o, ok);
            let wb = ((ky * p.kw + kx) * p.c + chans) * p.o;
            for (var o = 0u; o < p.o; o++) {
                let wv = vec4<f32>(weight[wb.x + o], weight[wb.y + o], weight[wb.z + o], weight[wb.w + o]);
                let a = select(vec4<f32>(0.0),
                    vec4<f32>(dout[off.x + o], dout[off.y + o], dout[off.z + o], dout[off.w + o]), ok);
                acc0 += a.x * wv;
                acc1 += a.y * wv;
                acc2 += a.z * wv;
                acc3 += a.w * wv;
            }
            kq.x += 1u;
        }
        kq.y += 1u;
    }
    store_dinput(ms.x, c0, acc0);
    store_dinput(ms.y, c0, acc1);
    store_dinput(ms.z, c0, acc2);
    store_dinput(ms.w, c0, acc3);
}

// conv2d_backward_input for O % 4 == 0: 4 pixels × 8 input channels per invocation; the
// reduction over output channels runs 4 at a time as dot products of vec4 loads of dout and
// weight (both contiguous in o).
@compute @workgroup_size(64)
fn conv2d_backward_input_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
    let m_total = p.n * p.h * p.w;
    let ctiles = (p.c + 7u) / 8u;
    let idx = flat_id(gid, nwg);
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    if (idx >= ctiles * p.sh * p.sw * ((p.n * hq * wq + 3u) / 4u)) { return; }
    let c0 = (idx % ctiles) * 8u;
    let tile = phase_tile4(idx / ctiles);
    let ms = phase_pixels4(tile);

    let m = min(ms, vec4<u32>(m_total - 1u));
    let x = m % p.w;
    let t = m / p.w;
    let y = t % p.h;
    let nb = (t / p.h) * p.out_h;
    let qy = vec4<i32>((y + p.pad_t) / p.sh);
    let qx = vec4<i32>((x + p.pad_l) / p.sw);
    let ca = clamp4(c0, p.c - 1u);
    let cb = clamp4(c0 + 4u, p.c - 1u);
    let o4 = p.o / 4u;
    let z = vec4<f32>(0.0);

    var a0 = z;
    var a1 = z;
    var a2 = z;
    var a3 = z;
    var b0 = z;
    var b1 = z;
    var b2 = z;
    var b3 = z;
    // The taps of the phase: (ky, kx) = (ry, rx) + kq·(SH, SW).
    var kq = vec2<u32>(0u);
    for (var ky = tile.ry; ky < p.kh; ky += p.sh) {
        let oy = qy - i32(kq.y);
        let oky = (oy >= vec4<i32>(0)) & (oy < vec4<i32>(i32(p.out_h)));
        kq.x = 0u;
        for (var kx = tile.rx; kx < p.kw; kx += p.sw) {
            let ox = qx - i32(kq.x);
            let ok = oky & (ox >= vec4<i32>(0)) & (ox < vec4<i32>(i32(p.out_w)));
            let off = select(vec4<u32>(0u), ((nb + vec4<u32>(oy)) * p.out_w + vec4<u32>(ox)) * o4, ok);
            let tap = (ky * p.kw + kx) * p.c;
            let wa = (tap + ca) * o4;
            let wb = (tap + cb) * o4;
            for (var q = 0u; q < o4; q++) {
                let d0 = select(z, dout4[off.x + q], ok.x);
                let d1 = select(z, dout4[off.y + q], ok.y);
                let d2 = select(z, dout4[off.z + q], ok.z);
                let d3 = select(z, dout4[off.w + q], ok.w);
                let w0 = weight4[wa.x + q];
                let w1 = weight4[wa.y + q];
                let w2 = weight4[wa.z + q];
                let w3 = weight4[wa.w + q];
                a0 += vec4<f32>(dot(d0, w0), dot(d0, w1), dot(d0, w2), dot(d0, w3));
                a1 += vec4<f32>(dot(d1, w0), dot(d1, w1), dot(d1, w2), dot(d1, w3));
                a2 += vec4<f32>(dot(d2, w0), dot(d2, w1), dot(d2, w2), dot(d2, w3));
                a3 += vec4<f32>(dot(d3, w0), dot(d3, w1), dot(d3, w2), dot(d3, w3));
                let w4 = weight4[wb.x + q];
                let w5 = weight4[wb.y + q];
                let w6 = weight4[wb.z + q];
                let w7 = weight4[wb.w + q];
                b0 += vec4<f32>(dot(d0, w4), dot(d0, w5), dot(d0, w6), dot(d0, w7));
                b1 += vec4<f32>(dot(d1, w4), dot(d1, w5), dot(d1, w6), dot(d1, w7));
                b2 += vec4<f32>(dot(d2, w4), dot(d2, w5), dot(d2, w6), dot(d2, w7));
                b3 += vec4<f32>(dot(d3, w4), dot(d3, w5), dot(d3, w6), dot(d3, w7));
            }
            kq.x += 1u;
        }
        kq.y += 1u;
    }
    store_dinput(ms.x, c0, a0);
    store_dinput(ms.y, c0, a1);
    store_dinput(ms.z, c0, a2);
    store_dinput(ms.w, c0, a3);
    if (c0 + 4u < p.c) {
        store_dinput(ms.x, c0 + 4u, b0);
        store_dinput(ms.y, c0 + 4u, b1);
        store_dinput(ms.z, c0 + 4u, b2);
        store_dinput(ms.w, c0 + 4u, b3);
    }
}

fn store_partial(s: u32, r: u32, o0: u32, v: vec4<f32>) {
    let rows = p.kh * p.kw * p.c + 1u;
    if (r >= rows) { return; }
    let b = (s * rows + r) * p.o;
    for (var j = 0u; j < 4u; j++) {
        if (o0 + j < p.o) { partials[b + o0 + j] = v[j]; }
    }
}

// partials[s, r, o] = Σ_{m in split s} A[m, r] · dout[m, o], where r walks the KH·KW·C weight rows
// (A = the input tap of row r at output pixel m, 0 in the padding) plus one last row of ones
// whose sum is the bias gradient.
@compute @workgroup_size(64)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let kkc = p.kh * p.kw * p.c;
    let otiles = (p.o + 3u) / 4u;
    let rtiles = (kkc + 1u + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= otiles * rtiles * p.splits) { return; }
    let o0 = (idx % otiles) * 4u;
    let r0 = ((idx / otiles) % rtiles) * 4u;
    let s = idx / (otiles * rtiles);

    // Row r = (ky·K + kx)·C + c; rows ≥ kkc are the bias row (or padding of the last tile).
    let r = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(kkc));
    let is_w = r < vec4<u32>(kkc);
    let rc = select(vec4<u32>(0u), r, is_w);
    let c = rc % p.c;
    let kx = vec4<i32>((rc / p.c) % p.kw);
    let ky = vec4<i32>(rc / (p.c * p.kw));
    let dy = ky - i32(p.pad_t);
    let dx = kx - i32(p.pad_l);
    let one = select(vec4<f32>(1.0), vec4<f32>(0.0), is_w);
    let cols = clamp4(o0, p.o - 1u);

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    // Walk the output pixels of this split with running (n, y, x) counters.
    var x = m_begin % p.out_w;
    var y = (m_begin / p.out_w) % p.out_h;
    var n = m_begin / (p.out_w * p.out_h);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var mi = m_begin; mi < m_end; mi++) {
        let iy = i32(y * p.sh) + dy;
        let ix = i32(x * p.sw) + dx;
        let ok = is_w & (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)))
            & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
        let off = select(vec4<u32>(0u), ((n * p.h + vec4<u32>(iy)) * p.w + vec4<u32>(ix)) * p.c + c, ok);
        let a = select(one,
            vec4<f32>(input[off.x], input[off.y], input[off.z], input[off.w]), ok);
        let db = mi * p.o;
        let dv = vec4<f32>(dout[db + cols.x], dout[db + cols.y], dout[db + cols.z], dout[db + cols.w]);
        acc0 += a.x * dv;
        acc1 += a.y * dv;
        acc2 += a.z * dv;
        acc3 += a.w * dv;
        x += 1u;
        if (x == p.out_w) {
            x = 0u;
            y += 1u;
            if (y == p.out_h) { y = 0u; n += 1u; }
        }
    }
    store_partial(s, r0, o0, acc0);
    store_partial(s, r0 + 1u, o0, acc1);
    store_partial(s, r0 + 2u, o0, acc2);
    store_partial(s, r0 + 3u, o0, acc3);
}

// conv2d_backward_weight for O % 4 == 0: 4 rows × 8 output channels per invocation, dout read
// as vec4.
@compute @workgroup_size(64)
fn conv2d_backward_weight_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let kkc = p.kh * p.kw * p.c;
    let otiles = (p.o + 7u) / 8u;
    let rtiles = (kkc + 1u + 3u) / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= otiles * rtiles * p.splits) { return; }
    let o0 = (idx % otiles) * 8u;
    let r0 = ((idx / otiles) % rtiles) * 4u;
    let s = idx / (otiles * rtiles);

    let r = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(kkc));
    let is_w = r < vec4<u32>(kkc);
    let rc = select(vec4<u32>(0u), r, is_w);
    let c = rc % p.c;
    let dy = vec4<i32>(rc / (p.c * p.kw)) - i32(p.pad_t);
    let dx = vec4<i32>((rc / p.c) % p.kw) - i32(p.pad_l);
    let one = select(vec4<f32>(1.0), vec4<f32>(0.0), is_w);
    let o4 = p.o / 4u;
    let qa = o0 / 4u;
    let qb = min(qa + 1u, o4 - 1u);

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    var x = m_begin % p.out_w;
    var y = (m_begin / p.out_w) % p.out_h;
    var n = m_begin / (p.out_w * p.out_h);

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var mi = m_begin; mi < m_end; mi++) {
        let iy = i32(y * p.sh) + dy;
        let ix = i32(x * p.sw) + dx;
        let ok = is_w & (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)))
            & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
        let off = select(vec4<u32>(0u), ((n * p.h + vec4<u32>(iy)) * p.w + vec4<u32>(ix)) * p.c + c, ok);
        let a = select(one, vec4<f32>(input[off.x], input[off.y], input[off.z], input[off.w]), ok);
        let da = dout4[mi * o4 + qa];
        let db = dout4[mi * o4 + qb];
        a0 += a.x * da;
        a1 += a.y * da;
        a2 += a.z * da;
        a3 += a.w * da;
        b0 += a.x * db;
        b1 += a.y * db;
        b2 += a.z * db;
        b3 += a.w * db;
        x += 1u;
        if (x == p.out_w) {
            x = 0u;
            y += 1u;
            if (y == p.out_h) { y = 0u; n += 1u; }
        }
    }
    store_partial(s, r0, o0, a0);
    store_partial(s, r0 + 1u, o0, a1);
    store_partial(s, r0 + 2u, o0, a2);
    store_partial(s, r0 + 3u, o0, a3);
    if (o0 + 4u < p.o) {
        store_partial(s, r0, o0 + 4u, b0);
        store_partial(s, r0 + 1u, o0 + 4u, b1);
        store_partial(s, r0 + 2u, o0 + 4u, b2);
        store_partial(s, r0 + 3u, o0 + 4u, b3);
    }
}

// conv2d_backward_weight for O % 4 == 0 and C % 4 == 0: the 4 rows of a tile are 4 consecutive
// input channels of one tap, read as one vec4; the last tile holds the bias row.
@compute @workgroup_size(64)
fn conv2d_backward_weight_c4(@builtin(global_invocation_id) gid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>) {
    let kkc = p.kh * p.kw * p.c;
    let otiles = (p.o + 7u) / 8u;
    let rtiles = kkc / 4u + 1u;
    let idx = flat_id(gid, nwg);
    if (idx >= otiles * rtiles * p.splits) { return; }
    let o0 = (idx % otiles) * 8u;
    let r0 = ((idx / otiles) % rtiles) * 4u;
    let s = idx / (otiles * rtiles);

    let is_w = r0 < kkc;
    let rc = select(0u, r0, is_w);
    let c4 = rc % p.c / 4u;
    let dy = i32(rc / (p.c * p.kw)) - i32(p.pad_t);
    let dx = i32((rc / p.c) % p.kw) - i32(p.pad_l);
    let bias_row = select(vec4<f32>(1.0, 0.0, 0.0, 0.0), vec4<f32>(0.0), is_w);
    let o4 = p.o / 4u;
    let qa = o0 / 4u;
    let qb = min(qa + 1u, o4 - 1u);
    let cq = p.c / 4u;

    let m_total = p.n * p.out_h * p.out_w;
    let m_begin = s * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    var x = m_begin % p.out_w;
    var y = (m_begin / p.out_w) % p.out_h;
    var n = m_begin / (p.out_w * p.out_h);

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var mi = m_begin; mi < m_end; mi++) {
        let iy = i32(y * p.sh) + dy;
        let ix = i32(x * p.sw) + dx;
        let ok = is_w && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
        let off = select(0u, ((n * p.h + u32(iy)) * p.w + u32(ix)) * cq + c4, ok);
        let a = select(bias_row, input4[off], ok);
        let da = dout4[mi * o4 + qa];
        let db = dout4[mi * o4 + qb];
        a0 += a.x * da;
        a1 += a.y * da;
        a2 += a.z * da;
        a3 += a.w * da;
        b0 += a.x * db;
        b1 += a.y * db;
        b2 += a.z * db;
        b3 += a.w * db;
        x += 1u;
        if (x == p.out_w) {
            x = 0u;
            y += 1u;
            if (y == p.out_h) { y = 0u; n += 1u; }
        }
    }
    store_partial(s, r0, o0, a0);
    store_partial(s, r0 + 1u, o0, a1);
    store_partial(s, r0 + 2u, o0, a2);
    store_partial(s, r0 + 3u, o0, a3);
    if (o0 + 4u < p.o) {
        store_partial(s, r0, o0 + 4u, b0);
        store_partial(s, r0 + 1u, o0 + 4u, b1);
        store_partial(s, r0 + 2u, o0 + 4u, b2);
        store_partial(s, r0 + 3u, o0 + 4u, b3);
    }
}

// dweight[r, o] (r < KH·KW·C) and dbias[o] (row KH·KW·C, only with a bias) = Σ_{s = 0..splits} partials[s, r, o].
@compute @workgroup_size(64)
fn conv2d_backward_weight_reduce(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let kkc = p.kh * p.kw * p.c;
    let per_split = (kkc + 1u) * p.o;
    let idx = flat_id(gid, nwg);
    if (idx >= per_split) { return; }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partials[s * per_split + idx];
    }
    if (idx < kkc * p.o) {
        dweight[idx] = sum;
    } else if (p.bias != 0u) {
        dbias[idx - kkc * p.o] = sum;
    }
}

// The same for O % 4 == 0, four output channels per invocation: the same sums in the same
// order (bitwise equal), a quarter of the load instructions.
@compute @workgroup_size(64)
fn conv2d_backward_weight_reduce_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let kkc = p.kh * p.kw * p.c;
    let o4 = p.o / 4u;
    let per_split = (kkc + 1u) * o4;
    let idx = flat_id(gid, nwg);
    if (idx >= per_split) { return; }
    var sum = vec4<f32>(0.0);
    for (var s = 0u; s < p.splits; s++) {
        sum += partials_in4[s * per_split + idx];
    }
    if (idx < kkc * o4) {
        dweight4[idx] = sum;
    } else if (p.bias != 0u) {
        dbias4[idx - kkc * o4] = sum;
    }
}

