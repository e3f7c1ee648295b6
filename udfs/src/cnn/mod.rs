//! Models in SQL: the seed CNN, its training on candle, its ONNX export,
//! and image classifiers run by ONNX Runtime.

/// The tensor library of training, for callers (benchmarks) that build tensors.
pub use candle_core as candle;

pub mod adam;
pub mod control;
pub mod layers;
pub mod model;
pub mod onnx;
pub mod runtime;
pub mod train;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::common::{exec_datafusion_err, DataFusionError, Result};
use datafusion::logical_expr::ScalarFunctionArgs;

use crate::args::{arg_arrays, image_arg, optional, text_arg};
use crate::image_value::ImageView;
use runtime::{threads_per_session, Classifier, ClassifyOptions};

/// The classifier that scored a row, and its scores.
pub type RowScores = (Arc<Classifier>, Vec<f32>);

/// Scores of every row of a `(model, image [, options])` call: `None` for
/// rows with a NULL argument. Rows sharing a model and options go to ONNX
/// Runtime in one call.
pub fn classify_rows(name: &str, args: &ScalarFunctionArgs) -> Result<Vec<Option<RowScores>>> {
    let arrays = arg_arrays(&args.args, args.number_rows)?;
    let models = text_arg(name, &arrays, 0)?;
    let images = image_arg(name, &arrays, 1)?;
    let options: Option<&StringArray> = match optional(&arrays, 2) {
        Some(_) => Some(text_arg(name, &arrays, 2)?),
        None => None,
    };
    let threads = threads_per_session(args.config_options.execution.target_partitions);

    // Group rows by (model, options); almost always one group per batch.
    let mut groups: HashMap<(&str, &str), Vec<(usize, ImageView<'_>)>> = HashMap::new();
    for row in 0..args.number_rows {
        if models.is_null(row) || options.is_some_and(|o| o.is_null(row)) {
            continue;
        }
        let Some(image) = images
            .get(row)
            .map_err(|e| exec_datafusion_err!("{name}: row {row}: {e}"))?
        else {
            continue;
        };
        let key = (models.value(row), options.map_or("", |o| o.value(row)));
        groups.entry(key).or_default().push((row, image));
    }
    let mut out = vec![None; args.number_rows];
    for ((model, options), rows) in groups {
        let options = ClassifyOptions::parse(options)?;
        let classifier = Classifier::cached(Path::new(model), &options, threads)
            .map_err(|e| exec_datafusion_err!("{name}: {}", message(&e)))?;
        let views: Vec<ImageView<'_>> = rows.iter().map(|(_, v)| *v).collect();
        let scores = classifier
            .scores(&views)
            .map_err(|e| exec_datafusion_err!("{name}: {}", message(&e)))?;
        for ((row, _), s) in rows.iter().zip(scores) {
            out[*row] = Some((classifier.clone(), s));
        }
    }
    Ok(out)
}

/// An error's text without DataFusion's kind prefix, for re-wrapping.
pub fn message(e: &DataFusionError) -> String {
    match e {
        DataFusionError::Execution(m) | DataFusionError::Plan(m) => m.clone(),
        other => other.strip_backtrace(),
    }
}
