//! `thumbnail(image, cx, cy, size)`: a square window centred on a pixel.

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
    description = "Cuts the size x size window centred on pixel (cx, cy): the same as crop(image, cx - size / 2, cy - size / 2, size, size), so (cx, cy) lands on pixel (size / 2, size / 2) of the result. Near the border the window is padded with zeros, like crop.",
    syntax_example = "thumbnail(image, cx, cy, size)",
    sql_example = r#"```sql
> SELECT thumbnail(image, 5, 5, 64) AS thumb FROM images('data/sealions/Train/0.jpg');
+-----------------+
| thumb           |
+-----------------+
| <image 64x64x3> |
+-----------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(name = "cx", description = "Column of the centre pixel."),
    argument(name = "cy", description = "Row of the centre pixel."),
    argument(
        name = "size",
        description = "Side of the square window, 1 to 65535 (64 for the sea-lion CNN)."
    ),
    related_udf(name = "crop")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Thumbnail {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    Thumbnail,
    "thumbnail",
    [Image, Integer, Integer, Integer],
    [],
    image_type(),
    thumbnail_batch
);

/// `thumbnail` of a batch: `arrays` are all the arguments, `images` the first.
fn thumbnail_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let (cxs, cys, sizes) = (
        int_arg(name, arrays, 1)?,
        int_arg(name, arrays, 2)?,
        int_arg(name, arrays, 3)?,
    );
    map_images(name, images, reservation, |row, view, reservation| {
        let (Some(cx), Some(cy), Some(size)) = (int_at(cxs, row), int_at(cys, row), int_at(sizes, row)) else {
            return Ok(None);
        };
        let size = size_value(name, "size", size)?;
        reservation.image(size as u64, size as u64, view.channels as u64)?;
        Ok(Some(pixels::thumbnail(view, cx, cy, size)))
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
    fn centre_lands_in_the_middle() {
        let image = rgb3x2();
        let out = invoke(
            &Thumbnail::default(),
            vec![images(&[Some(&image)]), ints(2), ints(1), ints(4)],
        )
        .unwrap();
        let out = ImageArray::try_new(out.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!((out.width, out.height), (4, 4));
        assert_eq!(out.view().pixel(2, 2), image.view().pixel(2, 1));
        assert_eq!(out.view().pixel(3, 3), &[0, 0, 0]);
    }
}
