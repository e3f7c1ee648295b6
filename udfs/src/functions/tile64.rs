//! `tile64(image)`: the sea-lion pipeline's non-overlapping 64x64 tiles.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use datafusion_macros::user_doc;

use rookery_image::memory::ImageMemory;

use super::tiles::tile_list;
use rookery_image::args::{arg_arrays, image_arg, tiles_type};
use rookery_image::pixels::TileEdge;

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Cuts an image into non-overlapping 64x64 tiles, row by row: the same as tiles(image, 64, 64, 'pad'). Returns a list of {x, y, tile}. When the width or height is not a multiple of 64, the last column or row of tiles is padded with zeros, so every pixel is in exactly one tile.",
    syntax_example = "tile64(image)",
    sql_example = r#"```sql
> SELECT t['x'] AS x, t['y'] AS y, t['tile'] AS tile
  FROM (SELECT unnest(tile64(image)) AS t FROM images('data/sealions/Test/0.jpg')) LIMIT 2;
+----+---+-----------------+
| x  | y | tile            |
+----+---+-----------------+
| 0  | 0 | <image 64x64x3> |
| 64 | 0 | <image 64x64x3> |
+----+---+-----------------+
```"#,
    argument(name = "image", description = "An image value."),
    related_udf(name = "tiles")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Tile64 {
    signature: Signature,
    memory: ImageMemory,
}

memory_constructors!(Tile64, [Image], []);

impl ScalarUDFImpl for Tile64 {
    fn name(&self) -> &str {
        "tile64"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(tiles_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut reservation = super::reserve(&self.memory, self.name(), &args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let images = image_arg(self.name(), &arrays, 0)?;
        let out = tile_list(self.name(), &images, &mut reservation, |_| {
            Ok(Some((64, 64, TileEdge::Pad)))
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
    use datafusion::arrow::array::{Array, ListArray};
    use rookery_image::Image;

    #[test]
    fn sixty_four_square_tiles() {
        let image = Image::new(130, 64, 3, vec![1; 130 * 64 * 3]).unwrap();
        let out = invoke(&Tile64::default(), vec![images(&[Some(&image)])]).unwrap();
        let list = out.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.value(0).len(), 3); // 0, 64 and a padded one at 128
    }
}
