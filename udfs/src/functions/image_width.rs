//! `image_width(image)`: width in pixels.

use std::sync::Arc;

use datafusion::arrow::array::UInt32Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::named;
use crate::args::{arg_arrays, coerce_args, image_arg, ArgKind};

const SYNTAX: &str = "image_width(image)";

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
}

impl Default for ImageWidth {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ImageWidth {
    fn name(&self) -> &str {
        "image_width"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), SYNTAX, arg_types, &[ArgKind::Image], &[])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(self.name(), &arrays, 0)?;
        let mut out = UInt32Builder::with_capacity(images.len());
        for row in 0..images.len() {
            out.append_option(named(self.name(), images.get(row))?.map(|i| i.width));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

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
