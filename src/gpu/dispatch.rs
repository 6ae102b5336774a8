//! A recorded dispatch: pipeline, bind group and grid, built once and replayed every step.

/// A byte range of a buffer bound as one shader variable (a tensor inside a bigger buffer).
#[derive(Clone, Copy, Debug)]
pub struct BufSlice<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl<'a> BufSlice<'a> {
    /// Elements `[start, start + len)` of a buffer of 4-byte values.
    pub fn elems(buffer: &'a wgpu::Buffer, start: usize, len: usize) -> Self {
        BufSlice {
            buffer,
            offset: (start * 4) as u64,
            size: (len.max(1) * 4) as u64,
        }
    }
    fn binding(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size),
        })
    }
}

impl<'a> From<&'a wgpu::Buffer> for BufSlice<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        BufSlice {
            buffer,
            offset: 0,
            size: buffer.size(),
        }
    }
}

/// Invocations per workgroup of every 1-D kernel (`WG` in the shaders).
pub const WORKGROUP: u32 = 64;
/// WebGPU's limit on workgroups per grid dimension.
const MAX_GROUPS: u32 = 65_535;

/// Grid for `threads` flat invocations of 64: large grids fold into y, and the shaders
/// recover the flat index as `gid.x + gid.y · num_workgroups.x · 64`.
pub fn grid(threads: u32) -> [u32; 3] {
    let groups = threads.div_ceil(WORKGROUP).max(1);
    if groups <= MAX_GROUPS {
        [groups, 1, 1]
    } else {
        [MAX_GROUPS, groups.div_ceil(MAX_GROUPS), 1]
    }
}

/// One kernel launch with everything bound.
pub struct Dispatch {
    /// Entry point name, e.g. `conv2d_forward`.
    pub entry: &'static str,
    /// Which layer of a model it belongs to, e.g. `Conv_0` (empty outside a model).
    pub layer: String,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// Napkin math for the profiler: floating-point operations and bytes moved.
    pub flops: u64,
    pub bytes: u64,
    /// Keeps the params uniform alive as long as the dispatch.
    pub uniform: wgpu::Buffer,
}

impl Dispatch {
    /// Binds `bindings` (binding 0 is always the params uniform) to `entry` of `shader`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &super::Gpu,
        shader: &'static str,
        entry: &'static str,
        uniform: &wgpu::Buffer,
        bindings: &[(u32, BufSlice<'_>)],
        workgroups: [u32; 3],
        flops: u64,
        bytes: u64,
    ) -> Dispatch {
        let pipeline = gpu.pipeline(shader, entry);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(bindings.iter().map(|(b, s)| wgpu::BindGroupEntry {
            binding: *b,
            resource: s.binding(),
        }));
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            entry,
            layer: String::new(),
            pipeline,
            bind_group,
            workgroups,
            flops,
            bytes,
            uniform: uniform.clone(),
        }
    }

    /// Names the layer this dispatch belongs to (for labels and the profiler).
    pub fn in_layer(mut self, layer: &str) -> Self {
        self.layer = layer.to_string();
        self
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_invocation_and_folds_past_the_limit() {
        for threads in [1u32, 63, 64, 65, 65_535 * 64, 65_535 * 64 + 1, 200_000_000] {
            let [x, y, z] = grid(threads);
            assert!(
                x <= MAX_GROUPS && y <= MAX_GROUPS && z == 1,
                "{threads}: {x} {y}"
            );
            let covered = x as u64 * y as u64 * WORKGROUP as u64;
            assert!(covered >= threads as u64, "{threads}");
            // No more than one partial row of wasted groups.
            assert!(
                covered - (threads as u64) < (x as u64 + 1) * WORKGROUP as u64,
                "{threads}"
            );
        }
    }
}
