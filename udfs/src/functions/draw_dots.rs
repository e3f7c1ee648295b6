//! `draw_dots(image, dots)`: shows detections on an image.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use rookery_image::memory::ImageMemory;

use super::map_images;
use rookery_image::args::{arg_arrays, coerce_args, dots_at, image_arg, list_arg, ArgKind};
use rookery_image::dots::{class_index, CLASSES};
use rookery_image::image_value::image_type;
use rookery_image::pixels::{draw_rectangle, fill_disc};

const SYNTAX: &str = "draw_dots(image, dots)";

/// Colour of dots whose class is NULL or unknown.
const UNKNOWN_COLOUR: [u8; 4] = [255, 255, 255, 255];

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Draws each dot of a list (as blob_dots returns) on an image: a filled disc of radius 4 in its class colour and the outline of the 64x64 box centred on it (the thumbnail a CNN would see). Dots of unknown class are white. Encode the result with image_encode and COPY it to a file to look at it.",
    syntax_example = "draw_dots(image, dots)",
    sql_example = r#"```sql
> COPY (SELECT d.name, image_encode(draw_dots(d.image, blob_dots(d.image, p.image)), 'png') AS png
        FROM images('data/sealions/TrainDotted/') d JOIN images('data/sealions/Train/*.jpg') p ON d.name = p.name
        WHERE d.name = '1')
  TO 'detections/' STORED AS IMAGES;
```"#,
    argument(name = "image", description = "An image value to draw on (a copy is returned)."),
    argument(
        name = "dots",
        description = "A list of {x, y, class}, such as the result of blob_dots."
    ),
    related_udf(name = "blob_dots")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DrawDots {
    signature: Signature,
    memory: ImageMemory,
}

// A list of dots with any integer widths is more than a signature can
// say: user-defined, checked by coerce_types.
memory_constructors!(DrawDots, [Image, Dots], []);

impl ScalarUDFImpl for DrawDots {
    fn name(&self) -> &str {
        "draw_dots"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), SYNTAX, arg_types, &[ArgKind::Image, ArgKind::Dots], &[])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(image_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(name, &arrays, 0)?;
        let dots = list_arg(name, &arrays, 1)?;
        let out = map_images(name, &images, &mut reservation, |row, view, reservation| {
            reservation.image_like(&view)?;
            let mut image = view.to_owned_image();
            for (x, y, class) in dots_at(dots, row)?.unwrap_or_default() {
                let colour = class
                    .as_deref()
                    .and_then(class_index)
                    .map(|i| {
                        let [r, g, b] = CLASSES[i].1;
                        [r, g, b, 255]
                    })
                    .unwrap_or(UNKNOWN_COLOUR);
                fill_disc(&mut image, x as f64, y as f64, 4.0, colour);
                draw_rectangle(&mut image, x as i64 - 32, y as i64 - 32, 64, 64, colour);
            }
            Ok(Some(image))
        })?;
        Ok(ColumnarValue::Array(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke};
    use datafusion::arrow::array::{ListArray, StringArray, StructArray, UInt32Array};
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::datatypes::Field;
    use rookery_image::{Image, ImageArray};
    use std::sync::Arc;

    #[test]
    fn draws_class_colours_and_boxes() {
        let image = Image::new(100, 100, 3, vec![0; 30000]).unwrap();
        let dots = StructArray::new(
            rookery_image::args::dot_fields(),
            vec![
                Arc::new(UInt32Array::from(vec![50, 10])),
                Arc::new(UInt32Array::from(vec![50, 10])),
                Arc::new(StringArray::from(vec![Some("adult_males"), None])),
            ],
            None,
        );
        let list = ListArray::new(
            Arc::new(Field::new(
                "item",
                DataType::Struct(rookery_image::args::dot_fields()),
                true,
            )),
            OffsetBuffer::new(vec![0, 2].into()),
            Arc::new(dots),
            None,
        );
        let out = invoke(&DrawDots::default(), vec![images(&[Some(&image)]), Arc::new(list)]).unwrap();
        let drawn = ImageArray::try_new(out.as_ref())
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .to_owned_image();
        assert_eq!(drawn.view().pixel(50, 50), &[243, 8, 5]);
        assert_eq!(drawn.view().pixel(18, 40), &[243, 8, 5], "left side of the box");
        assert_eq!(drawn.view().pixel(10, 10), &[255, 255, 255], "unknown class is white");
        assert_eq!(drawn.view().pixel(30, 30), &[0, 0, 0]);
    }
}
