//! Evaluation against training mode: the eval step of a train model and an inference model
//! against the train forward, batch norm's running statistics and dropout in both modes.

use crate::common::{assert_close, gpu, rng, uniform};
use crate::{batch, close_scaled, plan, seed, LR};
use wgpu_cnn::cpu::{self, reference};
use wgpu_cnn::graph::Description;
use wgpu_cnn::model::GpuModel;

#[test]
fn eval_step_matches_train_forward_and_inference_plan() {
    let Some(gpu) = gpu() else { return };
    let d = seed();
    let p = plan(gpu, &d, 7);
    let init = p.layout.init(11);
    let (x, labels) = batch(&d, 7, 110);
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let loss = reference::loss(&p, &p64, &cpu::cast(&x), &labels);
    let train = GpuModel::from_plan(gpu, p, &init, LR).unwrap();
    let inference = GpuModel::inference(gpu, &d, 7, &init).unwrap();
    assert!(inference.gpu_bytes() < train.gpu_bytes());
    for m in [&train, &inference] {
        m.upload_batch(gpu, &x, &labels);
        m.reset_totals(gpu);
        m.eval_step(gpu);
        m.eval_step(gpu);
        let stats = m.read_stats(gpu).unwrap();
        let totals = m.read_totals(gpu).unwrap();
        assert_close("eval loss", &[stats.loss], &[loss], 1e-5, 1e-5);
        assert_eq!(totals.count, 14.0);
        assert_close(
            "eval totals",
            &[totals.loss_sum],
            &[14.0 * loss],
            1e-4,
            1e-5,
        );
        // Eval does not touch the parameters.
        assert_eq!(m.read_params(gpu).unwrap(), init);
    }
}

/// Batch norm and dropout in evaluation mode (eval step of a train model and an inference model)
/// vs training mode: evaluation normalises with the running statistics and leaves them alone,
/// training with the batch's and updates them; dropout is the identity in evaluation. GPU vs
/// CPU in both modes.
#[test]
fn batch_norm_and_dropout_evaluate_with_running_statistics() {
    let Some(gpu) = gpu() else { return };
    let d = Description::parse(
        "input = [6, 5, 3]\nclasses = 4\nlayer = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\", momentum = 0.8 }, { type = \"relu\" }, { type = \"residual\", body = [ { type = \"conv\", features = 8, kernel = 3, bias = false }, { type = \"batch_norm\" } ] }, { type = \"relu\" }, { type = \"flatten\" }, { type = \"dense\", features = 12, bias = false }, { type = \"batch_norm\", epsilon = 1e-3 }, { type = \"relu\" }, { type = \"dropout\", rate = 0.5 }, { type = \"dense\", features = 4 } ]\n",
    )
    .unwrap();
    let n = 5;
    let p = plan(gpu, &d, n as u32);
    let init = p.layout.init(21);
    let (x, labels) = batch(&d, n, 120);
    let x64: Vec<f64> = cpu::cast(&x);
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    // Running statistics far from the batch's: mean ±0.5, variance 0.5..2.
    let mut r = rng(122);
    let stats: Vec<Vec<f32>> = p
        .stats
        .specs
        .iter()
        .map(|s| {
            let v = uniform(&mut r, s.len(), 1.0);
            if s.name.ends_with(".var") {
                v.iter().map(|x| 1.25 + 0.75 * x).collect()
            } else {
                v.iter().map(|x| 0.5 * x).collect()
            }
        })
        .collect();
    let s64: Vec<Vec<f64>> = stats.iter().map(|t| cpu::cast(t)).collect();
    let mut eval_stats = s64.clone();
    let eval = reference::forward_with(&p, &p64, &mut eval_stats, &x64, reference::Phase::Eval);
    assert_eq!(
        eval_stats, s64,
        "evaluation leaves the running statistics alone"
    );
    let eval_logits = eval.last().unwrap();
    let train = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    let inference = GpuModel::inference(gpu, &d, n as u32, &init).unwrap();
    for (what, m) in [("eval step", &train), ("inference", &inference)] {
        m.write_batch_stats(gpu, &stats);
        m.upload_batch(gpu, &x, &labels);
        m.eval_step(gpu);
        close_scaled(what, &m.read_logits(gpu).unwrap(), eval_logits, 1e-5);
        assert_eq!(m.read_batch_stats(gpu).unwrap(), stats, "{what}");
    }
    // Training mode: batch statistics (and the step's dropout mask), running ones updated.
    let mut train_stats = s64.clone();
    let train_out =
        reference::forward_with(&p, &p64, &mut train_stats, &x64, reference::FIRST_STEP);
    let train_logits = train_out.last().unwrap();
    let differ = train_logits
        .iter()
        .zip(eval_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        differ > 0.1,
        "train and eval logits differ by only {differ}"
    );
    let mut m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.write_batch_stats(gpu, &stats);
    m.upload_batch(gpu, &x, &labels);
    m.train_step(gpu);
    close_scaled(
        "train logits",
        &m.read_logits(gpu).unwrap(),
        train_logits,
        1e-5,
    );
    let got = m.read_batch_stats(gpu).unwrap();
    for (i, s) in p.stats.specs.iter().enumerate() {
        close_scaled(
            &format!("running {}", s.name),
            &got[i],
            &train_stats[i],
            1e-5,
        );
        // momentum · old + (1 − momentum) · batch moved every statistic.
        assert!(
            got[i].iter().zip(&stats[i]).all(|(a, b)| a != b),
            "{}",
            s.name
        );
    }
}

/// The train step's forward activations (read with `read_train_forward`) against the float64
/// reference: every layer's output of vgg11-bn at batch 4 (batch statistics), within the
/// rounding its depth accumulates. Precision of the forward decides how many ReLU masks and
/// max-pool choices rounding flips, and each flip moves the gradient by a whole element
/// (docs/notes/numerics.md).
#[test]
fn train_forward_activations_track_float64() {
    let Some(gpu) = gpu() else { return };
    let d = wgpu_cnn::graph::zoo::preset("vgg11-bn").unwrap();
    let n = 4;
    let p = plan(gpu, &d, n as u32);
    let init = p.layout.init(3);
    let (x, labels) = batch(&d, n, 8);
    let m = GpuModel::from_plan(gpu, p.clone(), &init, LR).unwrap();
    m.upload_batch(gpu, &x, &labels);
    let p64: Vec<Vec<f64>> = init.iter().map(|t| cpu::cast(t)).collect();
    let want = reference::forward_in(&p, &p64, &cpu::cast(&x), reference::FIRST_STEP);
    let mut checked = 0;
    for (i, l) in p.layers.iter().enumerate() {
        let name = format!("{}.out", l.name);
        if !p.tensors.iter().any(|t| t.name == name) {
            continue; // fused into the layer before (its ReLU)
        }
        let got: Vec<f64> = cpu::cast(&m.read_train_forward(gpu, &name).unwrap());
        // A fused ReLU: the tensor holds the next layer's (the ReLU's) output.
        let w = if got.len() == want[i].len() && got.iter().all(|v| *v >= 0.0) {
            want[i].iter().map(|v| v.max(0.0)).collect()
        } else {
            want[i].clone()
        };
        assert_eq!(got.len(), w.len(), "{name}");
        let err = got
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let rel = err / w.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(rel < 2e-5, "{name}: {rel:.2e} from float64");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} layers read");
    assert!(m.read_train_forward(gpu, "no such tensor").is_err());
}
