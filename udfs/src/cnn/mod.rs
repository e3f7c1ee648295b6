//! Models in SQL: the seed CNN, its training on candle, its ONNX export,
//! and image classifiers run by ONNX Runtime.

/// The tensor library of training, for callers (benchmarks) that build tensors.
pub use candle_core as candle;

pub mod adam;
pub mod control;
pub mod heatmap;
pub mod layers;
pub mod linear;
pub mod model;
pub mod onnx;
pub mod quantize;
pub mod rewrite;
pub mod runtime;
pub mod train;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::common::{exec_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::logical_expr::ScalarFunctionArgs;

use crate::args::{arg_arrays, image_arg, optional_text_arg, text_arg};
use crate::image_value::ImageView;
use crate::model_store::ModelStore;
use runtime::{threads_per_session, Classifier, ClassifyOptions, ModelOutput};

/// The classifier that scored a row, and its scores.
pub type RowScores = (Arc<Classifier>, Vec<f32>);

/// Scores of every row of a `(model, image [, options])` call: `None` for
/// rows with a NULL argument. Rows sharing a model and options go to ONNX
/// Runtime in one call.
pub fn classify_rows(name: &str, models: &ModelStore, args: &ScalarFunctionArgs) -> Result<Vec<Option<RowScores>>> {
    model_rows(name, models, args, None, 2)
}

/// Features of every row of a `(model, image [, output [, options]])` call,
/// as [`classify_rows`] gives scores.
pub fn embed_rows(name: &str, models: &ModelStore, args: &ScalarFunctionArgs) -> Result<Vec<Option<RowScores>>> {
    model_rows(name, models, args, Some(2), 3)
}

/// What a model gives for each row of a `(model, image, ...)` call: its
/// classes, or with `output_arg` the features of the tensor that argument
/// names (NULL or '' for the default). Arguments `output_arg` and
/// `options_arg` are optional text.
fn model_rows(
    name: &str,
    stores: &ModelStore,
    args: &ScalarFunctionArgs,
    output_arg: Option<usize>,
    options_arg: usize,
) -> Result<Vec<Option<RowScores>>> {
    let arrays = arg_arrays(&args.args, args.number_rows)?;
    let models = text_arg(name, &arrays, 0)?;
    let images = image_arg(name, &arrays, 1)?;
    let text_at = |i: usize| optional_text_arg(name, &arrays, i);
    let outputs = match output_arg {
        Some(i) => text_at(i)?,
        None => None,
    };
    let options = text_at(options_arg)?;
    let threads = threads_per_session(args.config_options.execution.target_partitions);
    let max_pixels = crate::memory::max_pixels(&args.config_options);
    let mut reservation = stores.memory().reserve(name, max_pixels);

    // Group rows by (model, output, options); almost always one group per batch.
    type Key<'a> = (&'a str, Option<&'a str>, &'a str);
    let mut groups: HashMap<Key<'_>, Vec<(usize, ImageView<'_>)>> = HashMap::new();
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
        let output = outputs.and_then(|o| o.is_valid(row).then(|| o.value(row)));
        let key = (models.value(row), output, options.map_or("", |o| o.value(row)));
        groups.entry(key).or_default().push((row, image));
    }
    let mut out = vec![None; args.number_rows];
    for ((model, output, options), rows) in groups {
        let options = ClassifyOptions::parse(options)?;
        if let Some((height, width)) = options.size {
            let pixels = (height as u64).saturating_mul(width as u64);
            if pixels > max_pixels {
                return plan_err!(
                    "{name}: option size={width}x{height} asks for inputs of {pixels} pixels, more than rookery.max_pixels ({max_pixels})"
                );
            }
        }
        let output = match output_arg {
            Some(_) => ModelOutput::Features(output.filter(|o| !o.is_empty()).map(str::to_string)),
            None => ModelOutput::Classes,
        };
        let model = stores
            .local_file(model)
            .and_then(|file| Classifier::cached_with_output(&file, &options, &output, threads))
            .map_err(|e| exec_datafusion_err!("{name}: {}", message(&e)))?;
        let views: Vec<ImageView<'_>> = rows.iter().map(|(_, v)| *v).collect();
        let values = match output {
            ModelOutput::Classes => model.scores_within(&views, &mut reservation),
            ModelOutput::Features(_) => model.features_within(&views, &mut reservation),
        }
        .map_err(|e| exec_datafusion_err!("{name}: {}", message(&e)))?;
        for ((row, _), v) in rows.iter().zip(values) {
            out[*row] = Some((model.clone(), v));
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
