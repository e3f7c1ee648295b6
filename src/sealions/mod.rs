//! The Steller sea-lion workflow: a generated sample set with the shape of
//! the real one.

pub mod generate;

pub use generate::{generate, sample_options, GenOptions};
