//! Dense layer (Flax `nn.Dense`).

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};

use super::Padding;
use crate::caps::Caps;
use crate::ops::conv2d::select_backward_input;
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

/// The dense-kernel forward (where the layer does not run as a 1×1 convolution,
/// [`Caps::dense_as_conv`]).
pub fn forward_entry(p: &DenseParams) -> &'static str {
    if vec4(p) {
        "dense_forward_vec4"
    } else {
        "dense_forward"
    }
}

/// The input gradient's kernel: as a 1×1 convolution's where the layer runs as one and the
/// inputs come in whole vec4s (or on the workgroup-tiled kernels, any shape), else the dense
/// kernels'.
pub fn backward_input_entry(caps: &Caps, p: &DenseParams) -> &'static str {
    if caps.dense_as_conv(p) && (p.k.is_multiple_of(4) || caps.workgroup_tiled()) {
        select_backward_input(caps, &p.as_conv())
    } else if vec4(p) {
        "dense_backward_input_vec4"
    } else {
        "dense_backward_input"
    }
}

/// The dense-kernel weight gradient (the bias gradient after it is `dense_backward_bias`).
pub fn backward_weight_entry(p: &DenseParams) -> &'static str {
    if vec4(p) {
        "dense_backward_weight_vec4"
    } else {
        "dense_backward_weight"
    }
}

impl Caps {
    /// Whether a dense layer runs as a 1×1 convolution through the conv kernels: the subgroup
    /// ones (N % 4 == 0), or the workgroup-tiled ones (any shape).
    pub fn dense_as_conv(&self, p: &DenseParams) -> bool {
        (self.subgroup8() && p.n.is_multiple_of(4)) || self.workgroup_tiled()
    }
}
