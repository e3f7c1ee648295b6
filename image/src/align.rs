//! Finding the shift between two copies of one scene.
//!
//! Some annotated copies of the sea-lion set are not aligned with their
//! plain image (`MismatchedTrainImages.txt`): the dotted copy shows the same
//! scene moved by some pixels. [`find_offset`] finds that shift, so the dots
//! can still be read (against the plain image moved the same way) and put
//! back on the plain image.
//!
//! The search is coarse to fine over a pyramid of grey images (each level
//! the 2x2 mean of the one below): every shift within reach at the coarsest
//! level, then the best one doubled and refined by ±2 px at each finer
//! level. The cost of a shift is the mean absolute grey difference over the
//! overlap, leaving out pixels that are dark in either copy (the black
//! masks an annotator leaves, as `find_dots` does).

use crate::error::{ImageError, Result};
use crate::image_value::ImageView;
use crate::pixels;

/// The shift found: `moved(x, y)` shows `reference(x - dx, y - dy)`, and
/// `difference` is the mean absolute grey difference (0-255) of the
/// overlap at that shift, at full resolution: near 0 for two copies of one
/// scene, large when no shift makes them agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offset {
    pub dx: i32,
    pub dy: i32,
    pub difference: f64,
}

/// Pixels darker than this in either copy are left out of the cost.
const DARK: u8 = 20;
/// The coarsest level searches at most this many pixels each way.
const COARSE_REACH: i64 = 8;
/// No level is made smaller than this on its short side.
const MIN_LEVEL_SIDE: u32 = 32;
/// Refinement reach at each finer level, in that level's pixels.
const REFINE_REACH: i64 = 2;
/// Cost sums at the finer levels use about this many pixels (rows are
/// skipped evenly beyond it); the last difference uses every pixel.
const COST_SAMPLE: u64 = 2_000_000;
/// A shift must leave this share of the smaller level's pixels overlapping.
const MIN_OVERLAP: f64 = 0.25;

/// The largest shift either way a search may be asked for.
pub const MAX_SHIFT: u32 = 4096;

/// Bytes [`find_offset`] holds at its peak: the two grey pyramids (a byte a
/// pixel, each level a quarter of the one below).
pub fn working_bytes(width: u32, height: u32) -> u64 {
    2 * (width as u64 * height as u64) * 4 / 3 + 2 * 1024
}

/// One grey level: `width` x `height` bytes, row by row.
struct Grey {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Grey {
    fn from_view(view: ImageView<'_>) -> Self {
        let grey = pixels::grey(view);
        Self {
            width: grey.width,
            height: grey.height,
            data: grey.data,
        }
    }

    /// The next level up: each pixel the mean of a 2x2 block (an odd last
    /// row or column is dropped).
    fn halved(&self) -> Self {
        let (w, h) = (self.width / 2, self.height / 2);
        let stride = self.width as usize;
        let mut data = Vec::with_capacity(w as usize * h as usize);
        for y in 0..h as usize {
            let top = &self.data[2 * y * stride..];
            let bottom = &self.data[(2 * y + 1) * stride..];
            for x in 0..w as usize {
                let sum = top[2 * x] as u32 + top[2 * x + 1] as u32 + bottom[2 * x] as u32 + bottom[2 * x + 1] as u32;
                data.push(((sum + 2) / 4) as u8);
            }
        }
        Self {
            width: w,
            height: h,
            data,
        }
    }
}

/// Mean absolute difference of `moved(x, y)` and `reference(x - dx, y - dy)`
/// over their overlap, every `row_step`-th row, without dark pixels; `None`
/// when too little overlaps to judge.
fn cost(moved: &Grey, reference: &Grey, dx: i64, dy: i64, row_step: usize) -> Option<f64> {
    let (w, h) = (moved.width as i64, moved.height as i64);
    let (x0, x1) = (dx.max(0), (w + dx).min(w));
    let (y0, y1) = (dy.max(0), (h + dy).min(h));
    if x1 <= x0 || y1 <= y0 || (((x1 - x0) * (y1 - y0)) as f64) < MIN_OVERLAP * (w * h) as f64 {
        return None;
    }
    let (mut sum, mut count) = (0u64, 0u64);
    for y in (y0..y1).step_by(row_step.max(1)) {
        let m = &moved.data[(y * w + x0) as usize..(y * w + x1) as usize];
        let r = &reference.data[((y - dy) * w + x0 - dx) as usize..((y - dy) * w + x1 - dx) as usize];
        for (&a, &b) in m.iter().zip(r) {
            if a >= DARK && b >= DARK {
                sum += a.abs_diff(b) as u64;
                count += 1;
            }
        }
    }
    (count > 0).then(|| sum as f64 / count as f64)
}

/// The best shift within `centre ± reach` (each way, capped at `limit`) at
/// one level; ties go to the first in row order, so the result does not
/// depend on anything but the pixels.
fn best_shift(
    moved: &Grey,
    reference: &Grey,
    centre: (i64, i64),
    reach: i64,
    limit: i64,
    row_step: usize,
) -> Option<(i64, i64, f64)> {
    let mut best: Option<(i64, i64, f64)> = None;
    for dy in (centre.1 - reach).max(-limit)..=(centre.1 + reach).min(limit) {
        for dx in (centre.0 - reach).max(-limit)..=(centre.0 + reach).min(limit) {
            if let Some(c) = cost(moved, reference, dx, dy, row_step) {
                if best.is_none_or(|(_, _, b)| c < b) {
                    best = Some((dx, dy, c));
                }
            }
        }
    }
    best
}

/// Finds the shift of `moved` against `reference` (two images of the same
/// size) within `max_shift` pixels each way.
pub fn find_offset(moved: ImageView<'_>, reference: ImageView<'_>, max_shift: u32) -> Result<Offset> {
    if (moved.width, moved.height) != (reference.width, reference.height) {
        return Err(ImageError::InvalidValue(format!(
            "the images differ in size: {}x{} and {}x{}",
            moved.width, moved.height, reference.width, reference.height
        )));
    }
    if max_shift > MAX_SHIFT {
        return Err(ImageError::InvalidValue(format!(
            "max_shift must be 0 to {MAX_SHIFT} pixels, not {max_shift}"
        )));
    }
    let mut levels = vec![(Grey::from_view(moved), Grey::from_view(reference))];
    loop {
        let (m, r) = &levels[levels.len() - 1];
        let scale = 1i64 << (levels.len() - 1);
        let reach = (max_shift as i64 + scale - 1) / scale;
        if reach <= COARSE_REACH || m.width / 2 < MIN_LEVEL_SIDE || m.height / 2 < MIN_LEVEL_SIDE {
            break;
        }
        let next = (m.halved(), r.halved());
        levels.push(next);
    }
    let top = levels.len() - 1;
    // The best (dx, dy, cost) at the level just searched; each finer level
    // searches around its shift doubled.
    let mut best = (0i64, 0i64, f64::NAN);
    for (level, (m, r)) in levels.iter().enumerate().rev() {
        let limit = (max_shift as i64 + (1 << level) - 1) >> level;
        let (centre, reach) = if level == top {
            ((0, 0), limit)
        } else {
            ((2 * best.0, 2 * best.1), REFINE_REACH)
        };
        let pixels = m.width as u64 * m.height as u64;
        let row_step = if level == 0 {
            1
        } else {
            pixels.div_ceil(COST_SAMPLE).max(1) as usize
        };
        best = best_shift(m, r, centre, reach, limit, row_step).ok_or_else(|| {
            ImageError::InvalidValue(format!(
                "the {}x{} images have no shift within {max_shift} px that leaves enough of them to compare",
                moved.width, moved.height
            ))
        })?;
    }
    Ok(Offset {
        dx: best.0 as i32,
        dy: best.1 as i32,
        difference: best.2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_value::Image;
    use crate::rng::Rng;

    /// A textured scene: smooth blobs of tone plus fine noise, like rock.
    fn scene(w: u32, h: u32, seed: u64) -> Image {
        let mut rng = Rng::new(seed);
        let blobs: Vec<(f64, f64, f64, f64)> = (0..40)
            .map(|_| {
                (
                    rng.range(0.0, w as f64),
                    rng.range(0.0, h as f64),
                    rng.range(8.0, 40.0),
                    rng.range(-60.0, 60.0),
                )
            })
            .collect();
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let mut v = 120.0 + rng.range(-10.0, 10.0);
                for &(bx, by, r, tone) in &blobs {
                    let d2 = (x as f64 - bx).powi(2) + (y as f64 - by).powi(2);
                    v += tone * (-d2 / (2.0 * r * r)).exp();
                }
                let v = v.clamp(30.0, 250.0) as u8;
                data.extend_from_slice(&[v, v.saturating_sub(10), v.saturating_sub(20)]);
            }
        }
        Image::new(w, h, 3, data).unwrap()
    }

    /// `src` moved by (dx, dy), edges repeated (as the generator makes a
    /// mismatched copy).
    fn shifted(src: &Image, dx: i64, dy: i64) -> Image {
        let (w, h) = (src.width as i64, src.height as i64);
        let mut data = Vec::with_capacity(src.data.len());
        for y in 0..h {
            for x in 0..w {
                let sx = (x - dx).clamp(0, w - 1) as u32;
                let sy = (y - dy).clamp(0, h - 1) as u32;
                data.extend_from_slice(src.view().pixel(sx, sy));
            }
        }
        Image::new(src.width, src.height, 3, data).unwrap()
    }

    #[test]
    fn finds_shifts_in_every_direction() {
        let plain = scene(320, 240, 7);
        for (dx, dy) in [(0, 0), (17, -23), (-38, 31), (40, 40), (-5, 0)] {
            let moved = shifted(&plain, dx, dy);
            let offset = find_offset(moved.view(), plain.view(), 64).unwrap();
            assert_eq!((offset.dx, offset.dy), (dx as i32, dy as i32), "{offset:?}");
            assert!(offset.difference < 0.5, "{offset:?}");
        }
    }

    #[test]
    fn ignores_black_masks_and_reports_unrelated_images() {
        let plain = scene(320, 240, 8);
        let mut moved = shifted(&plain, -21, 12);
        // A black masked corner, as annotators leave.
        for y in 0..80 {
            for x in 0..100 {
                let i = (y * 320 + x) * 3;
                moved.data[i..i + 3].copy_from_slice(&[0, 0, 0]);
            }
        }
        let offset = find_offset(moved.view(), plain.view(), 64).unwrap();
        assert_eq!((offset.dx, offset.dy), (-21, 12));
        assert!(offset.difference < 0.5, "{offset:?}");
        let other = scene(320, 240, 9);
        let unrelated = find_offset(other.view(), plain.view(), 64).unwrap();
        assert!(unrelated.difference > 5.0, "{unrelated:?}");
    }

    #[test]
    fn refuses_other_sizes_and_huge_shifts() {
        let (a, b) = (scene(64, 48, 1), scene(48, 64, 1));
        let err = find_offset(a.view(), b.view(), 8).unwrap_err();
        assert!(err.to_string().contains("64x48 and 48x64"), "{err}");
        let err = find_offset(a.view(), a.view(), 5000).unwrap_err();
        assert!(err.to_string().contains("not 5000"), "{err}");
    }

    #[test]
    fn small_images_with_a_reach_past_their_size_still_answer() {
        let plain = scene(40, 40, 3);
        let moved = shifted(&plain, 3, -2);
        let offset = find_offset(moved.view(), plain.view(), 200).unwrap();
        assert_eq!((offset.dx, offset.dy), (3, -2));
    }
}
