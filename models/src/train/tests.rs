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
