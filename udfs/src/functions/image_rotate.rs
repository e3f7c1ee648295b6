//! `image_rotate(image, degrees [, fill])`: rotation by any angle.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::map_images;
use rookery_image::args::{float_arg, float_at, int_arg, int_at, optional};
use rookery_image::augment;
use rookery_image::image_value::image_type;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Rotates an image clockwise by any angle about its centre, keeping its size: each pixel samples the source bilinearly, and corners that come from outside the source are fill. Quarter turns of a square image give exactly what image_rotate90 gives. For augmentation, draw the angle per row, e.g. from a hash of the name.",
    syntax_example = "image_rotate(image, degrees [, fill])",
    sql_example = r#"```sql
> SELECT image_rotate(image, 12.5) AS turned FROM images('data/sealions/Train/0.jpg');
+-------------------+
| turned            |
+-------------------+
| <image 960x640x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(
        name = "degrees",
        description = "Clockwise angle in degrees, any finite number (negative turns anticlockwise)."
    ),
    argument(
        name = "fill",
        description = "Sample value, 0 to 255, for what lies outside the source (default 0, black)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageRotate {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    ImageRotate,
    "image_rotate",
    [Image, Float],
    [Integer],
    image_type(),
    image_rotate_batch
);

/// `image_rotate` of a batch: `arrays` are all the arguments, `images` the first.
fn image_rotate_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let angles = float_arg(name, arrays, 1)?;
    let fills = optional(arrays, 2).map(|_| int_arg(name, arrays, 2)).transpose()?;
    map_images(name, images, reservation, |row, view, reservation| {
        let Some(degrees) = float_at(angles, row) else {
            return Ok(None);
        };
        if !degrees.is_finite() {
            return exec_err!("{name}: degrees must be a finite number, not {degrees}");
        }
        let fill = match fills {
            Some(fills) => match int_at(fills, row) {
                Some(fill @ 0..=255) => fill as u8,
                Some(other) => return exec_err!("{name}: fill must be 0 to 255, not {other}"),
                None => return Ok(None),
            },
            None => 0,
        };
        reservation.image_like(&view)?;
        Ok(Some(augment::rotate(view, degrees, fill)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::array::{Float64Array, Int64Array};
    use rookery_image::ImageArray;
    use std::sync::Arc;

    #[test]
    fn rotates_keeps_size_and_checks_arguments() {
        let image = rgb3x2();
        let rotate = ImageRotate::default();
        let out = invoke(
            &rotate,
            vec![
                images(&[Some(&image), None]),
                Arc::new(Float64Array::from(vec![Some(30.0), Some(1.0)])),
            ],
        )
        .unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        let turned = out.get(0).unwrap().unwrap();
        assert_eq!((turned.width, turned.height, turned.channels), (3, 2, 3));
        assert!(out.get(1).unwrap().is_none());

        let args = |angle: f64, fill: i64| {
            vec![
                images(&[Some(&image)]),
                Arc::new(Float64Array::from(vec![angle])) as _,
                Arc::new(Int64Array::from(vec![fill])) as _,
            ]
        };
        let err = invoke(&rotate, args(f64::NAN, 0)).unwrap_err();
        assert!(err.to_string().contains("degrees must be a finite number"), "{err}");
        let err = invoke(&rotate, args(10.0, 256)).unwrap_err();
        assert!(err.to_string().contains("fill must be 0 to 255, not 256"), "{err}");
    }
}
