//! Small images and label files the tests make for themselves.

#![allow(dead_code)]

pub mod s3;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, RgbImage};
use rookery_image::codec::test_support::with_exif_orientation;

/// A colour gradient, so every pixel differs from its neighbours.
pub fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 128])
    })
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encode fixture");
    out
}

fn write(path: PathBuf, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, bytes).expect("write fixture");
}

/// A clip of `frames` 64x48 frames at 10 fps, a keyframe every 12, frame
/// `n` all grey at level 20 + 9n.
pub fn numbered_clip(frames: usize) -> Vec<u8> {
    use rookery_image::video::encode::ClipWriter;
    let mut writer = ClipWriter::new(Cursor::new(Vec::new()), 64, 48, 10.0, 12).expect("clip writer");
    for n in 0..frames {
        let level = (20 + 9 * n) as u8;
        let frame = rookery_image::Image::new(64, 48, 3, vec![level; 64 * 48 * 3]).expect("frame");
        writer.push(frame.view()).expect("encode frame");
    }
    writer.finish().expect("finish clip").into_inner()
}

/// Writes the fixture set under `root`:
/// - `good/`: one valid image per format, named by id (0-6);
/// - `mixed/`: two valid images plus a corrupt, a truncated and an empty
///   file, a text file and a PNG named `.jpg`;
/// - `train.csv` and `labels.tsv`: labels for the ids of `good/`;
/// - `sealions/`: a small generated sea-lion set (see `rookery gen-sealions`);
/// - `colours/`: solid red.png (16x16), green.jpg (32x32), blue.png (16x16);
/// - `models/`: the ONNX models of `tests/fixtures/` (made outside Rookery,
///   by `tests/fixtures/make_models.py`);
/// - `tree/`: a class-per-folder tree (`interesting/`, `not_interesting/`,
///   each with a `1.png`), a file at its root and a hidden folder;
/// - `survey/`: a Hive-partitioned tree (`year=.../site=.../`) of JPEGs
///   with EXIF time, GPS and camera (`c.jpg` has none);
/// - `videos/`: `dive1.mp4` (30 frames of 64x48 at 10 fps, a keyframe every
///   12, frame n grey level 20 + 9n) and `dive2.mp4` (its first 20 frames);
///   `broken/` holds a cut-off copy and a text file.
pub fn write_fixtures(root: &Path) {
    let sealions = rookery::sealions::GenOptions {
        out: root.join("sealions"),
        train: 3,
        test: 1,
        width: 320,
        height: 256,
        seed: 3,
        max_animals: 30,
    };
    rookery::sealions::generate(&sealions, 2, |_| {}).expect("generate sea lions");
    let rgb = |w, h| DynamicImage::ImageRgb8(gradient(w, h));
    let good = root.join("good");
    write(good.join("0.png"), &encode(&rgb(4, 3), ImageFormat::Png));
    write(good.join("1.jpg"), &encode(&rgb(40, 30), ImageFormat::Jpeg));
    write(
        good.join("2.png"),
        &encode(&DynamicImage::ImageLuma8(rgb(5, 5).to_luma8()), ImageFormat::Png),
    );
    write(
        good.join("3.jpg"),
        &with_exif_orientation(&encode(&rgb(40, 30), ImageFormat::Jpeg), 6),
    );
    write(good.join("4.bmp"), &encode(&rgb(3, 2), ImageFormat::Bmp));
    write(good.join("5.tiff"), &encode(&rgb(6, 4), ImageFormat::Tiff));
    write(good.join("6.webp"), &encode(&rgb(8, 8), ImageFormat::WebP));

    let mixed = root.join("mixed");
    // Noisy, so the JPEG is mostly scan data and a cut in half keeps the header.
    let noisy = RgbImage::from_fn(200, 150, |x, y| {
        let h = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)).wrapping_mul(2_654_435_761);
        image::Rgb([(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8])
    });
    let jpeg = encode(&DynamicImage::ImageRgb8(noisy), ImageFormat::Jpeg);
    write(mixed.join("a.jpg"), &jpeg);
    write(mixed.join("b.png"), &encode(&rgb(16, 16), ImageFormat::Png));
    write(mixed.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]);
    let mut corrupt = jpeg[..4].to_vec();
    corrupt.extend(std::iter::repeat_n(0x55u8, 500));
    write(mixed.join("corrupt.jpg"), &corrupt);
    write(mixed.join("empty.png"), b"");
    write(mixed.join("notes.txt"), b"not an image\n");
    write(mixed.join("misnamed.jpg"), &encode(&rgb(2, 2), ImageFormat::Png));

    let solid = |w, h, rgb: [u8; 3]| DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, image::Rgb(rgb)));
    let colours = root.join("colours");
    write(
        colours.join("red.png"),
        &encode(&solid(16, 16, [220, 20, 30]), ImageFormat::Png),
    );
    write(
        colours.join("green.jpg"),
        &encode(&solid(32, 32, [10, 200, 40]), ImageFormat::Jpeg),
    );
    write(
        colours.join("blue.png"),
        &encode(&solid(16, 16, [20, 30, 210]), ImageFormat::Png),
    );
    for model in ["colour_classifier.onnx", "not_an_image.onnx"] {
        let committed = fixtures_dir().join(model);
        write(
            root.join("models").join(model),
            &std::fs::read(committed).expect("committed model fixture"),
        );
    }

    let tree = root.join("tree");
    write(
        tree.join("interesting/1.png"),
        &encode(&solid(4, 4, [200, 40, 40]), ImageFormat::Png),
    );
    write(
        tree.join("interesting/2.png"),
        &encode(&solid(4, 4, [210, 30, 30]), ImageFormat::Png),
    );
    write(
        tree.join("not_interesting/1.png"),
        &encode(&solid(6, 4, [20, 30, 200]), ImageFormat::Png),
    );
    write(
        tree.join("root.png"),
        &encode(&solid(2, 2, [0, 0, 0]), ImageFormat::Png),
    );
    write(
        tree.join(".ipynb_checkpoints/1.png"),
        &encode(&solid(2, 2, [0, 0, 0]), ImageFormat::Png),
    );

    let survey = root.join("survey");
    let stamped = |taken_at: &str, lat: f64, lon: f64| {
        let stamp = rookery_image::exif::PhotoStamp {
            taken_at: taken_at.to_string(),
            gps_lat: lat,
            gps_lon: lon,
            gps_alt: 150.0,
            make: "Rookery".to_string(),
            model: "Survey 1".to_string(),
        };
        rookery_image::exif::add_exif_to_jpeg(&encode(&rgb(8, 6), ImageFormat::Jpeg), &stamp).expect("exif")
    };
    write(
        survey.join("year=2023/site=north/a.jpg"),
        &stamped("2023:06:01 10:00:00", 57.5, -170.25),
    );
    write(
        survey.join("year=2024/site=north/b.jpg"),
        &stamped("2024:06:02 11:30:00", 57.5, -170.75),
    );
    write(
        survey.join("year=2024/site=south/c.jpg"),
        &encode(&rgb(8, 6), ImageFormat::Jpeg),
    );

    let videos = root.join("videos");
    write(videos.join("dive1.mp4"), &numbered_clip(30));
    write(videos.join("dive2.mp4"), &numbered_clip(20));
    let whole = numbered_clip(30);
    write(root.join("broken/cut.mp4"), &whole[..whole.len() / 2]);
    write(root.join("broken/notes.txt"), b"not a video\n");

    write(
        root.join("train.csv"),
        b"train_id,adult_males,subadult_males,adult_females,juveniles,pups\n0,1,0,3,0,0\n1,0,2,5,1,1\n2,4,0,0,0,2\n3,0,0,1,1,0\n9,1,1,1,1,1\n",
    );
    write(
        root.join("labels.tsv"),
        b"index\tfilename\tlabel\n0\t0.png\tinteresting\n1\t1.jpg\tnot_interesting\n2\t2.png\tinteresting\n",
    );
}

/// The committed `tests/fixtures/` of the workspace, from the engine's
/// tests or the CLI crate's (which include this file).
pub fn fixtures_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/fixtures"))
        .find(|dir| dir.is_dir())
        .expect("tests/fixtures in the workspace")
}

/// A plain DataFusion session with one `rookery::register` call (two
/// partitions), as a library user makes it.
pub fn library_session() -> datafusion::prelude::SessionContext {
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};
    let builder = SessionStateBuilder::new()
        .with_default_features()
        .with_config(SessionConfig::new().with_target_partitions(2));
    SessionContext::new_with_state(rookery::register(builder).build())
}

/// The names in `folder`, sorted (none when it does not exist).
pub fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// `stop_at(name)`: `name`, or an error for the row named `stop` while
/// armed: a run that stops there, and runs through once disarmed.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StopAt {
    signature: Signature,
    stop: String,
    armed: ArmedFlag,
}

#[derive(Debug, Clone)]
struct ArmedFlag(Arc<AtomicBool>);

impl PartialEq for ArmedFlag {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for ArmedFlag {}
impl std::hash::Hash for ArmedFlag {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

impl ScalarUDFImpl for StopAt {
    fn name(&self) -> &str {
        "stop_at"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> Result<ColumnarValue> {
        let names = args.args[0].to_array(args.number_rows)?;
        let armed = self.armed.0.load(Ordering::SeqCst);
        if armed && names.as_string::<i32>().iter().flatten().any(|n| n == self.stop) {
            return exec_err!("stopped at {}", self.stop);
        }
        Ok(ColumnarValue::Array(names))
    }
}

/// Registers `stop_at` on `ctx`, armed to fail at the row named `stop`;
/// returns its switch.
pub fn register_stop_at(ctx: &datafusion::prelude::SessionContext, stop: &str) -> Arc<AtomicBool> {
    let armed = Arc::new(AtomicBool::new(true));
    ctx.register_udf(ScalarUDF::new_from_impl(StopAt {
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        stop: stop.to_string(),
        armed: ArmedFlag(Arc::clone(&armed)),
    }));
    armed
}
