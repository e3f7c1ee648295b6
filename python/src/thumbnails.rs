//! PNG thumbnails of an image column, for notebooks: `_repr_html_` and
//! `Image._repr_png_` draw them inline.

use std::sync::Arc;

use datafusion::arrow::array::BinaryBuilder;
use pyo3::prelude::*;
use rookery_image::codec::encode;
use rookery_image::pixels::shrink_to_fit;
use rookery_image::ImageArray;

use crate::arrow_capsules::{import_array, ArrowArray};
use crate::errors::{guarded, Error};

/// The largest side a thumbnail may have, so the output is bounded
/// whatever the input.
const MAX_SIDE: u32 = 4096;

/// PNG thumbnails (a binary column) of an image column given as an Arrow
/// array, each scaled to fit in `max_side` pixels; NULL and empty images
/// give NULL.
#[pyfunction]
pub fn png_thumbnails(images: &Bound<'_, PyAny>, max_side: u32) -> PyResult<ArrowArray> {
    guarded(|| {
        if max_side == 0 || max_side > MAX_SIDE {
            return Err(Error::new_err(format!(
                "max_side {max_side} is out of range (1 to {MAX_SIDE})"
            )));
        }
        let array = import_array(images)?;
        let failed = |e: rookery_image::ImageError| Error::new_err(e.to_string());
        let images = ImageArray::try_new(array.as_ref()).map_err(failed)?;
        let mut out = BinaryBuilder::new();
        for i in 0..images.len() {
            match images.get(i).map_err(failed)? {
                Some(view) if view.width > 0 && view.height > 0 => {
                    let small = shrink_to_fit(view, max_side).map_err(failed)?;
                    out.append_value(encode(small.view(), "png", 100).map_err(failed)?);
                }
                _ => out.append_null(),
            }
        }
        Ok(ArrowArray::new(Arc::new(out.finish())))
    })
}
