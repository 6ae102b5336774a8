//! Launchers, one per shader in `shaders/` (same stem): each turns a params struct and buffer
//! slices into [`Dispatch`](super::Dispatch)es with the right bind group and grid.

pub mod adam;
pub mod augment;
pub mod avgpool;
pub mod conv2d;
pub mod dense;
pub mod relu;
pub mod softmax_ce;
