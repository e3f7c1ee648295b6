//! Training the seed CNN on labelled pixel buffers: options, the epoch loop,
//! class weights and augmentation. No SQL here: `cnn_train` feeds it.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::error::{ModelError, Result};
use candle_core::{DType, Device, Tensor, D};

use super::adam::Adam;
use super::model::{Head, Kernels, SeedCnn};
use rookery_image::options::parse::{choice, flag, text, value, whole};
use rookery_image::options::OptionText;
use rookery_image::rng::Rng;

rookery_image::option_set! {
    /// Options of `cnn_train`: `'epochs=10, batch_size=64, ...'`.
    pub struct TrainOptions for "cnn_train" {
        /// Passes over the training rows.
        epochs: usize = 10, whole(1, usize::MAX, "must be a whole number of at least 1");
        /// Rows per step of Adam.
        batch_size: usize = 64, whole(1, usize::MAX, "must be a whole number of at least 1");
        /// Adam's step size.
        learning_rate: f64 = 0.001, value(|v: &f64| *v > 0.0 && v.is_finite(), "must be a number above 0");
        /// Fraction of rows held out for validation (0 for none).
        validation: f64 = 0.2, value(|v: &f64| (0.0..1.0).contains(v), "must be a fraction in [0, 1)");
        /// Seed of the initial weights, the validation split, the batch
        /// order and augmentation.
        seed: u64 = 42, whole(0, u64::MAX, "must be a whole number of at least 0");
        /// none, balanced, or 'label:weight|label:weight'; a count model
        /// takes the pairs, weighting each count's squared error.
        class_weights: ClassWeights = ClassWeights::None, parse_class_weights;
        /// none, flip, rotate or flip+rotate: random mirror images and
        /// quarter turns of the training rows.
        augment: Augment = Augment::default(), parse_augment;
        /// Where the model is written: a path or an object store URL.
        output: String = "model.onnx".to_string(), text("must be a file path");
        /// Side of the square input, in pixels; other images are resized
        /// to it.
        input_size: usize = 64, parse_input_size;
        /// last or best: the weights of the epoch with the best validation
        /// accuracy (or a count model's lowest validation loss), the first
        /// on ties as Keras's save_best_only; kept_epoch in the result says
        /// which.
        keep: Keep = Keep::Last, choice(&[("last", Keep::Last), ("best", Keep::Best)], "takes last or best");
        /// false or true: after the run with validation, train again from
        /// the same initial weights on every row (the validation rows too)
        /// for kept_epoch epochs, and write that model: validation picks
        /// the length of training, and no row is left out of the model.
        refit: bool = false, flag("takes true or false");
        /// constant or cosine: epoch e of the run's E trains at
        /// learning_rate * (1 + cos(pi (e-1) / E)) / 2, so the last epochs
        /// take small steps; a refit repeats the first run's rates.
        schedule: Schedule = Schedule::Constant,
            choice(&[("constant", Schedule::Constant), ("cosine", Schedule::Cosine)], "takes constant or cosine");
    }
}

/// Which epoch's weights a run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Last,
    /// The epoch with the best validation figure.
    Best,
}

impl OptionText for Keep {
    fn option_text(&self) -> String {
        match self {
            Keep::Last => "last",
            Keep::Best => "best",
        }
        .to_string()
    }
}

/// Random changes to training rows, drawn per row and epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Augment {
    /// Mirror images, left-right and top-bottom.
    pub flip: bool,
    /// Quarter turns (square rows only).
    pub rotate: bool,
}

impl OptionText for Augment {
    fn option_text(&self) -> String {
        match (self.flip, self.rotate) {
            (false, false) => "none",
            (true, false) => "flip",
            (false, true) => "rotate",
            (true, true) => "flip+rotate",
        }
        .to_string()
    }
}

fn parse_augment(value: &str) -> std::result::Result<Augment, String> {
    let mut augment = Augment::default();
    for part in value.split(['+', '|', ' ']).filter(|s| !s.is_empty()) {
        match part.to_ascii_lowercase().as_str() {
            "flip" => augment.flip = true,
            "rotate" => augment.rotate = true,
            "none" => {}
            _ => return Err("takes flip, rotate, flip+rotate or none".to_string()),
        }
    }
    Ok(augment)
}

/// The largest `input_size`: the seed CNN's first dense layer then has
/// (256 / 8)^2 x 128 x 512 = 67 million weights (1 GB with Adam's state).
pub const MAX_INPUT_SIZE: usize = 256;

// Every row is resized to this side before the pool sees it, and the
// dense layer grows with its square.
fn parse_input_size(value: &str) -> std::result::Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > MAX_INPUT_SIZE => Err(format!("must be at most {MAX_INPUT_SIZE} (pixels a side)")),
        Ok(n) if n >= SeedCnn::MIN_SIDE => Ok(n),
        _ => Err(format!("must be a whole number of at least {}", SeedCnn::MIN_SIDE)),
    }
}

/// The learning rate of each epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `learning_rate` throughout.
    Constant,
    /// Cosine decay over the run's `epochs`, as Keras's `CosineDecay` by
    /// epoch: epoch e of E trains at `learning_rate * (1 + cos(pi (e-1) / E)) / 2`,
    /// so the last epochs take small steps and the weights kept settle
    /// instead of landing wherever the last full-size step left them.
    Cosine,
}

impl Schedule {
    /// The learning rate of `epoch` (from 1) of a run of `epochs`.
    pub fn learning_rate(self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let progress = (epoch.saturating_sub(1)) as f64 / epochs.max(1) as f64;
                base * (1.0 + cos_series(std::f64::consts::PI * progress)) / 2.0
            }
        }
    }
}

/// cos(x) for x in [0, pi] from its Taylor series in plain IEEE arithmetic:
/// libm's `cos` may pick a different code path (and last bit) by CPU, and
/// training must give the same model on every x86-64 CPU.
fn cos_series(x: f64) -> f64 {
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for n in 1..=20 {
        term *= -x * x / ((2 * n - 1) * (2 * n)) as f64;
        sum += term;
    }
    sum
}

impl OptionText for Schedule {
    fn option_text(&self) -> String {
        match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
        }
        .to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClassWeights {
    None,
    /// Inverse class frequency, normalised so the mean weight is 1 (as
    /// scikit-learn's `class_weight='balanced'`).
    Balanced,
    Explicit(HashMap<String, f32>),
}

impl OptionText for ClassWeights {
    fn option_text(&self) -> String {
        match self {
            ClassWeights::None => "none".to_string(),
            ClassWeights::Balanced => "balanced".to_string(),
            ClassWeights::Explicit(weights) => {
                let mut pairs: Vec<String> = weights.iter().map(|(label, w)| format!("{label}:{w}")).collect();
                pairs.sort();
                pairs.join("|")
            }
        }
    }
}

/// `none`, `balanced`, or `label:weight` pairs separated by `|` or `;`.
pub(crate) fn parse_class_weights(value: &str) -> std::result::Result<ClassWeights, String> {
    match value.to_ascii_lowercase().as_str() {
        "none" | "" => return Ok(ClassWeights::None),
        "balanced" => return Ok(ClassWeights::Balanced),
        _ => {}
    }
    let mut weights = HashMap::new();
    for pair in value.split(['|', ';']).map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = pair
            .rsplit_once(':')
            .and_then(|(label, w)| Some((label.trim(), w.trim().parse::<f32>().ok()?)));
        match parsed {
            Some((label, w)) if w > 0.0 && w.is_finite() => {
                weights.insert(label.to_string(), w);
            }
            _ => {
                return Err(format!(
                    "takes none, balanced or label:weight pairs like 'pups:2|background:0.5' ('{pair}' is not one)"
                ))
            }
        }
    }
    Ok(ClassWeights::Explicit(weights))
}

/// Labelled training images, all of one size, NHWC bytes.
#[derive(Debug, Default, Clone)]
pub struct Dataset {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<String>,
    /// A count model's data: the names of the counts, and each row's
    /// counts (row-major, one per name). Empty for a classifier's data,
    /// whose rows have `labels` instead.
    pub count_names: Vec<String>,
    pub counts: Vec<f32>,
    /// Each row's group (e.g. the frame a thumbnail was cut from): when
    /// given, validation holds out whole groups. Empty, or one per row.
    pub groups: Vec<String>,
}

impl Dataset {
    pub fn new(height: usize, width: usize, channels: usize) -> Self {
        Self {
            height,
            width,
            channels,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        match self.count_names.len() {
            0 => self.labels.len(),
            k => self.counts.len() / k,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the rows carry counts (a count model) rather than labels.
    pub fn is_counts(&self) -> bool {
        !self.count_names.is_empty()
    }

    fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn push(&mut self, pixels: &[u8], label: String) -> Result<()> {
        if self.is_counts() {
            return crate::failed!("cnn_train: rows give a label and counts mixed");
        }
        self.check_pixels(pixels)?;
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
        Ok(())
    }

    /// Rows of one data set all have a group or none do.
    fn check_group(&self, group: &Option<String>) -> Result<()> {
        if !self.is_empty() && group.is_some() == self.groups.is_empty() {
            return crate::failed!("cnn_train: a group must be given for every row or for none");
        }
        Ok(())
    }

    fn check_pixels(&self, pixels: &[u8]) -> Result<()> {
        if pixels.len() != self.image_len() {
            return Err(crate::failure!(
                "training image has {} bytes, expected {}x{}x{}",
                pixels.len(),
                self.width,
                self.height,
                self.channels
            ));
        }
        Ok(())
    }

    /// Adds a row of a count model's data: its counts, one per name (the
    /// same names on every row), and its group as [`Self::push_grouped`].
    pub fn push_counts(
        &mut self,
        pixels: &[u8],
        names: &[String],
        counts: &[f32],
        group: Option<String>,
    ) -> Result<()> {
        if !self.labels.is_empty() {
            return crate::failed!("cnn_train: rows give a label and counts mixed");
        }
        if self.count_names.is_empty() {
            self.count_names = names.to_vec();
        } else if self.count_names != names {
            return crate::failed!(
                "cnn_train: counts named {names:?} after {:?}: every row must name the same counts",
                self.count_names
            );
        }
        if let Some(bad) = counts.iter().find(|c| !c.is_finite() || **c < 0.0) {
            return crate::failed!("cnn_train: a count must be a finite number of at least 0, not {bad}");
        }
        self.check_group(&group)?;
        self.check_pixels(pixels)?;
        self.pixels.extend_from_slice(pixels);
        self.counts.extend_from_slice(counts);
        self.groups.extend(group);
        Ok(())
    }

    /// Adds a row with its group; rows of one data set all have a group
    /// or none do.
    pub fn push_grouped(&mut self, pixels: &[u8], label: String, group: Option<String>) -> Result<()> {
        self.check_group(&group)?;
        self.push(pixels, label)?;
        self.groups.extend(group);
        Ok(())
    }

    pub fn append(&mut self, other: Dataset) -> Result<()> {
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() && (self.image_len() == 0 || self.image_len() == other.image_len()) {
            *self = other;
            return Ok(());
        }
        if other.image_len() != self.image_len() {
            return Err(crate::failure!("cannot merge training images of different sizes"));
        }
        if self.groups.is_empty() != other.groups.is_empty() {
            return Err(crate::failure!(
                "cnn_train: a group must be given for every row or for none"
            ));
        }
        if self.count_names != other.count_names {
            return crate::failed!("cnn_train: rows give labels and counts mixed, or counts of other names");
        }
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
        self.counts.extend(other.counts);
        self.groups.extend(other.groups);
        Ok(())
    }
}

/// What one epoch achieved, for progress reports.
#[derive(Debug, Clone)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    /// An epoch of the refit on every row (no validation), not of the
    /// first run.
    pub refit: bool,
    pub loss: f64,
    /// A classifier's; `None` for a count model.
    pub train_accuracy: Option<f64>,
    pub validation_accuracy: Option<f64>,
    /// The mean loss on the validation rows (a count model's only measure).
    pub validation_loss: Option<f64>,
    pub samples_per_second: f64,
}

/// What `cnn_train` returns.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub classes: Vec<String>,
    pub train_accuracy: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub validation_loss: Option<f64>,
    pub epochs: usize,
    pub seconds: f64,
    pub train_rows: usize,
    pub validation_rows: usize,
    /// The epoch whose weights were kept.
    pub kept_epoch: usize,
}

pub fn candle_error(e: candle_core::Error) -> ModelError {
    crate::failure!("cnn: {e}")
}

/// Random flips and quarter turns of one NHWC image, in place into `out`.
fn augment(src: &[u8], side: (usize, usize), channels: usize, options: &TrainOptions, rng: &mut Rng, out: &mut [f32]) {
    let (h, w) = side;
    let flip_x = options.augment.flip && rng.unit() < 0.5;
    let flip_y = options.augment.flip && rng.unit() < 0.5;
    // Quarter turns keep the shape only for square images.
    let turns = if options.augment.rotate && h == w {
        rng.below(4)
    } else {
        0
    };
    for y in 0..h {
        for x in 0..w {
            let (mut sx, mut sy) = (x, y);
            for _ in 0..turns {
                (sx, sy) = (sy, w - 1 - sx);
            }
            if flip_x {
                sx = w - 1 - sx;
            }
            if flip_y {
                sy = h - 1 - sy;
            }
            let s = (sy * w + sx) * channels;
            let d = (y * w + x) * channels;
            for c in 0..channels {
                out[d + c] = src[s + c] as f32;
            }
        }
    }
}

/// A batch of images as an `[N, H, W, C]` f32 tensor of pixel values.
fn batch_tensor(
    data: &Dataset,
    rows: &[usize],
    augmentation: Option<(&TrainOptions, &mut Rng)>,
) -> candle_core::Result<Tensor> {
    let len = data.image_len();
    let mut values = vec![0f32; rows.len() * len];
    match augmentation {
        Some((options, rng)) if options.augment.flip || options.augment.rotate => {
            for (i, &row) in rows.iter().enumerate() {
                let src = &data.pixels[row * len..(row + 1) * len];
                augment(
                    src,
                    (data.height, data.width),
                    data.channels,
                    options,
                    rng,
                    &mut values[i * len..(i + 1) * len],
                );
            }
        }
        _ => {
            for (i, &row) in rows.iter().enumerate() {
                for (d, s) in values[i * len..(i + 1) * len]
                    .iter_mut()
                    .zip(&data.pixels[row * len..(row + 1) * len])
                {
                    *d = *s as f32;
                }
            }
        }
    }
    Tensor::from_vec(
        values,
        (rows.len(), data.height, data.width, data.channels),
        &Device::Cpu,
    )
}

/// The distinct labels in order, and each row's index among them; `who`
/// (the function) needs at least two.
pub(crate) fn classes_and_targets(who: &str, labels: &[String]) -> Result<(Vec<String>, Vec<usize>)> {
    let classes: Vec<String> = labels.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    if classes.len() < 2 {
        return crate::invalid!("{who} needs at least two distinct labels, got only {:?}", classes);
    }
    let index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let targets = labels.iter().map(|l| index[l.as_str()]).collect();
    Ok((classes, targets))
}

/// Rows `0..targets.len()` in an order fixed by class and content (rows
/// arrive in whatever order a query's partitions deliver them, and a seed
/// must give the same model), shuffled by `seed`, then split into
/// (training, validation) with the last `validation` share held out. The
/// seeded stream comes back too, to go on shuffling with.
pub(crate) fn split_rows(
    targets: &[usize],
    fingerprint: impl Fn(usize) -> u64,
    seed: u64,
    validation: f64,
) -> (Vec<usize>, Vec<usize>, Rng) {
    let n = targets.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_cached_key(|&row| (targets[row], fingerprint(row), row));
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let held_out = if validation > 0.0 && n > 1 {
        (((n as f64) * validation).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let validation_rows = order.split_off(n - held_out);
    (order, validation_rows, rng)
}

/// `rows` (in the seeded order of [`split_rows`]) split by group: the
/// groups, in an order drawn from the seed, go to validation until it
/// holds the `validation` share of the rows (at least one group, never
/// all). Rows keep their order on each side.
fn split_by_group(rows: Vec<usize>, groups: &[String], options: &TrainOptions) -> (Vec<usize>, Vec<usize>) {
    if options.validation <= 0.0 {
        return (rows, Vec::new());
    }
    let mut names: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rng = Rng::derive(options.seed, 4, 0);
    for i in (1..names.len()).rev() {
        names.swap(i, rng.below(i + 1));
    }
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for g in groups {
        *sizes.entry(g.as_str()).or_default() += 1;
    }
    let wanted = (rows.len() as f64 * options.validation).round() as usize;
    let mut held: BTreeSet<&str> = BTreeSet::new();
    let mut held_rows = 0;
    for name in names.iter().take(names.len().saturating_sub(1)) {
        if held_rows >= wanted.max(1) {
            break;
        }
        held.insert(name);
        held_rows += sizes[name];
    }
    rows.into_iter().partition(|&r| !held.contains(groups[r].as_str()))
}

/// FNV-1a of some bytes: a row's content fingerprint for [`split_rows`].
pub fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Per-class loss weights in class-index order.
pub(crate) fn class_weight_values(
    class_weights: &ClassWeights,
    classes: &[String],
    targets: &[usize],
) -> Result<Vec<f32>> {
    match class_weights {
        ClassWeights::None => Ok(vec![1.0; classes.len()]),
        ClassWeights::Balanced => {
            let mut counts = vec![0usize; classes.len()];
            for &t in targets {
                counts[t] += 1;
            }
            let n = targets.len() as f32;
            Ok(counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        n / (classes.len() as f32 * c as f32)
                    }
                })
                .collect())
        }
        ClassWeights::Explicit(map) => {
            if let Some(unknown) = map.keys().find(|k| !classes.contains(k)) {
                return crate::invalid!(
                    "class_weights names '{unknown}', which is not a label of the training rows ({})",
                    classes.join(", ")
                );
            }
            Ok(classes.iter().map(|c| map.get(c).copied().unwrap_or(1.0)).collect())
        }
    }
}

/// Argmax of each row of a `[N, K]` tensor.
fn argmax_rows(logits: &Tensor) -> candle_core::Result<Vec<usize>> {
    Ok(logits
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

/// Accuracy of the model (no dropout) on the given rows, in batches.
fn accuracy(model: &SeedCnn, data: &Dataset, rows: &[usize], targets: &[usize], batch: usize) -> Result<f64> {
    if rows.is_empty() {
        return Ok(f64::NAN);
    }
    let mut correct = 0usize;
    for chunk in rows.chunks(batch.max(256)) {
        let x = batch_tensor(data, chunk, None).map_err(candle_error)?;
        let logits = model.forward(&x, None, Kernels::Fast).map_err(candle_error)?;
        let predicted = argmax_rows(&logits).map_err(candle_error)?;
        correct += chunk
            .iter()
            .zip(predicted)
            .filter(|(&row, p)| targets[row] == *p)
            .count();
    }
    Ok(correct as f64 / rows.len() as f64)
}

/// One optimiser step on one batch: (mean weighted loss, predicted classes).
fn train_step(
    model: &SeedCnn,
    optimizer: &mut Adam,
    x: &Tensor,
    targets: &[u32],
    weights: &[f32],
    dropout: &mut Rng,
    kernels: Kernels,
) -> candle_core::Result<(f64, Vec<usize>)> {
    let n = targets.len();
    let logits = model.forward(x, Some(dropout), kernels)?;
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let y = Tensor::from_vec(targets.to_vec(), (n, 1), &Device::Cpu)?;
    let w = Tensor::from_vec(weights.to_vec(), n, &Device::Cpu)?;
    let picked = log_probs.gather(&y, 1)?.squeeze(1)?;
    let total_weight = weights.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    let loss = (picked * w)?.sum_all()?.affine(-1.0 / total_weight as f64, 0.0)?;
    optimizer.backward_step(&loss)?;
    Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, argmax_rows(&logits)?))
}

/// A count model's loss: the squared errors of the counts, weighted per
/// count (`weights`, `[1, K]`) and summed over them, as a `[N]` tensor.
fn count_errors(predicted: &Tensor, counts: &[f32], weights: &Tensor) -> candle_core::Result<Tensor> {
    let truth = Tensor::from_vec(counts.to_vec(), predicted.shape(), &Device::Cpu)?;
    (predicted - truth)?.sqr()?.broadcast_mul(weights)?.sum(D::Minus1)
}

/// The rows' counts, row-major, in the order of `rows`.
fn row_counts(data: &Dataset, rows: &[usize]) -> Vec<f32> {
    let k = data.count_names.len();
    rows.iter()
        .flat_map(|&r| data.counts[r * k..(r + 1) * k].iter().copied())
        .collect()
}

/// One optimiser step of a count model: the mean loss of the batch.
fn count_step(
    model: &SeedCnn,
    optimizer: &mut Adam,
    x: &Tensor,
    counts: &[f32],
    weights: &Tensor,
    dropout: &mut Rng,
    kernels: Kernels,
) -> candle_core::Result<f64> {
    let predicted = model.forward(x, Some(dropout), kernels)?;
    let loss = count_errors(&predicted, counts, weights)?.mean_all()?;
    optimizer.backward_step(&loss)?;
    loss.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// A count model's mean loss (no dropout) on the given rows, in batches.
fn count_loss(model: &SeedCnn, data: &Dataset, rows: &[usize], weights: &Tensor, batch: usize) -> Result<f64> {
    if rows.is_empty() {
        return Ok(f64::NAN);
    }
    let mut total = 0f64;
    for chunk in rows.chunks(batch.max(256)) {
        let x = batch_tensor(data, chunk, None).map_err(candle_error)?;
        let predicted = model.forward(&x, None, Kernels::Fast).map_err(candle_error)?;
        let errors = count_errors(&predicted, &row_counts(data, chunk), weights).map_err(candle_error)?;
        total += errors
            .to_dtype(DType::F64)
            .and_then(|e| e.sum_all())
            .and_then(|e| e.to_scalar::<f64>())
            .map_err(candle_error)?;
    }
    Ok(total / rows.len() as f64)
}

/// Trains the seed CNN on `data`. `progress` hears about every epoch.
pub fn train(
    data: &Dataset,
    options: &TrainOptions,
    kernels: Kernels,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<(SeedCnn, TrainReport)> {
    train_until(data, options, kernels, progress, &|| false)
}

/// [`train`], stopping with an error before the first batch after
/// `cancelled` answers true. Rows with labels train a classifier (softmax,
/// cross-entropy); rows with counts a count model (linear outputs, squared
/// error).
pub fn train_until(
    data: &Dataset,
    options: &TrainOptions,
    kernels: Kernels,
    progress: &mut dyn FnMut(&EpochReport),
    cancelled: &dyn Fn() -> bool,
) -> Result<(SeedCnn, TrainReport)> {
    let started = Instant::now();
    if data.is_empty() {
        return crate::invalid!("cnn_train got no rows with both an image and a label");
    }
    let counting = data.is_counts();
    let (classes, targets) = if counting {
        (data.count_names.clone(), vec![0; data.len()])
    } else {
        classes_and_targets("cnn_train", &data.labels)?
    };

    // Rows arrive in whatever order the query's partitions deliver them:
    // start from an order fixed by content, so a seed gives the same model.
    let len = data.image_len();
    let fingerprint = |row: usize| fingerprint_bytes(&data.pixels[row * len..(row + 1) * len]);
    let (train_rows, validation_rows, rng) = split_rows(&targets, fingerprint, options.seed, options.validation);
    let (train_rows, validation_rows) = if data.groups.is_empty() {
        (train_rows, validation_rows)
    } else {
        split_by_group(
            train_rows.into_iter().chain(validation_rows).collect(),
            &data.groups,
            options,
        )
    };
    let weights = if counting {
        count_weight_values(&options.class_weights, &classes)?
    } else {
        let train_targets: Vec<usize> = train_rows.iter().map(|&r| targets[r]).collect();
        class_weight_values(&options.class_weights, &classes, &train_targets)?
    };
    let count_weights = Tensor::from_vec(weights.clone(), (1, weights.len()), &Device::Cpu).map_err(candle_error)?;

    if (options.keep == Keep::Best) && validation_rows.is_empty() {
        return crate::invalid!("cnn_train option keep=best needs validation rows (validation > 0)");
    }
    if options.refit && validation_rows.is_empty() {
        return crate::invalid!(
            "cnn_train option refit=true needs validation rows (validation > 0) to choose its epochs"
        );
    }
    let run = Run {
        data,
        options,
        kernels,
        counting,
        classes: &classes,
        targets: &targets,
        weights: &weights,
        count_weights: &count_weights,
    };
    let first_rows = train_rows.len();
    let refit_rows: Vec<usize> = if options.refit {
        train_rows.iter().chain(&validation_rows).copied().collect()
    } else {
        Vec::new()
    };
    let (model, kept) = run.fit(
        train_rows,
        &validation_rows,
        options.epochs,
        (rng, Rng::derive(options.seed, 1, 0)),
        progress,
        cancelled,
    )?;
    let (model, trained_rows) = if options.refit {
        // Streams of their own: the refit depends on the data and the
        // seed only, as the first run does.
        let streams = (Rng::derive(options.seed, 5, 0), Rng::derive(options.seed, 6, 0));
        let rows = refit_rows.len();
        let (model, _) = run.fit(refit_rows, &[], kept.epoch, streams, progress, cancelled)?;
        (model, rows)
    } else {
        (model, first_rows)
    };
    let report = TrainReport {
        classes,
        train_accuracy: kept.train_accuracy,
        validation_accuracy: kept.validation_accuracy,
        validation_loss: kept.validation_loss,
        epochs: options.epochs,
        seconds: started.elapsed().as_secs_f64(),
        train_rows: trained_rows,
        validation_rows: validation_rows.len(),
        kept_epoch: kept.epoch,
    };
    Ok((model, report))
}

/// What one training run needs besides its rows: the data, options and
/// per-class (or per-count) weights.
struct Run<'a> {
    data: &'a Dataset,
    options: &'a TrainOptions,
    kernels: Kernels,
    counting: bool,
    classes: &'a [String],
    targets: &'a [usize],
    weights: &'a [f32],
    count_weights: &'a Tensor,
}

impl Run<'_> {
    /// Trains a model from its seeded initial weights on `train_rows` for
    /// `epochs`, shuffling with the first stream of `streams` and drawing
    /// dropout from the second. With no validation rows it is a refit.
    /// Returns the model and the epoch kept (the last, or with keep=best
    /// the best on validation, whose weights are restored).
    fn fit(
        &self,
        mut train_rows: Vec<usize>,
        validation_rows: &[usize],
        epochs: usize,
        streams: (Rng, Rng),
        progress: &mut dyn FnMut(&EpochReport),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(SeedCnn, EpochReport)> {
        let Self {
            data,
            options,
            kernels,
            counting,
            ..
        } = *self;
        let refit = validation_rows.is_empty() && options.refit;
        let (mut rng, mut dropout_rng) = streams;
        let mut model = SeedCnn::new(
            (data.height, data.width, data.channels),
            self.classes.len(),
            options.seed,
        )
        .map_err(candle_error)?;
        if counting {
            model.head = Head::Counts;
        }
        let mut optimizer = Adam::new(model.vars(), options.learning_rate).map_err(candle_error)?;
        let mut last = None;
        // The best epoch so far and its weights, with keep=best.
        let mut best: Option<(EpochReport, Vec<Vec<f32>>)> = None;
        for epoch in 1..=epochs {
            let epoch_started = Instant::now();
            // The refit repeats the first run's rates for its epochs: both
            // follow the schedule over the option's epochs.
            optimizer.set_learning_rate(
                options
                    .schedule
                    .learning_rate(options.learning_rate, epoch, options.epochs),
            );
            for i in (1..train_rows.len()).rev() {
                train_rows.swap(i, rng.below(i + 1));
            }
            let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
            for batch in train_rows.chunks(options.batch_size) {
                if cancelled() {
                    let phase = if refit { "the refit's epoch" } else { "epoch" };
                    return crate::failed!("cnn_train cancelled in {phase} {epoch} of {epochs} (nothing was written)");
                }
                let x = batch_tensor(data, batch, Some((options, &mut rng))).map_err(candle_error)?;
                let loss = if counting {
                    let counts = row_counts(data, batch);
                    count_step(
                        &model,
                        &mut optimizer,
                        &x,
                        &counts,
                        self.count_weights,
                        &mut dropout_rng,
                        kernels,
                    )
                    .map_err(candle_error)?
                } else {
                    let batch_targets: Vec<u32> = batch.iter().map(|&r| self.targets[r] as u32).collect();
                    let batch_weights: Vec<f32> = batch_targets.iter().map(|&t| self.weights[t as usize]).collect();
                    let (loss, predicted) = train_step(
                        &model,
                        &mut optimizer,
                        &x,
                        &batch_targets,
                        &batch_weights,
                        &mut dropout_rng,
                        kernels,
                    )
                    .map_err(candle_error)?;
                    correct += predicted
                        .iter()
                        .zip(&batch_targets)
                        .filter(|(p, t)| **p == **t as usize)
                        .count();
                    loss
                };
                loss_sum += loss * batch.len() as f64;
                seen += batch.len();
            }
            let train_seconds = epoch_started.elapsed().as_secs_f64();
            let (validation_accuracy, validation_loss) = match (validation_rows.is_empty(), counting) {
                (true, _) => (None, None),
                (false, false) => (
                    Some(accuracy(
                        &model,
                        data,
                        validation_rows,
                        self.targets,
                        options.batch_size,
                    )?),
                    None,
                ),
                (false, true) => (
                    None,
                    Some(count_loss(
                        &model,
                        data,
                        validation_rows,
                        self.count_weights,
                        options.batch_size,
                    )?),
                ),
            };
            let report = EpochReport {
                epoch,
                epochs,
                refit,
                loss: loss_sum / seen.max(1) as f64,
                train_accuracy: (!counting).then(|| correct as f64 / seen.max(1) as f64),
                validation_accuracy,
                validation_loss,
                samples_per_second: seen as f64 / train_seconds.max(1e-9),
            };
            progress(&report);
            // Better: a higher accuracy, or a lower loss for a count model (a
            // NaN loss is never better).
            let improved = best
                .as_ref()
                .is_none_or(|(b, _)| match (b.validation_loss, report.validation_loss) {
                    (Some(old), Some(new)) => new < old || (old.is_nan() && !new.is_nan()),
                    _ => report.validation_accuracy > b.validation_accuracy,
                });
            if (options.keep == Keep::Best) && !refit && improved {
                let weights = model
                    .vars()
                    .iter()
                    .map(SeedCnn::values)
                    .collect::<candle_core::Result<_>>();
                best = Some((report.clone(), weights.map_err(candle_error)?));
            }
            last = Some(report);
        }
        let mut kept = last.ok_or_else(|| crate::failure!("cnn_train ran no epochs"))?;
        if let Some((report, weights)) = best.filter(|(b, _)| b.epoch != kept.epoch) {
            for (var, values) in model.vars().iter().zip(weights) {
                let tensor = Tensor::from_vec(values, var.as_tensor().shape(), &Device::Cpu).map_err(candle_error)?;
                var.set(&tensor).map_err(candle_error)?;
            }
            kept = report;
        }
        Ok((model, kept))
    }
}

/// Per-count loss weights of a count model, in `names` order: explicit
/// `name:weight` pairs (others 1), or all 1.
fn count_weight_values(class_weights: &ClassWeights, names: &[String]) -> Result<Vec<f32>> {
    match class_weights {
        ClassWeights::Balanced => {
            crate::invalid!(
                "cnn_train option class_weights=balanced is for labels; a count model takes 'name:weight' pairs"
            )
        }
        other => class_weight_values(other, names, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_image::options::OptionSet;

    #[test]
    fn parses_options() {
        let o = TrainOptions::parse(
            "epochs=3, batch_size=32, learning_rate=0.01, validation=0, seed=7, augment=flip+rotate, output=/tmp/m.onnx, class_weights=pups:2|background:0.5",
        )
        .unwrap();
        assert_eq!((o.epochs, o.batch_size, o.seed, o.validation), (3, 32, 7, 0.0));
        assert!(o.augment.flip && o.augment.rotate);
        assert_eq!(o.output, "/tmp/m.onnx");
        let ClassWeights::Explicit(w) = o.class_weights else {
            panic!("explicit weights")
        };
        assert_eq!(w["pups"], 2.0);
        assert_eq!(
            TrainOptions::parse("class_weights=balanced").unwrap().class_weights,
            ClassWeights::Balanced
        );
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            "epochs=0",
            "validation=1",
            "learning_rate=-1",
            "augment=shear",
            "schedule=step",
            "colour=red",
            "epochs",
            "input_size=257",
            "input_size=200000",
        ] {
            let err = TrainOptions::parse(bad).unwrap_err().to_string();
            assert!(err.contains("cnn_train") || err.contains("key=value"), "{bad}: {err}");
        }
    }

    #[test]
    fn cosine_schedule_decays_from_the_learning_rate() {
        let o = TrainOptions::parse("schedule=cosine, learning_rate=0.002, epochs=4").unwrap();
        assert_eq!(o.schedule, Schedule::Cosine);
        assert_eq!(TrainOptions::default().schedule, Schedule::Constant);
        let rates: Vec<f64> = (1..=4).map(|e| o.schedule.learning_rate(0.002, e, 4)).collect();
        // (1 + cos(pi k / 4)) / 2 for k = 0..3.
        let expected = [1.0, 0.853_553_390_593_273_8, 0.5, 0.146_446_609_406_726_24].map(|f| f * 0.002);
        for (rate, want) in rates.iter().zip(expected) {
            assert!((rate - want).abs() < 1e-15, "{rates:?}");
        }
        assert_eq!(Schedule::Constant.learning_rate(0.002, 4, 4), 0.002);
        for k in 0..=100 {
            let x = std::f64::consts::PI * k as f64 / 100.0;
            assert!((cos_series(x) - x.cos()).abs() < 1e-13, "cos({x})");
        }
    }

    #[test]
    fn augmentation_keeps_pixels() {
        let options = TrainOptions {
            augment: Augment {
                flip: true,
                rotate: true,
            },
            ..Default::default()
        };
        let src: Vec<u8> = (0..4 * 4 * 3).map(|v| v as u8).collect();
        let mut rng = Rng::new(3);
        for _ in 0..8 {
            let mut out = vec![0f32; src.len()];
            augment(&src, (4, 4), 3, &options, &mut rng, &mut out);
            let mut a: Vec<u32> = out.iter().map(|v| *v as u32).collect();
            a.sort();
            let mut b: Vec<u32> = src.iter().map(|v| *v as u32).collect();
            b.sort();
            assert_eq!(a, b);
        }
    }
}

#[cfg(test)]
mod reproducibility_tests {
    use super::*;
    use rookery_image::options::OptionSet;

    /// Noisy dark and bright 24x24 squares.
    fn squares(n: usize) -> Dataset {
        let mut rng = Rng::new(11);
        let mut data = Dataset::new(24, 24, 3);
        for i in 0..n {
            let base = if i % 2 == 0 { 70.0 } else { 160.0 };
            let pixels: Vec<u8> = (0..24 * 24 * 3)
                .map(|_| (base + rng.normal() * 40.0).clamp(0.0, 255.0) as u8)
                .collect();
            data.push(&pixels, ["dark", "bright"][i % 2].to_string()).unwrap();
        }
        data
    }

    fn trained_values(threads: usize) -> Vec<Vec<f32>> {
        trained_values_of(&squares(48), threads)
    }

    fn trained_values_of(data: &Dataset, threads: usize) -> Vec<Vec<f32>> {
        let options = TrainOptions {
            epochs: 2,
            batch_size: 16,
            validation: 0.25,
            input_size: 24,
            augment: Augment {
                flip: true,
                rotate: true,
            },
            ..Default::default()
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (model, _) = pool
            .install(|| train(data, &options, Kernels::Fast, &mut |_| {}))
            .unwrap();
        model.vars().iter().map(|v| SeedCnn::values(v).unwrap()).collect()
    }

    /// With groups, validation takes whole groups, about the asked share.
    #[test]
    fn validation_holds_out_whole_groups() {
        let groups: Vec<String> = (0..48).map(|i| format!("frame{}", i / 6)).collect();
        let options = TrainOptions {
            validation: 0.25,
            ..Default::default()
        };
        let (train, validation) = split_by_group((0..48).rev().collect(), &groups, &options);
        assert_eq!(train.len() + validation.len(), 48);
        assert_eq!(validation.len(), 12, "two groups of six");
        for v in &validation {
            assert!(train.iter().all(|t| groups[*t] != groups[*v]));
        }
        // The same seed holds out the same groups; one group is never all.
        assert_eq!(split_by_group((0..48).rev().collect(), &groups, &options).1, validation);
        let one: Vec<String> = vec!["only".into(); 4];
        assert_eq!(split_by_group((0..4).collect(), &one, &options).1.len(), 0);

        let mut data = Dataset::new(2, 2, 1);
        data.push_grouped(&[0; 4], "a".into(), Some("g".into())).unwrap();
        let err = data.push_grouped(&[0; 4], "a".into(), None).unwrap_err().to_string();
        assert!(err.contains("for every row or for none"), "{err}");
    }

    /// keep=best keeps the epoch with the best validation accuracy: the
    /// model evaluates to that accuracy again.
    #[test]
    fn keep_best_restores_the_best_epoch() {
        let data = squares(48);
        let mut options = TrainOptions {
            epochs: 4,
            batch_size: 16,
            validation: 0.25,
            input_size: 24,
            learning_rate: 0.02,
            keep: Keep::Best,
            ..Default::default()
        };
        let mut reports = Vec::new();
        let (model, report) = train(&data, &options, Kernels::Fast, &mut |r| reports.push(r.clone())).unwrap();
        let best = reports
            .iter()
            .fold(None::<&EpochReport>, |b, r| match b {
                Some(b) if b.validation_accuracy >= r.validation_accuracy => Some(b),
                _ => Some(r),
            })
            .unwrap();
        assert_eq!(report.kept_epoch, best.epoch);
        assert_eq!(report.validation_accuracy, best.validation_accuracy);
        // The kept weights give the kept accuracy on the validation rows.
        let (classes, targets) = classes_and_targets("test", &data.labels).unwrap();
        assert_eq!(classes, report.classes);
        let len = data.image_len();
        let (_, validation_rows, _) = split_rows(
            &targets,
            |row| fingerprint_bytes(&data.pixels[row * len..(row + 1) * len]),
            options.seed,
            options.validation,
        );
        let again = accuracy(&model, &data, &validation_rows, &targets, 16).unwrap();
        assert_eq!(Some(again), report.validation_accuracy);

        options.validation = 0.0;
        let Err(err) = train(&data, &options, Kernels::Fast, &mut |_| {}) else {
            panic!("keep=best without validation trained")
        };
        assert!(err.to_string().contains("keep=best needs validation rows"), "{err}");
    }

    /// 24x24 grey images with 0 to 3 bright 4x4 squares, and how many.
    fn squares_to_count(n: usize) -> Dataset {
        let mut rng = Rng::new(5);
        let mut data = Dataset::new(24, 24, 3);
        let names = vec!["squares".to_string()];
        for i in 0..n {
            let mut pixels = vec![90u8; 24 * 24 * 3];
            let k = i % 4;
            for s in 0..k {
                let (x0, y0) = (2 + 7 * s, 2 + rng.below(16));
                for y in y0..y0 + 4 {
                    for x in x0..x0 + 4 {
                        pixels[(y * 24 + x) * 3..(y * 24 + x) * 3 + 3].fill(230);
                    }
                }
            }
            data.push_counts(&pixels, &names, &[k as f32], Some(format!("g{}", i % 8)))
                .unwrap();
        }
        data
    }

    /// A count model's options for the small tests: keep=best, a quarter
    /// held out.
    fn count_options(epochs: usize) -> TrainOptions {
        TrainOptions {
            epochs,
            batch_size: 16,
            validation: 0.25,
            input_size: 24,
            learning_rate: 0.003,
            keep: Keep::Best,
            ..Default::default()
        }
    }

    /// Counts train a count model: squared error, a validation loss, and
    /// predictions near the counts of held-out images.
    #[test]
    fn a_count_model_learns_counts() {
        let data = squares_to_count(96);
        let options = count_options(12);
        let mut reports = Vec::new();
        let (model, report) = train(&data, &options, Kernels::Fast, &mut |r| reports.push(r.clone())).unwrap();
        assert_eq!(model.head, Head::Counts);
        assert_eq!(report.classes, vec!["squares".to_string()]);
        assert_eq!((report.train_accuracy, report.validation_accuracy), (None, None));
        let best = reports
            .iter()
            .filter_map(|r| r.validation_loss)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(report.validation_loss, Some(best), "keep=best keeps the lowest loss");
        // Predicting the mean count (1.5) everywhere has a loss of 1.25.
        assert!(best < 0.3, "validation loss {best}: {reports:?}");
        assert_eq!(report.validation_rows, 24, "two groups of twelve");

        let mut mixed = squares_to_count(2);
        let err = mixed.push(&[0; 24 * 24 * 3], "a".into()).unwrap_err().to_string();
        assert!(err.contains("mixed"), "{err}");
        let err = mixed
            .push_counts(&[0; 24 * 24 * 3], &["other".into()], &[1.0], Some("g".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("every row must name the same counts"), "{err}");
        let err = mixed
            .push_counts(&[0; 24 * 24 * 3], &["squares".into()], &[-1.0], Some("g".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 0"), "{err}");
        let balanced = TrainOptions {
            class_weights: ClassWeights::Balanced,
            ..options
        };
        let Err(err) = train(&data, &balanced, Kernels::Fast, &mut |_| {}) else {
            panic!("balanced weights on counts trained")
        };
        assert!(err.to_string().contains("a count model takes"), "{err}");
    }

    /// schedule=cosine changes the step size after the first epoch only:
    /// one epoch trains as with the constant rate, three do not.
    #[test]
    fn cosine_schedule_reaches_the_optimizer() {
        let data = squares_to_count(32);
        let weights = |epochs: usize, schedule: Schedule| -> Vec<Vec<f32>> {
            let options = TrainOptions {
                schedule,
                keep: Keep::Last,
                ..count_options(epochs)
            };
            let (model, _) = train(&data, &options, Kernels::Fast, &mut |_| {}).unwrap();
            model.vars().iter().map(|v| SeedCnn::values(v).unwrap()).collect()
        };
        assert_eq!(weights(1, Schedule::Constant), weights(1, Schedule::Cosine));
        assert_ne!(weights(3, Schedule::Constant), weights(3, Schedule::Cosine));
    }

    /// refit=true trains again on every row, for as many epochs as the run
    /// with validation kept, and reports that run's validation figures. The
    /// refit depends on the data and seed only.
    #[test]
    fn refit_trains_on_every_row_for_the_kept_epochs() {
        let data = squares_to_count(48);
        let options = TrainOptions {
            refit: true,
            ..count_options(4)
        };
        let values =
            |model: &SeedCnn| -> Vec<Vec<f32>> { model.vars().iter().map(|v| SeedCnn::values(v).unwrap()).collect() };
        let mut reports = Vec::new();
        let (model, report) = train(&data, &options, Kernels::Fast, &mut |r| reports.push(r.clone())).unwrap();
        assert_eq!((report.train_rows, report.validation_rows), (48, 12));
        let (first, refit): (Vec<&EpochReport>, Vec<&EpochReport>) = reports.iter().partition(|r| !r.refit);
        assert_eq!(first.len(), 4);
        assert_eq!(refit.len(), report.kept_epoch, "{reports:?}");
        assert!(refit
            .iter()
            .all(|r| r.validation_loss.is_none() && r.epochs == report.kept_epoch));
        assert_eq!(report.validation_loss, first[report.kept_epoch - 1].validation_loss);

        let (again, _) = train(&data, &options, Kernels::Fast, &mut |_| {}).unwrap();
        assert_eq!(values(&model), values(&again));
        let kept_only = TrainOptions {
            refit: false,
            ..options.clone()
        };
        let (unrefitted, _) = train(&data, &kept_only, Kernels::Fast, &mut |_| {}).unwrap();
        assert_ne!(
            values(&model),
            values(&unrefitted),
            "the refit saw the validation rows too"
        );

        let no_validation = TrainOptions {
            validation: 0.0,
            keep: Keep::Last,
            ..options
        };
        let Err(err) = train(&data, &no_validation, Kernels::Fast, &mut |_| {}) else {
            panic!("refit without validation trained")
        };
        assert!(err.to_string().contains("refit=true needs validation rows"), "{err}");
        let err = TrainOptions::parse("refit=maybe").unwrap_err().to_string();
        assert!(err.contains("refit takes true or false"), "{err}");
        assert!(TrainOptions::parse("refit=TRUE").unwrap().refit);
    }

    /// Every gemm of training sums in a fixed order (layers::K_BLOCK) and
    /// threads only split rows and columns: 1, 2 and 3 threads give the
    /// same weights, bit for bit.
    #[test]
    fn the_thread_count_does_not_change_the_model() {
        let one = trained_values(1);
        assert_eq!(one, trained_values(2));
        assert_eq!(one, trained_values(3));
        // A count model's squared error too.
        let counts = squares_to_count(48);
        assert_eq!(trained_values_of(&counts, 1), trained_values_of(&counts, 2));
    }
}
