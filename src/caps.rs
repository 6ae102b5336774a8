//! What the planner and the kernel choices need to know about a device, as plain data: the GPU
//! context fills it in from the adapter, and plans can be built for made-up devices in tests (no
//! GPU needed). The rules that depend on an op's shape live with the op (`impl Caps` blocks in
//! `ops::<op>`).

/// The three kernel families for convolutions and dense layers, one per kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// `conv2d_sg_*.wgsl`: 8-wide subgroups (lavapipe on AVX2).
    Subgroup,
    /// `conv2d.wgsl`, `dense.wgsl`: register tiles, no workgroup memory (CPU-type adapters
    /// without 8-wide subgroups, devices with small workgroups).
    Registers,
    /// `conv2d_wg.wgsl`: 64×64 output tiles staged through workgroup memory (GPUs).
    Workgroup,
}

impl Kernels {
    /// `subgroup`, `registers`, `workgroup` (the values of `WGPU_CNN_KERNELS`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "subgroup" | "sg" => Some(Kernels::Subgroup),
            "registers" | "tiled" => Some(Kernels::Registers),
            "workgroup" | "wg" => Some(Kernels::Workgroup),
            _ => None,
        }
    }
}

/// Workgroup memory of the `conv2d_wg.wgsl` kernels (two 64×16 f32 slices) and their
/// invocations per workgroup.
pub const WG_STORAGE: u32 = 8 << 10;
pub const WG_INVOCATIONS: u32 = 256;
/// Workgroups the weight gradient's split-K aims for on the workgroup-tiled kernels.
pub(crate) const WG_TARGET_GROUPS: u32 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// The subgroup size when the device runs the `conv2d_sg_*.wgsl` kernels (8-wide subgroups
    /// whose lane layout the probe at device open confirmed); `None` otherwise.
    pub subgroup_size: Option<u32>,
    /// A CPU-type adapter (lavapipe): few lanes to fill, so fewer split-K partial sums.
    pub cpu: bool,
    /// `max_storage_buffer_binding_size`.
    pub max_binding: u64,
    /// `max_buffer_size`.
    pub max_buffer: u64,
    /// `min_storage_buffer_offset_alignment`.
    pub offset_align: u32,
    /// `max_storage_buffers_per_shader_stage`.
    pub max_storage_buffers: u32,
    /// `max_compute_workgroup_storage_size` (bytes).
    pub workgroup_storage: u32,
    /// `max_compute_invocations_per_workgroup`.
    pub workgroup_invocations: u32,
    /// A kernel family asked for by name (`WGPU_CNN_KERNELS`: tests and benchmarks run a family
    /// on a device that would not pick it); honoured where the device can run it.
    pub force: Option<Kernels>,
    /// Whether 3×3 stride-1 convolutions may use Winograd F(4×4, 3×3) where it measured faster
    /// ([`Caps::winograd_conv`], docs/notes/winograd.md); `WGPU_CNN_WINOGRAD=0` turns it off (then every convolution
    /// runs the direct kernels, whose sums round less).
    pub winograd: bool,
}

impl Caps {
    /// lavapipe on AVX2: 8-wide subgroups, CPU type, WebGPU's default limits.
    pub fn subgroup8_cpu() -> Self {
        Caps {
            subgroup_size: Some(8),
            cpu: true,
            max_binding: 128 << 20,
            max_buffer: 256 << 20,
            offset_align: 256,
            max_storage_buffers: 8,
            workgroup_storage: 16 << 10,
            workgroup_invocations: 256,
            force: None,
            winograd: true,
        }
    }
    /// A discrete GPU with 32-wide subgroups and 48 KiB of workgroup memory (the
    /// workgroup-tiled kernels).
    pub fn gpu32() -> Self {
        Caps {
            subgroup_size: None,
            cpu: false,
            max_binding: 2 << 30,
            max_buffer: 4 << 30,
            offset_align: 256,
            max_storage_buffers: 8,
            workgroup_storage: 48 << 10,
            workgroup_invocations: 1024,
            force: None,
            winograd: true,
        }
    }
    /// Whether the `conv2d_wg.wgsl` kernels fit: 256 invocations and two 4 KiB K-slices of
    /// workgroup memory per workgroup.
    pub fn workgroup_tiles_fit(&self) -> bool {
        self.workgroup_storage >= WG_STORAGE && self.workgroup_invocations >= WG_INVOCATIONS
    }
    /// The kernel family of this device's convolutions and dense layers. By rule: 8-wide
    /// subgroups whose layout the probe confirmed run the subgroup kernels (lanes share their
    /// loads, the fastest family on lavapipe); other CPU-type adapters the register tiles
    /// (workgroup memory and barriers are emulated there, and the caches already hold what the
    /// tiles would share, so the workgroup-tiled family is the slowest on a CPU); GPUs with room
    /// for the tiles the workgroup-tiled GEMMs (64 multiply-adds per global load instead of 4–5);
    /// the rest the register tiles. `force` overrides the rule where the device can run the
    /// family. Measurements: docs/notes/workgroup-kernels.md, docs/notes/subgroup-kernels.md.
    pub fn kernels(&self) -> Kernels {
        let sg8 = self.subgroup_size == Some(8);
        match self.force {
            Some(Kernels::Subgroup) if sg8 => Kernels::Subgroup,
            Some(Kernels::Workgroup) if self.workgroup_tiles_fit() => Kernels::Workgroup,
            Some(Kernels::Registers) => Kernels::Registers,
            _ if sg8 => Kernels::Subgroup,
            _ if !self.cpu && self.workgroup_tiles_fit() => Kernels::Workgroup,
            _ => Kernels::Registers,
        }
    }
    /// Whether the subgroup kernels (`conv2d_sg_*.wgsl`) run.
    pub fn subgroup8(&self) -> bool {
        self.kernels() == Kernels::Subgroup
    }
    /// Whether the `conv2d_wg.wgsl` kernels run.
    pub fn workgroup_tiled(&self) -> bool {
        self.kernels() == Kernels::Workgroup
    }
    pub fn describe(&self) -> String {
        format!(
            "{}, {}, storage binding {} MiB, {} storage buffers per stage",
            match self.kernels() {
                Kernels::Subgroup => "8-wide subgroups (subgroup kernels)".into(),
                Kernels::Workgroup => format!(
                    "workgroup-tiled kernels ({} KiB workgroup storage)",
                    self.workgroup_storage >> 10
                ),
                Kernels::Registers => "register-tiled kernels".to_string(),
            },
            if self.cpu { "CPU-type adapter" } else { "GPU" },
            self.max_binding >> 20,
            self.max_storage_buffers
        )
    }
}

/// Texels per row of a texture mirror (`gpu::dispatch::TextureMirror`): the tensor's vec4 number i sits at
/// (i % 4096, i / 4096), as `weight_vec4` in `conv2d_sg_common.wgsl` reads it.
pub const TEXTURE_ROW: u32 = 4096;

/// The mirror bindings whose textures are rg32float (8-byte texels, one vec2 each) rather than
/// rgba32float: the 16-channel-tile subgroup kernels (`conv2d_sg_*.wgsl`), whose lanes own 2
/// channels, read their weights (32) and output gradients (33) as vec2s. A half of an
/// rgba32float texel costs a whole fetch plus a select; an rg32float fetch moves half the data.
pub const RG_MIRRORS: [u32; 2] = [32, 33];

/// Bytes per texel of the mirror textures at `binding`.
pub fn mirror_texel_bytes(binding: u32) -> u64 {
    if RG_MIRRORS.contains(&binding) {
        8
    } else {
        16
    }
}
