// winograd_gemm_sg.wgsl — the 36 GEMMs (one per point ξ of the 6×6 transformed tile) of a
// Winograd F(4×4, 3×3) convolution, on the subgroup kernels: after conv2d_common.wgsl and
// conv2d_sg_common.wgsl (the scheme, bindings, texture mirrors and tile queue); winograd.wgsl
// has the transforms around them and the layouts U, V, M, D, S (docs/notes/winograd.md). All
// write with =.
//   winograd_gemm_sg           M[·][ξ] = V[·][ξ] · U[ξ]: the forward's products (winograd_output
//                              after it), or with c and o swapped the input gradient's E
//   winograd_gemm_out_sg       the forward's GEMM with the output transform and epilogue fused
//                              (+ bias, ReLU, 2×2 pool, ReLU mask as conv2d_forward_sg), where
//                              the launcher's `fuses_output` says (ops/conv2d/winograd/mod.rs)
//   winograd_gemm_out_sg_o16   the same with 16-channel tiles (conv2d_sg_common.wgsl) for
//                              O <= 16; no pool or mask
//   winograd_gemm_weight_sg    S[ξ] = Σ_t V[t][ξ]ᵀ · D[t][ξ]: the weight gradient in the
//                              transformed domain (winograd_weight_grad after it)

// Tiles of the convolution p (4×4 output blocks): N·ceil(H/4)·ceil(W/4).
fn wino_tiles() -> u32 {
    return p.n * ((p.h + 3u) / 4u) * ((p.w + 3u) / 4u);
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
// and M is 36/16 the size of the output (docs/notes/winograd.md). ys stays one array indexed by
// the epilogue's loop counter: lavapipe keeps it in memory (plain vector loads and stores where
// the index is a constant, as in the row updates); an epilogue inlined per tile multiplies
// lavapipe's compile time at the first dispatch (docs/notes/winograd.md).
// ceil(O/32) · ceil(T/24) subgroup tiles. C % 4 == 0, O % 4 == 0 (p.mask: O % 32 == 0).
// Sums: over channels in order per point (as winograd_gemm_sg), then the transform's in the
// order above; ops/conv2d/winograd/cpu.rs output_transform_rows is that order.
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
