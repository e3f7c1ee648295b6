//! A generated stand-in for deep-sea video frame triage: frames of dark,
//! noisy water with drifting "marine snow"; the interesting ones also show
//! one to three glowing animals (ellipses of a warm or pale colour). Written
//! as `frames/<index>.jpg` plus `labels.csv` (`index,filename,label`, label
//! `interesting` or `not_interesting`), the layout `sql/classify/` reads.
//! The same seed gives the same bytes.
//!
//! Two other layouts of the same frames: a class-per-folder tree
//! (`frames/<label>/<index>.jpg`, no label file), and ROV-like dive
//! videos (`dives/dive_<n>.mp4`, H.264) with a label file naming each
//! frame as the deep-sea team's did (`dive_0.mp4_17.png`).

use std::fmt::Write as _;
use std::path::Path;

use image::RgbImage;
use rookery_image::rng::Rng;

use crate::sealions::jpeg;

/// Frames of `width` x `height`; about `interesting` of them interesting.
#[derive(Debug, Clone)]
pub struct FrameOptions {
    pub count: usize,
    pub width: u32,
    pub height: u32,
    pub interesting: f64,
    pub seed: u64,
}

impl Default for FrameOptions {
    fn default() -> Self {
        Self {
            count: 200,
            width: 128,
            height: 96,
            interesting: 0.4,
            seed: 2019,
        }
    }
}

fn frame(options: &FrameOptions, index: usize) -> (RgbImage, bool) {
    let mut rng = Rng::derive(options.seed, 10, index as u64);
    let (w, h) = (options.width, options.height);
    let depth = rng.range(0.5, 1.0);
    let mut image = RgbImage::from_fn(w, h, |_, y| {
        let fade = 1.0 - 0.5 * y as f64 / h as f64;
        let [r, g, b] = [6.0, 22.0, 40.0].map(|c: f64| c * depth * fade);
        image::Rgb([r as u8, g as u8, b as u8])
    });
    // Sensor noise and marine snow: present in every frame.
    for pixel in image.pixels_mut() {
        let n = rng.range(-6.0, 6.0);
        pixel.0 = pixel.0.map(|c| (c as f64 + n).clamp(0.0, 255.0) as u8);
    }
    for _ in 0..rng.below(25) + 5 {
        let (x, y) = (rng.below(w as usize) as u32, rng.below(h as usize) as u32);
        let v = rng.range(120.0, 220.0) as u8;
        image.put_pixel(x, y, image::Rgb([v, v, v]));
    }
    let interesting = rng.unit() < options.interesting;
    if interesting {
        for _ in 0..rng.below(3) + 1 {
            let colour = match rng.below(3) {
                0 => [230.0, 120.0, 40.0],  // orange
                1 => [210.0, 60.0, 60.0],   // red
                _ => [200.0, 200.0, 180.0], // pale
            };
            let (cx, cy) = (rng.range(0.15, 0.85) * w as f64, rng.range(0.15, 0.85) * h as f64);
            let (a, b) = (rng.range(6.0, 16.0), rng.range(3.0, 8.0));
            let angle = rng.range(0.0, std::f64::consts::PI);
            let (sin, cos) = angle.sin_cos();
            for y in 0..h {
                for x in 0..w {
                    let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                    let (u, v) = ((dx * cos + dy * sin) / a, (-dx * sin + dy * cos) / b);
                    let d = u * u + v * v;
                    if d < 1.0 {
                        let glow = 1.0 - 0.6 * d;
                        let p = image.get_pixel_mut(x, y);
                        for (c, k) in p.0.iter_mut().zip(colour) {
                            *c = (k * glow).max(*c as f64).min(255.0) as u8;
                        }
                    }
                }
            }
        }
    }
    (image, interesting)
}

fn label_of(interesting: bool) -> &'static str {
    if interesting {
        "interesting"
    } else {
        "not_interesting"
    }
}

/// Writes `frames/` and `labels.csv` under `out`; returns the number of frames.
pub fn generate_frames(out: &Path, options: &FrameOptions) -> std::io::Result<usize> {
    std::fs::create_dir_all(out.join("frames"))?;
    let mut labels = String::from("index,filename,label\n");
    for index in 0..options.count {
        let (image, interesting) = frame(options, index);
        let filename = format!("{index:04}.jpg");
        std::fs::write(out.join("frames").join(&filename), jpeg(&image)?)?;
        let _ = writeln!(labels, "{index},{filename},{}", label_of(interesting));
    }
    std::fs::write(out.join("labels.csv"), labels)?;
    Ok(options.count)
}

/// Writes the frames as a class-per-folder tree under `out/frames/`
/// (`interesting/0007.jpg`, ...), with no label file; returns the number
/// of frames.
pub fn generate_frame_tree(out: &Path, options: &FrameOptions) -> std::io::Result<usize> {
    for index in 0..options.count {
        let (image, interesting) = frame(options, index);
        let folder = out.join("frames").join(label_of(interesting));
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("{index:04}.jpg")), jpeg(&image)?)?;
    }
    Ok(options.count)
}

/// How dive videos are cut.
#[derive(Debug, Clone)]
pub struct ClipOptions {
    pub clips: usize,
    pub seconds: f64,
    pub fps: f64,
    /// Frames each scene lasts (a scene is one generated frame, held).
    pub scene_frames: usize,
}

impl Default for ClipOptions {
    fn default() -> Self {
        Self {
            clips: 2,
            seconds: 10.0,
            fps: 10.0,
            scene_frames: 5,
        }
    }
}

/// Writes `dives/dive_<n>.mp4` (H.264, a keyframe a second) under `out`,
/// each a run of scenes of the frames above, and `labels.csv`
/// (`index,filename,label`, filename `dive_<n>.mp4_<frame>.png`); returns
/// the number of frames. Frame sizes must be even.
pub fn generate_clips(out: &Path, options: &FrameOptions, clips: &ClipOptions) -> std::io::Result<usize> {
    use rookery_image::video::encode::ClipWriter;
    let to_io = |e: rookery_image::video::VideoError| std::io::Error::other(e.to_string());
    std::fs::create_dir_all(out.join("dives"))?;
    let frames_per_clip = (clips.seconds * clips.fps).round().max(1.0) as usize;
    let mut labels = String::from("index,filename,label\n");
    let mut index = 0;
    for clip in 0..clips.clips {
        let name = format!("dive_{clip}.mp4");
        let file = std::io::BufWriter::new(std::fs::File::create(out.join("dives").join(&name))?);
        let keyframes = clips.fps.round().max(1.0) as u32;
        let mut writer = ClipWriter::new(file, options.width, options.height, clips.fps, keyframes).map_err(to_io)?;
        let mut scene = None;
        for t in 0..frames_per_clip {
            let scene_index = clip * frames_per_clip + t / clips.scene_frames.max(1);
            if scene.as_ref().is_none_or(|(i, _, _)| *i != scene_index) {
                let (image, interesting) = frame(options, scene_index);
                let value = rookery_image::Image::new(options.width, options.height, 3, image.into_raw())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                scene = Some((scene_index, value, interesting));
            }
            let Some((_, image, interesting)) = &scene else {
                continue;
            };
            writer.push(image.view()).map_err(to_io)?;
            let _ = writeln!(labels, "{index},{name}_{t}.png,{}", label_of(*interesting));
            index += 1;
        }
        writer.finish().map_err(to_io)?;
    }
    std::fs::write(out.join("labels.csv"), labels)?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_and_clips_hold_the_frames() {
        let dir = tempfile::tempdir().unwrap();
        let options = FrameOptions {
            count: 12,
            width: 32,
            height: 24,
            ..Default::default()
        };
        generate_frame_tree(dir.path(), &options).unwrap();
        let in_folder = |label: &str| std::fs::read_dir(dir.path().join("frames").join(label)).map_or(0, |d| d.count());
        assert_eq!(in_folder("interesting") + in_folder("not_interesting"), 12);
        let clips = ClipOptions {
            clips: 2,
            seconds: 1.0,
            fps: 5.0,
            scene_frames: 2,
        };
        assert_eq!(generate_clips(dir.path(), &options, &clips).unwrap(), 10);
        let labels = std::fs::read_to_string(dir.path().join("labels.csv")).unwrap();
        assert!(labels.contains("\n6,dive_1.mp4_1.png,"), "{labels}");
        let clip = std::fs::read(dir.path().join("dives/dive_0.mp4")).unwrap();
        assert_eq!(&clip[4..8], b"ftyp");
    }

    #[test]
    fn frames_are_reproducible_and_mixed() {
        let options = FrameOptions {
            count: 20,
            ..Default::default()
        };
        let (a, _) = frame(&options, 3);
        let (b, _) = frame(&options, 3);
        assert_eq!(a.as_raw(), b.as_raw());
        let interesting = (0..options.count).filter(|&i| frame(&options, i).1).count();
        assert!(interesting > 2 && interesting < 18, "{interesting} of 20 interesting");
    }
}
