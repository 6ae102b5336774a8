use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wgpu_cnn::gpu::Backend;

mod cli;

use cli::train::TrainArgs;
use cli::DeviceArgs;

/// Train convolutional networks on any GPU through wgpu, with hand-written WGSL kernels.
#[derive(Parser)]
#[command(name = "wgpu-cnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, type and key limits.
    Devices {
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
    },
    /// Open the chosen adapter and print what was picked.
    Info {
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Train a model (defaults: the Flax tutorial's CNN and recipe on CIFAR-10).
    Train(Box<TrainArgs>),
    /// List the preset models, print one as TOML, or print the plan of a model on this adapter.
    Models {
        /// A preset name or a model file (TOML); without it, list the presets.
        model: Option<String>,
        /// Print the model's description (a starting point for one's own).
        #[arg(long)]
        toml: bool,
        /// Print the plan: nodes, output shapes, kernels on this adapter, fusions, buffers, memory.
        #[arg(long)]
        plan: bool,
        /// Batch size of the plan.
        #[arg(long, default_value_t = 128)]
        batch_size: u32,
        /// Plan for inference (eval and predict) instead of training.
        #[arg(long)]
        inference: bool,
        /// With --plan: the optimizer of the run (its update kernel): adam, adamw or sgd.
        #[arg(long, default_value = "adam")]
        optimizer: String,
        /// With --plan: also the GPU memory of this data set (read at the model's input size).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The kind of data set at --data [default: detected].
        #[arg(long)]
        dataset: Option<String>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Evaluate a checkpoint on the test split of a data set (normalised as it was trained).
    Eval {
        /// Checkpoint (.safetensors) to evaluate.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The checkpoint's model, a preset name or a model file (TOML): wins over the
        /// description the file carries (a Flax-written checkpoint, or free-text metadata)
        /// [default: the file's own description, else the seed].
        #[arg(long)]
        model: Option<String>,
        /// The data set's folder [default: the one the checkpoint's run read].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The kind of data set (cifar10, cifar100, mnist, folder) [default: detected].
        #[arg(long)]
        dataset: Option<String>,
        /// Test-time augmentation: flip also reports the mean softmax of each image and its
        /// mirror; airbench airbench94's six weighted views (logits summed); views as
        /// `id=0.5, flip=0.5, -1/-1=…, flip/1/1=…`; none [default: none].
        #[arg(long)]
        tta: Option<String>,
        /// Where to write test.json and confusion.png.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Evaluate only the first N test images (a quick check) [default: all].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        test_limit: Option<u64>,
        #[arg(long, default_value_t = 500)]
        batch_size: u32,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Classify images (PNG/JPEG of any size, resized to the model's input): top-3 classes.
    Predict {
        /// Checkpoint (.safetensors) to classify with.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The checkpoint's model, a preset name or a model file (TOML), as for `eval`.
        #[arg(long)]
        model: Option<String>,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Benchmark the training step (median of synced steps), eval throughput, memory, startup.
    Bench {
        /// A preset name or a model file (TOML).
        #[arg(long, default_value = wgpu_cnn::graph::zoo::DEFAULT)]
        model: String,
        #[arg(long, default_value_t = 128)]
        batch_size: u32,
        /// Steps run before timing.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Per-kernel GPU time of training steps (timestamp queries), GFLOP/s and GB/s per kernel.
    Profile {
        /// A preset name or a model file (TOML).
        #[arg(long, default_value = wgpu_cnn::graph::zoo::DEFAULT)]
        model: String,
        #[arg(long, default_value_t = 128)]
        batch_size: u32,
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Write a Chrome/Perfetto trace (traceEvents JSON) here.
        #[arg(long)]
        trace: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Write a checkpoint as an ONNX model (`--checkpoint FILE --format onnx`), or a data set
    /// as an image folder (PNG, train/ test/, one subfolder per class) or as CIFAR-10 binary
    /// files, in the loader's order (`--data DIR`).
    Export {
        /// Checkpoint (.safetensors) to write as an ONNX model (input `images`: NHWC float32
        /// pixels 0-255, normalised inside; output `logits`).
        #[arg(long, conflicts_with_all = ["data", "dataset", "labels", "image_size"], required_unless_present = "data", help_heading = "Models")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint's model, a preset name or a model file (TOML), as for `eval`.
        #[arg(long, requires = "checkpoint", help_heading = "Models")]
        model: Option<String>,
        /// The data set's folder.
        #[arg(long, help_heading = "Data sets")]
        data: Option<PathBuf>,
        /// The kind of data set (cifar10, cifar100, mnist, folder) [default: detected].
        #[arg(long, help_heading = "Data sets")]
        dataset: Option<String>,
        /// CIFAR-100: fine or coarse labels [default: fine].
        #[arg(long, help_heading = "Data sets")]
        labels: Option<String>,
        /// Image folders: the size images are read at, H or HxW [default: 32].
        #[arg(long, help_heading = "Data sets")]
        image_size: Option<String>,
        /// Image folders: channels (1 or 3).
        #[arg(long, default_value_t = 3, help_heading = "Data sets")]
        channels: u32,
        /// onnx (a checkpoint), folder or cifar10 (a data set) [default: onnx for a
        /// checkpoint, folder for a data set].
        #[arg(long)]
        format: Option<String>,
        /// Where to write (a data set's folder must not exist yet; a model file is replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// List the preset recipes, or print one (a starting point for one's own).
    Recipes {
        /// A preset recipe's name.
        name: Option<String>,
    },
    /// Download CIFAR-10 (binary version), verify its checksum and extract it.
    Download {
        /// Folder to extract into (creates DIR/cifar-10-batches-bin).
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Mirror URL of cifar-10-binary.tar.gz.
        #[arg(long, default_value = wgpu_cnn::data::download::URL)]
        url: String,
        /// Expected md5 of the tarball.
        #[arg(long, default_value = wgpu_cnn::data::download::MD5)]
        md5: String,
    },
}

fn run(cli: Cli, launched: std::time::Instant) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices { backend } => cli::devices(backend),
        Command::Info { device } => cli::info(device),
        Command::Train(args) => cli::train::train(args),
        Command::Eval {
            checkpoint,
            model,
            data,
            dataset,
            tta,
            out,
            test_limit,
            batch_size,
            device,
        } => cli::infer::eval(
            checkpoint,
            model,
            data,
            dataset,
            tta,
            out,
            test_limit.map(|n| n as usize),
            batch_size,
            device,
        ),
        Command::Export {
            checkpoint: Some(checkpoint),
            model,
            format,
            out,
            ..
        } => cli::infer::export_model(checkpoint, model, format, out),
        Command::Export {
            data,
            dataset,
            labels,
            image_size,
            channels,
            format,
            out,
            ..
        } => cli::data::export(
            data.context("export needs --checkpoint FILE or --data DIR")?,
            dataset,
            labels,
            image_size,
            channels,
            format.unwrap_or_else(|| "folder".into()),
            out,
        ),
        Command::Recipes { name } => cli::models::recipes(name),
        Command::Predict {
            checkpoint,
            model,
            images,
            device,
        } => cli::infer::predict(checkpoint, model, images, device),
        Command::Models {
            model,
            toml,
            plan,
            batch_size,
            inference,
            optimizer,
            data,
            dataset,
            device,
        } => {
            let rule = wgpu_cnn::optim::Optimizer::from_flags(&wgpu_cnn::optim::Flags {
                optimizer: Some(optimizer.as_str()),
                ..Default::default()
            })?
            .rule();
            let data = match data {
                Some(d) => Some((
                    d,
                    dataset
                        .as_deref()
                        .map(wgpu_cnn::data::Kind::parse)
                        .transpose()?,
                )),
                None => None,
            };
            cli::models::models(
                model.as_deref(),
                toml,
                plan,
                (batch_size, inference, rule),
                data,
                &device,
            )
        }
        Command::Bench {
            model,
            batch_size,
            warmup,
            steps,
            device,
        } => cli::bench::bench(model, batch_size, warmup, steps, device, launched),
        Command::Profile {
            model,
            batch_size,
            steps,
            trace,
            device,
        } => cli::bench::profile(model, batch_size, steps, trace, device),
        Command::Download { dir, url, md5 } => cli::data::download(dir, url, md5),
    }
}

/// A command line clap refuses: help and version print as usual (exit 0); an error is one
/// line on stderr (with clap's tip folded in, e.g. the flag it suggests) and exit 1, as every
/// other error of the tool.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("error: bad command line");
    let first = if first.starts_with("error:") {
        first.to_string()
    } else {
        format!("error: {first}")
    };
    match lines.find(|l| l.starts_with("tip:")) {
        Some(tip) => eprintln!("{first} ({tip}; see --help)"),
        None => eprintln!("{first} (see --help)"),
    }
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let launched = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A reader that closes the pipe (`wgpu-cnn bench | head`) ends the process quietly, as it
    // does any Unix tool, instead of `println!` panicking on the broken pipe. Not `train`: a run
    // whose reader went away (a `| tee` that the same Ctrl-C ended) keeps training and writes
    // its checkpoints; its log lines ignore write errors (`say!` in train.rs).
    #[cfg(unix)]
    if !matches!(cli.command, Command::Train { .. }) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli, launched) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
