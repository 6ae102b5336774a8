//! Helpers the GPU-against-CPU tests of several ops share: tolerances, buffer reads, bit
//! comparisons and guarded buffers.

use wgpu_cnn::gpu::{BufSlice, Gpu};

/// f32 sums of up to a few hundred products of O(1) values against exact f64 sums.
pub const ATOL: f64 = 2e-5;
pub const RTOL: f64 = 1e-4;

pub fn read(gpu: &Gpu, b: &wgpu::Buffer) -> Vec<f32> {
    gpu.read_f32(b).expect("readback")
}

/// How many values of `a` and `b` differ in their bits.
pub fn bits_differ(a: &[f32], b: &[f32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(u, v)| u.to_bits() != v.to_bits())
        .count()
}

/// Elements per 256-byte binding-offset step: per-channel tensors of one layer sit at multiples
/// of it inside shared buffers, as a model lays out its parameters.
pub const SLOT: usize = 64;

pub fn slot(n: usize) -> usize {
    n.div_ceil(SLOT) * SLOT
}

/// `data` at offset SLOT of a buffer whose other elements are 7.0.
pub fn guarded(gpu: &Gpu, label: &str, data: &[f32]) -> wgpu::Buffer {
    let mut flat = vec![7.0f32; SLOT + data.len() + SLOT];
    flat[SLOT..SLOT + data.len()].copy_from_slice(data);
    gpu.storage_from(label, &flat)
}

pub fn inner(b: &wgpu::Buffer, len: usize) -> BufSlice<'_> {
    BufSlice::elems(b, SLOT, len)
}

/// Reads `len` values at offset SLOT and checks the guard elements around them are untouched.
pub fn read_guarded(gpu: &Gpu, what: &str, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let all = read(gpu, b);
    assert!(
        all[..SLOT]
            .iter()
            .chain(&all[SLOT + len..])
            .all(|&v| v == 7.0),
        "{what}: wrote outside its slice"
    );
    all[SLOT..SLOT + len].to_vec()
}
