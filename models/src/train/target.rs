//! What a run learns, a classifier's classes or a count model's counts,
//! and what differs between the two: the loss weights, one optimiser step
//! and the validation figure.

use super::*;

/// What a training run learns from each row.
pub(crate) enum Target<'a> {
    /// A classifier (softmax, cross-entropy): each row's class index, and
    /// each class's loss weight.
    Classes { targets: &'a [usize], weights: &'a [f32] },
    /// A count model (linear outputs, squared error): each count's loss
    /// weight, `[1, K]`.
    Counts { weights: Tensor },
}

impl Target<'_> {
    /// The model's head for this target.
    pub(crate) fn head(&self) -> Head {
        match self {
            Target::Classes { .. } => Head::Classes,
            Target::Counts { .. } => Head::Counts,
        }
    }

    /// One optimiser step on the rows `batch` (pixels `x`): the mean
    /// weighted loss, and how many rows a classifier predicted right.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step(
        &self,
        model: &SeedCnn,
        optimizer: &mut Adam,
        data: &Dataset,
        batch: &[usize],
        x: &Tensor,
        dropout_rng: &mut Rng,
        kernels: Kernels,
    ) -> candle_core::Result<(f64, usize)> {
        match self {
            Target::Counts { weights } => {
                let counts = row_counts(data, batch);
                let loss = count_step(model, optimizer, x, &counts, weights, dropout_rng, kernels)?;
                Ok((loss, 0))
            }
            Target::Classes { targets, weights } => {
                let batch_targets: Vec<u32> = batch.iter().map(|&r| targets[r] as u32).collect();
                let batch_weights: Vec<f32> = batch_targets.iter().map(|&t| weights[t as usize]).collect();
                let (loss, predicted) = train_step(
                    model,
                    optimizer,
                    x,
                    &batch_targets,
                    &batch_weights,
                    dropout_rng,
                    kernels,
                )?;
                let correct = predicted
                    .iter()
                    .zip(&batch_targets)
                    .filter(|(p, t)| **p == **t as usize)
                    .count();
                Ok((loss, correct))
            }
        }
    }

    /// The validation figure on `rows`: a classifier's accuracy, or a
    /// count model's loss.
    pub(crate) fn validate(
        &self,
        model: &SeedCnn,
        data: &Dataset,
        rows: &[usize],
        batch: usize,
    ) -> Result<(Option<f64>, Option<f64>)> {
        if rows.is_empty() {
            return Ok((None, None));
        }
        Ok(match self {
            Target::Classes { targets, .. } => (Some(accuracy(model, data, rows, targets, batch)?), None),
            Target::Counts { weights } => (None, Some(count_loss(model, data, rows, weights, batch)?)),
        })
    }
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

/// Per-count loss weights of a count model, in `names` order: explicit
/// `name:weight` pairs (others 1), or all 1.
pub(crate) fn count_weight_values(class_weights: &ClassWeights, names: &[String]) -> Result<Vec<f32>> {
    match class_weights {
        ClassWeights::Balanced => {
            crate::invalid!(
                "cnn_train option class_weights=balanced is for labels; a count model takes 'name:weight' pairs"
            )
        }
        other => class_weight_values(other, names, &[]),
    }
}

/// Argmax of each row of a `[N, K]` tensor.
pub(crate) fn argmax_rows(logits: &Tensor) -> candle_core::Result<Vec<usize>> {
    Ok(logits
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

/// Accuracy of the model (no dropout) on the given rows, in batches.
pub(crate) fn accuracy(
    model: &SeedCnn,
    data: &Dataset,
    rows: &[usize],
    targets: &[usize],
    batch: usize,
) -> Result<f64> {
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
pub(crate) fn train_step(
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
pub(crate) fn count_errors(predicted: &Tensor, counts: &[f32], weights: &Tensor) -> candle_core::Result<Tensor> {
    let truth = Tensor::from_vec(counts.to_vec(), predicted.shape(), &Device::Cpu)?;
    (predicted - truth)?.sqr()?.broadcast_mul(weights)?.sum(D::Minus1)
}

/// The rows' counts, row-major, in the order of `rows`.
pub(crate) fn row_counts(data: &Dataset, rows: &[usize]) -> Vec<f32> {
    let k = data.count_names.len();
    rows.iter()
        .flat_map(|&r| data.counts[r * k..(r + 1) * k].iter().copied())
        .collect()
}

/// One optimiser step of a count model: the mean loss of the batch.
pub(crate) fn count_step(
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
pub(crate) fn count_loss(
    model: &SeedCnn,
    data: &Dataset,
    rows: &[usize],
    weights: &Tensor,
    batch: usize,
) -> Result<f64> {
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
