//! `random_crop(image, width, height, seed)`: a seeded random window.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use rookery_image::image_value::ImageArray;
use rookery_image::memory::{ImageMemory, PixelReservation};

use super::map_images;
use super::sizes::size_value;
use rookery_image::args::{int_arg, int_at};
use rookery_image::augment;
use rookery_image::image_value::image_type;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Cuts a width x height window at a position drawn from seed: the same image, size and seed give the same window on any machine. A window that fits lies wholly inside the image; a larger one covers the image with zero padding around it.",
    syntax_example = "random_crop(image, width, height, seed)",
    sql_example = r#"```sql
> SELECT random_crop(image, 512, 512, 7) AS patch FROM images('data/sealions/Train/0.jpg');
+-------------------+
| patch             |
+-------------------+
| <image 512x512x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(name = "width", description = "Width of the window, 1 to 65535."),
    argument(name = "height", description = "Height of the window, 1 to 65535."),
    argument(
        name = "seed",
        description = "Any integer; one per row (e.g. a row number) gives each row its own window."
    ),
    related_udf(name = "crop")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RandomCrop {
    signature: Signature,
    memory: ImageMemory,
}

image_function!(
    RandomCrop,
    "random_crop",
    [Image, Integer, Integer, Integer],
    [],
    image_type(),
    random_crop_batch
);

/// `random_crop` of a batch: `arrays` are all the arguments, `images` the first.
fn random_crop_batch(
    name: &str,
    arrays: &[ArrayRef],
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
) -> Result<ArrayRef> {
    let ints = (1..4).map(|i| int_arg(name, arrays, i)).collect::<Result<Vec<_>>>()?;
    map_images(name, images, reservation, |row, view, reservation| {
        let (Some(w), Some(h), Some(seed)) = (int_at(ints[0], row), int_at(ints[1], row), int_at(ints[2], row)) else {
            return Ok(None);
        };
        let (w, h) = (size_value(name, "width", w)?, size_value(name, "height", h)?);
        reservation.image(w as u64, h as u64, view.channels as u64)?;
        Ok(Some(augment::random_crop(view, w, h, seed as u64)))
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
    fn windows_follow_the_seed_and_sizes_are_checked() {
        let image = rgb3x2();
        let call = |w: i64, seed: i64| {
            invoke(
                &RandomCrop::default(),
                vec![
                    images(&[Some(&image)]),
                    Arc::new(Int64Array::from(vec![w])),
                    Arc::new(Int64Array::from(vec![1])),
                    Arc::new(Int64Array::from(vec![seed])),
                ],
            )
        };
        let first = call(2, 5).unwrap();
        let again = call(2, 5).unwrap();
        let (first, again) = (
            ImageArray::try_new(first.as_ref()).unwrap(),
            ImageArray::try_new(again.as_ref()).unwrap(),
        );
        let window = first.get(0).unwrap().unwrap();
        assert_eq!((window.width, window.height), (2, 1));
        assert_eq!(window.to_owned_image(), again.get(0).unwrap().unwrap().to_owned_image());
        let err = call(0, 5).unwrap_err();
        assert!(err.to_string().contains("width must be 1 to 65535, not 0"), "{err}");
    }
}
