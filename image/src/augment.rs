//! Augmentation as plain functions over pixel buffers: rotation by any
//! angle, a seeded random window, colour jitter and Gaussian noise. Every
//! random choice comes from [`Rng`] with the caller's seed, so the same
//! seed gives the same pixels on any machine.

use crate::image_value::{Image, ImageView};
use crate::pixels::crop;
use crate::rng::Rng;

/// Rotates clockwise by `degrees` about the image's centre, keeping its
/// size; each output pixel samples the source bilinearly, and what falls
/// outside the source is `fill` (alpha included).
pub fn rotate(src: ImageView<'_>, degrees: f64, fill: u8) -> Image {
    let c = src.channels as usize;
    let (w, h) = (src.width as usize, src.height as usize);
    let mut data = vec![fill; src.data.len()];
    let (sin, cos) = degrees.to_radians().sin_cos();
    // Snap to exact quarter turns, where floating point would blur.
    let snap = |v: f64| if (v - v.round()).abs() < 1e-12 { v.round() } else { v };
    let (sin, cos) = (snap(sin), snap(cos));
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let stride = w * c;
    for y in 0..h {
        let dy = y as f64 - cy;
        for x in 0..w {
            let dx = x as f64 - cx;
            // The inverse rotation: where this pixel comes from.
            let sx = cx + dx * cos + dy * sin;
            let sy = cy - dx * sin + dy * cos;
            let out = &mut data[y * stride + x * c..][..c];
            bilinear(src, sx, sy, fill, out);
        }
    }
    Image {
        data,
        ..src.to_owned_header()
    }
}

/// Samples `src` at (`sx`, `sy`) into `out`; neighbours outside are `fill`.
fn bilinear(src: ImageView<'_>, sx: f64, sy: f64, fill: u8, out: &mut [u8]) {
    let (w, h) = (src.width as i64, src.height as i64);
    if sx <= -1.0 || sy <= -1.0 || sx >= w as f64 || sy >= h as f64 {
        return;
    }
    let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
    let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
    let c = src.channels as usize;
    let sample = |x: i64, y: i64, k: usize| -> f64 {
        if x < 0 || y < 0 || x >= w || y >= h {
            fill as f64
        } else {
            src.data[(y as usize * w as usize + x as usize) * c + k] as f64
        }
    };
    for (k, value) in out.iter_mut().enumerate() {
        let top = sample(x0, y0, k) * (1.0 - fx) + sample(x0 + 1, y0, k) * fx;
        let bottom = sample(x0, y0 + 1, k) * (1.0 - fx) + sample(x0 + 1, y0 + 1, k) * fx;
        *value = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
}

/// A `w` x `h` window at a position drawn from `seed`: inside the image
/// when it fits, otherwise covering it with zero padding around.
pub fn random_crop(src: ImageView<'_>, w: u32, h: u32, seed: u64) -> Image {
    let mut rng = Rng::derive(seed, 0x63726f70, 0);
    let mut start = |extent: u32, size: u32| -> i64 {
        let slack = extent as i64 - size as i64;
        let offset = rng.below(slack.unsigned_abs() as usize + 1) as i64;
        if slack >= 0 {
            offset
        } else {
            -offset
        }
    };
    let x = start(src.width, w);
    let y = start(src.height, h);
    crop(src, x, y, w, h)
}

/// Colour jitter with torchvision's factors (1 leaves the image as it is):
/// `brightness` scales every sample, `contrast` moves samples away from
/// (above 1) or towards (below 1) the image's mean grey, `saturation` away
/// from or towards each pixel's own grey (colour images only). Alpha is
/// kept.
pub fn adjust(src: ImageView<'_>, brightness: f64, contrast: f64, saturation: f64) -> Image {
    let c = src.channels as usize;
    let colour = c >= 3;
    let grey_of = |p: &[u8]| -> f64 {
        if colour {
            0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
        } else {
            p[0] as f64
        }
    };
    let pixels = src.data.len() / c.max(1);
    let mean = if pixels == 0 {
        0.0
    } else {
        src.data.chunks_exact(c).map(grey_of).sum::<f64>() * brightness / pixels as f64
    };
    let mut data = src.data.to_vec();
    for pixel in data.chunks_exact_mut(c) {
        let mut rgb = [0.0f64; 3];
        let n = if colour { 3 } else { 1 };
        for k in 0..n {
            rgb[k] = pixel[k] as f64 * brightness;
        }
        if colour {
            let grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
            for v in rgb.iter_mut() {
                *v = grey + (*v - grey) * saturation;
            }
        }
        for k in 0..n {
            let v = mean + (rgb[k] - mean) * contrast;
            pixel[k] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Image {
        data,
        ..src.to_owned_header()
    }
}

/// Adds Gaussian noise of standard deviation `sigma` (in 0..255 sample
/// units) to every colour sample, drawn from `seed`; alpha is kept.
pub fn noise(src: ImageView<'_>, sigma: f64, seed: u64) -> Image {
    let c = src.channels as usize;
    let colour_samples = if c == 4 { 3 } else { c };
    let mut rng = Rng::derive(seed, 0x6e6f697365, 0);
    let mut data = src.data.to_vec();
    if sigma > 0.0 {
        let mut spare: Option<f64> = None;
        let mut next = || match spare.take() {
            Some(z) => z,
            None => {
                let (a, b) = rng.normal_pair();
                spare = Some(b);
                a
            }
        };
        for pixel in data.chunks_exact_mut(c) {
            for v in pixel[..colour_samples].iter_mut() {
                *v = (*v as f64 + next() * sigma).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Image {
        data,
        ..src.to_owned_header()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::rotate90;

    fn gradient(w: u32, h: u32, c: u8) -> Image {
        let data = (0..w * h * c as u32).map(|i| (i * 7 % 251) as u8).collect();
        Image::new(w, h, c, data).unwrap()
    }

    #[test]
    fn whole_turns_are_exact_and_quarter_turns_match_rotate90() {
        let square = gradient(5, 5, 3);
        assert_eq!(rotate(square.view(), 0.0, 0), square);
        assert_eq!(rotate(square.view(), 360.0, 0), square);
        assert_eq!(rotate(square.view(), 90.0, 0), rotate90(square.view(), 1));
        assert_eq!(rotate(square.view(), -90.0, 0), rotate90(square.view(), -1));
        assert_eq!(rotate(square.view(), 180.0, 0), rotate90(square.view(), 2));
    }

    #[test]
    fn rotation_keeps_the_size_and_fills_the_corners() {
        let image = Image::new(8, 8, 1, vec![200; 64]).unwrap();
        let turned = rotate(image.view(), 45.0, 7);
        assert_eq!((turned.width, turned.height, turned.channels), (8, 8, 1));
        assert_eq!(turned.data[0], 7, "a corner comes from outside");
        assert_eq!(turned.data[4 * 8 + 4], 200, "the centre stays");
        let wide = Image::new(8, 4, 3, vec![200; 96]).unwrap();
        assert_eq!(
            (rotate(wide.view(), 30.0, 0).width, rotate(wide.view(), 30.0, 0).height),
            (8, 4)
        );
        // Extreme and fractional angles are fine.
        let _ = rotate(image.view(), 1e300, 0);
        let _ = rotate(image.view(), 0.5, 0);
    }

    #[test]
    fn random_crops_are_seeded_and_inside_when_they_fit() {
        let image = gradient(20, 10, 3);
        let a = random_crop(image.view(), 8, 8, 42);
        assert_eq!(a, random_crop(image.view(), 8, 8, 42));
        assert_eq!((a.width, a.height), (8, 8));
        let origins: std::collections::HashSet<Vec<u8>> =
            (0..20).map(|seed| random_crop(image.view(), 8, 8, seed).data).collect();
        assert!(origins.len() > 3, "seeds move the window");
        // Every crop that fits is a window of the image, with no padding.
        for seed in 0..20 {
            let crop = random_crop(image.view(), 20, 10, seed);
            assert_eq!(crop, image);
        }
        // Larger than the image: the image lies inside, zero around.
        let big = random_crop(image.view(), 30, 10, 3);
        assert_eq!(
            big.data.iter().filter(|&&v| v != 0).count(),
            image.data.iter().filter(|&&v| v != 0).count()
        );
    }

    #[test]
    fn neutral_adjustments_change_nothing() {
        let image = gradient(6, 4, 4);
        assert_eq!(adjust(image.view(), 1.0, 1.0, 1.0), image);
        let grey = gradient(6, 4, 1);
        assert_eq!(adjust(grey.view(), 1.0, 1.0, 0.0), grey, "saturation leaves grey alone");
    }

    #[test]
    fn adjustments_do_what_they_say() {
        let image = Image::new(2, 1, 4, vec![100, 50, 10, 9, 200, 150, 110, 9]).unwrap();
        let dark = adjust(image.view(), 0.5, 1.0, 1.0);
        assert_eq!(&dark.data[..4], &[50, 25, 5, 9], "alpha kept");
        let flat = adjust(image.view(), 1.0, 0.0, 1.0);
        assert_eq!(flat.data[0], flat.data[4], "no contrast: every pixel the mean");
        let grey = adjust(image.view(), 1.0, 1.0, 0.0);
        assert_eq!(grey.data[0], grey.data[1]);
        let bright = adjust(image.view(), 10.0, 1.0, 1.0);
        assert_eq!(bright.data[0], 255, "clamped");
    }

    #[test]
    fn noise_is_seeded_and_spares_alpha() {
        let image = Image::new(16, 16, 4, vec![128; 16 * 16 * 4]).unwrap();
        let a = noise(image.view(), 10.0, 1);
        assert_eq!(a, noise(image.view(), 10.0, 1));
        assert_ne!(a, noise(image.view(), 10.0, 2));
        assert!(a.data.chunks_exact(4).all(|p| p[3] == 128));
        let spread = a
            .data
            .chunks_exact(4)
            .map(|p| (p[0] as f64 - 128.0).powi(2))
            .sum::<f64>()
            / 256.0;
        assert!((50.0..200.0).contains(&spread), "variance {spread} near 100");
        assert_eq!(noise(image.view(), 0.0, 1), image);
    }
}
