//! Image operations as plain functions over pixel buffers.
//!
//! Windows that reach outside the image are padded with zeros (black, and
//! transparent for RGBA), so a crop or tile always has the size asked for.

use crate::codec::{from_dynamic, to_dynamic};
use crate::error::{ImageError, Result};
use crate::image_value::{Image, ImageView};

/// A `w` x `h` window whose top-left corner is at (`x`, `y`); pixels outside
/// the source are zero.
pub fn crop(src: ImageView<'_>, x: i64, y: i64, w: u32, h: u32) -> Image {
    let c = src.channels as usize;
    let mut data = vec![0u8; w as usize * h as usize * c];
    let row_bytes = w as usize * c;
    // Columns of the window that fall inside the source; saturating, so
    // windows far outside (any i64) are empty rather than an overflow.
    let x0 = x.max(0);
    let x1 = x.saturating_add(w as i64).min(src.width as i64);
    if x1 > x0 {
        // x1 > x0 >= 0 means x > -w, so x0 - x lies in 0..w.
        let copy = (x1 - x0) as usize * c;
        let dst_offset = (x0 - x) as usize * c;
        for row in 0..h as i64 {
            let sy = y.saturating_add(row);
            if sy < 0 || sy >= src.height as i64 {
                continue;
            }
            let src_start = sy as usize * src.stride() + x0 as usize * c;
            let dst_start = row as usize * row_bytes + dst_offset;
            data[dst_start..dst_start + copy].copy_from_slice(&src.data[src_start..src_start + copy]);
        }
    }
    Image {
        width: w,
        height: h,
        channels: src.channels,
        data,
    }
}

/// A `size` x `size` window centred on (`cx`, `cy`): the centre pixel is at
/// (`size / 2`, `size / 2`) of the result.
pub fn thumbnail(src: ImageView<'_>, cx: i64, cy: i64, size: u32) -> Image {
    let half = size as i64 / 2;
    crop(src, cx.saturating_sub(half), cy.saturating_sub(half), size, size)
}

/// Rec. 709 luma, as the `image` crate and scikit-image compute grey.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((2126 * r as u32 + 7152 * g as u32 + 722 * b as u32 + 5000) / 10000) as u8
}

/// One grey channel (alpha is dropped; grey stays as it is).
pub fn grey(src: ImageView<'_>) -> Image {
    let data = match src.channels {
        1 => src.data.to_vec(),
        c => src
            .data
            .chunks_exact(c as usize)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
    };
    Image {
        width: src.width,
        height: src.height,
        channels: 1,
        data,
    }
}

/// Three channels: grey is repeated, alpha is dropped, RGB stays as it is.
pub fn to_rgb(src: ImageView<'_>) -> Image {
    let data = match src.channels {
        3 => src.data.to_vec(),
        1 => src.data.iter().flat_map(|&v| [v, v, v]).collect(),
        c => src
            .data
            .chunks_exact(c as usize)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
    };
    Image {
        width: src.width,
        height: src.height,
        channels: 3,
        data,
    }
}

/// `src` as `channels` channels (1: grey, 3: RGB) at `width` x `height`,
/// converting and resizing (bilinear) only what differs: the input a
/// model of that shape takes.
pub fn conform(src: ImageView<'_>, width: u32, height: u32, channels: u8) -> Result<Image> {
    let converted = match (src.channels, channels) {
        (c, want) if c == want => src.to_owned_image(),
        (_, 1) => grey(src),
        (_, 3) => to_rgb(src),
        (_, other) => {
            return Err(ImageError::Unsupported(format!(
                "cannot make an image of {other} channels"
            )))
        }
    };
    if (converted.width, converted.height) == (width, height) {
        return Ok(converted);
    }
    resize(converted.view(), width, height)
}

/// Mirror left to right.
pub fn flip_horizontal(src: ImageView<'_>) -> Image {
    let c = src.channels as usize;
    let mut data = Vec::with_capacity(src.data.len());
    for row in src.data.chunks_exact(src.stride().max(1)) {
        for pixel in row.chunks_exact(c).rev() {
            data.extend_from_slice(pixel);
        }
    }
    Image {
        data,
        ..src.to_owned_header()
    }
}

/// Mirror top to bottom.
pub fn flip_vertical(src: ImageView<'_>) -> Image {
    let mut data = Vec::with_capacity(src.data.len());
    for row in src.data.chunks_exact(src.stride().max(1)).rev() {
        data.extend_from_slice(row);
    }
    Image {
        data,
        ..src.to_owned_header()
    }
}

/// Rotates clockwise by `quarter_turns` x 90 degrees (negative turns go
/// anticlockwise).
pub fn rotate90(src: ImageView<'_>, quarter_turns: i64) -> Image {
    let turns = quarter_turns.rem_euclid(4);
    let c = src.channels as usize;
    let (w, h) = (src.width as usize, src.height as usize);
    match turns {
        0 => src.to_owned_image(),
        2 => {
            let mut data = Vec::with_capacity(src.data.len());
            for pixel in src.data.chunks_exact(c).rev() {
                data.extend_from_slice(pixel);
            }
            Image {
                data,
                ..src.to_owned_header()
            }
        }
        _ => {
            // Output is h wide and w high.
            let mut data = vec![0u8; src.data.len()];
            for y in 0..h {
                for x in 0..w {
                    let (nx, ny) = if turns == 1 { (h - 1 - y, x) } else { (y, w - 1 - x) };
                    let s = (y * w + x) * c;
                    let d = (ny * h + nx) * c;
                    data[d..d + c].copy_from_slice(&src.data[s..s + c]);
                }
            }
            Image {
                width: src.height,
                height: src.width,
                channels: src.channels,
                data,
            }
        }
    }
}

/// Resamples to `width` x `height` with a bilinear (triangle) filter.
pub fn resize(src: ImageView<'_>, width: u32, height: u32) -> Result<Image> {
    if width == 0 || height == 0 {
        return Err(ImageError::Unsupported(format!("cannot resize to {width}x{height}")));
    }
    if src.width == 0 || src.height == 0 {
        return Err(ImageError::Unsupported(format!(
            "cannot resize a {}x{} image",
            src.width, src.height
        )));
    }
    if (src.width, src.height) == (width, height) {
        return Ok(src.to_owned_image());
    }
    let dynamic = to_dynamic(src)?;
    let resized = dynamic.resize_exact(width, height, image::imageops::FilterType::Triangle);
    Ok(from_dynamic(resized))
}

/// The size of `width` x `height` scaled down to fit in `max_side` pixels
/// (aspect kept, never enlarged, no side below one pixel).
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    let max_side = max_side.max(1);
    if longest <= max_side {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| ((side as u64 * max_side as u64 / longest as u64) as u32).max(1);
    (scale(width), scale(height))
}

/// `src` scaled down to fit in `max_side` pixels, for previews: a box
/// filter (each output pixel the mean of its source area) for large
/// reductions, a triangle filter for small ones. The source is read in
/// place, so a full-size frame is not copied first.
pub fn shrink_to_fit(src: ImageView<'_>, max_side: u32) -> Result<Image> {
    let (width, height) = fit_within(src.width, src.height, max_side);
    if src.width == 0 || src.height == 0 {
        return Err(ImageError::Unsupported(format!(
            "cannot shrink a {}x{} image",
            src.width, src.height
        )));
    }
    if (width, height) == (src.width, src.height) {
        return Ok(src.to_owned_image());
    }
    let data = match src.channels {
        1 => shrink_pixels::<image::Luma<u8>>(src, width, height)?,
        3 => shrink_pixels::<image::Rgb<u8>>(src, width, height)?,
        4 => shrink_pixels::<image::Rgba<u8>>(src, width, height)?,
        n => return Err(ImageError::InvalidValue(format!("{n} channels (expected 1, 3 or 4)"))),
    };
    Image::new(width, height, src.channels, data)
}

fn shrink_pixels<P: image::Pixel<Subpixel = u8> + 'static>(
    src: ImageView<'_>,
    width: u32,
    height: u32,
) -> Result<Vec<u8>> {
    let source: image::ImageBuffer<P, &[u8]> = image::ImageBuffer::from_raw(src.width, src.height, src.data)
        .ok_or_else(|| ImageError::InvalidValue(format!("a {} image's pixels do not fill it", src.describe())))?;
    let shrunk = if src.width.max(src.height) <= 4 * width.max(height) {
        image::imageops::resize(&source, width, height, image::imageops::FilterType::Triangle)
    } else {
        image::imageops::thumbnail(&source, width, height)
    };
    Ok(shrunk.into_raw())
}

/// What tiling does at the right and bottom edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileEdge {
    /// Tiles that would cross the edge are kept and zero-padded, so every
    /// pixel is in some tile.
    Pad,
    /// Only whole tiles inside the image are kept.
    Drop,
}

impl crate::options::OptionText for TileEdge {
    fn option_text(&self) -> String {
        match self {
            TileEdge::Pad => "pad",
            TileEdge::Drop => "drop",
        }
        .to_string()
    }
}

/// The top-left corners of `size` x `size` tiles every `stride` pixels:
/// columns `xs` times rows `ys`, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    pub xs: Vec<u32>,
    pub ys: Vec<u32>,
}

impl TileGrid {
    pub fn new(width: u32, height: u32, size: u32, stride: u32, edge: TileEdge) -> Self {
        Self {
            xs: tile_starts(width, size, stride, edge),
            ys: tile_starts(height, size, stride, edge),
        }
    }

    /// Number of tiles (a u64: a grid can hold more than memory).
    pub fn len(&self) -> u64 {
        self.xs.len() as u64 * self.ys.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Corner of tile `i`, counting row by row; `i < len()`.
    pub fn origin(&self, i: u64) -> (u32, u32) {
        let columns = self.xs.len() as u64;
        (self.xs[(i % columns) as usize], self.ys[(i / columns) as usize])
    }

    pub fn origins(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.ys.iter().flat_map(move |&y| self.xs.iter().map(move |&x| (x, y)))
    }
}

/// Starts of tiles along one axis of `extent` pixels.
fn tile_starts(extent: u32, size: u32, stride: u32, edge: TileEdge) -> Vec<u32> {
    if size == 0 || stride == 0 || extent == 0 {
        return Vec::new();
    }
    let (extent, size, stride) = (extent as u64, size as u64, stride as u64);
    let mut starts = Vec::new();
    let mut start = 0u64;
    loop {
        let fits = start + size <= extent;
        match (fits, edge) {
            (true, _) => starts.push(start as u32),
            (false, TileEdge::Pad) => {
                starts.push(start as u32);
                break;
            }
            (false, TileEdge::Drop) => break,
        }
        start += stride;
        // No tile starts outside the image (a stride wider than the tiles
        // can jump past the edge).
        if start >= extent || start - stride + size >= extent {
            break;
        }
    }
    starts
}

/// Top-left corners of `size` x `size` tiles every `stride` pixels, row by
/// row.
pub fn tile_origins(width: u32, height: u32, size: u32, stride: u32, edge: TileEdge) -> Vec<(u32, u32)> {
    TileGrid::new(width, height, size, stride, edge).origins().collect()
}

/// Fills a disc of `radius` centred on (`cx`, `cy`) with `colour` (its
/// first `channels` samples are used).
pub fn fill_disc(image: &mut Image, cx: f64, cy: f64, radius: f64, colour: [u8; 4]) {
    let c = image.channels as usize;
    let (w, h) = (image.width as i64, image.height as i64);
    let r2 = radius * radius;
    let (y0, y1) = ((cy - radius).floor() as i64, (cy + radius).ceil() as i64);
    let (x0, x1) = ((cx - radius).floor() as i64, (cx + radius).ceil() as i64);
    for y in y0.max(0)..=y1.min(h - 1) {
        for x in x0.max(0)..=x1.min(w - 1) {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            if dx * dx + dy * dy <= r2 {
                let i = (y as usize * w as usize + x as usize) * c;
                paint(&mut image.data[i..i + c], colour);
            }
        }
    }
}

fn paint(pixel: &mut [u8], colour: [u8; 4]) {
    if pixel.len() == 1 {
        pixel[0] = luma(colour[0], colour[1], colour[2]);
    } else {
        let n = pixel.len();
        pixel.copy_from_slice(&colour[..n]);
    }
}

/// Draws the outline (1 px) of the rectangle with top-left (`x`, `y`),
/// clipped to the image.
pub fn draw_rectangle(image: &mut Image, x: i64, y: i64, w: u32, h: u32, colour: [u8; 4]) {
    let c = image.channels as usize;
    let (iw, ih) = (image.width as i64, image.height as i64);
    let (x1, y1) = (x.saturating_add(w as i64 - 1), y.saturating_add(h as i64 - 1));
    let mut set = |px: i64, py: i64| {
        if px >= 0 && py >= 0 && px < iw && py < ih {
            let i = (py as usize * iw as usize + px as usize) * c;
            paint(&mut image.data[i..i + c], colour);
        }
    };
    for px in x..=x1 {
        set(px, y);
        set(px, y1);
    }
    for py in y..=y1 {
        set(x, py);
        set(x1, py);
    }
}

impl ImageView<'_> {
    /// Width, height and channels with no pixels, for building results.
    pub fn to_owned_header(&self) -> Image {
        Image {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fit_within_keeps_the_aspect_and_never_enlarges() {
        assert_eq!(fit_within(4992, 3328, 96), (96, 64));
        assert_eq!(fit_within(3328, 4992, 96), (64, 96));
        assert_eq!(fit_within(50, 20, 96), (50, 20));
        assert_eq!(fit_within(10_000, 1, 96), (96, 1));
        assert_eq!(fit_within(0, 0, 96), (1, 1));
        assert_eq!(fit_within(u32::MAX, u32::MAX, 0), (1, 1));
    }

    #[test]
    fn shrink_to_fit_averages_and_keeps_channels() {
        // Left half red, right half blue: the shrunk image keeps the halves.
        let (w, h) = (400u32, 200u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for _ in 0..h {
            for x in 0..w {
                data.extend_from_slice(if x < w / 2 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let src = Image::new(w, h, 3, data).unwrap();
        let small = shrink_to_fit(src.view(), 20).unwrap();
        assert_eq!((small.width, small.height, small.channels), (20, 10, 3));
        assert_eq!(small.view().pixel(2, 5), &[255, 0, 0]);
        assert_eq!(small.view().pixel(17, 5), &[0, 0, 255]);
        let grey = Image::new(30, 30, 1, vec![77; 900]).unwrap();
        let small = shrink_to_fit(grey.view(), 8).unwrap();
        assert_eq!((small.width, small.height, small.channels), (8, 8, 1));
        assert!(small.data.iter().all(|&v| v == 77));
        // Small enough already: the same pixels.
        assert_eq!(shrink_to_fit(grey.view(), 64).unwrap(), grey);
    }

    use super::*;

    /// 3x2 grey image 0..6, row by row.
    fn small() -> Image {
        Image::new(3, 2, 1, vec![0, 1, 2, 3, 4, 5]).unwrap()
    }

    #[test]
    fn crop_pads_outside() {
        let out = crop(small().view(), -1, 1, 3, 2);
        assert_eq!((out.width, out.height), (3, 2));
        assert_eq!(out.data, vec![0, 3, 4, 0, 0, 0]);
        let outside = crop(small().view(), 10, 10, 2, 2);
        assert_eq!(outside.data, vec![0; 4]);
        let inside = crop(small().view(), 1, 0, 2, 2);
        assert_eq!(inside.data, vec![1, 2, 4, 5]);
    }

    #[test]
    fn windows_far_outside_are_empty() {
        for (x, y) in [
            (i64::MAX, 0),
            (i64::MIN, 0),
            (0, i64::MAX),
            (0, i64::MIN),
            (i64::MIN, i64::MIN),
        ] {
            assert_eq!(crop(small().view(), x, y, 2, 2).data, vec![0; 4]);
            assert_eq!(thumbnail(small().view(), x, y, 2).data, vec![0; 4]);
        }
        let last = crop(small().view(), -1, -1, u16::MAX as u32, 2);
        assert_eq!(last.view().pixel(1, 1), &[0]);
        assert_eq!(last.view().pixel(3, 1), &[2]);
    }

    #[test]
    fn tile_grids_do_not_overflow() {
        let grid = TileGrid::new(u32::MAX, 1, u32::MAX - 1, u32::MAX, TileEdge::Pad);
        assert_eq!(grid.xs, vec![0]);
        assert_eq!(
            TileGrid::new(u32::MAX, 1, 2, u32::MAX - 1, TileEdge::Pad).xs,
            vec![0, u32::MAX - 1]
        );
        assert_eq!(TileGrid::new(10, 1, 4, 20, TileEdge::Pad).xs, vec![0]);
        let grid = TileGrid::new(10, 7, 4, 3, TileEdge::Drop);
        assert_eq!(
            grid.origins().collect::<Vec<_>>(),
            (0..grid.len()).map(|i| grid.origin(i)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn thumbnail_centres_on_the_pixel() {
        let out = thumbnail(small().view(), 1, 1, 3);
        assert_eq!(out.data, vec![0, 1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(out.view().pixel(1, 1), &[4]);
    }

    #[test]
    fn flips_and_rotations() {
        let s = small();
        assert_eq!(flip_horizontal(s.view()).data, vec![2, 1, 0, 5, 4, 3]);
        assert_eq!(flip_vertical(s.view()).data, vec![3, 4, 5, 0, 1, 2]);
        let r1 = rotate90(s.view(), 1);
        assert_eq!((r1.width, r1.height), (2, 3));
        assert_eq!(r1.data, vec![3, 0, 4, 1, 5, 2]);
        assert_eq!(rotate90(s.view(), 2).data, vec![5, 4, 3, 2, 1, 0]);
        let r3 = rotate90(s.view(), -1);
        assert_eq!(r3.data, vec![2, 5, 1, 4, 0, 3]);
        assert_eq!(rotate90(r1.view(), 3), s);
    }

    #[test]
    fn conform_converts_only_what_differs() {
        let grey_small = small();
        assert_eq!(conform(grey_small.view(), 3, 2, 1).unwrap(), grey_small);
        let rgb = conform(grey_small.view(), 3, 2, 3).unwrap();
        assert_eq!(rgb, to_rgb(grey_small.view()));
        assert_eq!(conform(rgb.view(), 3, 2, 1).unwrap(), grey(rgb.view()));
        let bigger = conform(grey_small.view(), 8, 6, 3).unwrap();
        assert_eq!((bigger.width, bigger.height, bigger.channels), (8, 6, 3));
        assert!(conform(grey_small.view(), 2, 2, 2).is_err());
    }

    #[test]
    fn grey_uses_rec709() {
        let rgb = Image::new(2, 1, 3, vec![255, 0, 0, 0, 255, 0]).unwrap();
        assert_eq!(grey(rgb.view()).data, vec![54, 182]);
    }

    #[test]
    fn tiles_at_the_edges() {
        assert_eq!(tile_origins(130, 64, 64, 64, TileEdge::Drop), vec![(0, 0), (64, 0)]);
        assert_eq!(
            tile_origins(130, 64, 64, 64, TileEdge::Pad),
            vec![(0, 0), (64, 0), (128, 0)]
        );
        assert_eq!(tile_origins(128, 64, 64, 64, TileEdge::Pad).len(), 2);
        assert_eq!(tile_origins(96, 64, 64, 32, TileEdge::Drop), vec![(0, 0), (32, 0)]);
        assert!(tile_origins(10, 10, 64, 64, TileEdge::Drop).is_empty());
        assert_eq!(tile_origins(10, 10, 64, 64, TileEdge::Pad), vec![(0, 0)]);
        assert!(tile_origins(0, 10, 64, 64, TileEdge::Pad).is_empty());
    }

    #[test]
    fn resize_bilinear() {
        let flat = Image::new(4, 4, 3, vec![100; 48]).unwrap();
        let out = resize(flat.view(), 2, 3).unwrap();
        assert_eq!((out.width, out.height, out.channels), (2, 3, 3));
        assert!(out.data.iter().all(|&v| v == 100));
        assert!(resize(flat.view(), 0, 3).is_err());
    }

    #[test]
    fn discs_and_rectangles() {
        let mut image = Image::new(9, 9, 3, vec![0; 243]).unwrap();
        fill_disc(&mut image, 4.0, 4.0, 1.0, [255, 0, 0, 255]);
        assert_eq!(image.view().pixel(4, 4), &[255, 0, 0]);
        assert_eq!(image.view().pixel(5, 4), &[255, 0, 0]);
        assert_eq!(image.view().pixel(5, 5), &[0, 0, 0]);
        draw_rectangle(&mut image, -2, -2, 5, 5, [0, 0, 255, 255]);
        assert_eq!(image.view().pixel(2, 0), &[0, 0, 255]);
        assert_eq!(image.view().pixel(1, 1), &[0, 0, 0]);
    }
}
