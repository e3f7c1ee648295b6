//! ONNX Runtime: finding its shared library, and image classifiers run on it.
//!
//! `ort` is built with `load-dynamic`, so the library is opened at run time.
//! It is looked for, in order, at `$ORT_DYLIB_PATH`, beside the executable,
//! and in `~/.cache/rookery/onnxruntime/` where `scripts/setup-onnxruntime.sh`
//! (run by the README's commands) puts the official wheel's copy.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{ModelError, Result};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};

use super::model::Head;
use super::onnx::{META_LABELS, META_LAYOUT, META_OUTPUT, META_RANGE};
use super::providers::{first_usable, images_per_run, run_halving};
use rookery_image::image_value::ImageView;
use rookery_image::options::parse::{names, some};
use rookery_image::options::OptionText;
use rookery_image::pixels;
use rookery_image::providers::parse_providers;
use rookery_image::{ExecutionProvider, ExecutionProviders};

/// The version the wheel must have to match `ort` 2.0.0-rc.15.
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";
const LIBRARY: &str = "libonnxruntime.so";

/// Where `scripts/setup-onnxruntime.sh` installs the library.
pub fn cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("rookery").join("onnxruntime"))
}

fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        paths.push(dir.join(LIBRARY));
    }
    if let Some(dir) = cache_dir() {
        paths.push(dir.join(LIBRARY));
    }
    paths
}

fn missing_message(tried: &[PathBuf]) -> String {
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    format!(
        "ONNX Runtime is not installed (looked for {}). Run `scripts/setup-onnxruntime.sh` in the Rookery checkout \
         (it downloads the official onnxruntime=={ONNXRUNTIME_VERSION} wheel from PyPI into ~/.cache/rookery/onnxruntime), \
         or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31",
        tried.join(", ")
    )
}

/// The ONNX Runtime library this process loads (the first of its
/// candidates that exists), or why there is none.
pub fn runtime_library() -> std::result::Result<PathBuf, String> {
    let tried = candidates();
    match tried.iter().find(|p| p.exists()) {
        Some(path) => Ok(path.clone()),
        None => Err(missing_message(&tried)),
    }
}

/// Loads ONNX Runtime once per process and returns its environment; every
/// later call returns the same result.
pub fn ensure_runtime() -> Result<&'static Environment> {
    static LOADED: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let path = &runtime_library()?;
        let fail = |e: &dyn std::fmt::Display| format!("cannot load ONNX Runtime from {}: {e}", path.display());
        ort::init_from(path)
            .map_err(|e| fail(&e))?
            .with_name("rookery")
            .with_telemetry(false)
            .build()
            .map_err(|e| fail(&e))
    });
    match loaded {
        Ok(environment) => Ok(environment),
        Err(message) => Err(ModelError::Failed(message.clone())),
    }
}

/// How a classifier's input tensor is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    Nhwc,
    Nchw,
}

rookery_image::option_set! {
    /// Options of `cnn_classify`/`cnn_scores`/`cnn_embed`/`rookery
    /// classify`, overriding what the model says about itself.
    pub struct ClassifyOptions for "classifier" {
        /// NHWC or NCHW: how the model's input tensor is laid out (default:
        /// read from the model).
        layout: Option<Layout> = None, some(parse_layout);
        /// Input range, e.g. 0..1 or -1..1: pixel 0 maps to the first, 255
        /// to the second (default: the model's metadata, else 0..1).
        range: Option<(f32, f32)> = None, some(parse_range);
        /// Class names, a|b|c (default: the model's metadata).
        labels: Option<Vec<String>> = None, some(names());
        /// Input width x height, e.g. 64x64, for models whose input shape
        /// is dynamic.
        size: Option<(usize, usize)> = None, some(parse_size);
        /// Where ONNX Runtime runs the model: cpu, cuda, cuda:N, tensorrt,
        /// or a list in order of preference such as tensorrt|cuda|cpu
        /// (default: the session's rookery.execution_provider).
        execution_provider: Option<ExecutionProviders> = None, some(parse_providers);
    }
}

impl OptionText for Layout {
    fn option_text(&self) -> String {
        match self {
            Layout::Nhwc => "NHWC",
            Layout::Nchw => "NCHW",
        }
        .to_string()
    }
}

pub(crate) fn parse_range(value: &str) -> std::result::Result<(f32, f32), String> {
    let parsed = value.split_once("..").and_then(|(lo, hi)| {
        let (lo, hi) = (lo.trim().parse::<f32>().ok()?, hi.trim().parse::<f32>().ok()?);
        (lo.is_finite() && hi.is_finite() && lo != hi).then_some((lo, hi))
    });
    parsed.ok_or_else(|| "must look like 0..1 or -1..1".to_string())
}

fn parse_layout(value: &str) -> std::result::Result<Layout, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "NHWC" => Ok(Layout::Nhwc),
        "NCHW" => Ok(Layout::Nchw),
        _ => Err("must be NHWC or NCHW".to_string()),
    }
}

/// `WIDTHxHEIGHT`, as (height, width).
fn parse_size(value: &str) -> std::result::Result<(usize, usize), String> {
    let parsed = value
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((h.trim().parse::<usize>().ok()?, w.trim().parse::<usize>().ok()?)));
    match parsed {
        Some((h, w)) if h > 0 && w > 0 => Ok((h, w)),
        _ => Err("must look like 64x64 (width x height)".to_string()),
    }
}

/// What a loaded model gives for each image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelOutput {
    /// Its first output, `[N, classes]`: class scores.
    Classes,
    /// The named tensor (by default the input of the last dense layer),
    /// made a graph output if it is an inner one: the image's features,
    /// flattened.
    Features(Option<String>),
}

/// A loaded image model: what its input wants, its labels, what it outputs,
/// and a pool of ONNX Runtime sessions (a session runs one batch at a time).
pub struct Classifier {
    pub path: PathBuf,
    pub output: ModelOutput,
    /// The tensor [`ModelOutput::Features`] resolved to.
    pub feature_name: Option<String>,
    /// The model as ONNX Runtime loads it, where Rookery rewrote the file's
    /// bytes (to expose an inner tensor).
    rewritten: Option<Arc<Vec<u8>>>,
    pub input_name: String,
    pub layout: Layout,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Values of one image's input: height x width x channels.
    input_len: usize,
    pub range: (f32, f32),
    pub labels: Vec<String>,
    /// A count model (`output=counts` in its metadata): its outputs are
    /// counts, given as they are, never made probabilities.
    pub counts: bool,
    /// The execution provider the model runs on: the first of those asked
    /// for that loaded.
    pub provider: ExecutionProvider,
    /// Images per ONNX Runtime call: the provider's, halved after a call
    /// ran out of memory.
    run_size: AtomicUsize,
    threads: usize,
    sessions: Mutex<Vec<Worker>>,
}

/// An ONNX Runtime session and the input buffer its runs reuse (filled
/// in place each run, never zeroed or allocated again once large enough).
struct Worker {
    session: Session,
    input: Vec<f32>,
}

impl Worker {
    fn new(session: Session) -> Self {
        Self {
            session,
            input: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("input", &(self.height, self.width, self.channels))
            .field("labels", &self.labels)
            .field("provider", &self.provider)
            .finish()
    }
}

/// An ONNX Runtime session of the model at `path` (or of its `rewritten`
/// bytes) on the first of `providers` that loads, and that provider.
pub(crate) fn open_session(
    path: &Path,
    rewritten: Option<&[u8]>,
    threads: usize,
    providers: &ExecutionProviders,
) -> Result<(Session, ExecutionProvider)> {
    let environment = ensure_runtime()?;
    let fail = |e: &dyn std::fmt::Display| crate::failure!("cannot load model {}: {e}", path.display());
    // No memory pattern: it plans one block per batch shape seen, kept
    // for the session's life (measured: no faster, 60-80 MB more).
    let base = || -> Result<ort::session::builder::SessionBuilder> {
        Session::builder(environment)
            .map_err(|e| fail(&e))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| fail(&e))?
            .with_intra_threads(threads)
            .map_err(|e| fail(&e))?
            .with_inter_threads(1)
            .map_err(|e| fail(&e))?
            .with_memory_pattern(false)
            .map_err(|e| fail(&e))
    };
    let mut model_error = None;
    let opened = first_usable(path, providers, |provider| {
        let builder = base().map_err(|e| e.to_string())?;
        let mut builder = super::providers::register(builder, provider)?;
        let committed = match rewritten {
            Some(bytes) => builder.commit_from_memory(bytes),
            None => builder.commit_from_file(path),
        };
        committed.map_err(|e| {
            // On the CPU a failure is the model's, not the provider's.
            if !provider.is_gpu() {
                model_error = Some(fail(&e));
            }
            e.to_string()
        })
    });
    match (opened, model_error) {
        (Ok(found), _) => Ok(found),
        (Err(_), Some(model)) => Err(model),
        (Err(e), None) => Err(e),
    }
}

/// Reads `[N, H, W, C]` or `[N, C, H, W]` from an input shape (-1 for unknown).
pub fn image_input(
    path: &Path,
    shape: &[i64],
    options: &ClassifyOptions,
    meta_layout: Option<Layout>,
) -> Result<(Layout, usize, usize, usize)> {
    let not_image = || {
        crate::invalid!(
            "model {} takes input of shape {:?}, which is not an image batch ([N,H,W,C] or [N,C,H,W] with 1 or 3 channels)",
            path.display(),
            shape
        )
    };
    if shape.len() != 4 {
        return not_image();
    }
    let is_channels = |d: i64| d == 1 || d == 3;
    let layout = match options.layout.or(meta_layout) {
        Some(l) => l,
        None if is_channels(shape[3]) && !is_channels(shape[1]) => Layout::Nhwc,
        None if is_channels(shape[1]) => Layout::Nchw,
        None if is_channels(shape[3]) => Layout::Nhwc,
        None => return not_image(),
    };
    let (c, h, w) = match layout {
        Layout::Nhwc => (shape[3], shape[1], shape[2]),
        Layout::Nchw => (shape[1], shape[2], shape[3]),
    };
    if !is_channels(c) {
        return not_image();
    }
    let dim = |d: i64, given: Option<usize>, what: &str| -> Result<usize> {
        match (d, given) {
            (_, Some(v)) => Ok(v),
            (d, None) if d > 0 => Ok(d as usize),
            _ => crate::invalid!(
                "model {} has a dynamic input {what}; give it as the option size (e.g. 'size=64x64')",
                path.display()
            ),
        }
    };
    let h = dim(h, options.size.map(|s| s.0), "height")?;
    let w = dim(w, options.size.map(|s| s.1), "width")?;
    Ok((layout, h, w, c as usize))
}

/// Labels from metadata: a JSON array or a comma-separated list.
pub(crate) fn parse_labels(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(text)
        .unwrap_or_else(|_| text.split(',').map(|s| s.trim().to_string()).collect())
}

impl Classifier {
    pub fn load(path: &Path, options: &ClassifyOptions, output: &ModelOutput, threads: usize) -> Result<Self> {
        if !path.is_file() {
            return crate::invalid!("model file {} does not exist", path.display());
        }
        let (rewritten, feature_name) = match output {
            ModelOutput::Classes => (None, None),
            ModelOutput::Features(requested) => {
                let bytes =
                    std::fs::read(path).map_err(|e| crate::failure!("cannot read model {}: {e}", path.display()))?;
                let (bytes, name) = super::rewrite::with_feature_output(&bytes, requested.as_deref())
                    .map_err(|e| crate::failure!("model {}: {}", path.display(), e))?;
                (Some(Arc::new(bytes)), Some(name))
            }
        };
        let providers = options.execution_provider.clone().unwrap_or_default();
        let (session, provider) = open_session(path, rewritten.as_deref().map(Vec::as_slice), threads, &providers)?;
        let inputs = session.inputs();
        if inputs.len() != 1 {
            return crate::invalid!(
                "model {} has {} inputs; cnn_classify runs models with one image input",
                path.display(),
                inputs.len()
            );
        }
        let input = &inputs[0];
        let shape: Vec<i64> = match input.dtype() {
            ValueType::Tensor { ty, shape, .. } if *ty == ort::value::TensorElementType::Float32 => shape.to_vec(),
            other => {
                return crate::invalid!(
                    "model {} takes input '{}' of type {other:?}; an image input must be a float32 tensor",
                    path.display(),
                    input.name()
                )
            }
        };
        let metadata = session
            .metadata()
            .map_err(|e| crate::failure!("model {}: {e}", path.display()))?;
        let meta_layout = metadata
            .custom(META_LAYOUT)
            .as_deref()
            .and_then(|l| parse_layout(l).ok());
        let (layout, height, width, channels) = image_input(path, &shape, options, meta_layout)?;
        let Some(input_len) = height.checked_mul(width).and_then(|n| n.checked_mul(channels)) else {
            return crate::invalid!(
                "model {} takes {width}x{height} inputs of {channels} channels, too large to allocate",
                path.display()
            );
        };
        let range = options
            .range
            .or_else(|| metadata.custom(META_RANGE).as_deref().and_then(|r| parse_range(r).ok()))
            .unwrap_or((0.0, 1.0));
        let outputs = session.outputs();
        let classes = match outputs.first().map(|o| o.dtype()) {
            _ if matches!(output, ModelOutput::Features(_)) => 0,
            Some(ValueType::Tensor { shape, .. }) if shape.len() == 2 => shape[1],
            _ => {
                return crate::invalid!(
                    "model {} does not output one [N, classes] tensor, so it is not an image classifier",
                    path.display()
                )
            }
        };
        let labels = match options
            .labels
            .clone()
            .or_else(|| metadata.custom(META_LABELS).map(|t| parse_labels(&t)))
        {
            Some(labels) => {
                if classes > 0 && labels.len() != classes as usize {
                    return crate::invalid!(
                        "model {} has {classes} classes but {} labels were given",
                        path.display(),
                        labels.len()
                    );
                }
                labels
            }
            None if classes > 0 => (0..classes).map(|i| i.to_string()).collect(),
            None => Vec::new(),
        };
        let counts = Head::from_metadata(metadata.custom(META_OUTPUT).as_deref()) == Head::Counts;
        drop(metadata);
        Ok(Self {
            path: path.to_path_buf(),
            output: output.clone(),
            feature_name,
            rewritten,
            input_name: input.name().to_string(),
            layout,
            height,
            width,
            channels,
            input_len,
            range,
            labels,
            counts,
            provider,
            run_size: AtomicUsize::new(images_per_run(provider)),
            threads,
            sessions: Mutex::new(vec![Worker::new(session)]),
        })
    }

    /// One image as input values, made the model's size and channels if needed.
    fn fill_input(&self, image: ImageView<'_>, out: &mut [f32]) -> Result<()> {
        let (h, w, c) = (self.height, self.width, self.channels);
        let conformed;
        let image = if (image.height as usize, image.width as usize, image.channels as usize) == (h, w, c) {
            image
        } else {
            conformed = pixels::conform(image, w as u32, h as u32, c as u8)?;
            conformed.view()
        };
        let (lo, hi) = self.range;
        let scale = (hi - lo) / 255.0;
        match self.layout {
            Layout::Nhwc => {
                for (d, s) in out.iter_mut().zip(image.data) {
                    *d = *s as f32 * scale + lo;
                }
            }
            Layout::Nchw => {
                for (i, s) in image.data.iter().enumerate() {
                    let (pixel, ch) = (i / c, i % c);
                    out[ch * h * w + pixel] = *s as f32 * scale + lo;
                }
            }
        }
        Ok(())
    }

    /// Class probabilities for each image: one ONNX Runtime call per
    /// [`images_per_run`] images of the model's provider. Models whose outputs are not
    /// probabilities (rows not summing to 1) get a softmax. The input
    /// tensors are not accounted in a pool: for callers outside a session.
    pub fn scores(&self, images: &[ImageView<'_>]) -> Result<Vec<Vec<f32>>> {
        self.scores_within(images, &mut Unaccounted)
    }

    /// [`Classifier::scores`], reserving each run's input tensor (and an
    /// image resized to the model's input) in `reservation` first.
    pub fn scores_within(&self, images: &[ImageView<'_>], reservation: &mut dyn InputMemory) -> Result<Vec<Vec<f32>>> {
        if self.output != ModelOutput::Classes {
            return Err(crate::failure!(
                "model {} was loaded for features, not classes",
                self.path.display()
            ));
        }
        self.outputs(images, reservation)
    }

    /// The output of a model loaded with [`ModelOutput::Features`] for each
    /// image, flattened.
    pub fn features(&self, images: &[ImageView<'_>]) -> Result<Vec<Vec<f32>>> {
        self.features_within(images, &mut Unaccounted)
    }

    /// [`Classifier::features`], reserving as [`Classifier::scores_within`] does.
    pub fn features_within(
        &self,
        images: &[ImageView<'_>],
        reservation: &mut dyn InputMemory,
    ) -> Result<Vec<Vec<f32>>> {
        if self.output == ModelOutput::Classes {
            return Err(crate::failure!(
                "model {} was loaded for classes, not features",
                self.path.display()
            ));
        }
        self.outputs(images, reservation)
    }

    fn outputs(&self, images: &[ImageView<'_>], reservation: &mut dyn InputMemory) -> Result<Vec<Vec<f32>>> {
        let mut worker = match self.sessions.lock().map_err(|_| poisoned())?.pop() {
            Some(worker) => worker,
            None => {
                let providers = ExecutionProviders::from(self.provider);
                let (session, _) = open_session(
                    &self.path,
                    self.rewritten.as_deref().map(Vec::as_slice),
                    self.threads,
                    &providers,
                )?;
                Worker::new(session)
            }
        };
        let result = run_halving(images, &self.run_size, |chunk| {
            self.run(&mut worker, chunk, reservation)
        });
        self.sessions.lock().map_err(|_| poisoned())?.push(worker);
        result
    }

    fn run(
        &self,
        worker: &mut Worker,
        images: &[ImageView<'_>],
        reservation: &mut dyn InputMemory,
    ) -> Result<Vec<Vec<f32>>> {
        let per_image = self.input_len;
        // An image resized to the model's input (checked against
        // rookery.max_pixels), and the float tensor of the whole run.
        let bytes = (images.len() as u64).saturating_mul(per_image as u64).saturating_mul(4);
        reservation.reserve(self.width as u64, self.height as u64, self.channels as u64, bytes)?;
        let result = self.run_reserved(worker, images, per_image);
        reservation.release();
        result
    }

    fn run_reserved(&self, worker: &mut Worker, images: &[ImageView<'_>], per_image: usize) -> Result<Vec<Vec<f32>>> {
        let Some(values) = images.len().checked_mul(per_image) else {
            return Err(crate::failure!("model {}: input tensor too large", self.path.display()));
        };
        // Every value is written by fill_input: the buffer is only grown.
        if worker.input.len() < values {
            worker.input.resize(values, 0.0);
        }
        let input = &mut worker.input[..values];
        for (image, out) in images.iter().zip(input.chunks_mut(per_image)) {
            self.fill_input(*image, out)?;
        }
        let n = images.len();
        let shape = match self.layout {
            Layout::Nhwc => [n, self.height, self.width, self.channels],
            Layout::Nchw => [n, self.channels, self.height, self.width],
        };
        let fail = |e: &dyn std::fmt::Display| crate::failure!("model {}: {e}", self.path.display());
        let tensor = TensorRef::from_array_view((shape, &*input)).map_err(|e| fail(&e))?;
        let outputs = worker
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| fail(&e))?;
        if let Some(name) = &self.feature_name {
            let value = outputs
                .get(name.as_str())
                .ok_or_else(|| crate::failure!("model {} gave no output '{name}'", self.path.display()))?;
            let (shape, values) = value.try_extract_tensor::<f32>().map_err(|e| fail(&e))?;
            if shape.first().copied() != Some(n as i64) || values.is_empty() || values.len() % n != 0 {
                return Err(crate::failure!(
                    "model {} gave '{name}' of shape {shape:?} for {n} images; expected one row per image",
                    self.path.display()
                ));
            }
            return Ok(values.chunks(values.len() / n).map(<[f32]>::to_vec).collect());
        }
        let (out_shape, values) = outputs[0].try_extract_tensor::<f32>().map_err(|e| fail(&e))?;
        let classes = out_shape.get(1).copied().unwrap_or(0).max(0) as usize;
        if out_shape.len() != 2 || classes == 0 || values.len() != n * classes {
            return Err(crate::failure!(
                "model {} returned shape {out_shape:?} for {n} images; expected [{n}, classes]",
                self.path.display()
            ));
        }
        if !self.labels.is_empty() && classes != self.labels.len() {
            return Err(crate::failure!(
                "model {} returned {classes} scores per image but has {} labels",
                self.path.display(),
                self.labels.len()
            ));
        }
        if self.counts {
            return Ok(values.chunks(classes).map(<[f32]>::to_vec).collect());
        }
        Ok(values.chunks(classes).map(probabilities).collect())
    }

    /// The label of class `index` (the index itself when the model has none).
    pub fn label(&self, index: usize) -> String {
        self.labels.get(index).cloned().unwrap_or_else(|| index.to_string())
    }
}

/// Where a model's working memory is accounted: the SQL layer's memory
/// pool, which also holds inputs to its pixel limit.
pub trait InputMemory {
    /// Reserves an input tensor of `bytes` for images resized to
    /// `width` x `height` x `channels`, or says why it cannot.
    fn reserve(&mut self, width: u64, height: u64, channels: u64, bytes: u64) -> Result<()>;
    /// Releases what the last `reserve` took.
    fn release(&mut self);
}

/// No pool and no pixel limit, for callers outside a session.
struct Unaccounted;

impl InputMemory for Unaccounted {
    fn reserve(&mut self, _: u64, _: u64, _: u64, _: u64) -> Result<()> {
        Ok(())
    }

    fn release(&mut self) {}
}

pub(crate) fn poisoned() -> ModelError {
    crate::failure!("a classifier lock was poisoned by an earlier panic")
}

/// Probabilities as given, or a softmax of logits.
fn probabilities(row: &[f32]) -> Vec<f32> {
    let sum: f32 = row.iter().sum();
    if row.iter().all(|v| (0.0..=1.0).contains(v)) && (sum - 1.0).abs() < 1e-3 {
        return row.to_vec();
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / total).collect()
}

/// Index of the highest score (the first on ties).
pub fn best(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best
}

/// (class index, score) pairs, highest score first (lower index first on ties).
pub fn ranked(scores: &[f32]) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// ONNX Runtime threads per session so that `partitions` sessions running at
/// once use the machine's cores without oversubscribing them.
pub fn threads_per_session(partitions: usize) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (cores / partitions.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_image::options::OptionSet;

    #[test]
    fn parses_options() {
        let o = ClassifyOptions::parse("layout=nchw, range=-1..1, labels=a|b, size=32x16").unwrap();
        assert_eq!(o.layout, Some(Layout::Nchw));
        assert_eq!(o.range, Some((-1.0, 1.0)));
        assert_eq!(o.labels, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(o.size, Some((16, 32)));
        for bad in ["layout=hwc", "range=1", "size=big", "colour=red"] {
            assert!(ClassifyOptions::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_image_inputs() {
        let p = Path::new("m.onnx");
        let none = ClassifyOptions::default();
        assert_eq!(
            image_input(p, &[-1, 64, 64, 3], &none, None).unwrap(),
            (Layout::Nhwc, 64, 64, 3)
        );
        assert_eq!(
            image_input(p, &[-1, 3, 32, 48], &none, None).unwrap(),
            (Layout::Nchw, 32, 48, 3)
        );
        assert!(image_input(p, &[-1, 10], &none, None)
            .unwrap_err()
            .to_string()
            .contains("m.onnx"));
        assert!(image_input(p, &[-1, 3, -1, -1], &none, None)
            .unwrap_err()
            .to_string()
            .contains("size"));
        let sized = ClassifyOptions {
            size: Some((20, 30)),
            ..Default::default()
        };
        assert_eq!(
            image_input(p, &[-1, 3, -1, -1], &sized, None).unwrap(),
            (Layout::Nchw, 20, 30, 3)
        );
    }

    #[test]
    fn softmaxes_logits_only() {
        assert_eq!(probabilities(&[0.25, 0.75]), vec![0.25, 0.75]);
        let p = probabilities(&[2.0, 0.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[0] > p[1]);
        assert_eq!(best(&[0.1, 0.7, 0.7]), 1);
    }

    #[test]
    fn labels_from_json_or_list() {
        assert_eq!(parse_labels(r#"["a","b"]"#), vec!["a", "b"]);
        assert_eq!(parse_labels("a, b"), vec!["a", "b"]);
    }
}
