//! The device itself: tensors bound as slices of a bigger buffer, validation errors.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::{read, ATOL, RTOL};
use wgpu_cnn::gpu::{BufSlice, Gpu};
use wgpu_cnn::ops::dense::gpu as dense;
use wgpu_cnn::ops::relu::gpu as relu;
use wgpu_cnn::ops::*;

#[test]
fn slices_bind_tensors_inside_a_bigger_buffer() {
    // The model binds parameters at 256-byte offsets of one flat buffer; check an op reads and
    // writes exactly its slice.
    let Some(gpu) = gpu() else { return };
    let p = DenseParams::new(3, 5, 4);
    let mut r = rng(700);
    let x = uniform(&mut r, 15, 1.0);
    let w = uniform(&mut r, 20, 1.0);
    let mut flat = vec![9.0f32; 64 + 20 + 44 + 4];
    flat[64..84].copy_from_slice(&w);
    flat[128..132].fill(0.5);
    let fb = gpu.storage_from("flat", &flat);
    let xb = gpu.storage_from("x", &x);
    let out = gpu.storage_from("out", &[7.0f32; 64 + 12 + 4]);
    let f = dense::forward(
        gpu,
        &p,
        (&xb).into(),
        BufSlice::elems(&fb, 64, 20),
        Some(BufSlice::elems(&fb, 128, 4)),
        BufSlice::elems(&out, 64, 12),
    );
    gpu.run(&[&f]).unwrap();
    let got = read(gpu, &out);
    let mut y = vec![0.0; 12];
    wgpu_cnn::ops::dense::cpu::dense_forward(&p, &to_f64(&x), &to_f64(&w), &[0.5; 4], &mut y);
    assert_close("dense on slices", &got[64..76], &y, ATOL, RTOL);
    assert!(
        got[..64].iter().chain(&got[76..]).all(|&v| v == 7.0),
        "wrote outside its slice"
    );
}

#[test]
fn wgpu_validation_errors_surface_as_errors() {
    if gpu().is_none() {
        return;
    }
    // A device of its own: its errors must not reach the other tests' shared device.
    let own = Gpu::new(&wgpu_cnn::gpu::GpuOptions {
        adapter: std::env::var("WGPU_CNN_ADAPTER").ok(),
        ..Default::default()
    })
    .unwrap();
    let gpu = &own;
    let p = ElementwiseParams::new(8);
    let (x, y) = (gpu.storage("x", 8), gpu.storage("y", 8));
    let mut d = relu::forward(gpu, &p, (&x).into(), (&y).into());
    // More workgroups than WebGPU allows in one dimension: rejected by validation.
    d.workgroups = [70_000, 1, 1];
    let err = gpu
        .run(&[&d])
        .expect_err("an invalid dispatch must be an error");
    assert!(err.to_string().starts_with("GPU error"), "{err}");
    // The device stays usable afterwards.
    let ok = relu::forward(gpu, &p, (&x).into(), (&y).into());
    gpu.run(&[&ok]).unwrap();
}
