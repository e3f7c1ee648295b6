//! Finding the coloured dots on an annotated copy of an image.
//!
//! The method of the public sea-lion kernels (see `shared/docs/sealions.md`):
//! 1. difference = |dotted - plain| per channel, zero where either image's
//!    grey is below 20 (the black masked regions of the dotted copy; the
//!    mask is widened by 2 px so JPEG ringing along its edge is ignored);
//! 2. grey of the difference, on a 0..1 scale;
//! 3. Laplacian-of-Gaussian blob detection at sigma 3 (the kernels'
//!    `blob_log(min_sigma=3, max_sigma=4, num_sigma=1)` uses that one
//!    scale), threshold 0.02, on scale-normalised responses;
//! 4. the class from the dotted image's colour at each blob centre.
//!
//! Outside the dots the two JPEG copies are mostly identical, so the LoG is
//! computed only in 32x32 cells where the difference is large enough to
//! matter; that is what makes a 4992x3328 pair take well under a second.

use crate::error::{ImageError, Result};
use crate::image_value::ImageView;

/// The five sea-lion classes, in `train.csv` column order, with the mean
/// RGB of their dots.
pub const CLASSES: [(&str, [u8; 3]); 5] = [
    ("adult_males", [243, 8, 5]),
    ("subadult_males", [244, 8, 242]),
    ("adult_females", [87, 46, 10]),
    ("juveniles", [25, 56, 176]),
    ("pups", [38, 174, 21]),
];

/// Index into [`CLASSES`] of a class name.
pub fn class_index(name: &str) -> Option<usize> {
    CLASSES.iter().position(|(n, _)| *n == name)
}

/// The class of a dot colour, by the rules of sealions.md, in their order.
pub fn classify_colour(r: u8, g: u8, b: u8) -> Option<usize> {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    if r > 200 && g < 50 && b < 50 {
        Some(0) // red: adult male
    } else if r > 200 && g < 50 && b > 200 {
        Some(1) // magenta: subadult male
    } else if r < 100 && g > 150 && g < 200 && b < 100 {
        Some(4) // green: pup
    } else if r < 100 && g < 100 && b > 100 {
        Some(3) // blue: juvenile
    } else if r < 150 && g < 100 && b < 50 {
        Some(2) // brown: adult female
    } else {
        None
    }
}

/// Settings of the detector; the defaults are those of sealions.md.
#[derive(Debug, Clone, PartialEq)]
pub struct DotParams {
    pub sigmas: Vec<f32>,
    /// Minimum scale-normalised LoG response, on a 0..1 grey scale.
    pub threshold: f32,
    /// Pixels whose grey is below this in either image are masked.
    pub mask_below: u8,
}

impl Default for DotParams {
    fn default() -> Self {
        Self {
            sigmas: vec![3.0],
            threshold: 0.02,
            mask_below: 20,
        }
    }
}

/// One detected dot: its centre and class (index into [`CLASSES`]), `None`
/// when its colour fits no class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dot {
    pub x: u32,
    pub y: u32,
    pub class: Option<usize>,
}

const CELL: usize = 32;
/// Blobs closer than this are one dot (the weaker is dropped).
const MIN_DOT_DISTANCE: f32 = 6.0;

/// Bytes of the frame-sized buffers [`find_dots`] holds at its peak (the
/// difference, the dark mask and its two widening passes, a byte a pixel
/// each); the per-cell windows it blurs are small beside them.
pub fn working_bytes(width: u32, height: u32) -> u64 {
    4 * width as u64 * height as u64
}

/// Finds the dots of `dotted` against `plain`. Both must have the same size
/// and 3 or 4 channels.
pub fn find_dots(dotted: ImageView<'_>, plain: ImageView<'_>, params: &DotParams) -> Result<Vec<Dot>> {
    if (dotted.width, dotted.height) != (plain.width, plain.height) {
        return Err(ImageError::InvalidValue(format!(
            "dotted image is {}x{} but plain image is {}x{}",
            dotted.width, dotted.height, plain.width, plain.height
        )));
    }
    for (which, view) in [("dotted", dotted), ("plain", plain)] {
        if view.channels < 3 {
            return Err(ImageError::InvalidValue(format!(
                "{which} image has {} channel(s); dots need colour (3 or 4)",
                view.channels
            )));
        }
    }
    let (w, h) = (dotted.width as usize, dotted.height as usize);
    if w == 0 || h == 0 {
        return Ok(Vec::new());
    }
    let diff = masked_difference(dotted, plain, params.mask_below);
    let max_sigma = params.sigmas.iter().copied().fold(0.0f32, f32::max);
    let radius = (4.0 * max_sigma).ceil() as usize;
    // Cells whose difference could reach the threshold: a disc of contrast A
    // answers about 0.5 A at these scales, so A must be above 2 x threshold.
    let min_contrast = (params.threshold * 2.0 * 255.0 * 0.75) as u8;

    let mut blobs: Vec<(f32, u32, u32)> = Vec::new();
    for cy in (0..h).step_by(CELL) {
        for cx in (0..w).step_by(CELL) {
            let (x1, y1) = ((cx + CELL).min(w), (cy + CELL).min(h));
            let busy = (cy..y1).any(|y| diff[y * w + cx..y * w + x1].iter().any(|&v| v > min_contrast));
            if busy {
                log_cell(&diff, w, h, (cx, cy, x1, y1), radius, params, &mut blobs);
            }
        }
    }
    // Strongest first; drop blobs too close to a stronger one.
    blobs.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut kept: Vec<(u32, u32)> = Vec::new();
    for &(_, x, y) in &blobs {
        let near = kept.iter().any(|&(kx, ky)| {
            let (dx, dy) = (kx as f32 - x as f32, ky as f32 - y as f32);
            dx * dx + dy * dy < MIN_DOT_DISTANCE * MIN_DOT_DISTANCE
        });
        if !near {
            kept.push((x, y));
        }
    }
    kept.sort_by_key(|&(x, y)| (y, x));
    Ok(kept
        .into_iter()
        .map(|(x, y)| {
            let [r, g, b] = mean_colour(dotted, x, y);
            Dot {
                x,
                y,
                class: classify_colour(r, g, b),
            }
        })
        .collect())
}

/// BT.601 grey (0.299 R + 0.587 G + 0.114 B), the weights of the public
/// kernels' mask and difference.
fn grey601(r: u8, g: u8, b: u8) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

/// Grey of |dotted - plain| as 0..255, zero in (and 2 px around) pixels
/// that are dark in either image.
fn masked_difference(dotted: ImageView<'_>, plain: ImageView<'_>, mask_below: u8) -> Vec<u8> {
    let (w, h) = (dotted.width as usize, dotted.height as usize);
    let (cd, cp) = (dotted.channels as usize, plain.channels as usize);
    let mut diff = vec![0u8; w * h];
    let mut dark = vec![false; w * h];
    for i in 0..w * h {
        let d = &dotted.data[i * cd..i * cd + 3];
        let p = &plain.data[i * cp..i * cp + 3];
        dark[i] = grey601(d[0], d[1], d[2]) < mask_below || grey601(p[0], p[1], p[2]) < mask_below;
        diff[i] = grey601(d[0].abs_diff(p[0]), d[1].abs_diff(p[1]), d[2].abs_diff(p[2]));
    }
    // Widen the mask by 2 px (a 5x5 max filter, done as two 1-D passes).
    let widen = |src: &[bool], horizontal: bool| -> Vec<bool> {
        let mut out = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let (lo, hi) = if horizontal {
                    (x.saturating_sub(2), (x + 2).min(w - 1))
                } else {
                    (y.saturating_sub(2), (y + 2).min(h - 1))
                };
                out[y * w + x] = (lo..=hi).any(|k| if horizontal { src[y * w + k] } else { src[k * w + x] });
            }
        }
        out
    };
    let any_dark = dark.iter().any(|&d| d);
    if any_dark {
        let dark = widen(&widen(&dark, true), false);
        for (v, masked) in diff.iter_mut().zip(dark) {
            if masked {
                *v = 0;
            }
        }
    }
    diff
}

fn gaussian_kernel(sigma: f32, radius: usize) -> Vec<f32> {
    let mut kernel: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let d = i as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    kernel
}

/// LoG maxima of one cell: computed on the cell plus a margin, with zero
/// outside the image (as `scipy.ndimage` with `mode='constant'`), maxima
/// kept only inside the cell so neighbouring cells never report one twice.
fn log_cell(
    diff: &[u8],
    w: usize,
    h: usize,
    (cx0, cy0, cx1, cy1): (usize, usize, usize, usize),
    radius: usize,
    params: &DotParams,
    blobs: &mut Vec<(f32, u32, u32)>,
) {
    let margin = radius + 2;
    let (wx0, wy0) = (cx0 as i64 - margin as i64, cy0 as i64 - margin as i64);
    let (ww, wh) = (cx1 - cx0 + 2 * margin, cy1 - cy0 + 2 * margin);
    let mut window = vec![0f32; ww * wh];
    for y in 0..wh {
        let sy = wy0 + y as i64;
        if sy < 0 || sy >= h as i64 {
            continue;
        }
        for x in 0..ww {
            let sx = wx0 + x as i64;
            if sx >= 0 && sx < w as i64 {
                window[y * ww + x] = diff[sy as usize * w + sx as usize] as f32 / 255.0;
            }
        }
    }
    // Scale-normalised -LoG per sigma, on the window minus a 1 px border.
    let responses: Vec<Vec<f32>> = params
        .sigmas
        .iter()
        .map(|&sigma| {
            let kernel = gaussian_kernel(sigma, (4.0 * sigma).ceil() as usize);
            let blurred = blur(&window, ww, wh, &kernel);
            let mut response = vec![0f32; ww * wh];
            for y in 1..wh - 1 {
                for x in 1..ww - 1 {
                    let i = y * ww + x;
                    let lap = blurred[i - 1] + blurred[i + 1] + blurred[i - ww] + blurred[i + ww] - 4.0 * blurred[i];
                    response[i] = -lap * sigma * sigma;
                }
            }
            response
        })
        .collect();
    let scales = responses.len();
    for y in cy0..cy1 {
        let wy = (y as i64 - wy0) as usize;
        for x in cx0..cx1 {
            let wx = (x as i64 - wx0) as usize;
            let i = wy * ww + wx;
            for s in 0..scales {
                let value = responses[s][i];
                if value <= params.threshold {
                    continue;
                }
                let is_max = (s.saturating_sub(1)..(s + 2).min(scales)).all(|t| {
                    [
                        i - ww - 1,
                        i - ww,
                        i - ww + 1,
                        i - 1,
                        i,
                        i + 1,
                        i + ww - 1,
                        i + ww,
                        i + ww + 1,
                    ]
                    .iter()
                    .all(|&j| responses[t][j] <= value)
                });
                if is_max {
                    blobs.push((value, x as u32, y as u32));
                }
            }
        }
    }
}

/// Separable Gaussian blur with zero outside the window.
fn blur(src: &[f32], w: usize, h: usize, kernel: &[f32]) -> Vec<f32> {
    let r = kernel.len() / 2;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = 0.0;
            let k0 = r.saturating_sub(x);
            let k1 = (kernel.len()).min(w + r - x);
            for k in k0..k1 {
                acc += kernel[k] * row[x + k - r];
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let k0 = r.saturating_sub(y);
        let k1 = (kernel.len()).min(h + r - y);
        for (k, &weight) in kernel.iter().enumerate().take(k1).skip(k0) {
            let sy = y + k - r;
            let src_row = &tmp[sy * w..(sy + 1) * w];
            let out_row = &mut out[y * w..(y + 1) * w];
            for (o, s) in out_row.iter_mut().zip(src_row) {
                *o += weight * s;
            }
        }
    }
    out
}

/// Mean colour of the 3x3 pixels around (x, y), inside the image.
fn mean_colour(view: ImageView<'_>, x: u32, y: u32) -> [u8; 3] {
    let mut sum = [0u32; 3];
    let mut n = 0;
    for py in y.saturating_sub(1)..=(y + 1).min(view.height - 1) {
        for px in x.saturating_sub(1)..=(x + 1).min(view.width - 1) {
            let p = view.pixel(px, py);
            for c in 0..3 {
                sum[c] += p[c] as u32;
            }
            n += 1;
        }
    }
    sum.map(|s| ((s + n / 2) / n) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_value::Image;
    use crate::pixels::fill_disc;

    fn textured(w: u32, h: u32) -> Image {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = (90 + (x * 7 + y * 13) % 40) as u8;
                data.extend_from_slice(&[v, v, v.saturating_sub(10)]);
            }
        }
        Image::new(w, h, 3, data).unwrap()
    }

    #[test]
    fn colour_rules() {
        for (i, (_, rgb)) in CLASSES.iter().enumerate() {
            assert_eq!(classify_colour(rgb[0], rgb[1], rgb[2]), Some(i), "{rgb:?}");
        }
        assert_eq!(classify_colour(128, 128, 128), None);
        assert_eq!(classify_colour(255, 255, 0), None);
    }

    #[test]
    fn finds_each_dot_with_its_class() {
        let plain = textured(200, 120);
        let mut dotted = plain.clone();
        let truth = [
            (20u32, 30u32, 0usize),
            (60, 31, 1),
            (100, 80, 2),
            (150, 20, 3),
            (180, 100, 4),
            (40, 100, 2),
        ];
        for &(x, y, class) in &truth {
            let [r, g, b] = CLASSES[class].1;
            fill_disc(&mut dotted, x as f64, y as f64, 3.5, [r, g, b, 255]);
        }
        // An off-colour dot: found, with no class.
        fill_disc(&mut dotted, 120.0, 40.0, 3.5, [255, 255, 0, 255]);
        let dots = find_dots(dotted.view(), plain.view(), &DotParams::default()).unwrap();
        assert_eq!(dots.len(), truth.len() + 1, "{dots:?}");
        for &(x, y, class) in &truth {
            let dot = dots
                .iter()
                .find(|d| (d.x as i64 - x as i64).abs() <= 1 && (d.y as i64 - y as i64).abs() <= 1)
                .unwrap_or_else(|| panic!("no dot near ({x}, {y}): {dots:?}"));
            assert_eq!(dot.class, Some(class));
        }
        assert!(dots.iter().any(|d| d.class.is_none() && d.x.abs_diff(120) <= 1));
    }

    #[test]
    fn masked_regions_are_ignored() {
        let plain = textured(100, 100);
        let mut dotted = plain.clone();
        // A black mask in the dotted copy, and a dot inside it.
        for y in 10..60 {
            for x in 10..60 {
                let i = (y * 100 + x) * 3;
                dotted.data[i..i + 3].copy_from_slice(&[0, 0, 0]);
            }
        }
        fill_disc(&mut dotted, 80.0, 80.0, 3.5, [243, 8, 5, 255]);
        let dots = find_dots(dotted.view(), plain.view(), &DotParams::default()).unwrap();
        assert_eq!(dots.len(), 1, "{dots:?}");
        assert_eq!((dots[0].x, dots[0].y, dots[0].class), (80, 80, Some(0)));
    }

    #[test]
    fn sizes_must_match() {
        let a = textured(10, 10);
        let b = textured(12, 10);
        let err = find_dots(a.view(), b.view(), &DotParams::default()).unwrap_err();
        assert!(
            err.to_string().contains("10x10") && err.to_string().contains("12x10"),
            "{err}"
        );
    }
}
