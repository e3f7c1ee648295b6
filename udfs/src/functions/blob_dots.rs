//! `blob_dots(dotted, plain)`: the coloured dots of an annotated image.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayBuilder, ListArray, StringBuilder, StructArray, UInt32Builder};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use rookery_image::memory::ImageMemory;

use super::named;
use rookery_image::args::{arg_arrays, dot_fields, dots_type, image_arg};
use rookery_image::dots::{find_dots, working_bytes, DotParams, CLASSES};

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Finds the coloured dots that an annotator put on a copy of an image, by the method of the public sea-lion kernels: the difference of the two images (masking pixels that are dark in either), its grey, Laplacian-of-Gaussian blob detection (sigma 3 to 4, threshold 0.02), and the class from the dotted image's colour at each blob: red adult_males, magenta subadult_males, brown adult_females, blue juveniles, green pups. Returns a list of {x, y, class}, sorted by y then x; a dot whose colour fits no class has a NULL class. The two images must have the same size.",
    syntax_example = "blob_dots(dotted, plain)",
    sql_example = r#"```sql
> SELECT d.name, cardinality(blob_dots(d.image, p.image)) AS dots
  FROM images('data/sealions/TrainDotted/') d JOIN images('data/sealions/Train/*.jpg') p ON d.name = p.name
  WHERE d.name = '1';
+------+------+
| name | dots |
+------+------+
| 1    | 6    |
+------+------+
```"#,
    argument(name = "dotted", description = "The annotated copy (an image value, RGB)."),
    argument(name = "plain", description = "The same image without dots, of the same size."),
    related_udf(name = "draw_dots")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BlobDots {
    signature: Signature,
    memory: ImageMemory,
}

memory_constructors!(BlobDots, [Image, Image], []);

impl ScalarUDFImpl for BlobDots {
    fn name(&self) -> &str {
        "blob_dots"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(dots_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let (dotted, plain) = (image_arg(name, &arrays, 0)?, image_arg(name, &arrays, 1)?);
        let params = DotParams::default();
        let (mut xs, mut ys, mut classes) = (UInt32Builder::new(), UInt32Builder::new(), StringBuilder::new());
        let mut offsets = vec![0i32];
        let mut valid = Vec::with_capacity(dotted.len());
        for row in 0..dotted.len() {
            match (named(name, dotted.get(row))?, named(name, plain.get(row))?) {
                (Some(d), Some(p)) => {
                    reservation.image(d.width as u64, d.height as u64, 0)?;
                    reservation.bytes(working_bytes(d.width, d.height))?;
                    let dots = named(name, find_dots(d, p, &params));
                    reservation.release(reservation.size());
                    for dot in dots? {
                        xs.append_value(dot.x);
                        ys.append_value(dot.y);
                        classes.append_option(dot.class.map(|c| CLASSES[c].0));
                    }
                    valid.push(true);
                }
                _ => valid.push(false),
            }
            let Ok(end) = i32::try_from(xs.len()) else {
                return exec_err!("{name}: too many dots in one batch");
            };
            offsets.push(end);
        }
        let dots = StructArray::new(
            dot_fields(),
            vec![Arc::new(xs.finish()), Arc::new(ys.finish()), Arc::new(classes.finish())],
            None,
        );
        let field = Arc::new(Field::new("item", DataType::Struct(dot_fields()), true));
        let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
        let list = ListArray::new(field, OffsetBuffer::new(offsets.into()), Arc::new(dots), nulls);
        Ok(ColumnarValue::Array(Arc::new(list)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke};
    use datafusion::arrow::array::Array;
    use rookery_image::args::dots_at;
    use rookery_image::pixels::fill_disc;
    use rookery_image::Image;

    fn field(w: u32, h: u32) -> Image {
        Image::new(w, h, 3, vec![120; (w * h * 3) as usize]).unwrap()
    }

    #[test]
    fn dots_with_classes() {
        let plain = field(80, 60);
        let mut dotted = plain.clone();
        fill_disc(&mut dotted, 20.0, 20.0, 3.5, [38, 174, 21, 255]);
        fill_disc(&mut dotted, 60.0, 40.0, 3.5, [25, 56, 176, 255]);
        let out = invoke(
            &BlobDots::default(),
            vec![images(&[Some(&dotted), None]), images(&[Some(&plain), Some(&plain)])],
        )
        .unwrap();
        let list = out.as_any().downcast_ref::<ListArray>().unwrap();
        let dots = dots_at(list, 0).unwrap().unwrap();
        assert_eq!(
            dots,
            vec![
                (20, 20, Some("pups".to_string())),
                (60, 40, Some("juveniles".to_string()))
            ]
        );
        assert!(list.is_null(1));
    }

    #[test]
    fn different_sizes_name_both() {
        let (a, b) = (field(80, 60), field(60, 80));
        let err = invoke(&BlobDots::default(), vec![images(&[Some(&a)]), images(&[Some(&b)])]).unwrap_err();
        assert!(
            err.to_string()
                .contains("dotted image is 80x60 but plain image is 60x80"),
            "{err}"
        );
    }
}
