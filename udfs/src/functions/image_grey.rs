//! `image_grey(image)`: one grey channel.

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Converts an image to one grey channel, with Rec. 709 luma weights (as scikit-image and the image crate). Alpha is dropped; a grey image is returned as it is.",
    syntax_example = "image_grey(image)",
    sql_example = r#"```sql
> SELECT image_grey(image) AS grey FROM images('data/sealions/Train/0.jpg');
+-------------------+
| grey              |
+-------------------+
| <image 960x640x1> |
+-------------------+
```"#,
    argument(name = "image", description = "An image value.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageGrey {
    signature: Signature,
    memory: rookery_image::memory::ImageMemory,
}

image_to_image_function!(ImageGrey, "image_grey", rookery_image::pixels::grey, |v| (
    v.width as u64,
    v.height as u64,
    1
));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::datatypes::DataType;
    use rookery_image::pixels;
    use rookery_image::ImageArray;

    #[test]
    fn greys_and_keeps_nulls() {
        let image = rgb3x2();
        let out = invoke(&ImageGrey::default(), vec![images(&[Some(&image), None])]).unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        let grey = out.get(0).unwrap().unwrap();
        assert_eq!((grey.width, grey.height, grey.channels), (3, 2, 1));
        assert_eq!(grey.pixel(2, 1)[0], pixels::luma(20, 10, 7));
        assert!(out.get(1).unwrap().is_none());
    }

    #[test]
    fn rejects_non_images() {
        let err = super::super::test_util::coerced_types(&ImageGrey::default(), &[DataType::Int64]).unwrap_err();
        assert!(err.to_string().contains("requires image"), "{err}");
    }
}
