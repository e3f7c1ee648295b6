//! Training the seed CNN on labelled pixel buffers. No SQL here:
//! `cnn_train` feeds it.
//!
//! - [`options`]: `cnn_train`'s options;
//! - [`dataset`]: the rows, their order and the validation split;
//! - [`target`]: what a classifier and a count model learn, and how each
//!   steps and validates;
//! - [`run`]: the epoch loop of one run;
//! - here: a whole training (a run, and with `refit` a second one) and
//!   what it reports.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::error::{ModelError, Result};
use candle_core::{DType, Device, Tensor, D};

use super::adam::Adam;
use super::model::{Head, Kernels, SeedCnn};
use rookery_image::options::parse::{choice, flag, text, value, whole};
use rookery_image::options::OptionText;
use rookery_image::rng::Rng;

mod dataset;
mod options;
mod run;
mod target;

pub use dataset::*;
pub use options::*;
use run::*;
pub(crate) use target::*;

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
    let class_weights;
    let target = if counting {
        let weights = count_weight_values(&options.class_weights, &classes)?;
        let weights = Tensor::from_vec(weights.clone(), (1, weights.len()), &Device::Cpu).map_err(candle_error)?;
        Target::Counts { weights }
    } else {
        let train_targets: Vec<usize> = train_rows.iter().map(|&r| targets[r]).collect();
        class_weights = class_weight_values(&options.class_weights, &classes, &train_targets)?;
        Target::Classes {
            targets: &targets,
            weights: &class_weights,
        }
    };

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
        classes: &classes,
        target,
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

#[cfg(test)]
mod reproducibility_tests;
#[cfg(test)]
mod tests;
