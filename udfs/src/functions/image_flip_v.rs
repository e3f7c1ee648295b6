//! `image_flip_v(image)`: mirrors an image top to bottom.

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Mirrors an image top to bottom. Size and channels are kept.",
    syntax_example = "image_flip_v(image)",
    sql_example = r#"```sql
> SELECT image_flip_v(image) AS flipped FROM images('data/sealions/Train/0.jpg');
+-------------------+
| flipped           |
+-------------------+
| <image 960x640x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageFlipV {
    signature: Signature,
    memory: rookery_image::memory::ImageMemory,
}

image_to_image_function!(
    ImageFlipV,
    "image_flip_v",
    rookery_image::pixels::flip_vertical,
    super::same_shape
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::datatypes::DataType;
    use rookery_image::ImageArray;

    #[test]
    fn flips_and_keeps_nulls() {
        let image = rgb3x2();
        let out = invoke(&ImageFlipV::default(), vec![images(&[Some(&image), None])]).unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        let flipped = out.get(0).unwrap().unwrap();
        assert_eq!((flipped.width, flipped.height, flipped.channels), (3, 2, 3));
        assert_eq!(flipped.pixel(0, 0), image.view().pixel(0, 1));
        assert!(out.get(1).unwrap().is_none());
    }

    #[test]
    fn rejects_non_images() {
        let err = super::super::test_util::coerced_types(&ImageFlipV::default(), &[DataType::Int64]).unwrap_err();
        assert!(err.to_string().contains("requires image"), "{err}");
    }
}
