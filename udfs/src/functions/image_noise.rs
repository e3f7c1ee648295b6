//! `image_noise(image, sigma, seed)`: seeded Gaussian noise.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use crate::memory::ImageMemory;

use super::map_images;
use crate::args::{arg_arrays, float_arg, float_at, image_arg, int_arg, int_at};
use crate::augment;
use crate::image_value::image_type;

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

memory_constructors!(ImageNoise, [Image, Float, Integer], []);

impl ScalarUDFImpl for ImageNoise {
    fn name(&self) -> &str {
        "image_noise"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(image_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(name, &arrays, 0)?;
        let (sigmas, seeds) = (float_arg(name, &arrays, 1)?, int_arg(name, &arrays, 2)?);
        let out = map_images(name, &images, &mut reservation, |row, view, reservation| {
            let (Some(sigma), Some(seed)) = (float_at(sigmas, row), int_at(seeds, row)) else {
                return Ok(None);
            };
            if !(0.0..=255.0).contains(&sigma) {
                return exec_err!("{name}: sigma must be 0 to 255, not {sigma}");
            }
            reservation.image_like(&view)?;
            Ok(Some(augment::noise(view, sigma, seed as u64)))
        })?;
        Ok(ColumnarValue::Array(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use crate::ImageArray;
    use datafusion::arrow::array::{Float64Array, Int64Array};
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
