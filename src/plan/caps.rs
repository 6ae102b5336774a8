//! What the planner needs to know about a device, as plain data: plans can be built for made-up
//! devices in tests (no GPU needed).

use crate::params::{Conv2dParams, DenseParams};

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
        }
    }
    /// A discrete GPU with 32-wide subgroups (the register-tiled kernels).
    pub fn gpu32() -> Self {
        Caps {
            subgroup_size: None,
            cpu: false,
            max_binding: 2 << 30,
            max_buffer: 4 << 30,
            offset_align: 256,
            max_storage_buffers: 8,
        }
    }
    /// Whether the `conv2d_sg.wgsl` kernels run.
    pub fn subgroup8(&self) -> bool {
        self.subgroup_size == Some(8)
    }
    /// Split-K partial sums of the conv weight gradients: a CPU-type adapter has few lanes to
    /// fill and pays for the partials' traffic (Conv_1: 98 vs 103 ms + 0.3 vs 4.6 ms reduce on
    /// lavapipe at 16 vs 256 splits); a GPU wants many independent sums.
    pub fn conv_splits(&self) -> u32 {
        if self.cpu {
            32
        } else {
            256
        }
    }
    /// Whether the subgroup conv kernels run this convolution (whole vec4s of output channels).
    pub fn conv_sg(&self, p: &Conv2dParams) -> bool {
        self.subgroup8() && p.o.is_multiple_of(4)
    }
    /// Whether conv → 2×2 pool runs as one kernel (subgroup kernels, 2×4-pixel tiles fit).
    pub fn conv_pool2(&self, p: &Conv2dParams) -> bool {
        self.conv_sg(p) && p.can_pool2()
    }
    /// Whether a dense layer runs as a 1×1 convolution through the subgroup kernels.
    pub fn dense_as_conv(&self, p: &DenseParams) -> bool {
        self.subgroup8() && p.n.is_multiple_of(4)
    }
    pub fn describe(&self) -> String {
        format!(
            "{}, {}, storage binding {} MiB, {} storage buffers per stage",
            match self.subgroup_size {
                Some(s) => format!("{s}-wide subgroups (subgroup kernels)"),
                None => "register-tiled kernels".into(),
            },
            if self.cpu { "CPU-type adapter" } else { "GPU" },
            self.max_binding >> 20,
            self.max_storage_buffers
        )
    }
}
