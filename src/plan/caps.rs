//! What the planner needs to know about a device, as plain data: plans can be built for made-up
//! devices in tests (no GPU needed).

use crate::ops::{Conv2dParams, DenseParams};

/// The three kernel families for convolutions and dense layers, one per kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// `conv2d_sg.wgsl`: 8-wide subgroups (lavapipe on AVX2).
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
const WG_TARGET_GROUPS: u32 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// The subgroup size when the device runs the `conv2d_sg.wgsl` kernels (8-wide subgroups
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
    /// ([`Caps::winograd_conv`]); `WGPU_CNN_WINOGRAD=0` turns it off (then every convolution
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
    /// subgroups whose layout the probe confirmed run the subgroup kernels (2–3× the register
    /// tiles on lavapipe); other CPU-type adapters the register tiles (workgroup memory and
    /// barriers are emulated there, and the caches already hold what the tiles would share:
    /// about 2.7× slower than the register-tiled family on lavapipe, docs/benchmarks.md); GPUs with room for the tiles the
    /// workgroup-tiled GEMMs (64 multiply-adds per global load instead of 4–5); the rest the
    /// register tiles. `force` overrides the rule where the device can run the family.
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
    /// Whether the `conv2d_sg.wgsl` kernels run.
    pub fn subgroup8(&self) -> bool {
        self.kernels() == Kernels::Subgroup
    }
    /// Whether the `conv2d_wg.wgsl` kernels run.
    pub fn workgroup_tiled(&self) -> bool {
        self.kernels() == Kernels::Workgroup
    }
    /// Split-K partial sums of the conv weight gradients: a CPU-type adapter has few lanes to
    /// fill and pays for the partials' traffic (Conv_1: 98 vs 103 ms + 0.3 vs 4.6 ms reduce on
    /// lavapipe at 16 vs 256 splits); a GPU wants many independent sums.
    /// The workgroup-tiled kernels size the split by their tile count: enough splits for
    /// about 512 workgroups (4 per SM of the largest GPUs), each split at least 256 output
    /// pixels (16 K-slices) so the partials' traffic stays small beside the multiply-adds.
    /// Never more splits than fit one storage binding (`[splits][KH·KW·C + 1][O]` floats): a
    /// wide layer (VGG's 512 → 512) then takes fewer splits instead of failing to plan.
    pub fn conv_splits(&self, p: &Conv2dParams) -> u32 {
        let per_split = 4 * (p.weight_rows() as u64 + 1) * p.o as u64;
        let fit = (self.max_binding / per_split).clamp(1, u32::MAX as u64) as u32;
        self.preferred_conv_splits(p).min(fit)
    }
    fn preferred_conv_splits(&self, p: &Conv2dParams) -> u32 {
        if self.workgroup_tiled() {
            let tiles = (p.weight_rows() + 1).div_ceil(64) * p.o.div_ceil(64);
            WG_TARGET_GROUPS
                .div_ceil(tiles)
                .min(p.pixels().div_ceil(256))
                .max(1)
        } else if self.cpu {
            32
        } else {
            256
        }
    }
    /// Whether the subgroup conv kernels run this convolution (whole vec4s of output channels).
    pub fn conv_sg(&self, p: &Conv2dParams) -> bool {
        self.subgroup8() && p.o.is_multiple_of(4)
    }
    /// Whether convolution `p` runs as Winograd F(4×4, 3×3) in every direction (`winograd.wgsl`,
    /// the GEMMs of `conv2d_sg.wgsl`): on the subgroup kernels, for a 3×3 stride-1 SAME
    /// convolution with at least 32 input and output channels (whole vec4s). Measured on
    /// lavapipe (`examples/winograd.rs`, batch 128; forward, input gradient, weight gradient
    /// against the direct kernels): the seed's Conv_1 (32 → 64) 1.24×, 1.18×, 1.9×;
    /// ResNet-20's 32 → 32 1.07×, 1.13×, 1.8× and 64 → 64 1.5×, 1.55×, 2.6×; its 16-channel
    /// layers 0.8–0.9× (half-empty 32-channel tiles), so not there. Maps smaller than 8×8 (VGG's
    /// last stages) stay direct: there the 6×6 input blocks are mostly padding, and the
    /// transforms' rounding (F(4×4, 3×3) scales values by up to ~100 before the products and
    /// cancels after them) is largest against the gradients' size.
    pub fn winograd_conv(&self, p: &Conv2dParams) -> bool {
        self.winograd
            && self.conv_sg(p)
            && p.winograd_shape()
            && p.c >= 32
            && p.o >= 32
            && p.h >= 8
            && p.w >= 8
    }
    /// Whether the forward of convolution `p` runs as Winograd F(4×4, 3×3): where
    /// [`Caps::winograd_conv`] says, and for layers of 16 to 128 input and at most 16 output
    /// channels without a pool (ResNet-20's first stage), whose forward has its own 16-channel
    /// kernel (`winograd_gemm_out_sg_o16`, the output transform fused: 128×32×32, 16 → 16 on
    /// lavapipe 10.4 against 15.0 ms; `examples/winograd.rs`) while their gradients stay direct
    /// (Winograd 0.76–0.89× there).
    pub fn winograd_forward(&self, p: &Conv2dParams) -> bool {
        self.winograd_conv(p)
            || (self.winograd
                && self.conv_sg(p)
                && p.winograd_shape()
                && p.c >= 16
                && p.o <= 16
                && p.pool == 0
                && crate::ops::conv2d::winograd::gpu::fuses_output(p)
                && p.h >= 8
                && p.w >= 8)
    }
    /// Whether the input gradient of convolution `p` runs as the Winograd forward of its
    /// transposed convolution (`ops::conv2d::winograd::gpu::backward_input_as_forward`): where the
    /// layer's gradients are not on Winograd ([`Caps::winograd_conv`]) but that forward is
    /// ([`Caps::winograd_forward`], its output transform fused): ResNet-20's 16-channel layers
    /// (128×32×32, 16 → 16: 15.4 → 13.9 ms alone; in its step the six layers' input gradients
    /// went from 101 ms to ~65). Where the gradients are on Winograd the adjoint stays: its D
    /// comes from the weight gradient, and in ResNet-20's step the forward form of its 32- and
    /// 64-channel layers cost the same as the adjoint (63.5 against 63.1 ms; alone, 16×16
    /// 32 → 32, 6.8 against 9.1 without D: `examples/winograd.rs`).
    pub fn winograd_input_as_forward(&self, p: &Conv2dParams) -> bool {
        let q = p.winograd_transposed();
        !self.winograd_conv(p)
            && self.winograd_forward(&q)
            && crate::ops::conv2d::winograd::gpu::fuses_output(&q)
    }
    /// Whether conv → 2×2 pool runs as one kernel (subgroup kernels, 2×4-pixel tiles fit).
    pub fn conv_pool2(&self, p: &Conv2dParams) -> bool {
        self.conv_sg(p) && p.can_pool2()
    }
    /// Whether a dense layer runs as a 1×1 convolution through the conv kernels: the subgroup
    /// ones (N % 4 == 0), or the workgroup-tiled ones (any shape).
    pub fn dense_as_conv(&self, p: &DenseParams) -> bool {
        (self.subgroup8() && p.n.is_multiple_of(4)) || self.workgroup_tiled()
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
