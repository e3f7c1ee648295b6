//! `image_noise(image, sigma, seed)`: seeded Gaussian noise.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::map_images;
use rookery_image::args::{float_arg, float_at, int_arg, int_at};
use rookery_image::augment;
use rookery_image::image_value::image_type;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Adds Gaussian noise of standard deviation sigma (in sample units, 0 to 255) to every colour sample, drawn from seed: the same image, sigma and seed give the same pixels on any machine. Samples are clamped to 0..255; alpha is kept.",
    syntax_example = "image_noise(image, sigma, seed)",
    sql_example = r#"```sql
> SELECT image_noise(image, 8, 1) AS noisy FROM images('data/sealions/Train/0.jpg');
+-------------------+
| noisy             |
+-------------------+
| <image 960x640x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(
        name = "sigma",
        description = "Standard deviation of the noise, 0 to 255 (0 leaves the image as it is)."
    ),
    argument(
        name = "seed",
        description = "Any integer; one per row gives each row its own noise."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageNoise {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    ImageNoise,
    "image_noise",
    [Image, Float, Integer],
    [],
    image_type(),
    image_noise_batch
);

/// `image_noise` of a batch: `arrays` are all the arguments, `images` the first.
fn image_noise_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let (sigmas, seeds) = (float_arg(name, arrays, 1)?, int_arg(name, arrays, 2)?);
    map_images(name, images, reservation, |row, view, reservation| {
        let (Some(sigma), Some(seed)) = (float_at(sigmas, row), int_at(seeds, row)) else {
            return Ok(None);
        };
        if !(0.0..=255.0).contains(&sigma) {
            return exec_err!("{name}: sigma must be 0 to 255, not {sigma}");
        }
        reservation.image_like(&view)?;
        Ok(Some(augment::noise(view, sigma, seed as u64)))
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
    fn noise_follows_the_seed_and_sigma_is_checked() {
        let image = rgb3x2();
        let call = |sigma: f64, seed: i64| {
            invoke(
                &ImageNoise::default(),
                vec![
                    images(&[Some(&image)]),
                    Arc::new(Float64Array::from(vec![sigma])),
                    Arc::new(Int64Array::from(vec![seed])),
                ],
            )
        };
        let pixels = |array: datafusion::arrow::array::ArrayRef| {
            ImageArray::try_new(array.as_ref())
                .unwrap()
                .get(0)
                .unwrap()
                .unwrap()
                .to_owned_image()
        };
        assert_eq!(pixels(call(20.0, 3).unwrap()), pixels(call(20.0, 3).unwrap()));
        assert_eq!(pixels(call(0.0, 3).unwrap()), image);
        let err = call(300.0, 3).unwrap_err();
        assert!(err.to_string().contains("sigma must be 0 to 255, not 300"), "{err}");
    }
}
