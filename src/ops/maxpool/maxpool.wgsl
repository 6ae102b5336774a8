// maxpool.wgsl — 2-D max pooling as Flax's max_pool: any window KH×KW, stride SH×SW and padding
// (top/left given, bottom/right implied by OH, OW); padding is −inf, so it is never the maximum
// (the planner rejects windows that could lie wholly in the padding).
//
// Layouts: input/dinput NHWC [N,H,W,C]; output/dout and argmax NHWC [N,OH,OW,C].
//   maxpool_forward   output[n,y,x,c] = max over the window of input[n, y·SH+i−pad_t, x·SW+j−pad_l, c]  (=)
//                     argmax[n,y,x,c] = iy·W + ix of the maximum: the first maximal element in
//                     row-major window order (a later element must be strictly greater), the
//                     element XLA's select_and_scatter gives the gradient to                    (=)
//   maxpool_backward  dinput[n,y,x,c] = Σ over the windows whose argmax is (y, x) of dout        (=)
//                     a gather over the windows holding (y, x) in output order, so overlapping
//                     windows need no atomics and the sum order is fixed
// Each invocation owns one pixel and 4 channels, as avgpool.wgsl.

struct PoolParams {
    n: u32, h: u32, w: u32, c: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    pad_t: u32, pad_l: u32, out_h: u32, out_w: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> argmax_in: array<u32>;
@group(0) @binding(6) var<storage, read_write> dinput: array<f32>;

const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

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
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let px = pixel(flat_id(gid, nwg), p.out_h, p.out_w);
    if (px.x >= p.n) { return; }
    let obase = ((px.x * p.out_h + px.y) * p.out_w + px.z) * p.c;
    let y0 = i32(px.y * p.sh) - i32(p.pad_t);
    let x0 = i32(px.z * p.sw) - i32(p.pad_l);
    // The window clipped to the image (the padding never wins).
    let ya = u32(max(y0, 0));
    let yb = u32(clamp(y0 + i32(p.kh), 0, i32(p.h)));
    let xa = u32(max(x0, 0));
    let xb = u32(clamp(x0 + i32(p.kw), 0, i32(p.w)));
    for (var c = px.w; c < min(px.w + 4u, p.c); c++) {
        var best = -3.4028235e38;
        var arg = NONE;
        for (var y = ya; y < yb; y++) {
            let row = (px.x * p.h + y) * p.w;
            for (var x = xa; x < xb; x++) {
                let v = input[(row + x) * p.c + c];
                if (arg == NONE || v > best) {
                    best = v;
                    arg = y * p.w + x;
                }
            }
        }
        output[obase + c] = best;
        argmax[obase + c] = arg;
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

@compute @workgroup_size(64)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let px = pixel(flat_id(gid, nwg), p.h, p.w);
    if (px.x >= p.n) { return; }
    let me = px.y * p.w + px.z;
    let base = ((px.x * p.h + px.y) * p.w + px.z) * p.c;
    let ys = windows_of(px.y, p.pad_t, p.kh, p.sh, p.out_h);
    let xs = windows_of(px.z, p.pad_l, p.kw, p.sw, p.out_w);
    for (var c = px.w; c < min(px.w + 4u, p.c); c++) {
        var g = 0.0;
        for (var oy = ys.x; oy < ys.y; oy++) {
            let row = (px.x * p.out_h + oy) * p.out_w;
            for (var ox = xs.x; ox < xs.y; ox++) {
                let o = (row + ox) * p.c + c;
                g += select(0.0, dout[o], argmax_in[o] == me);
            }
        }
        dinput[base + c] = g;
    }
}
