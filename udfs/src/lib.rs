//! Image functions for Rookery.
//!
//! Pixel maths lives in plain functions over [`ImageView`] buffers (see
//! [`codec`]); the SQL functions wrap them in DataFusion's UDF traits, one
//! function per module, named after the function.

pub mod codec;
pub mod error;
pub mod image_value;

pub use error::ImageError;
pub use image_value::{image_type, is_image_type, Image, ImageArray, ImageArrayBuilder, ImageView};

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

/// Every scalar function of this crate, for registration in a session.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![]
}
