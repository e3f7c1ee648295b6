//! What the model functions share: the session's model store and memory
//! ([`Models`]), scoring the rows of a `(model, image, ...)` call, and
//! turning the model layer's errors into DataFusion's.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::common::{exec_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::logical_expr::ScalarFunctionArgs;
use object_store::ObjectStore;
use url::Url;

use rookery_image::args::{arg_arrays, image_arg, optional_text_arg, text_arg};
use rookery_image::image_value::ImageView;
use rookery_image::memory::{ImageMemory, PixelReservation};
use rookery_image::options::OptionSet;
use rookery_models::runtime::{threads_per_session, Classifier, ClassifyOptions, InputMemory, ModelOutput};
use rookery_models::store::{ModelStore, StoreLookup};
use rookery_models::ModelError;

/// What the model functions of a session use: where model files live (its
/// object stores) and the memory pool their input tensors are reserved in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Models {
    store: ModelStore,
    memory: ImageMemory,
}

impl Models {
    /// Models at URLs resolve in `registry` (a session's
    /// `runtime_env().object_store_registry`); working memory is reserved
    /// in `memory`.
    pub fn new(registry: Arc<dyn ObjectStoreRegistry>, memory: ImageMemory) -> Self {
        Self {
            store: ModelStore::new(Arc::new(SessionStores(registry))),
            memory,
        }
    }

    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    pub fn memory(&self) -> &ImageMemory {
        &self.memory
    }

    /// A local file with the model at `location` (see [`ModelStore::local_file`]).
    pub fn local_file(&self, location: &str) -> Result<std::path::PathBuf> {
        self.store.local_file(location).map_err(sql_error)
    }

    /// Writes a model to `location` (see [`ModelStore::write`]).
    pub fn write(&self, location: &str, bytes: &[u8]) -> Result<()> {
        self.store.write(location, bytes).map_err(sql_error)
    }
}

/// A session's object store registry, as the model store looks stores up.
struct SessionStores(Arc<dyn ObjectStoreRegistry>);

impl StoreLookup for SessionStores {
    fn store(&self, url: &Url) -> std::result::Result<Arc<dyn ObjectStore>, String> {
        self.0.get_store(url).map_err(|e| message(&e))
    }
}

/// The model layer's error as DataFusion's: a bad option or model is a
/// planning error, a failure at work an execution error.
pub fn sql_error(e: ModelError) -> DataFusionError {
    match e {
        ModelError::Invalid(m) => DataFusionError::Plan(m),
        ModelError::Failed(m) => DataFusionError::Execution(m),
        ModelError::ResourcesExhausted(m) => DataFusionError::ResourcesExhausted(m),
        ModelError::Image(e) => e.into(),
    }
}

/// [`sql_error`] for results: `models_call().sql()?`.
pub trait SqlResult<T> {
    fn sql(self) -> Result<T>;
}

impl<T> SqlResult<T> for std::result::Result<T, ModelError> {
    fn sql(self) -> Result<T> {
        self.map_err(sql_error)
    }
}

/// A DataFusion error as the model layer's, keeping its kind.
pub fn model_error(e: DataFusionError) -> ModelError {
    match e {
        DataFusionError::Plan(m) => ModelError::Invalid(m),
        DataFusionError::ResourcesExhausted(m) => ModelError::ResourcesExhausted(m),
        other => ModelError::Failed(message(&other)),
    }
}

/// Input tensors reserved in the session's pool, held to its pixel limit.
pub struct PoolInputs<'a> {
    reservation: &'a mut PixelReservation,
    before: usize,
}

impl<'a> PoolInputs<'a> {
    pub fn new(reservation: &'a mut PixelReservation) -> Self {
        Self { reservation, before: 0 }
    }
}

impl InputMemory for PoolInputs<'_> {
    fn reserve(&mut self, width: u64, height: u64, channels: u64, bytes: u64) -> rookery_models::Result<()> {
        self.before = self.reservation.size();
        self.reservation.image(width, height, channels).map_err(model_error)?;
        self.reservation.bytes(bytes).map_err(model_error)
    }

    fn release(&mut self) {
        let held = self.reservation.size().saturating_sub(self.before);
        self.reservation.release(held);
    }
}

/// The classifier that scored a row, and its scores.
pub type RowScores = (Arc<Classifier>, Vec<f32>);

/// Scores of every row of a `(model, image [, options])` call: `None` for
/// rows with a NULL argument. Rows sharing a model and options go to ONNX
/// Runtime in one call.
pub fn classify_rows(name: &str, models: &Models, args: &ScalarFunctionArgs) -> Result<Vec<Option<RowScores>>> {
    model_rows(name, models, args, None, 2)
}

/// Features of every row of a `(model, image [, output [, options]])` call,
/// as [`classify_rows`] gives scores.
pub fn embed_rows(name: &str, models: &Models, args: &ScalarFunctionArgs) -> Result<Vec<Option<RowScores>>> {
    model_rows(name, models, args, Some(2), 3)
}

/// What a model gives for each row of a `(model, image, ...)` call: its
/// classes, or with `output_arg` the features of the tensor that argument
/// names (NULL or '' for the default). Arguments `output_arg` and
/// `options_arg` are optional text.
fn model_rows(
    name: &str,
    stores: &Models,
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
    let max_pixels = rookery_image::memory::max_pixels(&args.config_options);
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
        let mut options = ClassifyOptions::parse(options)?;
        options
            .execution_provider
            .get_or_insert_with(|| rookery_image::memory::execution_providers(&args.config_options));
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
            .store
            .local_file(model)
            .and_then(|file| stores.store.loaded().classifier(&file, &options, &output, threads))
            .map_err(|e| exec_datafusion_err!("{name}: {e}"))?;
        let views: Vec<ImageView<'_>> = rows.iter().map(|(_, v)| *v).collect();
        let mut inputs = PoolInputs::new(&mut reservation);
        let values = match output {
            ModelOutput::Classes => model.scores_within(&views, &mut inputs),
            ModelOutput::Features(_) => model.features_within(&views, &mut inputs),
        }
        .map_err(|e| exec_datafusion_err!("{name}: {e}"))?;
        for ((row, _), v) in rows.iter().zip(values) {
            out[*row] = Some((model.clone(), v));
        }
    }
    Ok(out)
}

/// An error's text without DataFusion's kind prefix, for re-wrapping.
pub fn message(e: &impl ErrorMessage) -> String {
    e.message()
}

/// The text of an error of either layer, without a kind prefix.
pub trait ErrorMessage {
    fn message(&self) -> String;
}

impl ErrorMessage for DataFusionError {
    fn message(&self) -> String {
        match self {
            DataFusionError::Execution(m) | DataFusionError::Plan(m) => m.clone(),
            other => other.strip_backtrace(),
        }
    }
}

impl ErrorMessage for ModelError {
    fn message(&self) -> String {
        self.to_string()
    }
}
