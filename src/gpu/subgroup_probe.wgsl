// Checks the lane layout the subgroup kernels (ops/conv2d/conv2d_sg_*.wgsl) assume, once when a
// device is opened: subgroups of 8 consecutive invocations, lane = local_invocation_index % 8,
// and subgroupBroadcast reading the named lane. Those kernels run only if every invocation
// writes 1.

// Every dispatch binds a params uniform at 0; the probe's is zeros and only keeps it alive.
@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(19) var<storage, read_write> probe: array<u32>;

const SG: u32 = 8u;

@compute @workgroup_size(64)
fn subgroup_layout_probe(@builtin(local_invocation_index) lid: u32,
                         @builtin(subgroup_invocation_id) sid: u32,
                         @builtin(subgroup_size) size: u32) {
    let first = subgroupBroadcast(lid, 0u);
    let ok = size == SG && sid == lid % SG && first == lid - lid % SG;
    probe[lid] = select(0u, 1u, ok) + p.x;
}
