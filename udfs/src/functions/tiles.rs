//! `tiles(image, size, stride [, edge])`: an image cut into square tiles.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayBuilder, ArrayRef, ListArray, StructArray, UInt32Builder};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use rookery_image::memory::ImageMemory;

use super::named;
use super::sizes::size_value;
use rookery_image::args::{arg_arrays, image_arg, int_arg, int_at, text_arg, tile_fields, tiles_type};
use rookery_image::image_value::{ImageArray, ImageArrayBuilder};
use rookery_image::memory::PixelReservation;
use rookery_image::pixels::{crop, TileEdge, TileGrid};

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Cuts an image into size x size tiles whose top-left corners are every stride pixels, row by row; returns a list of {x, y, tile}, where (x, y) is the tile's top-left corner in the image and tile is an image value. stride < size gives overlapping tiles. At the right and bottom edges, with edge 'pad' (the default) the last tiles are kept and padded with zeros, so every pixel is in some tile; with 'drop' only whole tiles inside the image are kept. UNNEST the list to get one row per tile.",
    syntax_example = "tiles(image, size, stride [, edge])",
    sql_example = r#"```sql
> SELECT count(*) AS n FROM (SELECT unnest(tiles(image, 64, 32)) AS t FROM images('data/sealions/Test/0.jpg'));
+-----+
| n   |
+-----+
| 551 |
+-----+
```"#,
    argument(name = "image", description = "An image value."),
    argument(name = "size", description = "Side of each square tile in pixels."),
    argument(
        name = "stride",
        description = "Distance between neighbouring tiles in pixels (1 or more)."
    ),
    argument(
        name = "edge",
        description = "'pad' (default) or 'drop': what happens to tiles that would cross the right or bottom edge."
    ),
    related_udf(name = "tile64")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Tiles {
    signature: Signature,
    memory: ImageMemory,
}

memory_constructors!(Tiles, [Image, Integer, Integer], [Text]);

/// Tiles of every image: per row `(size, stride, edge)` from `params`, or
/// NULL when `params` gives `None`.
pub(crate) fn tile_list(
    name: &str,
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
    mut params: impl FnMut(usize) -> Result<Option<(u32, u32, TileEdge)>>,
) -> Result<ArrayRef> {
    let mut xs = UInt32Builder::new();
    let mut ys = UInt32Builder::new();
    let mut tiles = ImageArrayBuilder::with_capacity(0);
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(images.len());
    for row in 0..images.len() {
        let image = named(name, images.get(row))?;
        let params = match image {
            Some(_) => params(row)?,
            None => None,
        };
        if let (Some(view), Some((size, stride, edge))) = (image, params) {
            let grid = TileGrid::new(view.width, view.height, size, stride, edge);
            // All tiles of the batch are held at once: reserve them before
            // making any (image_tiles streams them instead).
            let tile_bytes = size as u64 * size as u64 * view.channels as u64;
            reservation.image(size as u64, size as u64, view.channels as u64)?;
            reservation.bytes(grid.len().saturating_sub(1).saturating_mul(tile_bytes))?;
            for (x, y) in grid.origins() {
                xs.append_value(x);
                ys.append_value(y);
                named(name, tiles.append(crop(view, x as i64, y as i64, size, size).view()))?;
            }
            valid.push(true);
        } else {
            valid.push(false);
        }
        let count = xs.len();
        let Ok(end) = i32::try_from(count) else {
            return exec_err!(
                "{name}: more than {} tiles in one batch; use a larger size or stride",
                i32::MAX
            );
        };
        offsets.push(end);
    }
    let structs = StructArray::new(
        tile_fields(),
        vec![Arc::new(xs.finish()), Arc::new(ys.finish()), Arc::new(tiles.finish())],
        None,
    );
    let field = Arc::new(Field::new("item", DataType::Struct(tile_fields()), true));
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    Ok(Arc::new(ListArray::new(
        field,
        OffsetBuffer::new(offsets.into()),
        Arc::new(structs),
        nulls,
    )))
}

impl ScalarUDFImpl for Tiles {
    fn name(&self) -> &str {
        "tiles"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(tiles_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let mut reservation = super::reserve(&self.memory, name, &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(name, &arrays, 0)?;
        let (sizes, strides) = (int_arg(name, &arrays, 1)?, int_arg(name, &arrays, 2)?);
        let edges = if arrays.len() > 3 {
            Some(text_arg(name, &arrays, 3)?)
        } else {
            None
        };
        let out = tile_list(name, &images, &mut reservation, |row| {
            let (Some(size), Some(stride)) = (int_at(sizes, row), int_at(strides, row)) else {
                return Ok(None);
            };
            let edge = match edges.filter(|e| e.is_valid(row)).map(|e| e.value(row)) {
                None | Some("pad") => TileEdge::Pad,
                Some("drop") => TileEdge::Drop,
                Some(other) => return exec_err!("tiles: edge must be 'pad' or 'drop', not '{other}'"),
            };
            Ok(Some((
                size_value(name, "size", size)?,
                size_value(name, "stride", stride)?,
                edge,
            )))
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
    use datafusion::arrow::array::{Int64Array, StringArray, UInt32Array};
    use rookery_image::Image;

    #[test]
    fn overlapping_tiles_with_both_edges() {
        let image = Image::new(5, 3, 1, (0..15).collect()).unwrap();
        let run = |edge: &str| {
            invoke(
                &Tiles::default(),
                vec![
                    images(&[Some(&image), None]),
                    Arc::new(Int64Array::from(vec![2, 2])),
                    Arc::new(Int64Array::from(vec![2, 2])),
                    Arc::new(StringArray::from(vec![edge, edge])),
                ],
            )
            .unwrap()
        };
        let padded = run("pad");
        let list = padded.as_any().downcast_ref::<ListArray>().unwrap();
        assert!(list.is_null(1));
        let first = list.value(0);
        let tiles = first.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(tiles.len(), 6); // columns 0, 2, 4 and rows 0, 2
        let xs = tiles.column(0).as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(xs.values().to_vec(), vec![0, 2, 4, 0, 2, 4]);
        let last = ImageArray::try_new(tiles.column(2).as_ref())
            .unwrap()
            .get(5)
            .unwrap()
            .unwrap();
        assert_eq!(last.data, &[14, 0, 0, 0]);

        let dropped = run("drop");
        let list = dropped.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.value(0).len(), 2);

        let err = invoke(
            &Tiles::default(),
            vec![
                images(&[Some(&image)]),
                Arc::new(Int64Array::from(vec![2])),
                Arc::new(Int64Array::from(vec![0])),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("stride must be 1 to 65535"), "{err}");
    }
}
