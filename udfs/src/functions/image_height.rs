//! `image_height(image)`: height in pixels.

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

const SYNTAX: &str = "image_height(image)";

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
}

impl Default for ImageHeight {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ImageHeight {
    fn name(&self) -> &str {
        "image_height"
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
            out.append_option(named(self.name(), images.get(row))?.map(|i| i.height));
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
    fn height_or_null() {
        let image = rgb3x2();
        let out = invoke(&ImageHeight::default(), vec![images(&[Some(&image), None])]).unwrap();
        let out = out.as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(out.value(0), 2);
        assert!(out.is_null(1));
    }
}
