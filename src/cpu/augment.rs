//! Reference for `shaders/augment.wgsl`: flip, crop, bilinear resize to 32×32 (torchvision
//! RandomResizedCrop semantics, align_corners = False) and normalisation, in f32 exactly as
//! the shader orders it.

use crate::data::{Crop, IMAGE_SIDE, MEAN, RECORD_PIXELS, STD};

fn src_coord(o: u32, size_in: u32) -> f32 {
    let scale = size_in as f32 / IMAGE_SIDE as f32;
    ((o as f32 + 0.5) * scale - 0.5).max(0.0)
}

/// Writes one augmented image as NHWC `[32,32,3]` f32 from a record's 3,072 planar bytes.
pub fn augment_image(record: &[u8], crop: &Crop, out: &mut [f32]) {
    let side = IMAGE_SIDE;
    for y in 0..side {
        for x in 0..side {
            let sy = src_coord(y, crop.h);
            let sx = src_coord(x, crop.w);
            let (y0, x0) = (sy.floor() as u32, sx.floor() as u32);
            let (y1, x1) = ((y0 + 1).min(crop.h - 1), (x0 + 1).min(crop.w - 1));
            let (ly, lx) = (sy - y0 as f32, sx - x0 as f32);
            let (r0, r1) = ((crop.top + y0) * side, (crop.top + y1) * side);
            let (mut c0, mut c1) = (crop.left + x0, crop.left + x1);
            if crop.flip {
                c0 = side - 1 - c0;
                c1 = side - 1 - c1;
            }
            for c in 0..3 {
                let plane = c * RECORD_PIXELS as u32;
                let px = |r: u32, col: u32| record[(plane + r + col) as usize] as f32;
                let top_row = (1.0 - lx) * px(r0, c0) + lx * px(r0, c1);
                let bot_row = (1.0 - lx) * px(r1, c0) + lx * px(r1, c1);
                let v = (1.0 - ly) * top_row + ly * bot_row;
                out[((y * side + x) * 3 + c) as usize] =
                    (v / 255.0 - MEAN[c as usize]) * (1.0 / STD[c as usize]);
            }
        }
    }
}
