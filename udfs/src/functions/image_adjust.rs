//! `image_adjust(image, brightness, contrast, saturation)`: colour jitter.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::map_images;
use rookery_image::args::{float_arg, float_at};
use rookery_image::augment;
use rookery_image::image_value::image_type;

/// Largest factor accepted: beyond it every sample is 0 or 255 anyway.
const MAX_FACTOR: f64 = 1000.0;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Adjusts brightness, contrast and saturation by factors, as torchvision's ColorJitter does: 1 leaves a property as it is, 0 gives black, flat mean grey and grey respectively, above 1 strengthens it. Samples are clamped to 0..255; alpha is kept, and grey images ignore saturation.",
    syntax_example = "image_adjust(image, brightness, contrast, saturation)",
    sql_example = r#"```sql
> SELECT image_adjust(image, 1.2, 0.9, 1.1) AS jittered FROM images('data/sealions/Train/0.jpg');
+-------------------+
| jittered          |
+-------------------+
| <image 960x640x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(name = "brightness", description = "Brightness factor, 0 to 1000 (1 unchanged)."),
    argument(name = "contrast", description = "Contrast factor, 0 to 1000 (1 unchanged)."),
    argument(name = "saturation", description = "Saturation factor, 0 to 1000 (1 unchanged).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageAdjust {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    ImageAdjust,
    "image_adjust",
    [Image, Float, Float, Float],
    [],
    image_type(),
    image_adjust_batch
);

/// `image_adjust` of a batch: `arrays` are all the arguments, `images` the first.
fn image_adjust_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let factors = (1..4).map(|i| float_arg(name, arrays, i)).collect::<Result<Vec<_>>>()?;
    map_images(name, images, reservation, |row, view, reservation| {
        let mut values = [0.0; 3];
        for ((value, array), what) in values
            .iter_mut()
            .zip(&factors)
            .zip(["brightness", "contrast", "saturation"])
        {
            match float_at(array, row) {
                Some(v) if (0.0..=MAX_FACTOR).contains(&v) => *value = v,
                Some(v) => return exec_err!("{name}: {what} must be 0 to {MAX_FACTOR}, not {v}"),
                None => return Ok(None),
            }
        }
        reservation.image_like(&view)?;
        Ok(Some(augment::adjust(view, values[0], values[1], values[2])))
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
    fn neutral_factors_keep_the_image_and_bad_ones_are_named() {
        let image = rgb3x2();
        let call = |b: f64| {
            invoke(
                &ImageAdjust::default(),
                vec![
                    images(&[Some(&image)]),
                    Arc::new(Float64Array::from(vec![b])),
                    Arc::new(Float64Array::from(vec![1.0])),
                    Arc::new(Float64Array::from(vec![1.0])),
                ],
            )
        };
        let out = call(1.0).unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        assert_eq!(out.get(0).unwrap().unwrap().to_owned_image(), image);
        let err = call(-1.0).unwrap_err();
        assert!(
            err.to_string().contains("brightness must be 0 to 1000, not -1"),
            "{err}"
        );
        assert!(call(f64::NAN).is_err());
    }
}
