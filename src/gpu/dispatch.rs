//! A recorded dispatch: pipeline, bind group and grid, built once and replayed every step.

use std::sync::Arc;

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

pub use crate::caps::{mirror_texel_bytes, RG_MIRRORS, TEXTURE_ROW};

/// A tensor mirrored into an rgba32float (or rg32float, [`RG_MIRRORS`]) texture for the
/// kernels that load it lane by lane (`conv2d_sg_*.wgsl`: the weights of the forward and
/// input-gradient kernels, the output gradient of the weight-gradient kernels): lavapipe loads
/// a storage-buffer element one lane at a time with a bounds check and a branch each, but
/// fetches texels without that loop (`examples/texfetch.rs`, docs/notes/subgroup-kernels.md).
/// The texture is refreshed by a copy recorded right before every dispatch that reads it
/// ([`record_passes`]), so it holds the tensor as it is at that point of the command stream,
/// whatever wrote it before. That also lets dispatches share one texture per (binding, size)
/// ([`super::Gpu::mirror_texture`]).
pub struct TextureMirror {
    /// The shader binding the texture is bound at.
    pub binding: u32,
    source: wgpu::Buffer,
    offset: u64,
    size: u64,
    /// A texel-aligned copy of the tensor when its slice is not (offset or size not a whole
    /// number of texels); texture copies need whole texels at texel-aligned offsets.
    staging: Option<wgpu::Buffer>,
    texture: wgpu::Texture,
    pub view: wgpu::TextureView,
}

impl TextureMirror {
    pub fn new(gpu: &super::Gpu, binding: u32, tensor: BufSlice<'_>) -> Self {
        let tb = mirror_texel_bytes(binding);
        let texels = tensor.size.div_ceil(tb).max(1);
        let rows = texels.div_ceil(TEXTURE_ROW as u64) as u32;
        let (texture, view) = gpu.mirror_texture(binding, rows);
        let aligned = tensor.offset.is_multiple_of(tb) && tensor.size.is_multiple_of(tb);
        let staging = (!aligned).then(|| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("texture mirror staging"),
                size: texels * tb,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        TextureMirror {
            binding,
            source: tensor.buffer.clone(),
            offset: tensor.offset,
            size: tensor.size,
            staging,
            texture,
            view,
        }
    }

    /// The shared texture's key (binding, rows) and the bytes of this mirror's own staging
    /// buffer (0 when the slice is texel-aligned).
    pub fn footprint(&self) -> ((u32, u32), u64) {
        (
            (self.binding, self.texture.height()),
            self.staging.as_ref().map_or(0, |b| b.size()),
        )
    }

    /// Records the copies that bring the texture up to date with the weight buffer (outside
    /// any pass).
    pub fn record_refresh(&self, encoder: &mut wgpu::CommandEncoder) {
        let (buffer, offset) = match &self.staging {
            Some(s) => {
                encoder.copy_buffer_to_buffer(&self.source, self.offset, s, 0, self.size);
                (s, 0)
            }
            None => (&self.source, self.offset),
        };
        let tb = mirror_texel_bytes(self.binding);
        let texels = self.size.div_ceil(tb);
        let row = TEXTURE_ROW as u64;
        // Whole rows, then the last partial row: neither reads past the tensor.
        for (y, height, width) in [
            (0, texels / row, row),
            (
                texels / row,
                !texels.is_multiple_of(row) as u64,
                texels % row,
            ),
        ] {
            if height == 0 || width == 0 {
                continue;
            }
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: offset + y * row * tb,
                        bytes_per_row: Some(TEXTURE_ROW * tb as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: y as u32,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: width as u32,
                    height: height as u32,
                    depth_or_array_layers: 1,
                },
            );
        }
    }
}

/// Bytes of GPU memory held by the texture mirrors of `dispatches`: each shared texture once,
/// plus the staging buffers.
pub fn mirror_bytes<'a>(dispatches: impl IntoIterator<Item = &'a Dispatch>) -> u64 {
    let mut textures = std::collections::BTreeSet::new();
    let mut mirrors = std::collections::BTreeMap::new();
    for t in dispatches.into_iter().flat_map(|d| &d.textures) {
        let (key, staging) = t.footprint();
        textures.insert(key);
        mirrors.insert(Arc::as_ptr(t) as usize, staging);
    }
    textures
        .iter()
        .map(|(binding, rows)| *rows as u64 * TEXTURE_ROW as u64 * mirror_texel_bytes(*binding))
        .sum::<u64>()
        + mirrors.values().sum::<u64>()
}

/// Records `dispatches` in order into compute passes, ending the pass before each dispatch
/// that reads a [`TextureMirror`] to record the texture's refresh (a copy cannot sit inside a
/// pass).
pub fn record_passes<'a>(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut pass: Option<wgpu::ComputePass<'static>> = None;
    for d in dispatches {
        if !d.textures.is_empty() {
            drop(pass.take());
            for t in &d.textures {
                t.record_refresh(encoder);
            }
        }
        let p = pass.get_or_insert_with(|| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        d.record(p);
    }
}

/// The binding of `tile_queue` in `conv2d_sg_common.wgsl` ([`super::Gpu::tile_queue`]).
pub const TILE_QUEUE_BINDING: u32 = 40;

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
    /// The tensors this dispatch reads through textures, refreshed before it.
    pub textures: Vec<Arc<TextureMirror>>,
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
        Self::build(
            gpu,
            shader,
            entry,
            uniform,
            bindings,
            Vec::new(),
            workgroups,
            flops,
            bytes,
        )
    }

    /// As [`Dispatch::new`], with `weight` read through a [`TextureMirror`] at binding 30.
    #[allow(clippy::too_many_arguments)]
    pub fn with_weight_texture(
        gpu: &super::Gpu,
        shader: &'static str,
        entry: &'static str,
        uniform: &wgpu::Buffer,
        bindings: &[(u32, BufSlice<'_>)],
        weight: BufSlice<'_>,
        workgroups: [u32; 3],
        flops: u64,
        bytes: u64,
    ) -> Dispatch {
        Self::with_textures(
            gpu,
            shader,
            entry,
            uniform,
            bindings,
            &[(30, weight)],
            workgroups,
            flops,
            bytes,
        )
    }

    /// As [`Dispatch::new`], with each `(binding, tensor)` of `textures` read through a
    /// [`TextureMirror`].
    #[allow(clippy::too_many_arguments)]
    pub fn with_textures(
        gpu: &super::Gpu,
        shader: &'static str,
        entry: &'static str,
        uniform: &wgpu::Buffer,
        bindings: &[(u32, BufSlice<'_>)],
        textures: &[(u32, BufSlice<'_>)],
        workgroups: [u32; 3],
        flops: u64,
        bytes: u64,
    ) -> Dispatch {
        let textures = textures
            .iter()
            .map(|(b, t)| Arc::new(TextureMirror::new(gpu, *b, *t)))
            .collect();
        Self::build(
            gpu, shader, entry, uniform, bindings, textures, workgroups, flops, bytes,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &super::Gpu,
        shader: &'static str,
        entry: &'static str,
        uniform: &wgpu::Buffer,
        bindings: &[(u32, BufSlice<'_>)],
        textures: Vec<Arc<TextureMirror>>,
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
        if super::shaders::binds_tile_queue(shader) {
            // Every subgroup convolution entry declares the tile queue (used when p.queue = 1).
            entries.push(wgpu::BindGroupEntry {
                binding: TILE_QUEUE_BINDING,
                resource: gpu.tile_queue.as_entire_binding(),
            });
        }
        entries.extend(textures.iter().map(|t| wgpu::BindGroupEntry {
            binding: t.binding,
            resource: wgpu::BindingResource::TextureView(&t.view),
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
            textures,
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
