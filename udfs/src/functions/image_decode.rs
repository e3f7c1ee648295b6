//! `image_decode(bytes [, on_error])`: encoded bytes to an image value.

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use super::named;
use rookery_image::args::{arg_arrays, binary_arg, text_arg};
use rookery_image::codec::{decode, read_header};
use rookery_image::image_value::{image_type, Image, ImageArrayBuilder};
use rookery_image::memory::{ImageMemory, PixelReservation};

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Decodes JPEG, PNG, TIFF, BMP, WebP or GIF bytes (recognised by content) to an image value, with EXIF orientation applied. Bytes that are not a readable image are an error, or NULL with on_error 'null'.",
    syntax_example = "image_decode(bytes [, on_error])",
    sql_example = r#"```sql
> SELECT image_decode(image_encode(image, 'png')) AS again FROM images('data/sealions/Train/0.jpg');
+-------------------+
| again             |
+-------------------+
| <image 960x640x3> |
+-------------------+
```"#,
    argument(
        name = "bytes",
        description = "Encoded image bytes (Binary, LargeBinary or BinaryView), such as an image table's `content`."
    ),
    argument(
        name = "on_error",
        description = "'raise' (default) stops the query on unreadable bytes; 'null' returns NULL for them."
    ),
    related_udf(name = "image_encode")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageDecode {
    signature: Signature,
    memory: ImageMemory,
}

memory_constructors!(ImageDecode, [Binary], [Text]);

/// Decodes one file's bytes after reserving its pixels (at most four bytes
/// a pixel) and checking its size against `rookery.max_pixels`. The outer
/// error (memory) always stops the query; the inner one (bad bytes) may
/// become NULL.
fn decode_row(bytes: &[u8], reservation: &mut PixelReservation) -> Result<rookery_image::error::Result<Image>> {
    let header = match read_header(bytes) {
        Ok(header) => header,
        Err(e) => return Ok(Err(e)),
    };
    reservation.image(header.width as u64, header.height as u64, 4)?;
    Ok(decode(bytes, reservation.max_pixels()).map(|(_, image)| image))
}

impl ScalarUDFImpl for ImageDecode {
    fn name(&self) -> &str {
        "image_decode"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(image_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let bytes = binary_arg(name, &arrays, 0)?;
        let on_error = if arrays.len() > 1 {
            Some(text_arg(name, &arrays, 1)?)
        } else {
            None
        };
        let mut builder = ImageArrayBuilder::with_capacity(bytes.len());
        for row in 0..bytes.len() {
            if bytes.is_null(row) {
                builder.append_null();
                continue;
            }
            let null_on_error = match on_error.filter(|a| a.is_valid(row)).map(|a| a.value(row)) {
                None | Some("raise") => false,
                Some("null") => true,
                Some(other) => return plan_err!("image_decode: on_error must be 'raise' or 'null', not '{other}'"),
            };
            match decode_row(bytes.value(row), &mut reservation)? {
                Ok(image) => named(name, builder.append_owned(image))?,
                Err(_) if null_on_error => builder.append_null(),
                Err(e) => return exec_err!("image_decode: row {row}: {e}"),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{invoke, rgb3x2};
    use datafusion::arrow::array::{LargeBinaryArray, StringArray};
    use rookery_image::codec::encode;
    use rookery_image::ImageArray;

    #[test]
    fn decodes_png_and_handles_bad_bytes() {
        let png = encode(rgb3x2().view(), "png", 90).unwrap();
        let bytes = Arc::new(LargeBinaryArray::from(vec![
            Some(png.as_slice()),
            None,
            Some(&b"nope"[..]),
        ]));
        let err = invoke(&ImageDecode::default(), vec![bytes.clone()]).unwrap_err();
        assert!(err.to_string().contains("image_decode: row 2: not an image"), "{err}");

        let on_error = Arc::new(StringArray::from(vec!["null"; 3]));
        let out = invoke(&ImageDecode::default(), vec![bytes, on_error]).unwrap();
        let out = ImageArray::try_new(out.as_ref()).unwrap();
        assert_eq!(out.get(0).unwrap().unwrap().to_owned_image(), rgb3x2());
        assert!(out.get(1).unwrap().is_none());
        assert!(out.get(2).unwrap().is_none());
    }
}
