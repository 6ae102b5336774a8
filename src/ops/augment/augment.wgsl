// augment.wgsl — builds a batch of network inputs from the GPU-resident data set: optional
// horizontal flip, then a crop window (possibly reaching outside the image: zero, reflect or
// mean fill) resized to the image's H×W with bilinear resampling (torchvision
// RandomResizedCrop semantics, align_corners = False), then normalisation
// (x/255 − mean)/std. Evaluation uses the identity crop (no flip, whole image), which the
// bilinear path reproduces exactly; so do whole-pixel shifts (crop:PAD, translate:PX).
//
// Layouts: images0..images3 = the data set as packed bytes, image i = H·W·C bytes interleaved
// (HWC, row-major); images [k·chunk_images, (k+1)·chunk_images) are in images<k> (a storage
// binding holds a bounded number of bytes). labels_all [n] u32. crops [batch, 8] u32 =
// (record, flip, top, left, crop_h, crop_w, fill, 0), where top/left (i32 bits) index the
// flipped image and fill is 0 = zero byte, 1 = reflect, 2 = normalised 0.
// Output: input [batch,H,W,C] NHWC f32 (=) and labels [batch] (=).
//
// Entry point: augment_batch, one output pixel (C channels) per invocation.

struct AugmentParams {
    batch: u32, chunk_images: u32, h: u32, w: u32,
    c: u32, image_bytes: u32, _pad0: u32, _pad1: u32,
    mean0: f32, mean1: f32, mean2: f32, mean3: f32,
    std0: f32, std1: f32, std2: f32, std3: f32,
}

@group(0) @binding(0) var<uniform> p: AugmentParams;
@group(0) @binding(1) var<storage, read> images0: array<u32>;
@group(0) @binding(2) var<storage, read> images1: array<u32>;
@group(0) @binding(3) var<storage, read> images2: array<u32>;
@group(0) @binding(4) var<storage, read> images3: array<u32>;
@group(0) @binding(5) var<storage, read> labels_all: array<u32>;
@group(0) @binding(6) var<storage, read> crops: array<u32>;
@group(0) @binding(7) var<storage, read_write> input: array<f32>;
@group(0) @binding(8) var<storage, read_write> labels: array<u32>;

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Bytes `offset` .. `offset` + 3 of image `rec` (C ≤ 4 channels of one pixel), as f32: the two
// words that hold them, one load each (the second clamped to the buffer; bytes past C unused).
fn pixel_bytes(rec: u32, offset: u32) -> vec4<f32> {
    let k = rec / p.chunk_images;
    let i = (rec - k * p.chunk_images) * p.image_bytes + offset;
    let w = i / 4u;
    var lo: u32;
    var hi: u32;
    switch k {
        case 0u: { lo = images0[w]; hi = images0[min(w + 1u, arrayLength(&images0) - 1u)]; }
        case 1u: { lo = images1[w]; hi = images1[min(w + 1u, arrayLength(&images1) - 1u)]; }
        case 2u: { lo = images2[w]; hi = images2[min(w + 1u, arrayLength(&images2) - 1u)]; }
        default: { lo = images3[w]; hi = images3[min(w + 1u, arrayLength(&images3) - 1u)]; }
    }
    // Byte j of the pixel is byte (i mod 4) + j of the pair lo, hi.
    let pos = vec4<u32>(i % 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let word = select(vec4<u32>(lo), vec4<u32>(hi), pos >= vec4<u32>(4u));
    return vec4<f32>((word >> ((pos % 4u) * 8u)) & vec4<u32>(0xffu));
}

// Source coordinate of output pixel `o` when resizing `size_in` → `size_out` (PyTorch's
// area_pixel_compute_source_index with align_corners = False, clamped at 0).
fn src_coord(o: u32, size_in: u32, size_out: u32) -> f32 {
    let scale = f32(size_in) / f32(size_out);
    return max((f32(o) + 0.5) * scale - 0.5, 0.0);
}

// Index `i` of an axis of length `n` mirrored without repeating the edge (valid for |pad| < n).
fn reflect(i: i32, n: i32) -> i32 {
    if (i < 0) { return -i; }
    if (i >= n) { return 2 * (n - 1) - i; }
    return i;
}

// The channels of pixel (r, col) of image `rec`; outside the image: bytes 0.
fn tap(rec: u32, r: i32, col: i32) -> vec4<f32> {
    if (r < 0 || col < 0 || r >= i32(p.h) || col >= i32(p.w)) { return vec4<f32>(0.0); }
    return pixel_bytes(rec, (u32(r) * p.w + u32(col)) * p.c);
}

@compute @workgroup_size(64)
fn augment_batch(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.batch * p.h * p.w) { return; }
    let x = idx % p.w;
    let y = (idx / p.w) % p.h;
    let b = idx / (p.w * p.h);
    let rec = crops[b * 8u];
    let flip = crops[b * 8u + 1u] != 0u;
    let top = bitcast<i32>(crops[b * 8u + 2u]);
    let left = bitcast<i32>(crops[b * 8u + 3u]);
    let ch = crops[b * 8u + 4u];
    let cw = crops[b * 8u + 5u];
    let fill = crops[b * 8u + 6u];

    let sy = src_coord(y, ch, p.h);
    let sx = src_coord(x, cw, p.w);
    let y0 = u32(floor(sy));
    let x0 = u32(floor(sx));
    let y1 = min(y0 + 1u, ch - 1u);
    let x1 = min(x0 + 1u, cw - 1u);
    let ly = sy - f32(y0);
    let lx = sx - f32(x0);
    var r0 = top + i32(y0);
    var r1 = top + i32(y1);
    // Columns in the flipped image map back to W − 1 − column in the stored one.
    var c0 = left + i32(x0);
    var c1 = left + i32(x1);
    if (flip) {
        c0 = i32(p.w) - 1 - c0;
        c1 = i32(p.w) - 1 - c1;
    }
    let mean = vec4<f32>(p.mean0, p.mean1, p.mean2, p.mean3);
    let sd = vec4<f32>(p.std0, p.std1, p.std2, p.std3);
    let out = idx * p.c;
    if (fill == 2u && (r0 < 0 || c0 < 0 || r0 >= i32(p.h) || c0 >= i32(p.w))) {
        for (var c = 0u; c < p.c; c++) {
            input[out + c] = 0.0;
        }
    } else {
        if (fill == 1u) {
            r0 = reflect(r0, i32(p.h));
            r1 = reflect(r1, i32(p.h));
            c0 = reflect(c0, i32(p.w));
            c1 = reflect(c1, i32(p.w));
        }
        // All channels at once: the same arithmetic per channel as one at a time.
        let top_row = (1.0 - lx) * tap(rec, r0, c0) + lx * tap(rec, r0, c1);
        let bot_row = (1.0 - lx) * tap(rec, r1, c0) + lx * tap(rec, r1, c1);
        let v = (((1.0 - ly) * top_row + ly * bot_row) / 255.0 - mean) / sd;
        for (var c = 0u; c < p.c; c++) {
            input[out + c] = v[c];
        }
    }
    if (x == 0u && y == 0u) {
        labels[b] = labels_all[rec];
    }
}
