//! `crop(image, x, y, width, height)`: a window of an image.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::map_images;
use super::sizes::size_value;
use rookery_image::args::{int_arg, int_at};
use rookery_image::image_value::image_type;
use rookery_image::pixels;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Cuts the width x height window whose top-left corner is (x, y) out of an image. The window may cross the border or lie outside: pixels outside the image are zero (black, transparent for RGBA), so the result always has the size asked for.",
    syntax_example = "crop(image, x, y, width, height)",
    sql_example = r#"```sql
> SELECT crop(image, -10, -10, 64, 64) AS corner FROM images('data/sealions/Train/0.jpg');
+-----------------+
| corner          |
+-----------------+
| <image 64x64x3> |
+-----------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(
        name = "x",
        description = "Column of the window's left edge; may be negative or past the right edge."
    ),
    argument(
        name = "y",
        description = "Row of the window's top edge; may be negative or past the bottom edge."
    ),
    argument(name = "width", description = "Width of the window, 1 to 65535."),
    argument(name = "height", description = "Height of the window, 1 to 65535."),
    related_udf(name = "thumbnail")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Crop {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    Crop,
    "crop",
    [Image, Integer, Integer, Integer, Integer],
    [],
    image_type(),
    crop_batch
);

/// `crop` of a batch: `arrays` are all the arguments, `images` the first.
fn crop_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let ints = (1..5).map(|i| int_arg(name, arrays, i)).collect::<Result<Vec<_>>>()?;
    map_images(name, images, reservation, |row, view, reservation| {
        let values: Option<Vec<i64>> = ints.iter().map(|a| int_at(a, row)).collect();
        let Some([x, y, w, h]) = values.and_then(|v| <[i64; 4]>::try_from(v).ok()) else {
            return Ok(None);
        };
        let (w, h) = (size_value(name, "width", w)?, size_value(name, "height", h)?);
        reservation.image(w as u64, h as u64, view.channels as u64)?;
        Ok(Some(pixels::crop(view, x, y, w, h)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use rookery_image::ImageArray;
    use std::sync::Arc;

    fn ints(v: i64) -> ArrayRef {
        Arc::new(Int64Array::from(vec![v]))
    }

    #[test]
    fn crops_with_padding() {
        let image = rgb3x2();
        let out = invoke(
            &Crop::default(),
            vec![images(&[Some(&image)]), ints(1), ints(-1), ints(3), ints(2)],
        )
        .unwrap();
        let out = ImageArray::try_new(out.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!((out.width, out.height), (3, 2));
        assert_eq!(out.view().pixel(0, 0), &[0, 0, 0]);
        assert_eq!(out.view().pixel(0, 1), &[10, 0, 7]);
        assert_eq!(out.view().pixel(2, 1), &[0, 0, 0]);
    }

    #[test]
    fn zero_size_window_is_an_error() {
        let image = rgb3x2();
        let err = invoke(
            &Crop::default(),
            vec![images(&[Some(&image)]), ints(0), ints(0), ints(0), ints(2)],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("crop: width must be 1 to 65535, not 0"),
            "{err}"
        );
    }
}
