//! `image_encode(image, format [, quality])`: an image value to PNG or JPEG bytes.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryViewBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use rookery_image::memory::ImageMemory;

use super::named;
use rookery_image::args::{arg_arrays, image_arg, int_arg, int_at, text_arg};
use rookery_image::codec::encode;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Encodes an image value as PNG (lossless) or JPEG. JPEG has no alpha channel, so RGBA images lose theirs.",
    syntax_example = "image_encode(image, format [, quality])",
    sql_example = r#"```sql
> SELECT image_encode(thumbnail(image, 100, 100, 64), 'png') AS png FROM images('data/sealions/Train/0.jpg');
+--------------+
| png          |
+--------------+
| <png 4.9 kB> |
+--------------+
```"#,
    argument(name = "image", description = "An image value."),
    argument(name = "format", description = "'png' or 'jpeg' ('jpg' also works)."),
    argument(name = "quality", description = "JPEG quality 1-100 (default 90); ignored for PNG."),
    related_udf(name = "image_decode")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageEncode {
    signature: Signature,
    memory: ImageMemory,
}

memory_constructors!(ImageEncode, [Image, Text], [Integer]);

impl ScalarUDFImpl for ImageEncode {
    fn name(&self) -> &str {
        "image_encode"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::BinaryView)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(name, &arrays, 0)?;
        let formats = text_arg(name, &arrays, 1)?;
        let quality = if arrays.len() > 2 {
            Some(int_arg(name, &arrays, 2)?)
        } else {
            None
        };
        let mut out = BinaryViewBuilder::new();
        for row in 0..images.len() {
            let image = named(name, images.get(row))?;
            let (Some(image), true) = (image, formats.is_valid(row)) else {
                out.append_null();
                continue;
            };
            let q = quality.and_then(|q| int_at(q, row)).unwrap_or(90);
            if !(1..=100).contains(&q) {
                return exec_err!("image_encode: quality must be 1 to 100, not {q}");
            }
            // The encoder works on a copy of the pixels; its output is
            // rarely larger than the raw pixels.
            reservation.bytes(2 * image.data.len() as u64)?;
            out.append_value(named(name, encode(image, formats.value(row), q as u8))?);
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
    use datafusion::arrow::array::{BinaryViewArray, StringArray};
    use rookery_image::codec::{decode, DEFAULT_MAX_PIXELS};

    #[test]
    fn png_round_trips_and_bad_format_errors() {
        let image = rgb3x2();
        let out = invoke(
            &ImageEncode::default(),
            vec![
                images(&[Some(&image), None]),
                Arc::new(StringArray::from(vec!["png", "png"])),
            ],
        )
        .unwrap();
        let out = out.as_any().downcast_ref::<BinaryViewArray>().unwrap();
        assert_eq!(decode(out.value(0), DEFAULT_MAX_PIXELS).unwrap().1, image);
        assert!(out.is_null(1));

        let err = invoke(
            &ImageEncode::default(),
            vec![images(&[Some(&image)]), Arc::new(StringArray::from(vec!["gif"]))],
        )
        .unwrap_err();
        assert!(err.to_string().contains("unsupported format 'gif'"), "{err}");
    }

    #[test]
    fn zero_size_images_cannot_be_encoded() {
        let empty = rookery_image::Image::new(0, 0, 3, vec![]).unwrap();
        let err = invoke(
            &ImageEncode::default(),
            vec![images(&[Some(&empty)]), Arc::new(StringArray::from(vec!["png"]))],
        )
        .unwrap_err();
        assert!(err.to_string().contains("has no pixels"), "{err}");
    }
}
