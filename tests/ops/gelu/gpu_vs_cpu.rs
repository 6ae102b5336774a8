//! GELU against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::read;
use wgpu_cnn::ops::gelu::gpu as gelu;
use wgpu_cnn::ops::*;

#[test]
fn gelu_both_directions() {
    let Some(gpu) = gpu() else { return };
    for (si, &len) in [1usize, 63, 1000, 4099, 1001, 37].iter().enumerate() {
        // The last two lengths run the exact form (nn.gelu(approximate=False)).
        let approximate = si < 4;
        let p = GeluParams::new(len as u32, approximate);
        let mut r = rng(450 + si as u64);
        // Wide inputs: the tails (tanh saturating, large |x|) as well as the middle.
        let mut x = uniform(&mut r, len, 6.0);
        if len > 10 {
            x[0] = 60.0;
            x[1] = -60.0;
            x[2] = 0.0;
            // The far left tail, where Φ(x) is tiny and 1 + erf would cancel.
            x[3] = -9.0;
            x[4] = -5.5;
            x[5] = -13.0;
        }
        let dy = uniform(&mut r, len, 1.0);
        let (xb, dyb) = (gpu.storage_from("x", &x), gpu.storage_from("dy", &dy));
        let (yb, dxb) = (gpu.storage("y", len), gpu.storage("dx", len));
        let f = gelu::forward(gpu, &p, (&xb).into(), (&yb).into());
        let b = gelu::backward(gpu, &p, (&dyb).into(), (&xb).into(), (&dxb).into());
        gpu.run(&[&f, &b]).unwrap();
        let mut y = vec![0.0; len];
        wgpu_cnn::ops::gelu::cpu::gelu_forward_as(approximate, &to_f64(&x), &mut y);
        assert_close(
            &format!("gelu {len} (approximate {approximate}) forward"),
            &read(gpu, &yb),
            &y,
            1e-6,
            1e-5,
        );
        // In the left tail the values are tiny: judged relatively (the exact form computes
        // Φ from erfc, which keeps ~1e-7 relative accuracy there).
        if !approximate && len > 10 {
            let got = read(gpu, &yb);
            for i in 3..6 {
                let rel = (got[i] as f64 - y[i]).abs() / y[i].abs();
                assert!(
                    rel < 2e-5,
                    "exact gelu at x = {}: {} vs {} ({rel:.1e})",
                    x[i],
                    got[i],
                    y[i]
                );
            }
        }
        let mut dx = vec![0.0; len];
        wgpu_cnn::ops::gelu::cpu::gelu_backward_as(approximate, &to_f64(&dy), &to_f64(&x), &mut dx);
        assert_close(
            &format!("gelu {len} (approximate {approximate}) backward"),
            &read(gpu, &dxb),
            &dx,
            1e-6,
            1e-5,
        );
    }
}
