// augment.wgsl — builds a batch of network inputs from the GPU-resident CIFAR-10 bytes:
// optional horizontal flip, then a crop resized to 32×32 with bilinear resampling
// (torchvision RandomResizedCrop semantics, align_corners = False), then normalisation
// (x/255 − mean)/std. Evaluation uses the identity crop (no flip, whole image), which the
// bilinear path reproduces exactly.
//
// Layouts: images0/images1 = the data set as packed bytes, record i = 3,072 bytes in the file's
// planar order (1,024 R, 1,024 G, 1,024 B, each 32×32 row-major); records [0, chunk_images) are
// in images0, the rest in images1 (a storage binding may hold at most 128 MiB). labels_all [n]
// u32. crops [batch, 8] u32 = (record, flip, top, left, crop_h, crop_w, 0, 0), where top/left
// index the flipped image. Output: input [batch,32,32,3] NHWC f32 (=) and labels [batch] (=).
//
// Entry point: augment_batch, one output pixel (3 channels) per invocation.

struct AugmentParams {
    batch: u32, chunk_images: u32,
    mean_r: f32, mean_g: f32, mean_b: f32,
    inv_std_r: f32, inv_std_g: f32, inv_std_b: f32,
}

@group(0) @binding(0) var<uniform> p: AugmentParams;
@group(0) @binding(1) var<storage, read> images0: array<u32>;
@group(0) @binding(2) var<storage, read> images1: array<u32>;
@group(0) @binding(3) var<storage, read> labels_all: array<u32>;
@group(0) @binding(4) var<storage, read> crops: array<u32>;
@group(0) @binding(5) var<storage, read_write> input: array<f32>;
@group(0) @binding(6) var<storage, read_write> labels: array<u32>;

const WG: u32 = 64u;
const SIZE: u32 = 32u;
const RECORD: u32 = 3072u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Byte `offset` of record `rec`, as f32.
fn byte_at(rec: u32, offset: u32) -> f32 {
    var word: u32;
    if (rec < p.chunk_images) {
        let i = rec * RECORD + offset;
        word = images0[i / 4u] >> ((i % 4u) * 8u);
    } else {
        let i = (rec - p.chunk_images) * RECORD + offset;
        word = images1[i / 4u] >> ((i % 4u) * 8u);
    }
    return f32(word & 0xffu);
}

// Source coordinate of output pixel `o` when resizing `size_in` → 32 (PyTorch's
// area_pixel_compute_source_index with align_corners = False, clamped at 0).
fn src_coord(o: u32, size_in: u32) -> f32 {
    let scale = f32(size_in) / f32(SIZE);
    return max((f32(o) + 0.5) * scale - 0.5, 0.0);
}

@compute @workgroup_size(64)
fn augment_batch(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.batch * SIZE * SIZE) { return; }
    let x = idx % SIZE;
    let y = (idx / SIZE) % SIZE;
    let b = idx / (SIZE * SIZE);
    let rec = crops[b * 8u];
    let flip = crops[b * 8u + 1u] != 0u;
    let top = crops[b * 8u + 2u];
    let left = crops[b * 8u + 3u];
    let ch = crops[b * 8u + 4u];
    let cw = crops[b * 8u + 5u];

    let sy = src_coord(y, ch);
    let sx = src_coord(x, cw);
    let y0 = u32(floor(sy));
    let x0 = u32(floor(sx));
    let y1 = min(y0 + 1u, ch - 1u);
    let x1 = min(x0 + 1u, cw - 1u);
    let ly = sy - f32(y0);
    let lx = sx - f32(x0);
    // Columns in the flipped image map back to 31 − column in the stored one.
    let r0 = (top + y0) * SIZE;
    let r1 = (top + y1) * SIZE;
    var c0 = left + x0;
    var c1 = left + x1;
    if (flip) {
        c0 = SIZE - 1u - c0;
        c1 = SIZE - 1u - c1;
    }
    let mean = vec3<f32>(p.mean_r, p.mean_g, p.mean_b);
    let inv_std = vec3<f32>(p.inv_std_r, p.inv_std_g, p.inv_std_b);
    let out = idx * 3u;
    for (var c = 0u; c < 3u; c++) {
        let plane = c * SIZE * SIZE;
        let top_row = (1.0 - lx) * byte_at(rec, plane + r0 + c0) + lx * byte_at(rec, plane + r0 + c1);
        let bot_row = (1.0 - lx) * byte_at(rec, plane + r1 + c0) + lx * byte_at(rec, plane + r1 + c1);
        let v = (1.0 - ly) * top_row + ly * bot_row;
        input[out + c] = (v / 255.0 - mean[c]) * inv_std[c];
    }
    if (x == 0u && y == 0u) {
        labels[b] = labels_all[rec];
    }
}
