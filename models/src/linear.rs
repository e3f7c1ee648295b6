//! Softmax (multinomial logistic) regression on feature vectors: the head
//! of transfer learning. Plain f64 maths on one thread, so the same rows,
//! options and seed give the same head on any machine.

use std::time::Instant;

use crate::error::Result;

use super::rewrite::LinearHead;
use super::train::{
    class_weight_values, classes_and_targets, fingerprint_bytes, parse_class_weights, split_rows, ClassWeights,
    TrainReport,
};
use rookery_image::options::parse::{some, text, whole};

rookery_image::option_set! {
    /// Options of `linear_train`: `'epochs=300, ...'`.
    pub struct LinearOptions for "linear_train" {
        /// Full-batch Adam steps.
        epochs: usize = 300, whole(1, usize::MAX, "must be a whole number of at least 1");
        /// Adam's step size.
        learning_rate: f64 = 0.01, number_in(1e-9, 10.0);
        /// L2 penalty on the weights (of standardised features).
        l2: f64 = 0.001, number_in(0.0, 1e6);
        /// Fraction of rows held out for validation (0 for none).
        validation: f64 = 0.2, number_in(0.0, 1.0);
        /// Seed of the validation split.
        seed: u64 = 42, whole(0, u64::MAX, "must be a whole number");
        /// none, balanced, or 'label:weight|label:weight'.
        class_weights: ClassWeights = ClassWeights::None, parse_class_weights;
        /// The model whose features the rows hold (required); the head is
        /// written on it.
        featurizer: Option<String> = None, some(text("must be a file path"));
        /// The featurizer's tensor, as cnn_embed's output argument (its
        /// default: the input of the last dense layer).
        feature: Option<String> = None, optional_name;
        /// Where the head is written: a path or an object store URL.
        output: String = "head.onnx".to_string(), text("must be a file path");
    }
}

/// A name, or none when empty.
fn optional_name(text: &str) -> std::result::Result<Option<String>, String> {
    Ok(Some(text.trim().to_string()).filter(|v| !v.is_empty()))
}

/// A number in `[min, max)`.
fn number_in(min: f64, max: f64) -> impl Fn(&str) -> std::result::Result<f64, String> {
    move |text| match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v < max => Ok(v),
        _ => Err(format!("must be a number in [{min}, {max})")),
    }
}

/// Labelled feature vectors, all of one length.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Features {
    pub dim: usize,
    pub values: Vec<f32>,
    pub labels: Vec<String>,
}

impl Features {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Adds one row; every row must have the first row's length.
    pub fn push(&mut self, values: &[f32], label: &str) -> Result<()> {
        if self.is_empty() && self.dim == 0 {
            self.dim = values.len();
        }
        if values.is_empty() {
            return crate::invalid!("linear_train: a feature vector is empty");
        }
        if values.len() != self.dim {
            return crate::invalid!(
                "linear_train: feature vectors differ in length ({} and {})",
                self.dim,
                values.len()
            );
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return crate::invalid!("linear_train: a feature vector holds {bad}, which is not a finite number");
        }
        self.values.extend_from_slice(values);
        self.labels.push(label.to_string());
        Ok(())
    }

    pub fn append(&mut self, other: Features) -> Result<()> {
        if self.is_empty() {
            *self = other;
            return Ok(());
        }
        for i in 0..other.len() {
            self.push(other.row(i), &other.labels[i])?;
        }
        Ok(())
    }
}

/// Logits of one row under a head.
fn logits(head: &LinearHead, x: &[f32], out: &mut [f64]) {
    let k = out.len();
    for (c, o) in out.iter_mut().enumerate() {
        *o = head.bias[c] as f64;
    }
    for (d, &v) in x.iter().enumerate() {
        let row = &head.weights[d * k..(d + 1) * k];
        for c in 0..k {
            out[c] += v as f64 * row[c] as f64;
        }
    }
}

fn accuracy(head: &LinearHead, data: &Features, rows: &[usize], targets: &[usize], classes: usize) -> Option<f64> {
    if rows.is_empty() {
        return None;
    }
    let mut z = vec![0f64; classes];
    let correct = rows
        .iter()
        .filter(|&&r| {
            logits(head, data.row(r), &mut z);
            super::runtime::best(&z.iter().map(|v| *v as f32).collect::<Vec<_>>()) == targets[r]
        })
        .count();
    Some(correct as f64 / rows.len() as f64)
}

/// Trains a softmax regression on `data`: features standardised on the
/// training rows, weights from zero by full-batch Adam on the weighted
/// cross-entropy plus `l2`, and the standardisation folded back into the
/// returned head, which takes the raw features.
pub fn train_linear(data: &Features, options: &LinearOptions) -> Result<(LinearHead, TrainReport)> {
    let started = Instant::now();
    if data.is_empty() {
        return crate::invalid!("linear_train got no rows with both features and a label");
    }
    let (classes, targets) = classes_and_targets("linear_train", &data.labels)?;
    let fingerprint = |row: usize| {
        let bytes: Vec<u8> = data.row(row).iter().flat_map(|v| v.to_le_bytes()).collect();
        fingerprint_bytes(&bytes)
    };
    let (train_rows, validation_rows, _) = split_rows(&targets, fingerprint, options.seed, options.validation);
    let train_targets: Vec<usize> = train_rows.iter().map(|&r| targets[r]).collect();
    let class_weights = class_weight_values(&options.class_weights, &classes, &train_targets)?;

    let (dim, k, n) = (data.dim, classes.len(), train_rows.len());
    let mut mean = vec![0f64; dim];
    for &r in &train_rows {
        for (m, &v) in mean.iter_mut().zip(data.row(r)) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut scale = vec![0f64; dim];
    for &r in &train_rows {
        for ((s, &v), m) in scale.iter_mut().zip(data.row(r)).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    // Constant features (ReLU units that never fire) get scale 1.
    scale.iter_mut().for_each(|s| {
        *s = if *s / n as f64 > 1e-12 {
            (*s / n as f64).sqrt()
        } else {
            1.0
        }
    });
    let standard: Vec<f64> = train_rows
        .iter()
        .flat_map(|&r| {
            data.row(r)
                .iter()
                .enumerate()
                .map(|(d, &v)| (v as f64 - mean[d]) / scale[d])
        })
        .collect();
    let row_weights: Vec<f64> = train_targets.iter().map(|&t| class_weights[t] as f64).collect();
    let total_weight: f64 = row_weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);

    // Parameters: weights [dim, k] then bias [k]; Adam state alongside.
    let params_len = dim * k + k;
    let mut params = vec![0f64; params_len];
    let (mut m1, mut m2) = (vec![0f64; params_len], vec![0f64; params_len]);
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut grad = vec![0f64; params_len];
    let mut z = vec![0f64; k];
    let mut last_loss = f64::NAN;
    for step in 1..=options.epochs {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        for (i, x) in standard.chunks(dim).enumerate() {
            z.copy_from_slice(&params[dim * k..]);
            for (d, &v) in x.iter().enumerate() {
                for c in 0..k {
                    z[c] += v * params[d * k + c];
                }
            }
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            let w = row_weights[i] / total_weight;
            loss -= w * (z[train_targets[i]] - max - sum.ln());
            for c in 0..k {
                let p = (z[c] - max).exp() / sum;
                let g = w * (p - if c == train_targets[i] { 1.0 } else { 0.0 });
                grad[dim * k + c] += g;
                for (d, &v) in x.iter().enumerate() {
                    grad[d * k + c] += g * v;
                }
            }
        }
        for (g, p) in grad[..dim * k].iter_mut().zip(&params[..dim * k]) {
            *g += options.l2 * p;
        }
        let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
        for j in 0..params_len {
            m1[j] = beta1 * m1[j] + (1.0 - beta1) * grad[j];
            m2[j] = beta2 * m2[j] + (1.0 - beta2) * grad[j] * grad[j];
            params[j] -= options.learning_rate * (m1[j] / c1) / ((m2[j] / c2).sqrt() + eps);
        }
        last_loss = loss;
    }
    if !last_loss.is_finite() {
        return crate::invalid!("linear_train diverged (loss {last_loss}); lower learning_rate");
    }

    // Fold the standardisation in: x' = (x - mean) / scale.
    let mut weights = vec![0f32; dim * k];
    let mut bias: Vec<f64> = params[dim * k..].to_vec();
    for d in 0..dim {
        for c in 0..k {
            let w = params[d * k + c] / scale[d];
            weights[d * k + c] = w as f32;
            bias[c] -= mean[d] * w;
        }
    }
    let head = LinearHead {
        inputs: dim,
        weights,
        bias: bias.iter().map(|b| *b as f32).collect(),
    };
    let report = TrainReport {
        train_accuracy: accuracy(&head, data, &train_rows, &targets, k),
        validation_accuracy: accuracy(&head, data, &validation_rows, &targets, k),
        validation_loss: None,
        classes,
        epochs: options.epochs,
        seconds: started.elapsed().as_secs_f64(),
        train_rows: train_rows.len(),
        validation_rows: validation_rows.len(),
        kept_epoch: options.epochs,
    };
    Ok((head, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_image::options::OptionSet;
    use rookery_image::rng::Rng;

    /// Two Gaussian clouds in 6 dimensions, offset in the first two, with a
    /// constant feature and a large-scale one.
    fn clouds(n: usize, seed: u64) -> Features {
        let mut rng = Rng::new(seed);
        let mut data = Features::default();
        for i in 0..n {
            let class = i % 2;
            let shift = if class == 0 { -1.5 } else { 1.5 };
            let row = [
                (rng.normal() + shift) as f32,
                (rng.normal() - shift) as f32,
                rng.normal() as f32,
                0.0,
                (rng.normal() * 1000.0) as f32,
                rng.normal() as f32,
            ];
            data.push(&row, ["left", "right"][class]).unwrap();
        }
        data
    }

    #[test]
    fn separates_clouds_and_folds_the_scaling_in() {
        let data = clouds(200, 1);
        let (head, report) = train_linear(&data, &LinearOptions::default()).unwrap();
        assert_eq!(report.classes, vec!["left", "right"]);
        assert_eq!((report.train_rows, report.validation_rows), (160, 40));
        assert!(report.train_accuracy.unwrap() > 0.95, "{report:?}");
        assert!(report.validation_accuracy.unwrap() > 0.9, "{report:?}");
        // The head takes raw features: a point deep in "right" is right.
        let mut z = [0f64; 2];
        logits(&head, &[3.0, -3.0, 0.0, 0.0, 0.0, 0.0], &mut z);
        assert!(z[1] > z[0]);
    }

    #[test]
    fn the_same_rows_in_another_order_give_the_same_head() {
        let data = clouds(60, 2);
        let mut reversed = Features::default();
        for i in (0..data.len()).rev() {
            reversed.push(data.row(i), &data.labels[i]).unwrap();
        }
        let (a, _) = train_linear(&data, &LinearOptions::default()).unwrap();
        let (b, _) = train_linear(&reversed, &LinearOptions::default()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_rows_and_options_are_named() {
        let mut data = Features::default();
        data.push(&[1.0, 2.0], "a").unwrap();
        let err = data.push(&[1.0], "b").unwrap_err().to_string();
        assert!(err.contains("differ in length (2 and 1)"), "{err}");
        let err = data.push(&[f32::NAN, 1.0], "b").unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
        let err = train_linear(&data, &LinearOptions::default()).unwrap_err().to_string();
        assert!(err.contains("two distinct labels"), "{err}");
        let err = LinearOptions::parse("l2=-1").unwrap_err().to_string();
        assert!(err.contains("l2 must be a number"), "{err}");
        let err = LinearOptions::parse("depth=3").unwrap_err().to_string();
        assert!(err.contains("unknown linear_train option 'depth'"), "{err}");
        let o = LinearOptions::parse("epochs=10, seed=0, featurizer=m.onnx, output=h.onnx").unwrap();
        assert_eq!((o.epochs, o.seed), (10, 0));
    }
}
