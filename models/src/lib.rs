//! Rookery's model layer, with no SQL in it: the seed CNN and its training
//! on candle ([`train`], [`layers`], [`adam`]), its ONNX export
//! ([`onnx`]) and graph rewrites ([`rewrite`]), inference with ONNX
//! Runtime ([`runtime`], [`heatmap`]) on the execution providers asked
//! for ([`providers`]), linear heads ([`linear`]), int8
//! quantization ([`quantize`]) and where model files live ([`store`]).
//!
//! The SQL functions in `rookery-udfs` are thin shells over these; errors
//! are [`ModelError`], which they turn into DataFusion's.

/// The tensor library of training, for callers (benchmarks) that build tensors.
pub use candle_core as candle;

pub mod adam;
pub mod cache;
pub mod control;
pub mod error;
pub mod heatmap;
pub mod layers;
pub mod linear;
pub mod model;
pub mod onnx;
pub mod providers;
pub mod quantize;
pub mod rewrite;
pub mod runtime;
pub mod store;
pub mod train;

pub use error::{ModelError, Result};
pub use store::ModelStore;
