//! The commands of the `wgpu-cnn` binary, one file per command or group. Their flags are
//! declared in main.rs (`Cli`, `Command`), except the device flags every GPU command shares
//! (`DeviceArgs`, here) and train's (`TrainArgs`, in train.rs).

use wgpu_cnn::gpu::{context, Backend, Gpu, GpuOptions};

pub mod bench;
pub mod data;
pub mod infer;
pub mod models;
pub mod train;

#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Graphics API to use.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Adapter to use: index from `wgpu-cnn devices`, or a name substring.
    #[arg(long)]
    adapter: Option<String>,
    /// Keep wgpu's runtime bounds checks in the shaders (slower; for debugging).
    #[arg(long)]
    bounds_checks: bool,
}

impl DeviceArgs {
    pub fn options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend,
            adapter: self.adapter.clone(),
            bounds_checks: self.bounds_checks,
        }
    }
}

pub fn devices(backend: Backend) -> anyhow::Result<()> {
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
             max_uniform_buffer_binding_size {} KiB, max_compute_workgroup_size ({}, {}, {}), invocations {}, workgroup storage {} KiB, \
             timestamps {}",
            l.max_buffer_size >> 20,
            l.max_storage_buffer_binding_size >> 20,
            l.max_uniform_buffer_binding_size >> 10,
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

/// `wgpu-cnn info`.
pub fn info(device: DeviceArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new(&device.options())?;
    println!("adapter: {}", gpu.describe());
    Ok(())
}
