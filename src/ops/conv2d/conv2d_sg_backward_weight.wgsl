// conv2d_sg_backward_weight.wgsl — the weight gradients of the subgroup kernels, after
// conv2d_common.wgsl and conv2d_sg_common.wgsl (the scheme, bindings, texture mirrors and tile
// queue; docs/notes/subgroup-kernels.md). All write their partials with =.
//   conv2d_backward_weight_sg  partials[s] as conv2d_backward_weight (rows KH·KW·C plus the bias
//                              row, split-K over output pixels); O % 4 == 0. The reduction is
//                              conv2d.wgsl's conv2d_backward_weight_reduce (with one split, as
//                              for dense layers, the partials are the gradients themselves).
//   conv2d_backward_weight_sg_c4  the same for C % 4 == 0: input taps loaded as vec4s (4 rows of
//                              one tap per lane), bitwise equal to conv2d_backward_weight_sg
//   conv2d_backward_weight_sg_o16, conv2d_backward_weight_sg_o16_c4: the same two with
//                              16-channel tiles (conv2d_sg_common.wgsl) for O <= 16, dout
//                              through the rg32float mirror

// Subgroup tiles of a dispatch whose lanes own `ch` output channels each, 32 weight rows per
// tile (`TILE`, conv2d_sg_common.wgsl), per split.
fn weight_tiles(ch: u32) -> u32 {
    let rows = p.kh * p.kw * p.c + 1u;
    return ((p.o / ch + SG - 1u) / SG) * ((rows + TILE - 1u) / TILE) * p.splits;
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
// launcher: O <= 16). 32 rows per subgroup (four tiles of 8) here and in `_o16_c4`, as in the
// 32-channel kernels (conv2d_sg_common.wgsl `TILE`).
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
