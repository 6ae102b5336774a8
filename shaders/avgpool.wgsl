// avgpool.wgsl — 2-D average pooling, window = stride = k, no padding (Flax avg_pool default);
// rows/columns past the last full window are dropped (out = floor(in / k)).
//
// Layouts: input/dinput NHWC [N,H,W,C], output/dout NHWC [N,H/k,W/k,C].
//   avgpool_forward        output[n,y,x,c] = mean_{i,j<k} input[n, y·k+i, x·k+j, c]       (=)
//   avgpool_backward       dinput[n,y,x,c] = dout[n, y/k, x/k, c] / k² inside a window, else 0 (=)
//   avgpool_backward_relu  as avgpool_backward, times [fwd_output > 0]: the backward of the
//                          ReLU before the pool, fused (fwd_output = that ReLU's output)        (=)
//   avgpool_backward_relu_k2  the same for k = 2, even H, W and C % 4 == 0 (the seed's pools),
//                          straight-line vec4 code, 2-3× faster on lavapipe                   (=)
// Each invocation owns one window (ceil(H/k)·ceil(W/k) of them, partial windows at the border
// included so backward zeroes every dropped element) and 4 channels: index arithmetic — integer
// division is slow on CPU-type adapters — is paid once per 4·k² elements.

struct AvgPoolParams {
    n: u32, h: u32, w: u32, c: u32,
    k: u32, out_h: u32, out_w: u32, _pad0: u32,
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

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// (n, window row, window column, first channel) of invocation `idx`, or n = N when idle.
fn window(idx: u32, wins_h: u32, wins_w: u32) -> vec4<u32> {
    let cgroups = (p.c + 3u) / 4u;
    let c0 = (idx % cgroups) * 4u;
    let t = idx / cgroups;
    let wx = t % wins_w;
    let t2 = t / wins_w;
    return vec4<u32>(t2 / wins_h, t2 % wins_h, wx, c0);
}

@compute @workgroup_size(64)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let win = window(flat_id(gid, nwg), p.out_h, p.out_w);
    if (win.x >= p.n) { return; }
    let scale = 1.0 / f32(p.k * p.k);
    let obase = ((win.x * p.out_h + win.y) * p.out_w + win.z) * p.c;
    for (var c = win.w; c < min(win.w + 4u, p.c); c++) {
        var sum = 0.0;
        for (var i = 0u; i < p.k; i++) {
            let row = (win.x * p.h + win.y * p.k + i) * p.w + win.z * p.k;
            for (var j = 0u; j < p.k; j++) {
                sum += input[(row + j) * p.c + c];
            }
        }
        output[obase + c] = sum * scale;
    }
}

// The window of backward invocation `idx` (partial border windows included), or n = N when idle.
fn backward_window(idx: u32) -> vec4<u32> {
    return window(idx, (p.h + p.k - 1u) / p.k, (p.w + p.k - 1u) / p.k);
}

// dout[window]/k² for channel c, or 0 for a partial border window (dropped by the forward).
fn window_grad(win: vec4<u32>, c: u32) -> f32 {
    let full = win.y < p.out_h && win.z < p.out_w;
    let o = ((win.x * p.out_h + min(win.y, p.out_h - 1u)) * p.out_w + min(win.z, p.out_w - 1u)) * p.c;
    return select(0.0, dout[o + c] / f32(p.k * p.k), full);
}

@compute @workgroup_size(64)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let win = backward_window(flat_id(gid, nwg));
    if (win.x >= p.n) { return; }
    for (var c = win.w; c < min(win.w + 4u, p.c); c++) {
        let g = window_grad(win, c);
        for (var y = win.y * p.k; y < min(win.y * p.k + p.k, p.h); y++) {
            for (var x = win.z * p.k; x < min(win.z * p.k + p.k, p.w); x++) {
                dinput[((win.x * p.h + y) * p.w + x) * p.c + c] = g;
            }
        }
    }
}

@compute @workgroup_size(64)
fn avgpool_backward_relu(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let win = backward_window(flat_id(gid, nwg));
    if (win.x >= p.n) { return; }
    for (var c = win.w; c < min(win.w + 4u, p.c); c++) {
        let g = window_grad(win, c);
        for (var y = win.y * p.k; y < min(win.y * p.k + p.k, p.h); y++) {
            for (var x = win.z * p.k; x < min(win.z * p.k + p.k, p.w); x++) {
                let at = ((win.x * p.h + y) * p.w + x) * p.c + c;
                dinput[at] = select(0.0, g, fwd_output[at] > 0.0);
            }
        }
    }
}

// avgpool_backward_relu for k = 2, even H and W, C % 4 == 0 (every window full): one invocation
// per pooled pixel and 4 channels, straight-line vec4 code (no loops: on CPU-type adapters each
// loop costs a mask blend per update).
@compute @workgroup_size(64)
fn avgpool_backward_relu_k2(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let cq = p.c / 4u;
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.out_h * p.out_w * cq) { return; }
    let q = idx % cq;
    let t = idx / cq;
    let x = t % p.out_w;
    let t2 = t / p.out_w;
    let y = t2 % p.out_h;
    let n = t2 / p.out_h;
    let g = dout4[idx] * 0.25;
    let z = vec4<f32>(0.0);
    let a = ((n * p.h + 2u * y) * p.w + 2u * x) * cq + q;
    let b = a + p.w * cq;
    dinput4[a] = select(z, g, fwd_output4[a] > z);
    dinput4[a + cq] = select(z, g, fwd_output4[a + cq] > z);
    dinput4[b] = select(z, g, fwd_output4[b] > z);
    dinput4[b + cq] = select(z, g, fwd_output4[b + cq] > z);
}
