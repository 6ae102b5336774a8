// conv2d_sg_forward.wgsl — the forward convolutions of the subgroup kernels, after
// conv2d_common.wgsl and conv2d_sg_common.wgsl (the scheme, bindings, texture mirrors and tile
// queue; docs/notes/subgroup-kernels.md). All write their outputs with =.
//   conv2d_forward_sg          output = conv(input, weight) + bias (then ReLU when p.relu = 1)
//                              O % 4 == 0; any C
//   conv2d_forward_sg_c3       the same for C == 3 (RGB input), the channel loop unrolled
//   conv2d_forward_sg_c4       the same for C % 4 == 0: 4 input channels per step, one vec4 load
//   (all three with p.pool = 1: also pooled = avgpool 2×2 of the output, from registers; the pixel
//   tiles are then 2 rows × 4 columns, OH even and OW a multiple of 4; with p.mask = 1 the
//   output's signs go to `relu_mask` instead of the output)
//   conv2d_forward_sg_c4_o16   the same with 16-channel tiles (conv2d_sg_common.wgsl) for
//                              O <= 16, weights through the rg32float mirror. No pooled output.
// A subgroup computes 32 output pixels (four 8-pixel tiles) × 32 output channels (16 for
// `_o16`): lane i loads the input of pixel i of each tile and broadcasts it, and every lane
// fetches the weights of its own channels once for the four tiles.

// Subgroup tiles of a dispatch whose lanes own `ch` output channels each, 32 pixels per tile
// (`TILE`, conv2d_sg_common.wgsl).
fn forward_tiles(ch: u32) -> u32 {
    return ((p.o / ch + SG - 1u) / SG) * ((p.n * p.out_h * p.out_w + TILE - 1u) / TILE);
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

// Bias, ReLU (p.relu) and the stores of 8-pixel tile g, channels 4q..4q+3: the output, or with
// p.mask its signs into `relu_mask` (conv2d_sg_common.wgsl), and with p.pool its 2×2 average pool.
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

// C % 4 == 0: 4 input channels per step (one vec4 load per pixel) and four pixel tiles per
// subgroup (32 pixels × 32 channels, 128 accumulators per lane): the weights fetched once
// feed all four tiles. The accumulators spill, but each weight fetch feeds 4 tiles'
// multiply-adds, which outweighs the spills with 32 vector registers or 16
// (`GALLIUM_OVERRIDE_CPU_CAPS=avx`; `examples/texfetch.rs`) as long as the weights come through
// the texture: loaded from storage they cost more than the spills save
// (docs/notes/subgroup-kernels.md).
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

// The 16-channel tiles (conv2d_sg_common.wgsl): lane i owns output channels 2q, 2q + 1
// (q = tile·8 + i) of 32 pixels, four tiles of 8 as conv2d_forward_sg_c4.
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

// C % 4 == 0, O % 2 == 0 (the launcher: O <= 16), p.pool = 0: where conv2d_forward_sg_c4's
// 32-channel tiles would leave half the lanes idle.
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
