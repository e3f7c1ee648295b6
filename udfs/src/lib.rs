//! Rookery's SQL functions: DataFusion scalar and aggregate functions, one
//! per module of [`functions`], named after the function. They are thin
//! shells: pixel maths is in `rookery-image`, models in `rookery-models`.

pub mod functions;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
pub use functions::model_rows::Models;
use rookery_image::options::{OptionDoc, OptionSet};
use rookery_image::ImageMemory;
use rookery_models::control::TrainingControl;

/// Every scalar function of this crate, for registration in a session
/// whose memory pool `memory` holds: the image functions reserve there
/// what they allocate.
pub fn scalar_functions(memory: &ImageMemory, models: &Models) -> Vec<Arc<ScalarUDF>> {
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
pub fn aggregate_functions(training: &TrainingControl, models: &Models) -> Vec<Arc<AggregateUDF>> {
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

/// The options a function of this crate takes in its options text, from
/// their declarations; `None` for functions without options.
pub fn function_options(name: &str) -> Option<Vec<OptionDoc>> {
    use rookery_models::{linear::LinearOptions, runtime::ClassifyOptions, train::TrainOptions};
    Some(match name {
        "cnn_train" => TrainOptions::docs(),
        "cnn_classify" | "cnn_scores" | "cnn_embed" => ClassifyOptions::docs(),
        "linear_train" => LinearOptions::docs(),
        "cnn_quantize" => functions::QuantizeOptions::docs(),
        "cnn_heatmap" => functions::HeatmapOptions::docs(),
        "cnn_density" => functions::DensityOptions::docs(),
        "image_grid" => rookery_image::grid::GridLayout::docs(),
        _ => return None,
    })
}
