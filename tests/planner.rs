//! The planner without a GPU (made-up device capabilities: a subgroup-8 CPU, a 32-wide GPU, a
//! small binding limit), the description format's errors through the CLI (one `error:` line
//! naming the layer and the key, exit 1, nothing written), and checkpoints with and without a
//! model description.
//!
//! By topic: the seed's plans, fusions and buffers and the binding limit (`planner/plans.rs`),
//! the kernel family and Winograd (`planner/kernels.rs`), and descriptions: their errors,
//! checkpoints and `models` (`planner/descriptions.rs`); the helpers they share are here.

mod common;

#[path = "planner/descriptions.rs"]
mod descriptions;
#[path = "planner/kernels.rs"]
mod kernels;
#[path = "planner/plans.rs"]
mod plans;

use wgpu_cnn::graph::{zoo, Description};
use wgpu_cnn::plan::{Plan, Step};

pub(crate) fn seed() -> Description {
    zoo::preset("flax-cifar10").unwrap()
}

/// Replays a plan's train schedule (then its eval schedule) tracking which tensor each buffer
/// holds: every tensor a step reads must still be in its buffer, and no step reads and writes
/// one buffer.
pub(crate) fn check_buffer_sharing(plan: &Plan) {
    let buffer = |t: usize| plan.tensors[t].buffer;
    let mut holds = vec![usize::MAX; plan.buffers.len()];
    for t in [plan.input, plan.labels] {
        holds[buffer(t)] = t;
    }
    let eval_loss = plan.eval_loss();
    let train: Vec<&Step> = plan.forward.iter().chain(&plan.backward).collect();
    let eval: Vec<&Step> = plan.forward.iter().chain([&eval_loss]).collect();
    for schedule in [train, eval] {
        for step in schedule {
            let writes = step.writes();
            let reads: Vec<usize> = step
                .tensors()
                .into_iter()
                .filter(|t| !writes.contains(t))
                .collect();
            for &r in &reads {
                assert_eq!(
                    holds[buffer(r)],
                    r,
                    "{}: {} reads {} but its buffer holds {}",
                    plan.desc.summary(),
                    step.layer(),
                    plan.tensors[r].name,
                    plan.tensors
                        .get(holds[buffer(r)])
                        .map_or("nothing", |t| t.name.as_str())
                );
                assert!(
                    writes.iter().all(|&w| buffer(w) != buffer(r)),
                    "{}: reads and writes one buffer",
                    step.layer()
                );
            }
            for w in writes {
                assert!(plan.buffers[buffer(w)].len >= plan.tensors[w].len);
                holds[buffer(w)] = w;
            }
        }
    }
}
