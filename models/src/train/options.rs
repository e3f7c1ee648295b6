//! The options of `cnn_train`, declared once: their types, defaults,
//! parsers and docs.

use super::*;

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

pub(crate) fn parse_augment(value: &str) -> std::result::Result<Augment, String> {
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
pub(crate) fn parse_input_size(value: &str) -> std::result::Result<usize, String> {
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
pub(crate) fn cos_series(x: f64) -> f64 {
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
