//! Image functions for Rookery.
//!
//! Pixel maths lives in plain functions over [`ImageView`] buffers (see
//! [`codec`]); the SQL functions wrap them in DataFusion's UDF traits, one
//! function per module, named after the function.

pub mod align;
pub mod args;
pub mod augment;
pub mod blocking;
pub mod cnn;
pub mod codec;
pub mod dots;
pub mod error;
pub mod functions;
pub mod grid;
pub mod image_value;
pub mod memory;
pub mod model_store;
pub mod pixels;
pub mod rng;

pub use error::ImageError;
pub use image_value::{image_type, is_image_type, Image, ImageArray, ImageArrayBuilder, ImageView};

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
pub use memory::{ImageMemory, RookeryConfig};
pub use model_store::ModelStore;

/// Every scalar function of this crate, for registration in a session
/// whose memory pool `memory` holds: the image functions reserve there
/// what they allocate.
pub fn scalar_functions(memory: &ImageMemory, models: &ModelStore) -> Vec<Arc<ScalarUDF>> {
    use functions::*;
    let m = || memory.clone();
    vec![
        Arc::new(ScalarUDF::new_from_impl(BlobDots::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(CnnClassify::new(models.clone()))),
        Arc::new(ScalarUDF::new_from_impl(CnnEmbed::new(models.clone()))),
        Arc::new(ScalarUDF::new_from_impl(CnnHeatmap::new(models.clone()))),
        Arc::new(ScalarUDF::new_from_impl(CnnDensity::new(models.clone()))),
        Arc::new(ScalarUDF::new_from_impl(CnnScores::new(models.clone()))),
        Arc::new(ScalarUDF::new_from_impl(Crop::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(DrawDots::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageAdjust::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageDecode::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageEncode::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageFlipH::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageFlipV::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageGrey::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageHeight::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageNoise::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageOffset::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageResize::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageRotate::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageRotate90::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageScale::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(ImageWidth::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(RandomCrop::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(SeededRandom::default())),
        Arc::new(ScalarUDF::new_from_impl(Thumbnail::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(Tile64::new(m()))),
        Arc::new(ScalarUDF::new_from_impl(Tiles::new(m()))),
    ]
}

/// Every aggregate function of this crate; `cnn_train` reports to and
/// obeys `training`.
pub fn aggregate_functions(training: &cnn::control::TrainingControl, models: &ModelStore) -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(functions::CnnTrain::new(
            training.clone(),
            models.clone(),
        ))),
        Arc::new(AggregateUDF::new_from_impl(functions::LinearTrain::new(models.clone()))),
        Arc::new(AggregateUDF::new_from_impl(functions::ImageGrid::default())),
        Arc::new(AggregateUDF::new_from_impl(functions::CnnQuantize::new(models.clone()))),
    ]
}
