//! Dense layer (Flax `nn.Dense`).

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

use super::Padding;
use crate::caps::Caps;
use crate::ops::conv2d::{select_backward_input, select_backward_weight, select_forward};
use crate::ops::Conv2dParams;

/// Dense layer `y[M,N] = x[M,K] · w[K,N] + b[N]` (M = batch, K = inputs, N = outputs).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct DenseParams {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    /// 1: the forward applies ReLU to its output (fused epilogue).
    pub relu: u32,
    /// 1: the layer has a bias.
    pub bias: u32,
    pub _pad: [u32; 3],
}

impl DenseParams {
    pub fn new(m: u32, k: u32, n: u32) -> Self {
        assert!(m > 0 && k > 0 && n > 0, "dense needs m, k, n > 0");
        Self {
            m,
            k,
            n,
            relu: 0,
            bias: 1,
            _pad: [0; 3],
        }
    }
    /// The same layer with ReLU fused into the forward's output.
    pub fn with_relu(mut self) -> Self {
        self.relu = 1;
        self
    }
    /// The same layer without a bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = 0;
        self
    }
    pub fn flops_forward(&self) -> u64 {
        2 * self.m as u64 * self.k as u64 * self.n as u64
    }
    /// The same layer as a 1×1 convolution over M images of 1×1 pixels with K channels (the
    /// weight gradient unsplit: one split of M rows), for kernels shared with conv2d.
    pub fn as_conv(&self) -> Conv2dParams {
        let mut c =
            Conv2dParams::new(self.m, 1, 1, self.k, self.n, 1, Padding::Valid).with_splits(1);
        c.relu = self.relu;
        c.bias = self.bias;
        c
    }
}

/// The vec4 variants need the outputs (N) in whole vec4s.
pub(crate) fn vec4(p: &DenseParams) -> bool {
    p.n.is_multiple_of(4)
}

/// The kernels of a dense layer's forward, input gradient and weight gradient on a device with
/// `caps` (pure; `follows`: the bias gradient starts right after the weight gradient).
pub fn select(caps: &Caps, p: &DenseParams, follows: bool) -> [String; 3] {
    if caps.dense_as_conv(p) {
        let c = p.as_conv();
        let input = if p.k.is_multiple_of(4) || caps.workgroup_tiled() {
            select_backward_input(caps, &c).to_string()
        } else if vec4(p) {
            "dense_backward_input_vec4".to_string()
        } else {
            "dense_backward_input".to_string()
        };
        let weight = select_backward_weight(caps, &c).to_string();
        return [
            select_forward(caps, &c).to_string(),
            input,
            if follows {
                weight
            } else {
                format!("{weight} + reduce")
            },
        ];
    }
    let v = if vec4(p) { "_vec4" } else { "" };
    [
        format!("dense_forward{v}"),
        format!("dense_backward_input{v}"),
        format!(
            "dense_backward_weight{v}{}",
            if p.bias != 0 { " + bias" } else { "" }
        ),
    ]
}

impl Caps {
    /// Whether a dense layer runs as a 1×1 convolution through the conv kernels: the subgroup
    /// ones (N % 4 == 0), or the workgroup-tiled ones (any shape).
    pub fn dense_as_conv(&self, p: &DenseParams) -> bool {
        (self.subgroup8() && p.n.is_multiple_of(4)) || self.workgroup_tiled()
    }
}
