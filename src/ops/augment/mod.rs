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
    /// Per channel: the input is `(x/255 − mean) / std`, divided as Flax's input pipeline
    /// divides (a multiply by a rounded `1 / std` is an ulp off, the same way for every pixel).
    pub std: [f32; 4],
}

impl AugmentParams {
    pub fn new(
        batch: u32,
        chunk_images: u32,
        shape: crate::data::ImageShape,
        norm: &crate::data::Normalization,
    ) -> Self {
        let k = (shape.c as usize).min(4);
        let (mut mean, mut std) = ([0.0; 4], [1.0; 4]);
        mean[..k].copy_from_slice(&norm.mean[..k]);
        std[..k].copy_from_slice(&norm.std[..k]);
        Self {
            batch,
            chunk_images: chunk_images.max(1),
            h: shape.h,
            w: shape.w,
            c: shape.c,
            image_bytes: shape.bytes() as u32,
            _pad: [0; 2],
            mean,
            std,
        }
    }
}
