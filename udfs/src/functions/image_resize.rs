//! `image_resize(image, width, height)`: bilinear resampling.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::sizes::size_value;
use super::{map_images, named};
use rookery_image::args::{int_arg, int_at};
use rookery_image::image_value::image_type;
use rookery_image::pixels;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Resamples an image to width x height pixels with a bilinear (triangle) filter. The aspect ratio is not kept; channels are.",
    syntax_example = "image_resize(image, width, height)",
    sql_example = r#"```sql
> SELECT image_resize(image, 64, 64) AS small FROM images('data/sealions/Train/0.jpg');
+-----------------+
| small           |
+-----------------+
| <image 64x64x3> |
+-----------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(name = "width", description = "Width of the result, 1 or more."),
    argument(name = "height", description = "Height of the result, 1 or more.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageResize {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    ImageResize,
    "image_resize",
    [Image, Integer, Integer],
    [],
    image_type(),
    image_resize_batch
);

/// `image_resize` of a batch: `arrays` are all the arguments, `images` the first.
fn image_resize_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let (widths, heights) = (int_arg(name, arrays, 1)?, int_arg(name, arrays, 2)?);
    map_images(name, images, reservation, |row, view, reservation| {
        let (Some(w), Some(h)) = (int_at(widths, row), int_at(heights, row)) else {
            return Ok(None);
        };
        let (w, h) = (size_value(name, "width", w)?, size_value(name, "height", h)?);
        // The resampler works on a copy of the source and makes the result.
        reservation.image(w as u64, h as u64, view.channels as u64)?;
        reservation.bytes(view.data.len() as u64)?;
        named(name, pixels::resize(view, w, h)).map(Some)
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::array::Int64Array;
    use rookery_image::ImageArray;
    use std::sync::Arc;

    #[test]
    fn resizes_and_checks_sizes() {
        let image = rgb3x2();
        let out = invoke(
            &ImageResize::default(),
            vec![
                images(&[Some(&image)]),
                Arc::new(Int64Array::from(vec![6])),
                Arc::new(Int64Array::from(vec![4])),
            ],
        )
        .unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        let resized = out.get(0).unwrap().unwrap();
        assert_eq!((resized.width, resized.height, resized.channels), (6, 4, 3));

        let err = invoke(
            &ImageResize::default(),
            vec![
                images(&[Some(&image)]),
                Arc::new(Int64Array::from(vec![0])),
                Arc::new(Int64Array::from(vec![4])),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("width must be 1 to 65535, not 0"), "{err}");
    }
}
