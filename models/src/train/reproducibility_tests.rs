//! Training gives the same model for the same rows and seed, whatever the
//! threads and row order.

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
