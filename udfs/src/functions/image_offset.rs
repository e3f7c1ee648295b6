//! `image_offset(moved, reference [, max_shift])`: how far one copy of a
//! scene is moved against another.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Builder, Int32Builder, StructArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use super::named;
use rookery_image::align::{find_offset, working_bytes, MAX_SHIFT};
use rookery_image::args::{arg_arrays, image_arg, int_arg, int_at, optional};
use rookery_image::memory::ImageMemory;

/// Reach of the search when the call gives none.
const DEFAULT_MAX_SHIFT: i64 = 64;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Finds the shift that lines up two copies of one scene: `moved` shows `reference` moved right by dx and down by dy pixels, so a point (x, y) of `moved` is at (x - dx, y - dy) in `reference`, and `crop(reference, -dx, -dy, width, height)` lines up with `moved`. The search runs coarse to fine over grey image pyramids and leaves out pixels dark in either copy (black masks). Returns {dx, dy, difference}, where difference is the mean absolute grey difference (0 to 255) of the overlap at that shift: near 0 when the copies agree, large when no shift makes them (another exposure, a rotated copy, another scene). The images must have the same size.",
    syntax_example = "image_offset(moved, reference [, max_shift])",
    sql_example = r#"```sql
> SELECT o['dx'] AS dx, o['dy'] AS dy, round(o['difference'], 2) AS difference
  FROM (SELECT image_offset(crop(image, -17, 23, 960, 640), image) AS o
        FROM images('data/sealions/Train/0.jpg'));
+----+-----+------------+
| dx | dy  | difference |
+----+-----+------------+
| 17 | -23 | 0.0        |
+----+-----+------------+
```"#,
    argument(name = "moved", description = "The copy whose shift is wanted (an image value)."),
    argument(
        name = "reference",
        description = "The copy it is measured against, of the same size."
    ),
    argument(
        name = "max_shift",
        description = "How far to search each way, in pixels, 0 to 4096 (default 64)."
    ),
    related_udf(name = "blob_dots"),
    related_udf(name = "crop")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageOffset {
    signature: Signature,
    memory: ImageMemory,
}

memory_constructors!(ImageOffset, [Image, Image], [Integer]);

/// The fields of `image_offset`'s result.
fn offset_fields() -> Fields {
    Fields::from(vec![
        Field::new("dx", DataType::Int32, false),
        Field::new("dy", DataType::Int32, false),
        Field::new("difference", DataType::Float64, false),
    ])
}

impl ScalarUDFImpl for ImageOffset {
    fn name(&self) -> &str {
        "image_offset"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(offset_fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let (moved, reference) = (image_arg(name, &arrays, 0)?, image_arg(name, &arrays, 1)?);
        let shifts = optional(&arrays, 2).map(|_| int_arg(name, &arrays, 2)).transpose()?;
        let (mut dxs, mut dys, mut differences) = (Int32Builder::new(), Int32Builder::new(), Float64Builder::new());
        let mut valid = Vec::with_capacity(moved.len());
        for row in 0..moved.len() {
            let max_shift = match shifts {
                Some(array) => int_at(array, row),
                None => Some(DEFAULT_MAX_SHIFT),
            };
            let pair = (
                named(name, moved.get(row))?,
                named(name, reference.get(row))?,
                max_shift,
            );
            let (Some(m), Some(r), Some(max_shift)) = pair else {
                valid.push(false);
                dxs.append_value(0);
                dys.append_value(0);
                differences.append_value(0.0);
                continue;
            };
            let Some(max_shift) = u32::try_from(max_shift).ok().filter(|s| *s <= MAX_SHIFT) else {
                return exec_err!("{name}: max_shift must be 0 to {MAX_SHIFT} pixels, not {max_shift}");
            };
            reservation.image(m.width as u64, m.height as u64, 0)?;
            reservation.bytes(working_bytes(m.width, m.height))?;
            let offset = named(name, find_offset(m, r, max_shift));
            reservation.release(reservation.size());
            let offset = offset?;
            dxs.append_value(offset.dx);
            dys.append_value(offset.dy);
            differences.append_value(offset.difference);
            valid.push(true);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(dxs.finish()),
            Arc::new(dys.finish()),
            Arc::new(differences.finish()),
        ];
        let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
        Ok(ColumnarValue::Array(Arc::new(StructArray::new(
            offset_fields(),
            columns,
            nulls,
        ))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke};
    use datafusion::arrow::array::{Array, AsArray, Int64Array};
    use datafusion::arrow::datatypes::{Float64Type, Int32Type};
    use rookery_image::pixels;
    use rookery_image::Image;

    /// A 96x64 RGB image of 6x6 blocks of scrambled tones, so that no two
    /// shifts look alike.
    fn pattern() -> Image {
        let mut data = Vec::new();
        for y in 0..64u32 {
            for x in 0..96u32 {
                let (bx, by) = (x / 6, y / 6);
                let v = (40 + (bx * 37 + by * 91 + bx * by * 13) % 180) as u8;
                data.extend_from_slice(&[v, v, v]);
            }
        }
        Image::new(96, 64, 3, data).unwrap()
    }

    #[test]
    fn shift_of_a_cropped_copy_and_nulls() {
        let reference = pattern();
        let moved = pixels::crop(reference.view(), -5, 3, 96, 64);
        let out = invoke(
            &ImageOffset::default(),
            vec![
                images(&[Some(&moved), None]),
                images(&[Some(&reference), Some(&reference)]),
                Arc::new(Int64Array::from(vec![16, 16])),
            ],
        )
        .unwrap();
        let out = out.as_struct();
        assert_eq!(out.column(0).as_primitive::<Int32Type>().value(0), 5);
        assert_eq!(out.column(1).as_primitive::<Int32Type>().value(0), -3);
        assert_eq!(out.column(2).as_primitive::<Float64Type>().value(0), 0.0);
        assert!(out.is_null(1));
    }

    #[test]
    fn bad_reach_and_sizes_are_named() {
        let reference = pattern();
        let err = invoke(
            &ImageOffset::default(),
            vec![
                images(&[Some(&reference)]),
                images(&[Some(&reference)]),
                Arc::new(Int64Array::from(vec![-1])),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("image_offset: max_shift must be 0 to 4096 pixels, not -1"),
            "{err}"
        );
        let small = pixels::crop(reference.view(), 0, 0, 32, 32);
        let err = invoke(
            &ImageOffset::default(),
            vec![images(&[Some(&small)]), images(&[Some(&reference)])],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("image_offset: "), "{message}");
        assert!(
            message.contains("the images differ in size: 32x32 and 96x64"),
            "{message}"
        );
    }
}
