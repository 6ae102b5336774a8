// conv2d_common.wgsl — what the convolution shaders share; the shader registry
// (gpu/shaders.rs) puts it in front of conv2d.wgsl, conv2d_wg.wgsl, winograd.wgsl and the
// subgroup kernels (conv2d_sg_common.wgsl, then one file per direction).
//
// The parameter block (ops/conv2d/mod.rs Conv2dParams, the same 80 bytes; tests/naga_validate.rs
// checks the layout) and the stride-phase tiling of
// the input-gradient kernels: the input gradient of a strided convolution is a transposed
// convolution, and input pixel (y, x) meets only the taps with ky ≡ y + pad_t (mod SH) and
// kx ≡ x + pad_l (mod SW). Pixels that share those remainders (ry, rx) — a stride phase — meet
// the same taps, (ky, kx) = (ry, rx) + kq·(SH, SW): KH·KW / (SH·SW) of them for a strided layer;
// an unstrided layer has one phase, every tap, the pixels in order. The kernels give each tile
// (4 pixels of an invocation, 32 of a subgroup, BM of a workgroup) pixels of one phase. A
// phase's pixels: N images of at most ceil(H/SH) × ceil(W/SW), row-major, `tile` per tile (a
// phase with fewer rows or columns leaves slots idle); tiles per layer: SH·SW times
// ceil(N · ceil(H/SH) · ceil(W/SW) / tile) (`Conv2dParams::input_phase_tiles`).

struct Conv2dParams {
    n: u32, h: u32, w: u32, c: u32,
    o: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, pad_t: u32, pad_l: u32, out_h: u32,
    out_w: u32, chunk: u32, splits: u32, relu: u32,
    pool: u32, bias: u32, queue: u32, mask: u32,
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;

// Phase (ry, rx) of phase tile pt of `tile` pixels, and the tile's first slot in its phase.
struct Phase { ry: u32, rx: u32, first: u32 }

fn stride_phase(pt: u32, tile: u32) -> Phase {
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    let per = (p.n * hq * wq + tile - 1u) / tile;
    let ph = pt / per;
    return Phase(ph / p.sw, ph % p.sw, (pt - ph * per) * tile);
}

// The input pixel in slot k of phase (ry, rx), or N·H·W past the phase's pixels.
fn phase_pixel_at(ry: u32, rx: u32, k: u32) -> u32 {
    let hq = (p.h + p.sh - 1u) / p.sh;
    let wq = (p.w + p.sw - 1u) / p.sw;
    let row = k / wq;
    // The first y with (y + pad_t) mod SH = ry, then every SH-th; the same in x.
    let y = (ry + p.sh - p.pad_t % p.sh) % p.sh + (row % hq) * p.sh;
    let x = (rx + p.sw - p.pad_l % p.sw) % p.sw + (k - row * wq) * p.sw;
    let n = row / hq;
    return select(p.n * p.h * p.w, (n * p.h + y) * p.w + x, n < p.n && y < p.h && x < p.w);
}
