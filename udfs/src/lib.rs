//! Image functions for Rookery.
//!
//! Pixel maths lives in plain functions over [`ImageView`] buffers (see
//! [`codec`]); the SQL functions wrap them in DataFusion's UDF traits, one
//! function per module, named after the function.

pub mod args;
pub mod cnn;
pub mod codec;
pub mod dots;
pub mod error;
pub mod functions;
pub mod image_value;
pub mod pixels;
pub mod rng;

pub use error::ImageError;
pub use image_value::{image_type, is_image_type, Image, ImageArray, ImageArrayBuilder, ImageView};

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

/// Every scalar function of this crate, for registration in a session.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    use functions::*;
    vec![
        Arc::new(ScalarUDF::new_from_impl(BlobDots::default())),
        Arc::new(ScalarUDF::new_from_impl(CnnClassify::default())),
        Arc::new(ScalarUDF::new_from_impl(CnnScores::default())),
        Arc::new(ScalarUDF::new_from_impl(Crop::default())),
        Arc::new(ScalarUDF::new_from_impl(DrawDots::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageDecode::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageEncode::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageFlipH::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageFlipV::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageGrey::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageHeight::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageResize::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageRotate90::default())),
        Arc::new(ScalarUDF::new_from_impl(ImageWidth::default())),
        Arc::new(ScalarUDF::new_from_impl(Thumbnail::default())),
        Arc::new(ScalarUDF::new_from_impl(Tile64::default())),
        Arc::new(ScalarUDF::new_from_impl(Tiles::default())),
    ]
}

/// Every aggregate function of this crate.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(AggregateUDF::new_from_impl(functions::CnnTrain::default()))]
}
