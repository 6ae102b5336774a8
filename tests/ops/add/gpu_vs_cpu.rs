//! The residual add (with its fused ReLU) against its CPU twin.

use crate::common::{assert_close, gpu, rng, to_f64, uniform};
use crate::shared::{bits_differ, guarded, inner, read, read_guarded};
use wgpu_cnn::ops::add::gpu as add;
use wgpu_cnn::ops::relu::gpu as relu;
use wgpu_cnn::ops::*;

#[test]
fn add_with_and_without_relu() {
    let Some(gpu) = gpu() else { return };
    for (si, &len) in [1usize, 3, 63, 64, 1001, 4096, 4099].iter().enumerate() {
        for relu in [false, true] {
            let p = if relu {
                AddParams::new(len as u32).with_relu()
            } else {
                AddParams::new(len as u32)
            };
            let mut r = rng(980 + si as u64);
            let (a, b) = (uniform(&mut r, len, 1.0), uniform(&mut r, len, 1.0));
            let (ab, bb) = (guarded(gpu, "a", &a), gpu.storage_from("b", &b));
            let yb = guarded(gpu, "y", &vec![0.0; len]);
            let f = add::forward(gpu, &p, inner(&ab, len), (&bb).into(), inner(&yb, len));
            assert_eq!(f.entry.ends_with("_vec4"), len % 4 == 0);
            gpu.run(&[&f]).unwrap();
            let mut y = vec![0.0; len];
            wgpu_cnn::ops::add::cpu::add_forward(&p, &to_f64(&a), &to_f64(&b), &mut y);
            if relu && len > 10 {
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            }
            // One f32 rounding of the exact sum: half an ulp.
            let what = format!("add n{len} relu {relu}");
            assert_close(&what, &read_guarded(gpu, &what, &yb, len), &y, 0.0, 6e-8);
        }
    }
}

/// `add_relu_backward[_vec4]`: the sum of two gradients through a ReLU's backward, against the
/// CPU twin (add, then relu_backward) and bit for bit against the two GPU passes it replaces.
#[test]
fn add_relu_backward_matches_add_then_relu_backward() {
    let Some(gpu) = gpu() else { return };
    for (si, &len) in [1usize, 3, 63, 64, 1001, 4096, 4099].iter().enumerate() {
        let p = AddParams::new(len as u32);
        let mut r = rng(2000 + si as u64);
        let (a, b) = (uniform(&mut r, len, 1.0), uniform(&mut r, len, 1.0));
        // A ReLU's output: zeros and positive values.
        let out: Vec<f32> = uniform(&mut r, len, 1.0)
            .iter()
            .map(|v| v.max(0.0))
            .collect();
        let (ab, bb, ob) = (
            guarded(gpu, "a", &a),
            gpu.storage_from("b", &b),
            gpu.storage_from("out", &out),
        );
        let yb = guarded(gpu, "y", &vec![0.0; len]);
        let (sum, y2) = (gpu.storage("sum", len), gpu.storage("y2", len));
        let fused = add::relu_backward(
            gpu,
            &p,
            inner(&ab, len),
            (&bb).into(),
            (&ob).into(),
            inner(&yb, len),
        );
        assert_eq!(fused.entry.ends_with("_vec4"), len % 4 == 0);
        let plain = add::forward(gpu, &p, inner(&ab, len), (&bb).into(), (&sum).into());
        let mask = relu::backward(
            gpu,
            &ElementwiseParams::new(len as u32),
            (&sum).into(),
            (&ob).into(),
            (&y2).into(),
        );
        gpu.run(&[&fused, &plain, &mask]).unwrap();
        let mut s = vec![0.0; len];
        wgpu_cnn::ops::add::cpu::add_forward(&p, &to_f64(&a), &to_f64(&b), &mut s);
        let mut want = vec![0.0; len];
        wgpu_cnn::ops::relu::cpu::relu_backward(&s, &to_f64(&out), &mut want);
        let what = format!("add_relu_backward n{len}");
        let got = read_guarded(gpu, &what, &yb, len);
        if len > 10 {
            assert!(want.contains(&0.0) && want.iter().any(|&v| v != 0.0));
        }
        assert_close(&what, &got, &want, 0.0, 6e-8);
        let two = read(gpu, &y2);
        assert!(
            bits_differ(&got, &two) == 0,
            "{what}: fused and two-pass differ in bits"
        );
    }
}
