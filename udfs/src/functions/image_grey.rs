//! `image_grey(image)`: one grey channel.

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

const SYNTAX: &str = "image_grey(image)";

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
}

impl Default for ImageGrey {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ImageGrey {
    fn name(&self) -> &str {
        "image_grey"
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
        let out = map_images(self.name(), &images, |_, view| Ok(Some(pixels::grey(view))))?;
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
        let err = ImageGrey::default().coerce_types(&[DataType::Int64]).unwrap_err();
        assert!(
            err.to_string().contains("image_grey: argument 1 must be an image"),
            "{err}"
        );
    }
}
