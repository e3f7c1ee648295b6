//! `image_width(image)`: width in pixels.

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Returns the width of an image value in pixels (the same as `image['width']`).",
    syntax_example = "image_width(image)",
    sql_example = r#"```sql
> SELECT image_width(thumbnail(image, 100, 100, 64)) AS w FROM images('data/sealions/Train/0.jpg');
+----+
| w  |
+----+
| 64 |
+----+
```"#,
    argument(name = "image", description = "An image value."),
    related_udf(name = "image_height")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageWidth {
    signature: Signature,
    memory: rookery_image::memory::ImageMemory,
}

image_field_function!(ImageWidth, "image_width", width);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, rgb3x2};
    use datafusion::arrow::array::{Array, UInt32Array};

    #[test]
    fn width_or_null() {
        let image = rgb3x2();
        let out = invoke(&ImageWidth::default(), vec![images(&[Some(&image), None])]).unwrap();
        let out = out.as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(out.value(0), 3);
        assert!(out.is_null(1));
    }
}
