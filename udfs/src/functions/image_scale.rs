//! `image_scale(image, factor)`: resampling by a factor, keeping the aspect.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::sizes::size_value;
use super::{map_images, named};
use rookery_image::args::{float_arg, float_at};
use rookery_image::image_value::image_type;
use rookery_image::pixels;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Resamples an image by a factor with a bilinear (triangle) filter, keeping its aspect ratio: each side becomes round(side x factor), at least 1 pixel.",
    syntax_example = "image_scale(image, factor)",
    sql_example = r#"```sql
> SELECT image_scale(image, 0.5) AS half FROM images('data/sealions/Train/0.jpg');
+-------------------+
| half              |
+-------------------+
| <image 480x320x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(
        name = "factor",
        description = "Scale factor above 0; each resulting side must be at most 65535."
    ),
    related_udf(name = "image_resize")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageScale {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    ImageScale,
    "image_scale",
    [Image, Float],
    [],
    image_type(),
    image_scale_batch
);

/// `image_scale` of a batch: `arrays` are all the arguments, `images` the first.
fn image_scale_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let factors = float_arg(name, arrays, 1)?;
    map_images(name, images, reservation, |row, view, reservation| {
        let Some(factor) = float_at(factors, row) else {
            return Ok(None);
        };
        if !(factor.is_finite() && factor > 0.0) {
            return exec_err!("{name}: factor must be a number above 0, not {factor}");
        }
        // Saturating float-to-int casts: an absurd factor is refused by size.
        let side = |extent: u32| ((extent as f64 * factor).round() as i64).max(1);
        let (w, h) = (
            size_value(name, "width", side(view.width))?,
            size_value(name, "height", side(view.height))?,
        );
        reservation.image(w as u64, h as u64, view.channels as u64)?;
        reservation.bytes(view.data.len() as u64)?;
        named(name, pixels::resize(view, w, h)).map(Some)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::array::Float64Array;
    use rookery_image::ImageArray;
    use std::sync::Arc;

    #[test]
    fn scales_both_sides_and_refuses_bad_factors() {
        let image = rgb3x2();
        let call = |factor: f64| {
            invoke(
                &ImageScale::default(),
                vec![images(&[Some(&image)]), Arc::new(Float64Array::from(vec![factor]))],
            )
        };
        let out = call(2.0).unwrap();
        let scaled = ImageArray::try_new(out.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!((scaled.width, scaled.height), (6, 4));
        let tiny = call(0.01).unwrap();
        let tiny = ImageArray::try_new(tiny.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!((tiny.width, tiny.height), (1, 1));
        assert!(call(0.0)
            .unwrap_err()
            .to_string()
            .contains("factor must be a number above 0, not 0"));
        assert!(call(1e300)
            .unwrap_err()
            .to_string()
            .contains("width must be 1 to 65535"));
    }
}
