//! A generated stand-in for deep-sea video frame triage: frames of dark,
//! noisy water with drifting "marine snow"; the interesting ones also show
//! one to three glowing animals (ellipses of a warm or pale colour). Written
//! as `frames/<index>.jpg` plus `labels.csv` (`index,filename,label`, label
//! `interesting` or `not_interesting`), the layout `sql/classify/` reads.
//! The same seed gives the same bytes.

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

/// Writes `frames/` and `labels.csv` under `out`; returns the number of frames.
pub fn generate_frames(out: &Path, options: &FrameOptions) -> std::io::Result<usize> {
    std::fs::create_dir_all(out.join("frames"))?;
    let mut labels = String::from("index,filename,label\n");
    for index in 0..options.count {
        let (image, interesting) = frame(options, index);
        let filename = format!("{index:04}.jpg");
        std::fs::write(out.join("frames").join(&filename), jpeg(&image)?)?;
        let label = if interesting { "interesting" } else { "not_interesting" };
        let _ = writeln!(labels, "{index},{filename},{label}");
    }
    std::fs::write(out.join("labels.csv"), labels)?;
    Ok(options.count)
}

#[cfg(test)]
mod tests {
    use super::*;

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
