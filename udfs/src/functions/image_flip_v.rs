//! `image_flip_v(image)`: mirrors an image top to bottom.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::map_images;
use crate::args::{arg_arrays, coerce_args, image_arg, ArgKind};
use crate::image_value::image_type;
use crate::pixels;

const SYNTAX: &str = "image_flip_v(image)";

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
}

impl Default for ImageFlipV {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ImageFlipV {
    fn name(&self) -> &str {
        "image_flip_v"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), SYNTAX, arg_types, &[ArgKind::Image], &[])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(image_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(self.name(), &arrays, 0)?;
        let out = map_images(self.name(), &images, |_, view| Ok(Some(pixels::flip_vertical(view))))?;
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
        let err = ImageFlipV::default().coerce_types(&[DataType::Int64]).unwrap_err();
        assert!(
            err.to_string().contains("image_flip_v: argument 1 must be an image"),
            "{err}"
        );
    }
}
