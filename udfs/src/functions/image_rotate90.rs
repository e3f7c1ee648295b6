//! `image_rotate90(image [, quarter_turns])`: rotation by multiples of 90 degrees.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::map_images;
use rookery_image::args::{int_arg, int_at};
use rookery_image::image_value::image_type;
use rookery_image::pixels;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Rotates an image clockwise by quarter_turns x 90 degrees (default 1; negative turns rotate anticlockwise). A quarter turn swaps width and height.",
    syntax_example = "image_rotate90(image [, quarter_turns])",
    sql_example = r#"```sql
> SELECT image_rotate90(image) AS turned FROM images('data/sealions/Train/0.jpg');
+-------------------+
| turned            |
+-------------------+
| <image 640x960x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(
        name = "quarter_turns",
        description = "Number of clockwise quarter turns, any integer (default 1)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageRotate90 {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    ImageRotate90,
    "image_rotate90",
    [Image],
    [Integer],
    image_type(),
    image_rotate90_batch
);

/// `image_rotate90` of a batch: `arrays` are all the arguments, `images` the first.
fn image_rotate90_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let turns = if arrays.len() > 1 {
        Some(int_arg(name, arrays, 1)?)
    } else {
        None
    };
    map_images(name, images, reservation, |row, view, reservation| {
        let turns = match turns {
            Some(t) => match int_at(t, row) {
                Some(t) => t,
                None => return Ok(None),
            },
            None => 1,
        };
        reservation.image_like(&view)?;
        Ok(Some(pixels::rotate90(view, turns)))
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
    fn quarter_turns() {
        let image = rgb3x2();
        let once = invoke(&ImageRotate90::default(), vec![images(&[Some(&image)])]).unwrap();
        let once = ImageArray::try_new(once.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!((once.width, once.height), (2, 3));
        let back = invoke(
            &ImageRotate90::default(),
            vec![images(&[Some(&once)]), Arc::new(Int64Array::from(vec![-1]))],
        )
        .unwrap();
        let back = ImageArray::try_new(back.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!(back, image);
    }
}
