//! What the dense scoring functions (`cnn_heatmap`, `cnn_density`) share:
//! their strip options' limits, loading the fully convolutional model at a
//! stride, and building one list of positions per row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float32Builder, ListBuilder, StringBuilder, StructBuilder, UInt32Builder};
use datafusion::arrow::datatypes::Fields;
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use crate::functions::model_rows::Models;
use rookery_image::args::{arg_arrays, image_arg, optional_text_arg, text_arg};
use rookery_image::image_value::ImageView;
use rookery_image::ExecutionProviders;
use rookery_models::heatmap::HeatmapModel;
use rookery_models::runtime::threads_per_session;
use rookery_models::ModelError;

/// What the strip options must be, for the functions that take them.
pub(crate) const STRIP_ROWS: &str = "must be 1 to 4096";
pub(crate) const STRIP_WIDTH: &str = "must be a whole number of pixels (0 for the whole width)";

/// Pixels of a frame across per ONNX Runtime call unless told otherwise:
/// measured fastest on 2 cores (docs: dense scoring).
pub(crate) const DEFAULT_STRIP_WIDTH: usize = 512;

/// The model of `path` scoring at `stride` pixels (0: the network's own),
/// which must be a multiple of the network's.
pub(crate) fn heatmap_model(
    name: &str,
    models: &Models,
    location: &str,
    stride: usize,
    placement: &Placement,
    asked: Option<&ExecutionProviders>,
) -> Result<Arc<HeatmapModel>> {
    let (threads, providers) = (placement.threads, asked.unwrap_or(&placement.providers));
    let fail = |e: ModelError| exec_datafusion_err!("{name}: {e}");
    let path = models.store().local_file(location).map_err(fail)?;
    let native = models
        .store()
        .loaded()
        .heatmap(&path, 1, threads, providers)
        .map_err(fail)?;
    if stride == 0 || stride == native.stride {
        return Ok(native);
    }
    if !stride.is_multiple_of(native.stride) {
        return plan_err!(
            "{name}: stride {stride} is not a multiple of the network's stride, {}",
            native.stride
        );
    }
    models
        .store()
        .loaded()
        .heatmap(&path, stride / native.stride, threads, providers)
        .map_err(fail)
}

/// Appends one `{x, y, label, value}` entry to a list of positions.
pub(crate) fn append_position(entries: &mut StructBuilder, x: u32, y: u32, label: &str, value: f32) {
    entries.field_builder::<UInt32Builder>(0).expect("x").append_value(x);
    entries.field_builder::<UInt32Builder>(1).expect("y").append_value(y);
    entries
        .field_builder::<StringBuilder>(2)
        .expect("label")
        .append_value(label);
    entries
        .field_builder::<Float32Builder>(3)
        .expect("value")
        .append_value(value);
    entries.append(true);
}

/// Where a session's models run: ONNX Runtime's threads per session and
/// the session's `rookery.execution_provider`.
pub(crate) struct Placement {
    pub threads: usize,
    pub providers: ExecutionProviders,
}

/// What a dense scoring function appends for one row: given the model's
/// location, the options text, the image, where models run and the row's
/// list entries.
pub(crate) type FillPositions<'a> =
    dyn FnMut(&str, &str, ImageView<'_>, &Placement, &mut StructBuilder) -> Result<()> + 'a;

/// The lists of positions of `cnn_heatmap` and `cnn_density`: one per row
/// of `(model, image [, options])`, which `fill` appends to; NULL where an
/// argument is NULL.
pub(crate) fn position_lists(
    name: &str,
    args: &ScalarFunctionArgs,
    fields: Fields,
    fill: &mut FillPositions<'_>,
) -> Result<ColumnarValue> {
    let arrays = arg_arrays(&args.args, args.number_rows)?;
    let models = text_arg(name, &arrays, 0)?;
    let images = image_arg(name, &arrays, 1)?;
    let options = optional_text_arg(name, &arrays, 2)?;
    let placement = Placement {
        threads: threads_per_session(args.config_options.execution.target_partitions),
        providers: rookery_image::memory::execution_providers(&args.config_options),
    };
    let mut out = ListBuilder::new(StructBuilder::from_fields(fields, 0));
    for row in 0..args.number_rows {
        let image = images
            .get(row)
            .map_err(|e| exec_datafusion_err!("{name}: row {row}: {e}"))?;
        let (Some(image), false, false) = (image, models.is_null(row), options.is_some_and(|o| o.is_null(row))) else {
            out.append(false);
            continue;
        };
        fill(
            models.value(row),
            options.map_or("", |o| o.value(row)),
            image,
            &placement,
            out.values(),
        )?;
        out.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}
