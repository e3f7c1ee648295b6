//! Test images for the benchmarks.

use image::RgbImage;

/// Rock-and-surf-like texture: smooth gradients plus hashed noise, so JPEG
/// sizes are in the range of real aerial frames.
pub fn texture(width: u32, height: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let mut h = x.wrapping_mul(374_761_393) ^ y.wrapping_mul(668_265_263) ^ seed.wrapping_mul(2_246_822_519);
        h = (h ^ (h >> 13)).wrapping_mul(1_274_126_177);
        let noise = (h >> 24) as i32 - 128;
        let base = ((x / 7 + y / 5 + seed) % 96) as i32 + 60;
        let v = |o: i32| (base + o + noise / 3).clamp(0, 255) as u8;
        image::Rgb([v(10), v(20), v(0)])
    })
}
