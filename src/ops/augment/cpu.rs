//! Reference for `augment.wgsl`: flip, crop window (zero, reflect or mean fill
//! outside the image), bilinear resize to the image's size (torchvision RandomResizedCrop
//! semantics, align_corners = False) and normalisation, in f32 exactly as the shader orders it.

use crate::data::{Crop, Fill, ImageShape, Normalization};

fn src_coord(o: u32, size_in: u32, size_out: u32) -> f32 {
    let scale = size_in as f32 / size_out as f32;
    ((o as f32 + 0.5) * scale - 0.5).max(0.0)
}

fn reflect(i: i32, n: i32) -> i32 {
    if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    }
}

/// Writes one augmented image as NHWC `[h,w,c]` f32 from its HWC bytes.
pub fn augment_image(
    image: &[u8],
    shape: ImageShape,
    norm: &Normalization,
    crop: &Crop,
    out: &mut [f32],
) {
    let (h, w, ch) = (shape.h as i32, shape.w as i32, shape.c);
    let tap = |r: i32, col: i32, c: u32| -> f32 {
        if r < 0 || col < 0 || r >= h || col >= w {
            0.0
        } else {
            image[((r as u32 * shape.w + col as u32) * ch + c) as usize] as f32
        }
    };
    for y in 0..shape.h {
        for x in 0..shape.w {
            let sy = src_coord(y, crop.h, shape.h);
            let sx = src_coord(x, crop.w, shape.w);
            let (y0, x0) = (sy.floor() as u32, sx.floor() as u32);
            let (y1, x1) = ((y0 + 1).min(crop.h - 1), (x0 + 1).min(crop.w - 1));
            let (ly, lx) = (sy - y0 as f32, sx - x0 as f32);
            let (mut r0, mut r1) = (crop.top + y0 as i32, crop.top + y1 as i32);
            let (mut c0, mut c1) = (crop.left + x0 as i32, crop.left + x1 as i32);
            if crop.flip {
                c0 = w - 1 - c0;
                c1 = w - 1 - c1;
            }
            let o = ((y * shape.w + x) * ch) as usize;
            if crop.fill == Fill::Mean && (r0 < 0 || c0 < 0 || r0 >= h || c0 >= w) {
                out[o..o + ch as usize].fill(0.0);
                continue;
            }
            if crop.fill == Fill::Reflect {
                (r0, r1) = (reflect(r0, h), reflect(r1, h));
                (c0, c1) = (reflect(c0, w), reflect(c1, w));
            }
            for c in 0..ch {
                let top_row = (1.0 - lx) * tap(r0, c0, c) + lx * tap(r0, c1, c);
                let bot_row = (1.0 - lx) * tap(r1, c0, c) + lx * tap(r1, c1, c);
                let v = (1.0 - ly) * top_row + ly * bot_row;
                out[o + c as usize] = (v / 255.0 - norm.mean[c as usize]) / norm.std[c as usize];
            }
        }
    }
}
