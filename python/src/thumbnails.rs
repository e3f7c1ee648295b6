//! PNG thumbnails of an image column, for notebooks: `_repr_html_` and
//! `Image._repr_png_` draw them inline.

use std::sync::Arc;

use datafusion::arrow::array::BinaryBuilder;
use image::imageops::{thumbnail, FilterType};
use image::{DynamicImage, ImageBuffer, Luma, Rgb, Rgba};
use pyo3::prelude::*;
use rookery_udfs::{ImageArray, ImageView};

use crate::arrow_capsules::{import_array, ArrowArray};
use crate::errors::{guarded, Error};

/// The largest side a thumbnail may ask for (the output is bounded
/// whatever the input).
const MAX_SIDE: u32 = 4096;

/// The size of `width` x `height` scaled to fit in `max_side` (never
/// enlarged, never below one pixel).
pub fn fitted_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    if longest <= max_side {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| ((side as u64 * max_side as u64 / longest as u64) as u32).max(1);
    (scale(width), scale(height))
}

/// A PNG of `view` scaled down to fit in `max_side` pixels, read in place
/// (a full-size frame is not copied first).
pub fn png_thumbnail(view: ImageView<'_>, max_side: u32) -> Result<Vec<u8>, String> {
    let (width, height) = fitted_size(view.width, view.height, max_side);
    let shrunk = match view.channels {
        1 => DynamicImage::ImageLuma8(shrink::<Luma<u8>>(view, width, height)?),
        3 => DynamicImage::ImageRgb8(shrink::<Rgb<u8>>(view, width, height)?),
        4 => DynamicImage::ImageRgba8(shrink::<Rgba<u8>>(view, width, height)?),
        n => return Err(format!("an image of {n} channels has no PNG form")),
    };
    let mut png = Vec::new();
    shrunk
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("cannot encode a PNG thumbnail: {e}"))?;
    Ok(png)
}

fn shrink<P: image::Pixel<Subpixel = u8> + 'static>(
    view: ImageView<'_>,
    width: u32,
    height: u32,
) -> Result<ImageBuffer<P, Vec<u8>>, String> {
    let source: ImageBuffer<P, &[u8]> = ImageBuffer::from_raw(view.width, view.height, view.data)
        .ok_or_else(|| format!("a {} image's pixels do not fill it", view.describe()))?;
    if (width, height) == (view.width, view.height) {
        return Ok(ImageBuffer::from_raw(width, height, view.data.to_vec()).unwrap_or_else(|| ImageBuffer::new(1, 1)));
    }
    // Box-filter thumbnails for big reductions; a triangle filter when the
    // image is already small, where box averaging would look blocky.
    if view.width.max(view.height) <= 4 * width.max(height) {
        return Ok(image::imageops::resize(&source, width, height, FilterType::Triangle));
    }
    Ok(thumbnail(&source, width, height))
}

/// PNG thumbnails (a binary column) of an image column given as an Arrow
/// array; NULL images give NULL.
#[pyfunction]
pub fn png_thumbnails(images: &Bound<'_, PyAny>, max_side: u32) -> PyResult<ArrowArray> {
    guarded(|| {
        if max_side == 0 || max_side > MAX_SIDE {
            return Err(Error::new_err(format!(
                "max_side {max_side} is out of range (1 to {MAX_SIDE})"
            )));
        }
        let array = import_array(images)?;
        let images = ImageArray::try_new(array.as_ref()).map_err(|e| Error::new_err(e.to_string()))?;
        let mut out = BinaryBuilder::with_capacity(images.len(), 0);
        for i in 0..images.len() {
            match images.get(i).map_err(|e| Error::new_err(e.to_string()))? {
                Some(view) if view.width > 0 && view.height > 0 => {
                    out.append_value(png_thumbnail(view, max_side).map_err(Error::new_err)?)
                }
                _ => out.append_null(),
            }
        }
        Ok(ArrowArray::new(Arc::new(out.finish())))
    })
}
