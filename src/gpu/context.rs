//! Adapter selection, device creation, pipeline cache and buffer helpers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::shaders;

/// Graphics API to look for adapters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// Every backend this build supports (Vulkan, Metal, DX12; GL last).
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl Backend {
    pub fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Auto => wgpu::Backends::PRIMARY | wgpu::Backends::GL,
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

/// How to pick the adapter.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: Backend,
    /// Index into the adapter list of `wgpu-cnn devices`, or a case-insensitive name substring.
    pub adapter: Option<String>,
    /// Keep wgpu's runtime bounds checks in the shaders (slower). Off by default: every
    /// kernel clamps its loads and masks its stores, which the GPU-vs-CPU tests exercise at
    /// edge shapes with exactly-sized buffers.
    pub bounds_checks: bool,
}

/// Errors of GPU setup and execution; each renders as one line.
#[derive(Debug)]
pub enum GpuError {
    NoAdapter {
        backend: Backend,
    },
    AdapterNotFound {
        wanted: String,
        available: Vec<String>,
    },
    Device(String),
    Wgpu(String),
}

pub const INSTALL_HINT: &str = "on Linux without a GPU, install the Vulkan software driver \
     (Debian/Ubuntu: `sudo apt install mesa-vulkan-drivers`)";

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoAdapter { backend } => write!(
                f,
                "no GPU adapter found (backend {backend:?}); {INSTALL_HINT}"
            ),
            GpuError::AdapterNotFound { wanted, available } => write!(
                f,
                "no adapter matches '{wanted}'; available: {}",
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            ),
            GpuError::Device(e) => write!(f, "could not create the GPU device: {e}"),
            GpuError::Wgpu(e) => write!(f, "GPU error: {e}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// The variable that asks for a kernel family by name (tests, benchmarks, profiles of a family
/// the device would not pick).
pub const KERNELS_VAR: &str = "WGPU_CNN_KERNELS";

fn kernels_from_env() -> Result<Option<crate::caps::Kernels>, GpuError> {
    match std::env::var(KERNELS_VAR) {
        Err(_) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => crate::caps::Kernels::parse(&v).map(Some).ok_or_else(|| {
            GpuError::Device(format!(
                "{KERNELS_VAR}={v}: expected subgroup, registers or workgroup"
            ))
        }),
    }
}

const TILE_QUEUE_VAR: &str = "WGPU_CNN_TILE_QUEUE";

/// Whether the subgroup kernels take their tiles from the tile queue: on CPU-type adapters
/// unless `WGPU_CNN_TILE_QUEUE` says otherwise (`0` or `1`).
fn tile_queue_from_env(cpu: bool) -> Result<bool, GpuError> {
    match std::env::var(TILE_QUEUE_VAR) {
        Err(_) => Ok(cpu),
        Ok(v) => match v.trim() {
            "" => Ok(cpu),
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(GpuError::Device(format!(
                "{TILE_QUEUE_VAR}={v}: expected 0 or 1"
            ))),
        },
    }
}

const WINOGRAD_VAR: &str = "WGPU_CNN_WINOGRAD";

/// Whether Winograd convolutions may run ([`crate::caps::Caps::winograd`]): yes unless
/// `WGPU_CNN_WINOGRAD=0`.
fn winograd_from_env() -> Result<bool, GpuError> {
    match std::env::var(WINOGRAD_VAR) {
        Err(_) => Ok(true),
        Ok(v) => match v.trim() {
            "" | "1" => Ok(true),
            "0" => Ok(false),
            _ => Err(GpuError::Device(format!(
                "{WINOGRAD_VAR}={v}: expected 0 or 1"
            ))),
        },
    }
}

/// One line describing an adapter: `name (backend, type, driver)`.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{} ({:?}, {:?}{})",
        info.name,
        info.backend,
        info.device_type,
        if driver.is_empty() {
            String::new()
        } else {
            format!(", {driver}")
        }
    )
}

fn device_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Every adapter of `backend`, in the order `wgpu-cnn devices` lists them (best first:
/// discrete, integrated, virtual, CPU; Vulkan/Metal/DX12 before GL).
pub fn enumerate(backend: Backend) -> Vec<wgpu::Adapter> {
    enumerate_with_instance(backend).1
}

/// As [`enumerate`], with the instance the adapters came from.
fn enumerate_with_instance(backend: Backend) -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.backends(),
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    });
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backend.backends()));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (
            device_rank(info.device_type),
            info.backend == wgpu::Backend::Gl,
        )
    });
    (instance, adapters)
}

/// An open device with its queue, pipeline cache and error sink.
pub struct Gpu {
    /// Kept for wgpu's resource report (live buffers); None when built from a bare adapter.
    instance: Option<wgpu::Instance>,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
    /// Textures of [`super::dispatch::TextureMirror`]s by (binding, rows): dispatches share them,
    /// each refreshing its texture right before it runs.
    mirrors: Mutex<HashMap<(u32, u32), (wgpu::Texture, wgpu::TextureView)>>,
    errors: Arc<Mutex<Vec<String>>>,
    bounds_checks: bool,
    /// The subgroup size when the device has subgroup operations and a single, fixed size.
    pub subgroup_size: Option<u32>,
    /// A kernel family asked for by name, from `WGPU_CNN_KERNELS` (`subgroup`, `registers`,
    /// `workgroup`) at open; `None`: the planner's rule ([`crate::caps::Caps::kernels`]).
    pub kernels: Option<crate::caps::Kernels>,
    /// The tile queue of the subgroup kernels (`ops/conv2d/conv2d_sg_*.wgsl`) (two u32 counters, zero between
    /// dispatches), bound to every one of their dispatches.
    pub tile_queue: wgpu::Buffer,
    /// Workgroups per dispatch when the subgroup kernels take their tiles from the queue (a
    /// few per CPU; CPU-type adapters), `None` when each subgroup computes the tile at its place
    /// in the grid. `WGPU_CNN_TILE_QUEUE=0` turns the queue off, `=1` on.
    pub queue_groups: Option<u32>,
    /// Whether Winograd convolutions may run (`WGPU_CNN_WINOGRAD`, default on).
    pub winograd: bool,
}

impl Gpu {
    /// Opens the adapter chosen by `opts`, with the adapter's own limits (large buffers allowed).
    pub fn new(opts: &GpuOptions) -> Result<Gpu, GpuError> {
        let (instance, adapters) = enumerate_with_instance(opts.backend);
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter {
                backend: opts.backend,
            });
        }
        let adapter = match &opts.adapter {
            None => adapters.into_iter().next(),
            Some(wanted) => {
                let names: Vec<String> = adapters
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("[{i}] {}", a.get_info().name))
                    .collect();
                let pick = match wanted.trim().parse::<usize>() {
                    Ok(i) => adapters.into_iter().nth(i),
                    Err(_) => {
                        let w = wanted.to_lowercase();
                        adapters
                            .into_iter()
                            .find(|a| a.get_info().name.to_lowercase().contains(&w))
                    }
                };
                if pick.is_none() {
                    return Err(GpuError::AdapterNotFound {
                        wanted: wanted.clone(),
                        available: names,
                    });
                }
                pick
            }
        };
        let Some(adapter) = adapter else {
            return Err(GpuError::NoAdapter {
                backend: opts.backend,
            });
        };
        let mut gpu = Self::from_adapter(adapter, opts.bounds_checks)?;
        gpu.instance = Some(instance);
        Ok(gpu)
    }

    /// Buffers alive in wgpu right now (from its resource report), when available: a check
    /// that nothing allocates inside the training loop.
    pub fn live_buffers(&self) -> Option<usize> {
        let report = self.instance.as_ref()?.generate_report()?;
        Some(report.hub_report().buffers.num_kept_from_user)
    }

    pub fn from_adapter(adapter: wgpu::Adapter, bounds_checks: bool) -> Result<Gpu, GpuError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let mut features = wgpu::Features::empty();
        if adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let subgroup_size = (adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size);
        if subgroup_size.is_some() {
            features |= wgpu::Features::SUBGROUP;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgpu-cnn"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut v) = lost.lock() {
                v.push(format!("device lost ({reason:?}): {msg}"));
            }
        });
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let tile_queue = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tile queue"),
            size: 8,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let queue_groups =
            tile_queue_from_env(info.device_type == wgpu::DeviceType::Cpu)?.then(|| {
                // llvmpipe runs one thread per CPU; a few workgroups each keep every thread
                // busy whatever the count.
                4 * std::thread::available_parallelism().map_or(4, |n| n.get() as u32)
            });
        let mut gpu = Gpu {
            instance: None,
            info,
            limits,
            device,
            queue,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            mirrors: Mutex::default(),
            errors,
            bounds_checks,
            subgroup_size,
            kernels: kernels_from_env()?,
            winograd: winograd_from_env()?,
            tile_queue,
            queue_groups,
        };
        if gpu.subgroup_size == Some(8) && !gpu.subgroup_layout_ok() {
            gpu.subgroup_size = None;
        }
        Ok(gpu)
    }

    /// What the planner needs to know about this device.
    pub fn caps(&self) -> crate::caps::Caps {
        crate::caps::Caps {
            subgroup_size: self.subgroup_size,
            cpu: self.info.device_type == wgpu::DeviceType::Cpu,
            max_binding: self.limits.max_storage_buffer_binding_size,
            max_buffer: self.limits.max_buffer_size,
            offset_align: self.limits.min_storage_buffer_offset_alignment,
            max_storage_buffers: self.limits.max_storage_buffers_per_shader_stage,
            workgroup_storage: self.limits.max_compute_workgroup_storage_size,
            workgroup_invocations: self.limits.max_compute_invocations_per_workgroup,
            force: self.kernels,
            winograd: self.winograd,
        }
    }

    /// Whether this device's subgroups are laid out as the subgroup kernels (`ops/conv2d/conv2d_sg_*.wgsl`) assume
    /// (8 consecutive invocations, broadcast from the named lane): one probe dispatch.
    pub fn subgroup_layout_ok(&self) -> bool {
        let u = self.uniform("subgroup_probe.params", &[0u32; 4]);
        let out = self.storage("subgroup_probe", 64);
        let d = super::Dispatch::new(
            self,
            "subgroup_probe",
            "subgroup_layout_probe",
            &u,
            &[(19, (&out).into())],
            [1, 1, 1],
            0,
            0,
        );
        self.run(&[&d]).is_ok()
            && self
                .read::<u32>((&out).into())
                .is_ok_and(|v| v.iter().all(|&x| x == 1))
    }

    /// `name (backend, type, driver)` of the adapter in use.
    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// Returns (and clears) the wgpu errors raised since the last call, as one error.
    pub fn take_errors(&self) -> Result<(), GpuError> {
        let mut errs = self
            .errors
            .lock()
            .map_err(|_| GpuError::Wgpu("error sink poisoned".into()))?;
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ").replace('\n', " ");
        errs.clear();
        Err(GpuError::Wgpu(msg))
    }

    /// The compute pipeline of `entry` in shader `shader`, compiled once and cached.
    /// The rgba32float (rg32float at [`super::dispatch::RG_MIRRORS`]) texture of `rows` ×
    /// [`super::dispatch::TEXTURE_ROW`] texels that the texture mirrors at `binding` share.
    pub fn mirror_texture(&self, binding: u32, rows: u32) -> (wgpu::Texture, wgpu::TextureView) {
        self.mirrors
            .lock()
            .expect("mirror textures")
            .entry((binding, rows))
            .or_insert_with(|| {
                let texture = self.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some("texture mirror"),
                    size: wgpu::Extent3d {
                        width: super::dispatch::TEXTURE_ROW,
                        height: rows,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: if super::dispatch::RG_MIRRORS.contains(&binding) {
                        wgpu::TextureFormat::Rg32Float
                    } else {
                        wgpu::TextureFormat::Rgba32Float
                    },
                    usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                    view_formats: &[],
                });
                let view = texture.create_view(&Default::default());
                (texture, view)
            })
            .clone()
    }

    pub fn pipeline(&self, shader: &'static str, entry: &'static str) -> wgpu::ComputePipeline {
        let key = (shader, entry);
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return p.clone();
        }
        let module = {
            let mut modules = self.modules.lock().expect("module cache");
            modules
                .entry(shader)
                .or_insert_with(|| {
                    let src = shaders::source(shader)
                        .unwrap_or_else(|| panic!("shader '{shader}' is not in the registry"));
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(shader),
                        source: wgpu::ShaderSource::Wgsl(src.into()),
                    };
                    if self.bounds_checks {
                        self.device.create_shader_module(desc)
                    } else {
                        // SAFETY: every shader in the registry clamps its loads to the bound
                        // tensors and masks its stores (see each shader's header); the
                        // gpu_vs_cpu tests (tests/ops/<op>/) run them at edge shapes on
                        // exactly-sized buffers.
                        unsafe {
                            self.device.create_shader_module_trusted(
                                desc,
                                wgpu::ShaderRuntimeChecks::unchecked(),
                            )
                        }
                    }
                })
                .clone()
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(key, pipeline.clone());
        pipeline
    }

    /// A uniform buffer holding `value`.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A zeroed storage buffer of `len` 4-byte elements (at least one).
    pub fn storage(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer initialised with `data` (4-byte elements).
    pub fn storage_from<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        if data.is_empty() {
            return self.storage(label, 1);
        }
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Records `dispatches` in one compute pass, submits, and waits for the GPU.
    pub fn run(&self, dispatches: &[&super::Dispatch]) -> Result<(), GpuError> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        super::dispatch::record_passes(&mut encoder, "run", dispatches.iter().copied());
        self.queue.submit([encoder.finish()]);
        self.wait()
    }

    /// Blocks until all submitted work is done; surfaces wgpu errors and device loss.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Wgpu(e.to_string()))?;
        self.take_errors()
    }

    /// Copies `src` back to the host as 4-byte elements `T` (f32 or u32).
    pub fn read<T: bytemuck::Pod>(&self, src: super::BufSlice<'_>) -> Result<Vec<T>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: src.size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(src.buffer, src.offset, &staging, 0, src.size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Wgpu(e.to_string()))?
            .map_err(|e| GpuError::Wgpu(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Wgpu(e.to_string()))?;
        let out = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Reads a whole buffer as f32.
    pub fn read_f32(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
        self.read(buffer.into())
    }
}
