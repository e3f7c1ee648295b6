//! `image_height(image)`: height in pixels.

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Returns the height of an image value in pixels (the same as `image['height']`).",
    syntax_example = "image_height(image)",
    sql_example = r#"```sql
> SELECT image_height(thumbnail(image, 100, 100, 64)) AS h FROM images('data/sealions/Train/0.jpg');
+----+
| h  |
+----+
| 64 |
+----+
```"#,
    argument(name = "image", description = "An image value."),
    related_udf(name = "image_width")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageHeight {
    signature: Signature,
    memory: rookery_image::memory::ImageMemory,
}

image_field_function!(ImageHeight, "image_height", height);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::array::{Array, UInt32Array};

    #[test]
    fn height_or_null() {
        let image = rgb3x2();
        let out = invoke(&ImageHeight::default(), vec![images(&[Some(&image), None])]).unwrap();
        let out = out.as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(out.value(0), 2);
        assert!(out.is_null(1));
    }
}
