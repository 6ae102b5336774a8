//! Shared test helpers: the GPU under test, seeded random inputs, and tolerance checks that
//! print the worst elements on failure.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use wgpu_cnn::gpu::{Gpu, GpuOptions};
use wgpu_cnn::graph::{Description, Layer};
use wgpu_cnn::ops::Padding;

/// Set to 1 to let GPU tests pass without an adapter (they then check nothing). Without it, a
/// machine with no adapter fails every GPU test with the install hint.
pub const SKIP_VAR: &str = "WGPU_CNN_SKIP_GPU_TESTS";

/// The options of the device under test: `WGPU_CNN_ADAPTER` (index or name substring) and
/// `WGPU_CNN_BACKEND` (`vulkan`, `metal`, `dx12`, `gl`; default: wgpu-cnn's choice).
pub fn test_options() -> GpuOptions {
    let backend = std::env::var("WGPU_CNN_BACKEND").ok().map(|b| {
        <wgpu_cnn::gpu::Backend as clap::ValueEnum>::from_str(&b, true)
            .unwrap_or_else(|e| panic!("WGPU_CNN_BACKEND={b}: {e}"))
    });
    GpuOptions {
        adapter: std::env::var("WGPU_CNN_ADAPTER").ok(),
        backend: backend.unwrap_or_default(),
        ..Default::default()
    }
}

/// The adapter all GPU tests of one test binary share (wgpu-cnn's default choice, or the one
/// named by `WGPU_CNN_ADAPTER` / `WGPU_CNN_BACKEND`). `None` only when the user opted out with
/// `SKIP_VAR=1`.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let opts = test_options();
        match Gpu::new(&opts) {
            Ok(g) => {
                eprintln!("GPU tests on: {}", g.describe());
                Some(g)
            }
            Err(e) if std::env::var(SKIP_VAR).as_deref() == Ok("1") => {
                eprintln!("GPU tests skipped ({SKIP_VAR}=1): {e}");
                None
            }
            Err(e) => panic!(
                "GPU tests need an adapter: {e}. On a machine without a GPU install lavapipe \
                 (`bash ../shared/tools/install-vulkan-cpu.sh` or `apt install mesa-vulkan-drivers`), \
                 or set {SKIP_VAR}=1 to skip GPU tests explicitly."
            ),
        }
    })
    .as_ref()
}

/// A second device on the same adapter that never picks the subgroup kernels
/// (`conv2d_sg_*.wgsl`): the register-tiled kernels that devices without 8-wide subgroups run.
pub fn gpu_tiled() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        gpu()?;
        let mut g = Gpu::new(&test_options()).expect("the adapter opened once already");
        g.subgroup_size = None;
        Some(g)
    })
    .as_ref()
}

/// A third device on the same adapter that runs the workgroup-tiled kernels (`conv2d_wg.wgsl`),
/// which the planner picks on GPUs (as `WGPU_CNN_KERNELS=workgroup` asks for them).
///
/// Not on wgpu's GL backend: llvmpipe's GLSL compiler needs minutes per workgroup-tiled pipeline
/// without a warm shader cache (over 10 minutes for the dense tests on a fresh machine), so the
/// family is tested on Vulkan (lavapipe) only; the GL run says so once on stderr.
pub fn gpu_wg() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        gpu()?;
        if test_options().backend == wgpu_cnn::gpu::Backend::Gl {
            eprintln!(
                "note: the workgroup-tiled kernels are not tested on the GL backend \
                 (llvmpipe's GLSL compile time); they are tested on Vulkan"
            );
            return None;
        }
        let mut g = Gpu::new(&test_options()).expect("the adapter opened once already");
        g.kernels = Some(wgpu_cnn::plan::Kernels::Workgroup);
        assert!(
            g.caps().workgroup_tiled(),
            "the adapter cannot run the workgroup-tiled kernels: {}",
            g.caps().describe()
        );
        Some(g)
    })
    .as_ref()
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `len` values uniform in [-scale, scale].
pub fn uniform(rng: &mut impl Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-scale..=scale)).collect()
}

pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Largest |got − want| seen, for the summary line.
pub fn max_abs_err(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max)
}

/// Asserts `|got − want| ≤ atol + rtol·|want|` element-wise; on failure prints the five worst
/// elements. Prints the max error either way (`cargo test -- --nocapture` shows it).
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let mut bad: Vec<(usize, f64)> = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        if err.is_nan() || err > atol + rtol * w.abs() {
            bad.push((i, err));
        }
    }
    let max = max_abs_err(got, want);
    println!(
        "{what}: n={} max_abs_err={max:.3e} (atol {atol:e}, rtol {rtol:e})",
        got.len()
    );
    if !bad.is_empty() {
        bad.sort_by(|a, b| b.1.total_cmp(&a.1));
        let worst: Vec<String> = bad
            .iter()
            .take(5)
            .map(|&(i, e)| format!("[{i}] got {} want {} err {e:.3e}", got[i], want[i]))
            .collect();
        panic!(
            "{what}: {} of {} elements out of tolerance (atol {atol:e}, rtol {rtol:e}); worst: {}",
            bad.len(),
            got.len(),
            worst.join("; ")
        );
    }
}

/// Central finite difference of `f` at `x[i]` with step `eps`.
pub fn central_diff(x: &mut [f64], i: usize, eps: f64, f: &mut impl FnMut(&[f64]) -> f64) -> f64 {
    let old = x[i];
    x[i] = old + eps;
    let plus = f(x);
    x[i] = old - eps;
    let minus = f(x);
    x[i] = old;
    (plus - minus) / (2.0 * eps)
}

/// Checks an analytic gradient against central differences at up to `samples` entries
/// (all of them when there are fewer), `|fd − an| ≤ atol + rtol·|fd|`.
pub fn check_grad(
    what: &str,
    x: &mut [f64],
    analytic: &[f64],
    samples: usize,
    rng: &mut impl Rng,
    f: &mut impl FnMut(&[f64]) -> f64,
) {
    const EPS: f64 = 1e-6;
    const ATOL: f64 = 1e-7;
    const RTOL: f64 = 1e-5;
    let idx: Vec<usize> = if x.len() <= samples {
        (0..x.len()).collect()
    } else {
        (0..samples).map(|_| rng.random_range(0..x.len())).collect()
    };
    let mut worst = 0.0f64;
    for &i in &idx {
        let fd = central_diff(x, i, EPS, f);
        let err = (fd - analytic[i]).abs();
        worst = worst.max(err);
        assert!(
            err <= ATOL + RTOL * fd.abs(),
            "{what}: d/dx[{i}] finite difference {fd:.9e} vs analytic {:.9e} (err {err:.3e})",
            analytic[i]
        );
    }
    println!(
        "{what}: {} entries, max |fd - analytic| = {worst:.3e}",
        idx.len()
    );
}

/// The real CIFAR-10 (binary version) for end-to-end tests: `WGPU_CNN_DATA`, or the shared
/// copy beside the project. Fails (never skips) when it is missing.
pub fn cifar_dir() -> std::path::PathBuf {
    let dir = std::env::var("WGPU_CNN_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/cifar10/cifar-10-batches-bin")
        });
    assert!(
        wgpu_cnn::data::is_present(&dir),
        "end-to-end tests need CIFAR-10 in {} (set WGPU_CNN_DATA, or run `wgpu-cnn download`)",
        dir.display()
    );
    dir
}

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wgpu-cnn-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the wgpu-cnn binary; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    cli_in(std::path::Path::new("."), args)
}

/// [`cli`] in the folder `cwd`.
pub fn cli_in(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args(args)
        .current_dir(cwd)
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .output()
        .expect("run wgpu-cnn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failed run: exit code 1, an `error:` line naming `needle`, no panic.
pub fn assert_error(args: &[&str], needle: &str) {
    let (code, out, err) = cli(args);
    assert_eq!(
        code, 1,
        "{args:?} should fail\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {err}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{args:?}: no error line: {err}"));
    // One clear line: nothing else on stderr (warnings before it aside).
    let rest: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && *l != line && !l.starts_with("warning: "))
        .collect();
    assert!(rest.is_empty(), "{args:?}: more than one error line: {err}");
    assert!(
        line.contains(needle),
        "{args:?}: error line {line:?} does not mention {needle:?}"
    );
}

/// A random padding: SAME, VALID, an integer or explicit asymmetric pairs.
/// Explicit padding is at most `max` and smaller than the window `k` on each axis: an output
/// that sees only padding is a constant (the bias, or 0), which after a few Adam steps sits at
/// rounding noise around a ReLU's kink, where f32 and f64 legitimately disagree.
fn random_padding(r: &mut impl Rng, max: u32, k: [u32; 2]) -> Padding {
    let m = [max.min(k[0] - 1), max.min(k[1] - 1)];
    match r.random_range(0..4) {
        0 => Padding::Same,
        1 => Padding::Valid,
        2 => {
            let p = r.random_range(0..=m[0].min(m[1]));
            Padding::Explicit([[p, p], [p, p]])
        }
        _ => Padding::Explicit([
            [r.random_range(0..=m[0]), r.random_range(0..=m[0])],
            [r.random_range(0..=m[1]), r.random_range(0..=m[1])],
        ]),
    }
}

fn random_pair(r: &mut impl Rng, lo: u32, hi: u32) -> [u32; 2] {
    if r.random_bool(0.6) {
        let k = r.random_range(lo..=hi);
        [k, k]
    } else {
        [r.random_range(lo..=hi), r.random_range(lo..=hi)]
    }
}

/// Conv and dense layers that reach a batch norm through linear layers only get `bias = false`
/// (as in ResNets): their bias gradient is zero by construction (batch norm subtracts the
/// batch mean, and a bias shifts every row alike), so f32 and f64 would only compare rounding
/// noise, which Adam then normalises into full-size steps of random sign (and the running
/// means follow those biases). The generator puts an activation after every batch norm and
/// residual block, so no batch norm's own bias reaches another one linearly.
fn no_bias_before_batch_norm(layers: &mut [Layer]) {
    for i in 0..layers.len() {
        let linear = linear_to_batch_norm(&layers[i + 1..]);
        match &mut layers[i] {
            Layer::Conv { bias, .. } | Layer::Dense { bias, .. } if linear => *bias = false,
            Layer::Residual { body, shortcut } => {
                no_bias_before_batch_norm(body);
                no_bias_before_batch_norm(shortcut);
            }
            _ => {}
        }
    }
}

/// Whether every path from the start of `layers` reaches a batch norm through linear layers
/// (a residual: its body and a non-identity shortcut both do).
fn linear_to_batch_norm(layers: &[Layer]) -> bool {
    match layers.first() {
        Some(Layer::BatchNorm { .. }) => true,
        Some(
            Layer::Conv { .. }
            | Layer::Dense { .. }
            | Layer::AvgPool { .. }
            | Layer::GlobalAvgPool
            | Layer::Flatten,
        ) => linear_to_batch_norm(&layers[1..]),
        Some(Layer::Residual { body, shortcut }) => {
            linear_to_batch_norm(body) && !shortcut.is_empty() && linear_to_batch_norm(shortcut)
        }
        _ => false,
    }
}

/// A residual block on `c` channels (He et al.'s basic block and variants): body conv (stride 1
/// or 2, SAME) – batch norm – ReLU/GELU – conv – batch norm, sometimes a nested identity block
/// inside; a projection shortcut (1×1 conv, batch norm) where the shape changes, otherwise the
/// identity or, sometimes, a projection anyway. Returns the block and its output channels.
fn random_residual(r: &mut impl Rng, c: u32, depth: u32) -> (Layer, u32) {
    let stride = if r.random_bool(0.4) { 2 } else { 1 };
    let f = if r.random_bool(0.5) {
        c
    } else {
        [4, 6, 8][r.random_range(0..3)]
    };
    let bn = |r: &mut _| Layer::BatchNorm {
        momentum: [0.9, 0.8][Rng::random_range(r, 0..2)],
        epsilon: 1e-5,
        use_scale: true,
    };
    let conv = |k: u32, s: u32, bias: bool| Layer::Conv {
        features: f,
        kernel: [k, k],
        stride: [s, s],
        padding: Padding::Same,
        bias,
        kernel_init: Default::default(),
        bias_init: Default::default(),
    };
    let mut body = vec![conv(
        [1, 3][r.random_range(0..2)],
        stride,
        r.random_bool(0.3),
    )];
    if r.random_bool(0.8) {
        body.push(bn(r));
    }
    body.push(if r.random_bool(0.8) {
        Layer::Relu
    } else {
        Layer::Gelu { approximate: true }
    });
    if depth == 0 && r.random_bool(0.3) {
        let (inner, _) = random_residual_identity(r, f);
        body.push(inner);
    }
    body.push(conv(3, 1, false));
    if r.random_bool(0.8) {
        body.push(bn(r));
    }
    let shortcut = if stride != 1 || f != c || r.random_bool(0.2) {
        let mut s = vec![conv(1, stride, r.random_bool(0.3))];
        if r.random_bool(0.7) {
            s.push(bn(r));
        }
        s
    } else {
        Vec::new()
    };
    (Layer::Residual { body, shortcut }, f)
}

/// An identity residual block on `c` channels (nested inside another block's body).
fn random_residual_identity(r: &mut impl Rng, c: u32) -> (Layer, u32) {
    let body = vec![
        Layer::Conv {
            features: c,
            kernel: [3, 3],
            stride: [1, 1],
            padding: Padding::Same,
            bias: false,
            kernel_init: Default::default(),
            bias_init: Default::default(),
        },
        Layer::BatchNorm {
            momentum: 0.9,
            epsilon: 1e-5,
            use_scale: true,
        },
        Layer::Relu,
    ];
    let _ = r;
    (
        Layer::Residual {
            body,
            shortcut: Vec::new(),
        },
        c,
    )
}

/// A random valid description: conv blocks (kernels 1–7 odd and even, strides 1–3, every
/// padding form, with and without bias; ReLU, GELU or nothing after), average and max pools
/// (padded, overlapping, strided), activations in odd places, an occasional dense on the
/// spatial axes, a flatten or a global average pool, several dense layers.
pub fn random_description(r: &mut impl Rng) -> Description {
    loop {
        let h = r.random_range(5..=12);
        let w = r.random_range(5..=12);
        let c = [1, 2, 3, 4, 8][r.random_range(0..5)];
        let classes = r.random_range(2..=10);
        let mut layers = Vec::new();
        let mut chan = c;
        for _ in 0..r.random_range(1..=3) {
            let features = [3, 4, 5, 8, 12][r.random_range(0..5)];
            let cur_c = features;
            let kernel = random_pair(r, 1, 7);
            let fan_in = kernel[0] * kernel[1] * chan;
            chan = features;
            layers.push(Layer::Conv {
                features,
                kernel,
                stride: if r.random_bool(0.6) {
                    [1, 1]
                } else {
                    random_pair(r, 1, 3)
                },
                padding: random_padding(r, 3, kernel),
                bias: r.random_bool(0.7),
                kernel_init: Default::default(),
                bias_init: Default::default(),
            });
            // A batch norm is always followed by an activation (see no_bias_before_batch_norm).
            // Batch norm makes its input layer's output scale-invariant: with a fan-in of 1
            // every kernel gradient is in that null direction (zero up to epsilon), which f32
            // cannot resolve, so batch norm follows convs with a fan-in of 4 or more.
            let bn = fan_in >= 4 && r.random_bool(0.3);
            if bn {
                layers.push(Layer::BatchNorm {
                    momentum: [0.9, 0.5][r.random_range(0..2)],
                    epsilon: 1e-5,
                    use_scale: true,
                });
            }
            match r.random_range(0..10) {
                _ if bn && r.random_bool(0.2) => layers.push(Layer::Gelu { approximate: true }),
                _ if bn => layers.push(Layer::Relu),
                0..=6 => layers.push(Layer::Relu),
                7 => layers.push(Layer::Gelu { approximate: true }),
                _ => {}
            }
            if r.random_bool(0.6) {
                let window = random_pair(r, 1, 3);
                let stride = if r.random_bool(0.5) {
                    window
                } else {
                    random_pair(r, 1, 3)
                };
                let padding = if r.random_bool(0.5) {
                    Padding::Valid
                } else {
                    random_padding(r, 1, window)
                };
                layers.push(if r.random_bool(0.5) {
                    Layer::AvgPool {
                        window,
                        stride,
                        padding,
                    }
                } else {
                    Layer::MaxPool {
                        window,
                        stride,
                        padding,
                    }
                });
                match r.random_range(0..5) {
                    0 => layers.push(Layer::Relu),
                    1 => layers.push(Layer::Gelu { approximate: true }),
                    _ => {}
                }
            }
            if r.random_bool(0.4) {
                let (block, _) = random_residual(r, cur_c, 0);
                layers.push(block);
                layers.push(if r.random_bool(0.8) {
                    Layer::Relu
                } else {
                    Layer::Gelu { approximate: true }
                });
            }
        }
        if r.random_bool(0.2) {
            layers.push(Layer::Dense {
                features: [4, 6][r.random_range(0..2)],
                bias: r.random_bool(0.5),
                kernel_init: Default::default(),
                bias_init: Default::default(),
            });
            layers.push(Layer::Relu);
        }
        layers.push(if r.random_bool(0.25) {
            Layer::GlobalAvgPool
        } else {
            Layer::Flatten
        });
        for _ in 0..r.random_range(0..=2) {
            layers.push(Layer::Dense {
                features: [3, 8, 12, 16][r.random_range(0..4)],
                bias: r.random_bool(0.7),
                kernel_init: Default::default(),
                bias_init: Default::default(),
            });
            let bn = r.random_bool(0.25);
            if bn {
                layers.push(Layer::BatchNorm {
                    momentum: 0.9,
                    epsilon: 1e-3,
                    use_scale: true,
                });
            }
            if bn || r.random_bool(0.7) {
                layers.push(Layer::Relu);
            }
            if r.random_bool(0.3) {
                layers.push(Layer::Dropout {
                    rate: [0.0, 0.25, 0.5][r.random_range(0..3)],
                });
            }
        }
        layers.push(Layer::Dense {
            features: classes,
            bias: r.random_bool(0.8),
            kernel_init: Default::default(),
            bias_init: Default::default(),
        });
        // A constant scale on the logits (airbench's `× 1/9`) in about a third of the models,
        // chosen from draws already made so that the random stream (and every other test's
        // descriptions) stays as it was.
        if (h + w + classes) % 3 == 0 {
            layers.push(Layer::Scale {
                factor: if c % 2 == 0 { 1.0 / 9.0 } else { -1.5 },
            });
        }
        no_bias_before_batch_norm(&mut layers);
        let d = Description {
            input: [h, w, c],
            classes,
            layers,
        };
        // Keep the descriptions that describe a model (shapes that do not shrink to zero),
        // and check the text form describes the same one.
        if d.shapes().is_ok() {
            assert_eq!(Description::parse(&d.to_toml()).unwrap(), d);
            return d;
        }
    }
}
