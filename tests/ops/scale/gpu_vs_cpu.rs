//! The constant scale against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::scale::gpu as scale;
use wgpu_cnn::ops::*;

#[test]
fn scale_both_directions() {
    let Some(gpu) = gpu() else { return };
    // Lengths around the workgroup (64) and one past a whole number of them; factors of both
    // signs, one not representable in binary (1/9, airbench's).
    for (si, (&len, &factor)) in [1usize, 63, 65, 1000, 4099]
        .iter()
        .zip(&[1.0f32 / 9.0, -2.5, 0.0, 3.0e5, 1.0 / 9.0])
        .enumerate()
    {
        let p = ScaleParams::new(len as u32, factor);
        let mut r = rng(470 + si as u64);
        let x = uniform(&mut r, len, 4.0);
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (gpu.storage("y", len), gpu.storage("dx", len));
        let f = scale::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = scale::backward(gpu, &p, (&dyb).into(), (&dxb).into());
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; len];
        wgpu_cnn::ops::scale::cpu::scale_forward(&p, &to_f64(&x), &mut y);
        // One f32 product: within half an ulp of the exact one.
        assert_close(
            &format!("scale {len} x{factor} forward"),
            &read(gpu, &yb),
            &y,
            0.0,
            6e-8,
        );
        let mut dx = vec![0.0; len];
        wgpu_cnn::ops::scale::cpu::scale_backward(&p, &to_f64(&dy), &mut dx);
        assert_close(
            &format!("scale {len} x{factor} backward"),
            &read(gpu, &dxb),
            &dx,
            0.0,
            6e-8,
        );
        // And bit for bit the f32 twin.
        let mut y32 = vec![0.0f32; len];
        wgpu_cnn::ops::scale::cpu::scale_forward(&p, &x, &mut y32);
        assert_eq!(read(gpu, &yb), y32, "scale {len}: not the f32 product");
    }
}
