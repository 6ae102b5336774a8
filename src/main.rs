use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wgpu_cnn::gpu::{context, Backend, Gpu, GpuOptions};

/// Train convolutional networks on any GPU through wgpu, with hand-written WGSL kernels.
#[derive(Parser)]
#[command(name = "wgpu-cnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Debug)]
struct DeviceArgs {
    /// Graphics API to use.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Adapter to use: index from `wgpu-cnn devices`, or a name substring.
    #[arg(long)]
    adapter: Option<String>,
}

impl DeviceArgs {
    fn options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend,
            adapter: self.adapter.clone(),
        }
    }
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
}

fn devices(backend: Backend) -> anyhow::Result<()> {
    let adapters = context::enumerate(backend);
    if adapters.is_empty() {
        anyhow::bail!("{}", wgpu_cnn::gpu::GpuError::NoAdapter { backend });
    }
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        println!("[{i}] {}", context::describe(&info));
        println!(
            "    max_buffer_size {} MiB, max_storage_buffer_binding_size {} MiB, \
             max_compute_workgroup_size ({}, {}, {}), invocations {}, workgroup storage {} KiB, \
             timestamps {}",
            l.max_buffer_size >> 20,
            l.max_storage_buffer_binding_size >> 20,
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size >> 10,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        );
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices { backend } => devices(backend),
        Command::Info { device } => {
            let gpu = Gpu::new(&device.options())?;
            println!("adapter: {}", gpu.describe());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
