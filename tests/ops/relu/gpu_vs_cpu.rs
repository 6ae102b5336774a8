//! ReLU against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::relu::gpu as relu;
use wgpu_cnn::ops::*;

#[test]
fn relu_both_directions() {
    let Some(gpu) = gpu() else { return };
    // The last size needs more than 65,535 workgroups: the grid folds into y. Counts that are
    // a multiple of 4 (1000, 4096) take the vec4 entry points.
    for (si, &len) in [1usize, 63, 65, 1000, 4096, 65_535 * 64 + 7]
        .iter()
        .enumerate()
    {
        let p = ElementwiseParams::new(len as u32);
        let mut r = rng(400 + si as u64);
        let mut x = uniform(&mut r, len, 1.0);
        x[0] = 0.0; // the kink: gradient 0, as JAX
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (gpu.storage("y", len), gpu.storage("dx", len));
        let f = relu::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = relu::backward(gpu, &p, (&dyb).into(), (&yb).into(), (&dxb).into());
        for d in [&f, &b] {
            assert_eq!(d.entry.ends_with("_vec4"), len % 4 == 0, "{}", d.entry);
        }
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; len];
        wgpu_cnn::ops::relu::cpu::relu_forward(&to_f64(&x), &mut y);
        assert_close(
            &format!("relu n{len} forward"),
            &read(gpu, &yb),
            &y,
            0.0,
            0.0,
        );
        let mut dx = vec![0.0; len];
        wgpu_cnn::ops::relu::cpu::relu_backward(&to_f64(&dy), &y, &mut dx);
        assert_close(
            &format!("relu n{len} backward"),
            &read(gpu, &dxb),
            &dx,
            0.0,
            0.0,
        );
    }
}
