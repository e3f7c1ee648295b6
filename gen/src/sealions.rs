//! A generated stand-in for the Steller sea-lion data set (whose images may
//! not be redistributed), with the same files and formats:
//!
//! ```text
//! Train/<id>.jpg  TrainDotted/<id>.jpg  Test/<id>.jpg
//! Train/train.csv  MismatchedTrainImages.txt  sample_submission.csv
//! truth/train_dots.csv  truth/test_dots.csv  truth/test_counts.csv
//! ```
//!
//! Frames are aerial-looking: rock, sea and a surf line, with value-noise
//! texture. Animals are shaded elongated bodies at random angles, in
//! clusters (often touching), sized and toned by class: adult males largest
//! and darkest, pups smallest. The dotted copy has a disc of radius 3-4 px
//! in the class colour on each animal and a few black-masked regions. Some
//! training ids get a shifted dotted copy and are listed in
//! `MismatchedTrainImages.txt`, as in the real set. Everything is written
//! as JPEG of quality 90, so dot colours blur as in the real images.
//!
//! The same seed gives the same bytes: each image draws from its own
//! random stream, so images can be made in parallel in any order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use rookery_image::dots::CLASSES;
pub use rookery_image::rng::Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub out: PathBuf,
    pub train: usize,
    pub test: usize,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Most animals in one image (counts vary widely below it).
    pub max_animals: usize,
}

/// One animal: centre, class (index into `CLASSES`), body shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Animal {
    pub x: f64,
    pub y: f64,
    pub class: usize,
    pub length: f64,
    pub angle: f64,
}

/// Body length in pixels and tone (RGB) of each class, in `CLASSES` order.
const BODY: [(f64, [f64; 3]); 5] = [
    (78.0, [48.0, 42.0, 38.0]),    // adult males: largest, darkest
    (62.0, [72.0, 64.0, 56.0]),    // subadult males
    (50.0, [104.0, 94.0, 84.0]),   // adult females
    (40.0, [122.0, 112.0, 100.0]), // juveniles
    (26.0, [64.0, 58.0, 54.0]),    // pups: smallest
];

/// Share of each class among the animals of an image, before jitter
/// (close to the real train.csv means).
const CLASS_SHARE: [f64; 5] = [0.065, 0.052, 0.45, 0.24, 0.193];

/// Centres closer than this are not placed (two dots must stay apart).
const MIN_CENTRE_DISTANCE: f64 = 14.0;
/// Animals keep this far from the border, so each dot is whole.
const BORDER: f64 = 12.0;

/// Layout of one frame: where the sea ends, and the masked boxes.
struct Scene {
    coast: Vec<f64>,
    surf: f64,
    masks: Vec<(u32, u32, u32, u32)>,
}

fn hash2(x: i64, y: i64, seed: u64) -> f64 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ seed;
    h = (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Smooth value noise in [0, 1) at lattice spacing `cell`.
fn value_noise(x: f64, y: f64, cell: f64, seed: u64) -> f64 {
    let (gx, gy) = (x / cell, y / cell);
    let (x0, y0) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - x0, gy - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let a = hash2(ix, iy, seed);
    let b = hash2(ix + 1, iy, seed);
    let c = hash2(ix, iy + 1, seed);
    let d = hash2(ix + 1, iy + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

fn scene(rng: &mut Rng, width: u32, height: u32) -> Scene {
    let h = height as f64;
    let base = rng.range(0.15, 0.4) * h;
    let waves: Vec<(f64, f64, f64)> = (0..3)
        .map(|_| (rng.range(0.02, 0.08) * h, rng.range(0.002, 0.012), rng.range(0.0, 6.3)))
        .collect();
    let coast = (0..width)
        .map(|x| base + waves.iter().map(|(a, f, p)| a * (x as f64 * f + p).sin()).sum::<f64>())
        .collect();
    let masks = (0..rng.below(3))
        .map(|_| {
            let w = rng.range(0.08, 0.25) * width as f64;
            let hh = rng.range(0.08, 0.25) * h;
            let x = rng.range(0.0, width as f64 - w);
            let y = rng.range(0.0, h - hh);
            (x as u32, y as u32, w as u32, hh as u32)
        })
        .collect();
    Scene {
        coast,
        surf: rng.range(8.0, 30.0),
        masks,
    }
}

fn in_mask(scene: &Scene, x: f64, y: f64, margin: f64) -> bool {
    scene.masks.iter().any(|&(mx, my, mw, mh)| {
        x > mx as f64 - margin
            && x < (mx + mw) as f64 + margin
            && y > my as f64 - margin
            && y < (my + mh) as f64 + margin
    })
}

/// Paints rock, surf and sea.
fn background(scene: &Scene, width: u32, height: u32, seed: u64) -> RgbImage {
    let tint = [hash2(1, 2, seed) * 30.0, hash2(3, 4, seed) * 20.0];
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f64, y as f64);
        let coast = scene.coast[x as usize];
        let coarse = value_noise(fx, fy, 48.0, seed);
        let fine = value_noise(fx, fy, 6.0, seed ^ 0xABCD);
        let grain = hash2(x as i64, y as i64, seed ^ 0x1234) - 0.5;
        let rgb = if fy < coast {
            // Sea: dark blue-green with swell.
            let swell = ((fx * 0.05 + fy * 0.21 + coarse * 6.0).sin() + 1.0) * 0.5;
            let v = 30.0 + 25.0 * swell + 10.0 * fine + 6.0 * grain;
            [v * 0.6, v * 1.1 + 10.0, v * 1.3 + 20.0]
        } else if fy < coast + scene.surf {
            // Surf: broken white foam.
            let foam = 170.0 + 70.0 * fine - 40.0 * coarse + 20.0 * grain;
            [foam, foam + 4.0, foam + 8.0]
        } else {
            // Rock: grey-brown, blotchy.
            let v = 115.0 + 60.0 * coarse + 30.0 * fine + 14.0 * grain;
            [v + 12.0 + tint[0], v + 4.0 + tint[1], v - 6.0]
        };
        image::Rgb(rgb.map(|c| c.clamp(0.0, 255.0) as u8))
    })
}

fn draw_animal(image: &mut RgbImage, animal: &Animal, seed: u64) {
    let (_, tone) = BODY[animal.class];
    let half_len = animal.length / 2.0;
    let half_wid = animal.length * 0.21;
    let (cos, sin) = (animal.angle.cos(), animal.angle.sin());
    let reach = half_len + 8.0;
    let (x0, x1) = (
        (animal.x - reach).max(0.0) as u32,
        ((animal.x + reach) as u32).min(image.width() - 1),
    );
    let (y0, y1) = (
        (animal.y - reach).max(0.0) as u32,
        ((animal.y + reach) as u32).min(image.height() - 1),
    );
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f64 - animal.x, y as f64 - animal.y);
            // Body frame: u along the body, v across.
            let u = dx * cos + dy * sin;
            let v = -dx * sin + dy * cos;
            // Tapered body: wider at the shoulders (u > 0), a head beyond.
            let taper = 1.0 - 0.35 * (u / half_len).clamp(-1.0, 1.0).powi(2) - 0.15 * (-(u / half_len)).max(0.0);
            let body = (u / half_len).powi(2) + (v / (half_wid * taper.max(0.2))).powi(2);
            let head_u = u - half_len * 0.95;
            let head = (head_u / (half_wid * 0.75)).powi(2) + (v / (half_wid * 0.6)).powi(2);
            if body > 1.0 && head > 1.0 {
                continue;
            }
            // Shading: lit from one side, darker at the rim, a little texture.
            let rim = body.min(head);
            let light = 1.15 - 0.35 * rim + 0.18 * (v / half_wid).clamp(-1.0, 1.0);
            let grain = (hash2(x as i64, y as i64, seed ^ 0x5EA1) - 0.5) * 10.0;
            let pixel = image.get_pixel_mut(x, y);
            // Soft edge: blend the outermost ring with what is below.
            let alpha = ((1.0 - rim) * 6.0).clamp(0.0, 1.0);
            for (channel, tone) in pixel.0.iter_mut().zip(tone) {
                let animal_value = (tone * light + grain).clamp(0.0, 255.0);
                *channel = (animal_value * alpha + *channel as f64 * (1.0 - alpha)) as u8;
            }
        }
    }
}

/// Draws how many of each class, then places them in clusters on rock.
fn animals(rng: &mut Rng, scene: &Scene, width: u32, height: u32, max_animals: usize) -> Vec<Animal> {
    // Counts vary widely: some frames empty, most small, a few crowded.
    let total = if rng.unit() < 0.1 {
        0
    } else {
        (max_animals as f64).powf(rng.unit()).round() as usize
    };
    let shares: Vec<f64> = CLASS_SHARE.iter().map(|s| s * rng.range(0.4, 1.6)).collect();
    let share_sum: f64 = shares.iter().sum();
    let mut classes = Vec::with_capacity(total);
    for _ in 0..total {
        let mut pick = rng.unit() * share_sum;
        let mut class = 0;
        while class < 4 && pick >= shares[class] {
            pick -= shares[class];
            class += 1;
        }
        classes.push(class);
    }
    // Pups lie beside females: place the big ones first.
    classes.sort_unstable();
    let clusters: Vec<(f64, f64)> = (0..1 + total / 12)
        .map(|_| (rng.range(0.0, width as f64), rng.range(0.3, 1.0) * height as f64))
        .collect();
    let mut placed: Vec<Animal> = Vec::with_capacity(total);
    for class in classes {
        for _attempt in 0..200 {
            let (cx, cy) = clusters[rng.below(clusters.len())];
            let spread = 30.0 + 6.0 * (total as f64).sqrt();
            let x = cx + rng.normal() * spread;
            let y = cy + rng.normal() * spread;
            let ok_border = x >= BORDER && y >= BORDER && x < width as f64 - BORDER && y < height as f64 - BORDER;
            if !ok_border {
                continue;
            }
            let coast = scene.coast[x as usize];
            let on_rock = y > coast + scene.surf + 6.0;
            let clear = placed.iter().all(|a| (a.x - x).hypot(a.y - y) >= MIN_CENTRE_DISTANCE);
            if on_rock && clear && !in_mask(scene, x, y, 12.0) {
                let (length, _) = BODY[class];
                placed.push(Animal {
                    x: x.round(),
                    y: y.round(),
                    class,
                    length: length * rng.range(0.85, 1.15),
                    angle: rng.range(0.0, std::f64::consts::TAU),
                });
                break;
            }
        }
    }
    placed
}

/// One generated frame: the plain image, its dotted copy, and its animals.
pub struct Frame {
    pub plain: RgbImage,
    pub dotted: RgbImage,
    pub animals: Vec<Animal>,
}

/// Makes frame `index` of `kind` (0 train, 1 test); `shift` moves the
/// dotted copy (a mismatched pair).
pub fn make_frame(options: &GenOptions, kind: u64, index: u64, shift: Option<(i64, i64)>) -> Frame {
    let mut rng = Rng::derive(options.seed, kind, index);
    let seed = rng.next_u64();
    let scene = scene(&mut rng, options.width, options.height);
    let mut plain = background(&scene, options.width, options.height, seed);
    let animals = animals(&mut rng, &scene, options.width, options.height, options.max_animals);
    for (i, animal) in animals.iter().enumerate() {
        draw_animal(&mut plain, animal, seed ^ i as u64);
    }
    let mut dotted = match shift {
        Some((dx, dy)) => RgbImage::from_fn(options.width, options.height, |x, y| {
            let sx = (x as i64 - dx).clamp(0, options.width as i64 - 1) as u32;
            let sy = (y as i64 - dy).clamp(0, options.height as i64 - 1) as u32;
            *plain.get_pixel(sx, sy)
        }),
        None => plain.clone(),
    };
    for animal in &animals {
        let radius = rng.range(3.0, 4.0);
        let [r, g, b] = CLASSES[animal.class].1;
        let jitter = |c: u8, rng: &mut Rng| (c as f64 + rng.range(-4.0, 4.0)).clamp(0.0, 255.0) as u8;
        let colour = [jitter(r, &mut rng), jitter(g, &mut rng), jitter(b, &mut rng)];
        let (x, y) = match shift {
            Some((dx, dy)) => (animal.x + dx as f64, animal.y + dy as f64),
            None => (animal.x, animal.y),
        };
        fill_disc_rgb(&mut dotted, x, y, radius, colour);
    }
    for &(mx, my, mw, mh) in &scene.masks {
        for y in my..(my + mh).min(options.height) {
            for x in mx..(mx + mw).min(options.width) {
                dotted.put_pixel(x, y, image::Rgb([0, 0, 0]));
            }
        }
    }
    Frame { plain, dotted, animals }
}

fn fill_disc_rgb(image: &mut RgbImage, cx: f64, cy: f64, radius: f64, colour: [u8; 3]) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    for y in ((cy - radius).floor() as i64).max(0)..=((cy + radius).ceil() as i64).min(h - 1) {
        for x in ((cx - radius).floor() as i64).max(0)..=((cx + radius).ceil() as i64).min(w - 1) {
            if (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2) <= radius * radius {
                image.put_pixel(x as u32, y as u32, image::Rgb(colour));
            }
        }
    }
}

/// JPEG of quality 90, as the generated sets are written.
pub fn jpeg(image: &RgbImage) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let encoder = JpegEncoder::new_with_quality(&mut out, 90);
    image.write_with_encoder(encoder).map_err(std::io::Error::other)?;
    Ok(out)
}

fn counts(animals: &[Animal]) -> [usize; 5] {
    let mut counts = [0; 5];
    for a in animals {
        counts[a.class] += 1;
    }
    counts
}

/// Training ids whose dotted copy is shifted: about one in sixteen, as in
/// the real set (57 of 948).
pub fn mismatched_ids(options: &GenOptions) -> Vec<usize> {
    let mut rng = Rng::derive(options.seed, 2, 0);
    (0..options.train).filter(|_| rng.unit() < 1.0 / 16.0).collect()
}

const HEADER: &str = "adult_males,subadult_males,adult_females,juveniles,pups";

/// Where and when frame `index` of `kind` (0 train, 1 test) was taken, as
/// its EXIF says: three survey days of June 2017 over the rookeries of the
/// Pribilof Islands, a frame a minute from 10:00, from 100 to 150 m up.
pub fn survey_stamp(options: &GenOptions, kind: u64, index: usize) -> rookery_image::exif::PhotoStamp {
    let mut rng = Rng::derive(options.seed, 4, kind * 1_000_000 + index as u64);
    let minute = index / 3;
    rookery_image::exif::PhotoStamp {
        taken_at: format!(
            "2017:06:{:02} {:02}:{:02}:00",
            1 + index % 3,
            10 + minute / 60 % 10,
            minute % 60
        ),
        gps_lat: rng.range(57.05, 57.25),
        gps_lon: -rng.range(170.05, 170.45),
        gps_alt: rng.range(100.0, 150.0),
        make: "Rookery".to_string(),
        model: "Survey Camera".to_string(),
    }
}

/// A frame as a JPEG with its survey EXIF.
fn survey_jpeg(options: &GenOptions, kind: u64, index: usize, image: &RgbImage) -> std::io::Result<Vec<u8>> {
    rookery_image::exif::add_exif_to_jpeg(&jpeg(image)?, &survey_stamp(options, kind, index))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Writes the whole set; returns the number of files written.
pub fn generate(options: &GenOptions, threads: usize, progress: impl Fn(&str) + Sync) -> std::io::Result<usize> {
    let out = &options.out;
    for dir in ["Train", "TrainDotted", "Test", "truth"] {
        std::fs::create_dir_all(out.join(dir))?;
    }
    let mismatched = mismatched_ids(options);
    // (kind, index) work items; results come back in order.
    let items: Vec<(u64, usize)> = (0..options.train)
        .map(|i| (0, i))
        .chain((0..options.test).map(|i| (1, i)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Vec<Animal>>>> = std::sync::Mutex::new(vec![None; items.len()]);
    let error: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(kind, index)) = items.get(n) else { break };
                let shift = (kind == 0 && mismatched.contains(&index)).then(|| {
                    let mut rng = Rng::derive(options.seed, 3, index as u64);
                    let sign = |rng: &mut Rng| if rng.unit() < 0.5 { -1 } else { 1 };
                    (
                        sign(&mut rng) * rng.range(15.0, 40.0) as i64,
                        sign(&mut rng) * rng.range(15.0, 40.0) as i64,
                    )
                });
                let frame = make_frame(options, kind, index as u64, shift);
                let written = (|| -> std::io::Result<()> {
                    if kind == 0 {
                        let plain = survey_jpeg(options, kind, index, &frame.plain)?;
                        std::fs::write(out.join(format!("Train/{index}.jpg")), plain)?;
                        let dotted = survey_jpeg(options, kind, index, &frame.dotted)?;
                        std::fs::write(out.join(format!("TrainDotted/{index}.jpg")), dotted)?;
                    } else {
                        let plain = survey_jpeg(options, kind, index, &frame.plain)?;
                        std::fs::write(out.join(format!("Test/{index}.jpg")), plain)?;
                    }
                    Ok(())
                })();
                if let Err(e) = written {
                    *error.lock().expect("lock") = Some(e);
                    break;
                }
                progress(&format!(
                    "{} {index}: {} animals",
                    if kind == 0 { "train" } else { "test" },
                    frame.animals.len()
                ));
                results.lock().expect("lock")[n] = Some(frame.animals);
            });
        }
    });
    if let Some(e) = error.into_inner().expect("lock") {
        return Err(e);
    }
    let results = results.into_inner().expect("lock");
    let animals_of = |n: usize| results[n].as_deref().unwrap_or(&[]);

    let mut train_csv = format!("train_id,{HEADER}\n");
    let mut train_dots = String::from("train_id,x,y,class\n");
    for i in 0..options.train {
        let c = counts(animals_of(i));
        let _ = writeln!(train_csv, "{i},{},{},{},{},{}", c[0], c[1], c[2], c[3], c[4]);
        for a in animals_of(i) {
            let _ = writeln!(train_dots, "{i},{},{},{}", a.x, a.y, CLASSES[a.class].0);
        }
    }
    let mut test_counts = format!("test_id,{HEADER}\n");
    let mut test_dots = String::from("test_id,x,y,class\n");
    let mut sample = format!("test_id,{HEADER}\n");
    for i in 0..options.test {
        let animals = animals_of(options.train + i);
        let c = counts(animals);
        let _ = writeln!(test_counts, "{i},{},{},{},{},{}", c[0], c[1], c[2], c[3], c[4]);
        let _ = writeln!(sample, "{i},0,0,0,0,0");
        for a in animals {
            let _ = writeln!(test_dots, "{i},{},{},{}", a.x, a.y, CLASSES[a.class].0);
        }
    }
    let mut mismatched_txt = String::from("train_id\n");
    for id in &mismatched {
        let _ = writeln!(mismatched_txt, "{id}");
    }
    let files: [(&str, &String); 6] = [
        ("Train/train.csv", &train_csv),
        ("MismatchedTrainImages.txt", &mismatched_txt),
        ("sample_submission.csv", &sample),
        ("truth/train_dots.csv", &train_dots),
        ("truth/test_dots.csv", &test_dots),
        ("truth/test_counts.csv", &test_counts),
    ];
    for (name, text) in files {
        std::fs::write(out.join(name), text)?;
    }
    Ok(2 * options.train + options.test + files.len())
}

/// The default of `gen-sealions` and of the committed `data/sealions`.
pub fn sample_options(out: &Path) -> GenOptions {
    GenOptions {
        out: out.to_path_buf(),
        train: 30,
        test: 10,
        width: 960,
        height: 640,
        seed: 2017,
        max_animals: 80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(out: &Path, seed: u64) -> GenOptions {
        GenOptions {
            out: out.to_path_buf(),
            train: 3,
            test: 2,
            width: 256,
            height: 192,
            seed,
            max_animals: 20,
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        generate(&small(a.path(), 7), 2, |_| {}).unwrap();
        generate(&small(b.path(), 7), 1, |_| {}).unwrap();
        for name in [
            "Train/0.jpg",
            "TrainDotted/2.jpg",
            "Test/1.jpg",
            "Train/train.csv",
            "truth/test_counts.csv",
        ] {
            assert_eq!(
                std::fs::read(a.path().join(name)).unwrap(),
                std::fs::read(b.path().join(name)).unwrap(),
                "{name}"
            );
        }
        // Every frame says where and when it was taken.
        let photo = rookery_image::exif::PhotoMetadata::read(&std::fs::read(a.path().join("Test/1.jpg")).unwrap());
        let lat = photo.gps_lat.unwrap();
        assert!((57.05..57.25).contains(&lat) && photo.taken_at.is_some(), "{photo:?}");
        let c = tempfile::tempdir().unwrap();
        generate(&small(c.path(), 8), 2, |_| {}).unwrap();
        assert_ne!(
            std::fs::read(a.path().join("Train/0.jpg")).unwrap(),
            std::fs::read(c.path().join("Train/0.jpg")).unwrap()
        );
    }

    #[test]
    fn animals_keep_apart_and_on_rock() {
        let options = small(Path::new("."), 3);
        for i in 0..5 {
            let frame = make_frame(&options, 0, i, None);
            for (k, a) in frame.animals.iter().enumerate() {
                for b in &frame.animals[k + 1..] {
                    assert!((a.x - b.x).hypot(a.y - b.y) >= MIN_CENTRE_DISTANCE);
                }
                assert!(a.x >= BORDER && a.y >= BORDER);
            }
        }
    }
}
