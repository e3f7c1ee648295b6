//! `image_flip_h(image)`: mirrors an image left to right.

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Mirrors an image left to right. Size and channels are kept.",
    syntax_example = "image_flip_h(image)",
    sql_example = r#"```sql
> SELECT image_flip_h(image) AS flipped FROM images('data/sealions/Train/0.jpg');
+-------------------+
| flipped           |
+-------------------+
| <image 960x640x3> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageFlipH {
    signature: Signature,
    memory: rookery_image::memory::ImageMemory,
}

image_to_image_function!(
    ImageFlipH,
    "image_flip_h",
    rookery_image::pixels::flip_horizontal,
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
        let out = invoke(&ImageFlipH::default(), vec![images(&[Some(&image), None])]).unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        let flipped = out.get(0).unwrap().unwrap();
        assert_eq!((flipped.width, flipped.height, flipped.channels), (3, 2, 3));
        assert_eq!(flipped.pixel(0, 0), image.view().pixel(2, 0));
        assert!(out.get(1).unwrap().is_none());
    }

    #[test]
    fn rejects_non_images() {
        let err = super::super::test_util::coerced_types(&ImageFlipH::default(), &[DataType::Int64]).unwrap_err();
        assert!(err.to_string().contains("requires image"), "{err}");
    }
}
