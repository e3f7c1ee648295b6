//! `image_grid(image [, caption [, options]])`: an aggregate laying its
//! images out as one contact sheet.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, LargeBinaryArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_datafusion_err, exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use super::named;
use rookery_image::args::{normalized, optional_text_arg, signature, ArgKind};
use rookery_image::grid::{contact_sheet, fit_cell, GridLayout};
use rookery_image::image_value::{image_type, Image, ImageArray, ImageArrayBuilder};
use rookery_image::options::OptionSet;
use rookery_models::train::fingerprint_bytes;

/// Most images one sheet takes: 10,000 cells of 96 px are 276 MB.
pub const MAX_CELLS: usize = 10_000;
fn parse_layout(text: &str) -> Result<GridLayout> {
    Ok(GridLayout::parse(text)?)
}

#[user_doc(
    doc_section(label = "Image Functions"),
    description = "Aggregates images into one contact sheet: each image fitted (aspect kept) into a square cell, with its caption under it, on a dark background, row by row. Cells are ordered by caption, then by content, so a query gives the same sheet every time. Write it with COPY ... STORED AS IMAGES like any image, e.g. 100 thumbnails per class, or the tiles a model got wrong captioned with what it said. At most 10,000 images.",
    syntax_example = "image_grid(image [, caption [, options]])",
    sql_example = r#"```sql
> COPY (SELECT 'wrong' AS name, image_grid(image, label || '>' || predicted, 'columns=10, cell=64') AS image
        FROM predictions WHERE label <> predicted)
  TO 'out/sheets/' STORED AS IMAGES;
```"#,
    argument(name = "image", description = "An image value; NULL rows are skipped."),
    argument(
        name = "caption",
        description = "Optional text under the image (as much as fits the cell, 8 px per character)."
    ),
    argument(
        name = "options",
        description = "Optional constant text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "thumbnail")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageGrid {
    signature: Signature,
}

impl Default for ImageGrid {
    fn default() -> Self {
        Self {
            signature: signature(
                &[ArgKind::Image],
                &[ArgKind::Text, ArgKind::Text],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for ImageGrid {
    fn name(&self) -> &str {
        "image_grid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(image_type())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<ImageGridAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |name: &str, data_type: DataType| Arc::new(Field::new(format!("{}[{name}]", args.name), data_type, true));
        Ok(vec![
            field("cells", DataType::LargeBinary),
            field("options", DataType::Utf8),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The fitted cells so far (at the cell size of the options).
#[derive(Debug, Default)]
struct ImageGridAccumulator {
    cells: Vec<(Image, Option<String>)>,
    options_text: Option<String>,
    bytes: usize,
}

impl ImageGridAccumulator {
    fn layout(&self) -> Result<GridLayout> {
        parse_layout(self.options_text.as_deref().unwrap_or(""))
    }

    fn set_options(&mut self, text: &str) -> Result<()> {
        match &self.options_text {
            None => {
                parse_layout(text)?;
                self.options_text = Some(text.to_string());
                Ok(())
            }
            Some(old) if old == text => Ok(()),
            Some(_) => exec_err!("image_grid options must be the same text on every row"),
        }
    }

    fn push(&mut self, cell: Image, caption: Option<String>) -> Result<()> {
        if self.cells.len() >= MAX_CELLS {
            return exec_err!("image_grid takes at most {MAX_CELLS} images; filter or LIMIT the rows");
        }
        self.bytes += cell.data.len() + caption.as_ref().map_or(0, String::len);
        self.cells.push((cell, caption));
        Ok(())
    }
}

/// Cells as bytes: per cell, width, height and caption length (u32 LE,
/// `u32::MAX` for no caption), the caption, then RGB pixels.
fn encode_cells(cells: &[(Image, Option<String>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (image, caption) in cells {
        out.extend_from_slice(&image.width.to_le_bytes());
        out.extend_from_slice(&image.height.to_le_bytes());
        match caption {
            Some(text) => {
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        out.extend_from_slice(&image.data);
    }
    out
}

fn decode_cells(mut bytes: &[u8]) -> Result<Vec<(Image, Option<String>)>> {
    let bad = || exec_datafusion_err!("image_grid: inconsistent partial state");
    let take = |n: usize, bytes: &mut &[u8]| -> Result<Vec<u8>> {
        if bytes.len() < n {
            return Err(bad());
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head.to_vec())
    };
    let mut cells = Vec::new();
    while !bytes.is_empty() {
        let word = |b: Vec<u8>| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let width = word(take(4, &mut bytes)?);
        let height = word(take(4, &mut bytes)?);
        let caption = match word(take(4, &mut bytes)?) {
            u32::MAX => None,
            n => Some(String::from_utf8(take(n as usize, &mut bytes)?).map_err(|_| bad())?),
        };
        let data = take(width as usize * height as usize * 3, &mut bytes)?;
        cells.push((
            Image {
                width,
                height,
                channels: 3,
                data,
            },
            caption,
        ));
    }
    Ok(cells)
}

impl Accumulator for ImageGridAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values: Vec<ArrayRef> = values.iter().cloned().map(normalized).collect::<Result<_>>()?;
        let text = |i: usize| optional_text_arg("image_grid", &values, i);
        if let Some(options) = text(2)? {
            if let Some(row) = (0..options.len()).find(|&r| options.is_valid(r)) {
                self.set_options(options.value(row))?;
            }
        }
        let layout = self.layout()?;
        let captions = text(1)?;
        let images = ImageArray::try_new(values[0].as_ref()).map_err(|e| exec_datafusion_err!("image_grid: {e}"))?;
        for row in 0..images.len() {
            let Some(image) = named("image_grid", images.get(row))? else {
                continue;
            };
            let cell = named("image_grid", fit_cell(image, layout.cell))?;
            let caption = captions.and_then(|c| c.is_valid(row).then(|| c.value(row).to_string()));
            self.push(cell, caption)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let cells = std::mem::take(&mut self.cells);
        self.bytes = 0;
        Ok(vec![
            ScalarValue::LargeBinary(Some(encode_cells(&cells))),
            ScalarValue::Utf8(self.options_text.clone()),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let bad = || exec_datafusion_err!("image_grid: unexpected state types");
        let cells = states[0].as_any().downcast_ref::<LargeBinaryArray>().ok_or_else(bad)?;
        let options = states[1].as_any().downcast_ref::<StringArray>().ok_or_else(bad)?;
        for row in 0..cells.len() {
            if options.is_valid(row) {
                self.set_options(options.value(row))?;
            }
            if cells.is_valid(row) {
                for (cell, caption) in decode_cells(cells.value(row))? {
                    self.push(cell, caption)?;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let layout = self.layout()?;
        let mut cells = std::mem::take(&mut self.cells);
        // Rows come in whatever order partitions deliver them.
        cells.sort_by_cached_key(|(image, caption)| (caption.clone(), fingerprint_bytes(&image.data)));
        let mut builder = ImageArrayBuilder::with_capacity(1);
        if cells.is_empty() {
            named("image_grid", builder.append_owned_option(None))?;
        } else {
            named(
                "image_grid",
                builder.append_owned_option(Some(contact_sheet(&cells, &layout))),
            )?;
        }
        let array = builder.finish();
        Ok(ScalarValue::Struct(Arc::new(array)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.bytes
            + self.cells.capacity() * std::mem::size_of::<(Image, Option<String>)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, solid, texts};

    #[test]
    fn merged_partials_give_the_same_sheet_as_one() {
        let owned: Vec<Image> = (0..5).map(|i| solid([40 * i as u8, 100, 200])).collect();
        let refs: Vec<Option<&Image>> = owned.iter().map(Some).chain([None]).collect();
        let all = images(&refs);
        let captions: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            Some("a"),
            None,
            Some("c"),
            Some("a"),
            Some("z"),
        ]));
        let options = texts("cell=16, padding=1", 6);

        let mut one = ImageGridAccumulator::default();
        one.update_batch(&[all.clone(), captions.clone(), options.clone()])
            .unwrap();
        let single = one.evaluate().unwrap();

        let mut parts = [ImageGridAccumulator::default(), ImageGridAccumulator::default()];
        for (k, acc) in parts.iter_mut().enumerate() {
            let s = |a: &ArrayRef| a.slice(k * 3, 3);
            acc.update_batch(&[s(&all), s(&captions), s(&options)]).unwrap();
        }
        let mut total = ImageGridAccumulator::default();
        for acc in parts.iter_mut().rev() {
            let state: Vec<ArrayRef> = acc.state().unwrap().iter().map(|s| s.to_array().unwrap()).collect();
            total.merge_batch(&state).unwrap();
        }
        assert_eq!(total.evaluate().unwrap(), single);

        let ScalarValue::Struct(sheet) = single else {
            panic!("struct")
        };
        let sheet = ImageArray::try_new(sheet.as_ref()).unwrap().get(0).unwrap().unwrap();
        // Five images: 3 columns, 2 rows of 16 px cells with captions.
        assert_eq!((sheet.width, sheet.height), (3 * 17 + 1, 2 * (16 + 10 + 1) + 1));
    }

    #[test]
    fn bad_options_and_no_rows() {
        let err = parse_layout("cell=2").unwrap_err().to_string();
        assert!(
            err.contains("cell must be a whole number from 8 to 1024, not '2'"),
            "{err}"
        );
        let mut empty = ImageGridAccumulator::default();
        let ScalarValue::Struct(sheet) = empty.evaluate().unwrap() else {
            panic!("struct")
        };
        assert!(sheet.is_null(0));
    }
}
