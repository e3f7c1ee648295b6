//! One training run: the seeded epoch loop over batches of augmented rows,
//! keeping the last or the best epoch's weights.

use super::*;

/// Random flips and quarter turns of one NHWC image, in place into `out`.
pub(crate) fn augment(
    src: &[u8],
    side: (usize, usize),
    channels: usize,
    options: &TrainOptions,
    rng: &mut Rng,
    out: &mut [f32],
) {
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
pub(crate) fn batch_tensor(
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

/// What one training run needs besides its rows: the data, options and
/// per-class (or per-count) weights.
pub(crate) struct Run<'a> {
    pub(crate) data: &'a Dataset,
    pub(crate) options: &'a TrainOptions,
    pub(crate) kernels: Kernels,
    pub(crate) classes: &'a [String],
    pub(crate) target: Target<'a>,
}

impl Run<'_> {
    /// Trains a model from its seeded initial weights on `train_rows` for
    /// `epochs`, shuffling with the first stream of `streams` and drawing
    /// dropout from the second. With no validation rows it is a refit.
    /// Returns the model and the epoch kept (the last, or with keep=best
    /// the best on validation, whose weights are restored).
    pub(crate) fn fit(
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
            ref target,
            ..
        } = *self;
        let counting = matches!(target, Target::Counts { .. });
        let refit = validation_rows.is_empty() && options.refit;
        let (mut rng, mut dropout_rng) = streams;
        let mut model = SeedCnn::new(
            (data.height, data.width, data.channels),
            self.classes.len(),
            options.seed,
        )
        .map_err(candle_error)?;
        model.head = target.head();
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
                let (loss, right) = target
                    .step(&model, &mut optimizer, data, batch, &x, &mut dropout_rng, kernels)
                    .map_err(candle_error)?;
                correct += right;
                loss_sum += loss * batch.len() as f64;
                seen += batch.len();
            }
            let train_seconds = epoch_started.elapsed().as_secs_f64();
            let (validation_accuracy, validation_loss) =
                target.validate(&model, data, validation_rows, options.batch_size)?;
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
