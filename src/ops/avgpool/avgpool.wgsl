// avgpool.wgsl — 2-D average pooling as Flax's avg_pool: any window KH×KW, stride SH×SW and
// padding (top/left given, bottom/right implied by OH, OW); padding counts as zeros and every
// window divides by KH·KW (count_include_pad=True, Flax's default).
//
// Layouts: input/dinput NHWC [N,H,W,C], output/dout NHWC [N,OH,OW,C].
//   avgpool_forward        output[n,y,x,c] = Σ_{i<KH,j<KW} input[n, y·SH+i−pad_t, x·SW+j−pad_l, c] / (KH·KW)  (=)
//   avgpool_backward       dinput[n,y,x,c] = Σ over the windows holding (y, x) of dout / (KH·KW)  (=)
//                          a gather, so overlapping windows (stride < window) need no atomics;
//                          the windows are visited in output order, as the CPU reference adds them
//   avgpool_backward_relu  as avgpool_backward, times [fwd_output > 0]: the backward of the
//                          ReLU before the pool, fused (fwd_output = that ReLU's output)        (=)
//   avgpool_backward_relu_k2  the same for 2×2 windows of stride 2 without padding, even H, W
//                          and C % 4 == 0 (the seed's pools), straight-line vec4 code: no loop
//                          masks for llvmpipe (docs/notes/elementwise-kernels.md)             (=)
//   avgpool_backward_disjoint(_relu)  the same for windows that tile the input exactly (stride =
//                          window, no padding, H = OH·KH, W = OW·KW: global average pooling is
//                          one) and C % 4 == 0: each input pixel is in one window, so one
//                          straight-line vec4 read per pixel, no loops                          (=)
// Each invocation owns one pixel and 4 channels: index arithmetic — integer division is slow on
// CPU-type adapters — is paid once per 4 channels.

struct AvgPoolParams {
    n: u32, h: u32, w: u32, c: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    pad_t: u32, pad_l: u32, out_h: u32, out_w: u32,
}

@group(0) @binding(0) var<uniform> p: AvgPoolParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dinput: array<f32>;
@group(0) @binding(5) var<storage, read> fwd_output: array<f32>;
@group(0) @binding(6) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> fwd_output4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dinput4: array<vec4<f32>>;
// The ReLU's output as its signs, ceil(C/32) u32 words per pixel (bit c % 32 of word
// pixel·ceil(C/32) + c/32: [output > 0]), as the subgroup conv forward (conv2d_sg_*.wgsl)
// stores them with p.mask.
@group(0) @binding(9) var<storage, read> relu_mask: array<u32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// (n, row, column, first channel) of invocation `idx` over an [N, rows, cols, C/4] grid, or
// n = N when idle.
fn pixel(idx: u32, rows: u32, cols: u32) -> vec4<u32> {
    let cgroups = (p.c + 3u) / 4u;
    let c0 = (idx % cgroups) * 4u;
    let t = idx / cgroups;
    let x = t % cols;
    let t2 = t / cols;
    return vec4<u32>(t2 / rows, t2 % rows, x, c0);
}

@compute @workgroup_size(64)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let px = pixel(flat_id(gid, nwg), p.out_h, p.out_w);
    if (px.x >= p.n) { return; }
    let scale = 1.0 / f32(p.kh * p.kw);
    let obase = ((px.x * p.out_h + px.y) * p.out_w + px.z) * p.c;
    let y0 = i32(px.y * p.sh) - i32(p.pad_t);
    let x0 = i32(px.z * p.sw) - i32(p.pad_l);
    // The window clipped to the image (padding adds zeros).
    let ya = u32(max(y0, 0));
    let yb = u32(clamp(y0 + i32(p.kh), 0, i32(p.h)));
    let xa = u32(max(x0, 0));
    let xb = u32(clamp(x0 + i32(p.kw), 0, i32(p.w)));
    for (var c = px.w; c < min(px.w + 4u, p.c); c++) {
        var sum = 0.0;
        for (var y = ya; y < yb; y++) {
            let row = (px.x * p.h + y) * p.w;
            for (var x = xa; x < xb; x++) {
                sum += input[(row + x) * p.c + c];
            }
        }
        output[obase + c] = sum * scale;
    }
}

// The output windows holding input coordinate `i` along an axis: [lo, hi), from
// o·S − pad ≤ i < o·S − pad + K.
fn windows_of(i: u32, pad: u32, k: u32, s: u32, out: u32) -> vec2<u32> {
    let a = i32(i + pad) - i32(k) + 1;
    let lo = select(0u, u32(a + i32(s) - 1) / s, a > 0);
    let hi = min((i + pad) / s + 1u, out);
    return vec2<u32>(lo, max(hi, lo));
}

// Σ over the windows holding input pixel px of dout[window, c] / (KH·KW).
fn gathered(px: vec4<u32>, c: u32, scale: f32) -> f32 {
    let ys = windows_of(px.y, p.pad_t, p.kh, p.sh, p.out_h);
    let xs = windows_of(px.z, p.pad_l, p.kw, p.sw, p.out_w);
    var g = 0.0;
    for (var oy = ys.x; oy < ys.y; oy++) {
        let row = (px.x * p.out_h + oy) * p.out_w;
        for (var ox = xs.x; ox < xs.y; ox++) {
            g += dout[(row + ox) * p.c + c] * scale;
        }
    }
    return g;
}

@compute @workgroup_size(64)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let px = pixel(flat_id(gid, nwg), p.h, p.w);
    if (px.x >= p.n) { return; }
    let scale = 1.0 / f32(p.kh * p.kw);
    let base = ((px.x * p.h + px.y) * p.w + px.z) * p.c;
    for (var c = px.w; c < min(px.w + 4u, p.c); c++) {
        dinput[base + c] = gathered(px, c, scale);
    }
}

@compute @workgroup_size(64)
fn avgpool_backward_relu(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let px = pixel(flat_id(gid, nwg), p.h, p.w);
    if (px.x >= p.n) { return; }
    let scale = 1.0 / f32(p.kh * p.kw);
    let base = ((px.x * p.h + px.y) * p.w + px.z) * p.c;
    for (var c = px.w; c < min(px.w + 4u, p.c); c++) {
        let g = gathered(px, c, scale);
        dinput[base + c] = select(0.0, g, fwd_output[base + c] > 0.0);
    }
}

// avgpool_backward_relu for 2×2 windows of stride 2 without padding, even H and W, C % 4 == 0 (every window full): one invocation
// per pooled pixel and 4 channels, straight-line vec4 code (no loops: on CPU-type adapters each
// loop costs a mask blend per update).
// The top-left input pixel of the window of dout4[idx] (idx over [N, OH, OW, C/4]).
fn k2_window(idx: u32, cq: u32) -> u32 {
    let t = idx / cq;
    let x = t % p.out_w;
    let t2 = t / p.out_w;
    let y = t2 % p.out_h;
    let n = t2 / p.out_h;
    return (n * p.h + 2u * y) * p.w + 2u * x;
}

@compute @workgroup_size(64)
fn avgpool_backward_relu_k2(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let cq = p.c / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.out_h * p.out_w * cq) { return; }
    let g = dout4[idx] * 0.25;
    let z = vec4<f32>(0.0);
    let a = k2_window(idx, cq) * cq + idx % cq;
    let b = a + p.w * cq;
    dinput4[a] = select(z, g, fwd_output4[a] > z);
    dinput4[a + cq] = select(z, g, fwd_output4[a + cq] > z);
    dinput4[b] = select(z, g, fwd_output4[b] > z);
    dinput4[b + cq] = select(z, g, fwd_output4[b + cq] > z);
}

// The ReLU mask of channels 4q .. 4q + 3 at input pixel `pix` (C % 4 == 0).
fn mask4(pix: u32, q: u32, words: u32) -> vec4<bool> {
    let nib = relu_mask[pix * words + q / 8u] >> (4u * (q % 8u));
    return (vec4<u32>(nib) & vec4<u32>(1u, 2u, 4u, 8u)) != vec4<u32>(0u);
}

// avgpool_backward_relu_k2 with the ReLU's output given as its bit mask (`relu_mask`): the
// same values, without reading the full-resolution output.
@compute @workgroup_size(64)
fn avgpool_backward_relu_k2_mask(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let cq = p.c / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.out_h * p.out_w * cq) { return; }
    let q = idx % cq;
    let g = dout4[idx] * 0.25;
    let z = vec4<f32>(0.0);
    let words = (p.c + 31u) / 32u;
    let pa = k2_window(idx, cq);
    let pb = pa + p.w;
    dinput4[pa * cq + q] = select(z, g, mask4(pa, q, words));
    dinput4[(pa + 1u) * cq + q] = select(z, g, mask4(pa + 1u, q, words));
    dinput4[pb * cq + q] = select(z, g, mask4(pb, q, words));
    dinput4[(pb + 1u) * cq + q] = select(z, g, mask4(pb + 1u, q, words));
}

// (n, y, x) of an input pixel and the index of its window's vec4 `q` in dout4, for windows
// that tile the input (avgpool_backward_disjoint*): idx runs over [N, H, W, C/4].
fn disjoint_window(idx: u32) -> u32 {
    let cq = p.c / 4u;
    let q = idx % cq;
    let t = idx / cq;
    let x = t % p.w;
    let t2 = t / p.w;
    let y = t2 % p.h;
    let n = t2 / p.h;
    return ((n * p.out_h + y / p.kh) * p.out_w + x / p.kw) * cq + q;
}

@compute @workgroup_size(64)
fn avgpool_backward_disjoint(@builtin(global_invocation_id) gid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.h * p.w * (p.c / 4u)) { return; }
    let scale = 1.0 / f32(p.kh * p.kw);
    dinput4[idx] = dout4[disjoint_window(idx)] * scale;
}

@compute @workgroup_size(64)
fn avgpool_backward_disjoint_relu(@builtin(global_invocation_id) gid: vec3<u32>,
                                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.h * p.w * (p.c / 4u)) { return; }
    let scale = 1.0 / f32(p.kh * p.kw);
    let g = dout4[disjoint_window(idx)] * scale;
    dinput4[idx] = select(vec4<f32>(0.0), g, fwd_output4[idx] > vec4<f32>(0.0));
}
