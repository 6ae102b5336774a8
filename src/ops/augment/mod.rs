//! Building a batch on the GPU from the resident data set: crop, flip, normalisation.

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

/// Building one batch of inputs from the GPU-resident data set (`augment.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct AugmentParams {
    pub batch: u32,
    /// Images held by each image binding (the last holds the rest).
    pub chunk_images: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    /// Bytes of one image (`h·w·c`).
    pub image_bytes: u32,
    pub _pad: [u32; 2],
    /// Per channel (up to 4; unused lanes 0).
    pub mean: [f32; 4],
    /// `1 / std` per channel.
    pub inv_std: [f32; 4],
}

impl AugmentParams {
    pub fn new(
        batch: u32,
        chunk_images: u32,
        shape: crate::data::ImageShape,
        norm: &crate::data::Normalization,
    ) -> Self {
        let mut mean = [0.0; 4];
        let mut inv_std = [0.0; 4];
        for c in 0..(shape.c as usize).min(4) {
            mean[c] = norm.mean[c];
            inv_std[c] = 1.0 / norm.std[c];
        }
        Self {
            batch,
            chunk_images: chunk_images.max(1),
            h: shape.h,
            w: shape.w,
            c: shape.c,
            image_bytes: shape.bytes() as u32,
            _pad: [0; 2],
            mean,
            inv_std,
        }
    }
}
