// conv2d_sg_backward_input.wgsl — the input gradients of the subgroup kernels, after
// conv2d_common.wgsl (the stride phases that tile the pixels) and conv2d_sg_common.wgsl (the
// scheme, bindings, texture mirrors and tile queue; docs/notes/subgroup-kernels.md). Both write
// dinput with =.
//   conv2d_backward_input_sg      dinput = conv_transpose(dout, weight); O % 4 == 0, C % 4 == 0
//   conv2d_backward_input_sg_c16  the same with 16-channel tiles (conv2d_sg_common.wgsl) for
//                                 C <= 16
// A subgroup computes 32 input pixels of one stride phase (four tiles of 8) × 32 input channels
// (16 for `_c16`): lane i loads dout at pixel i of each tile and broadcasts it, and every lane
// fetches the weights of its own channels once for the four tiles.

// Subgroup tiles of a dispatch whose lanes own `ch` input channels each, 32 pixels of one
// stride phase per tile (`TILE`, conv2d_sg_common.wgsl; `stride_phase`, conv2d_common.wgsl).
fn input_tiles(ch: u32) -> u32 {
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    return ((p.c / ch + SG - 1u) / SG) * p.sh * p.sw * ((p.n * hq * wq + TILE - 1u) / TILE);
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
// launcher: C % 4 == 0, C <= 16), O % 4 == 0. Four tiles of 8 pixels per subgroup, as
// conv2d_backward_input_sg (conv2d_sg_common.wgsl `TILE`).
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
