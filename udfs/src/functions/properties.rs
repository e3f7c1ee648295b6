//! Property tests: every image function, driven with random sizes,
//! positions, strides, channel counts, extreme numbers and NULLs, returns
//! a value or a clean error; none panics or allocates without bound.
//!
//! The suite runs proptest's default 256 cases per function. The long run
//! (a million cases each, about 20 minutes on 2 cores; 50,000 each took
//! 48 s):
//!
//! ```sh
//! PROPTEST_CASES=1000000 cargo test --workspace --lib properties
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryViewArray, Int64Array, ListArray, StringArray, StructArray, UInt32Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::ScalarUDFImpl;
use proptest::prelude::*;

use super::test_util::{images, invoke_with_config};
use super::*;
use rookery_image::args::dot_fields;
use rookery_image::codec::encode;
use rookery_image::memory::RookeryConfig;
use rookery_image::options::OptionSet;
use rookery_image::Image;

/// Functions may make images of at most this many pixels here, so no case
/// allocates more than a few megabytes.
const MAX_PIXELS: u64 = 1 << 20;

fn config() -> Arc<ConfigOptions> {
    let mut config = ConfigOptions::default();
    config.extensions.insert(RookeryConfig::default());
    config
        .set("rookery.max_pixels", &MAX_PIXELS.to_string())
        .expect("rookery.max_pixels is a setting");
    Arc::new(config)
}

/// An image of up to 40x40 pixels of 1, 3 or 4 channels, or NULL.
fn image() -> impl Strategy<Value = Option<Image>> {
    let image = (
        0u32..40,
        0u32..40,
        prop_oneof![Just(1u8), Just(3u8), Just(4u8)],
        any::<u8>(),
    )
        .prop_map(|(w, h, c, seed)| {
            let data = (0..w as usize * h as usize * c as usize)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            Image::new(w, h, c, data).expect("consistent layout")
        });
    proptest::option::weighted(0.9, image)
}

/// Any i64, with the extremes and small values (around image sizes) often.
fn number() -> impl Strategy<Value = Option<i64>> {
    let value = prop_oneof![
        3 => -70i64..70,
        2 => -1i64..70000,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX - 1),
        1 => Just(i64::MIN + 1),
        1 => any::<i64>(),
        1 => Just(65535i64),
        1 => Just(65536i64),
    ];
    proptest::option::weighted(0.95, value)
}

/// Any f64: small and image-sized values often, and the extremes, NaN and
/// the infinities.
fn real() -> impl Strategy<Value = Option<f64>> {
    let value = prop_oneof![
        4 => -400.0f64..400.0,
        2 => 0.0f64..3.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::MAX),
        1 => Just(-0.0f64),
        1 => any::<f64>(),
    ];
    proptest::option::weighted(0.95, value)
}

fn reals(values: &[Option<f64>]) -> ArrayRef {
    Arc::new(datafusion::arrow::array::Float64Array::from(values.to_vec()))
}

fn ints(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn texts(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Calls `udf` and checks the outcome: a value of one row, or an error
/// with a message. A panic fails the test by itself.
fn check(udf: &dyn ScalarUDFImpl, args: Vec<ArrayRef>) -> Result<(), TestCaseError> {
    match invoke_with_config(udf, args, config()) {
        Ok(out) => prop_assert_eq!(out.len(), 1),
        Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
    }
    Ok(())
}

fn one(image: &Option<Image>) -> ArrayRef {
    images(&[image.as_ref()])
}

proptest! {
    #[test]
    fn crop_any_window(image in image(), x in number(), y in number(), w in number(), h in number()) {
        check(&Crop::default(), vec![one(&image), ints(&[x]), ints(&[y]), ints(&[w]), ints(&[h])])?;
    }

    #[test]
    fn thumbnail_any_centre(image in image(), x in number(), y in number(), size in number()) {
        check(&Thumbnail::default(), vec![one(&image), ints(&[x]), ints(&[y]), ints(&[size])])?;
    }

    #[test]
    fn resize_any_size(image in image(), w in number(), h in number()) {
        check(&ImageResize::default(), vec![one(&image), ints(&[w]), ints(&[h])])?;
    }

    #[test]
    fn rotate_any_turns(image in image(), turns in number()) {
        check(&ImageRotate90::default(), vec![one(&image), ints(&[turns])])?;
    }

    #[test]
    fn rotate_any_angle(image in image(), degrees in real(), fill in number()) {
        check(&ImageRotate::default(), vec![one(&image), reals(&[degrees]), ints(&[fill])])?;
    }

    #[test]
    fn random_crop_any_window(image in image(), w in number(), h in number(), seed in number()) {
        check(&RandomCrop::default(), vec![one(&image), ints(&[w]), ints(&[h]), ints(&[seed])])?;
    }

    #[test]
    fn adjust_any_factors(image in image(), b in real(), c in real(), s in real()) {
        check(&ImageAdjust::default(), vec![one(&image), reals(&[b]), reals(&[c]), reals(&[s])])?;
    }

    #[test]
    fn scale_any_factor(image in image(), factor in real()) {
        check(&ImageScale::default(), vec![one(&image), reals(&[factor])])?;
    }

    #[test]
    fn noise_any_sigma(image in image(), sigma in real(), seed in number()) {
        check(&ImageNoise::default(), vec![one(&image), reals(&[sigma]), ints(&[seed])])?;
    }

    #[test]
    fn tiles_any_size_and_stride(
        image in image(),
        size in number(),
        stride in number(),
        edge in proptest::option::of(prop_oneof![Just("pad"), Just("drop"), Just("round")]),
    ) {
        check(&Tiles::default(), vec![one(&image), ints(&[size]), ints(&[stride]), texts(&[edge])])?;
    }

    #[test]
    fn one_image_functions(image in image()) {
        for udf in [
            &Tile64::default() as &dyn ScalarUDFImpl,
            &ImageFlipH::default(),
            &ImageFlipV::default(),
            &ImageGrey::default(),
            &ImageWidth::default(),
            &ImageHeight::default(),
            &ImageRotate90::default(),
        ] {
            check(udf, vec![one(&image)])?;
        }
    }

    #[test]
    fn draw_any_dots(image in image(), dots in proptest::collection::vec((any::<u32>(), any::<u32>(), 0usize..7), 0..20), null in any::<bool>()) {
        let classes = ["adult_males", "subadult_males", "adult_females", "juveniles", "pups", "whales"];
        let structs = StructArray::new(
            dot_fields(),
            vec![
                Arc::new(UInt32Array::from_iter_values(dots.iter().map(|d| d.0))),
                Arc::new(UInt32Array::from_iter_values(dots.iter().map(|d| d.1))),
                Arc::new(StringArray::from_iter(dots.iter().map(|d| classes.get(d.2).copied()))),
            ],
            None,
        );
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Struct(dot_fields()), true)),
            OffsetBuffer::from_lengths([dots.len()]),
            Arc::new(structs),
            null.then(|| NullBuffer::from(vec![false])),
        );
        check(&DrawDots::default(), vec![one(&image), Arc::new(list)])?;
    }

    #[test]
    fn blob_dots_any_pair(dotted in image(), plain in image()) {
        check(&BlobDots::default(), vec![one(&dotted), one(&plain)])?;
    }

    #[test]
    fn encode_any_image(
        image in image(),
        format in proptest::option::of(prop_oneof![Just("png"), Just("jpeg"), Just("gif"), Just("")]),
        quality in number(),
    ) {
        check(&ImageEncode::default(), vec![one(&image), texts(&[format]), ints(&[quality])])?;
    }

    #[test]
    fn decode_any_bytes(
        image in image(),
        format in prop_oneof![Just("png"), Just("jpeg")],
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        on_error in proptest::option::of(prop_oneof![Just("raise"), Just("null"), Just("ignore")]),
    ) {
        // A real file, truncated and with one byte changed; or plain garbage.
        let mut bytes = match &image {
            Some(image) if image.width > 0 && image.height > 0 => {
                encode(image.view(), format, 90).unwrap_or_default()
            }
            _ => garbage,
        };
        if !bytes.is_empty() {
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x5a;
            bytes.truncate(cut.index(bytes.len()) + 1);
        }
        let bytes: ArrayRef = Arc::new(BinaryViewArray::from(vec![Some(bytes.as_slice())]));
        check(&ImageDecode::default(), vec![bytes, texts(&[on_error])])?;
    }
}

/// Option text for the model functions: known keys with random values,
/// unknown keys, stray separators and arbitrary characters.
fn option_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("size"),
        Just("layout"),
        Just("range"),
        Just("labels"),
        Just("epochs"),
        Just("batch_size"),
        Just("learning_rate"),
        Just("validation"),
        Just("seed"),
        Just("input_size"),
        Just("output"),
        Just("keep"),
        Just("refit"),
        Just("schedule"),
        Just("augment"),
        Just("class_weights"),
        Just("stride"),
        Just("margin"),
        Just("min_score"),
        Just("min_count"),
        Just("strip_rows"),
        Just("strip_width"),
        Just("exclude"),
        Just("colour"),
    ];
    let value = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("200000x200000".to_string()),
        Just("4294967295x4294967295".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("1e308".to_string()),
        Just("0..0".to_string()),
        Just("a|b".to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        "[ -~]{0,12}",
    ];
    proptest::collection::vec((key, value, prop_oneof![Just("="), Just(""), Just("==")]), 0..5).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v, eq)| format!("{k}{eq}{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

proptest! {
    #[test]
    fn model_option_strings_parse_or_fail_cleanly(text in option_text(), junk in "\\PC{0,40}") {
        for text in [text.as_str(), junk.as_str()] {
            // Each gives options or an error, never a panic; a size too
            // large to allocate is refused before any buffer is made.
            if let Ok(options) = <rookery_models::runtime::ClassifyOptions as OptionSet>::parse(text) {
                if let Some((h, w)) = options.size {
                    prop_assert!(h > 0 && w > 0);
                }
            }
            if let Ok(options) = <rookery_models::train::TrainOptions as OptionSet>::parse(text) {
                prop_assert!(options.input_size <= rookery_models::train::MAX_INPUT_SIZE);
            }
            let _ = <rookery_models::linear::LinearOptions as OptionSet>::parse(text);
            let _ = cnn_heatmap::HeatmapOptions::parse(text);
            let _ = cnn_density::DensityOptions::parse(text);
        }
    }

    #[test]
    fn crafted_model_dimensions_are_checked(dims in proptest::collection::vec(
        prop_oneof![Just(-1i64), Just(0i64), Just(1), Just(3), Just(i64::MAX), Just(i64::MIN), Just(1 << 40), 1i64..100_000],
        0..6,
    )) {
        let options = rookery_models::runtime::ClassifyOptions::default();
        let path = std::path::Path::new("crafted.onnx");
        if let Ok((_, h, w, c)) = rookery_models::runtime::image_input(path, &dims, &options, None) {
            prop_assert!(h > 0 && w > 0 && (c == 1 || c == 3));
        }
    }
}
