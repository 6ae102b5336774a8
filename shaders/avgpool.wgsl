// avgpool.wgsl — 2-D average pooling, window = stride = k, no padding (Flax avg_pool default);
// rows/columns past the last full window are dropped (out = floor(in / k)).
//
// Layouts: input/dinput NHWC [N,H,W,C], output/dout NHWC [N,H/k,W/k,C].
//   avgpool_forward   output[n,y,x,c] = mean_{i,j<k} input[n, y·k+i, x·k+j, c]     (=)
//   avgpool_backward  dinput[n,y,x,c] = dout[n, y/k, x/k, c] / k² inside a window, else 0 (=)
// One element per invocation: memory-bound, so no tiling; consecutive invocations touch
// consecutive channels, so loads and stores are contiguous.

struct AvgPoolParams {
    n: u32, h: u32, w: u32, c: u32,
    k: u32, out_h: u32, out_w: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: AvgPoolParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dinput: array<f32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(64)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.out_h * p.out_w * p.c) { return; }
    let c = idx % p.c;
    let t = idx / p.c;
    let x = t % p.out_w;
    let t2 = t / p.out_w;
    let y = t2 % p.out_h;
    let n = t2 / p.out_h;
    var sum = 0.0;
    for (var i = 0u; i < p.k; i++) {
        let row = (n * p.h + y * p.k + i) * p.w + x * p.k;
        for (var j = 0u; j < p.k; j++) {
            sum += input[(row + j) * p.c + c];
        }
    }
    output[idx] = sum / f32(p.k * p.k);
}

@compute @workgroup_size(64)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.h * p.w * p.c) { return; }
    let c = idx % p.c;
    let t = idx / p.c;
    let x = t % p.w;
    let t2 = t / p.w;
    let y = t2 % p.h;
    let n = t2 / p.h;
    let oy = y / p.k;
    let ox = x / p.k;
    var g = 0.0;
    if (oy < p.out_h && ox < p.out_w) {
        g = dout[((n * p.out_h + oy) * p.out_w + ox) * p.c + c] / f32(p.k * p.k);
    }
    dinput[idx] = g;
}
