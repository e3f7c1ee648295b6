//! Values as text for people, shared by every front end (the CLI's
//! tables, CSV and JSON, the HTTP server, the sqllogictest runner).
//!
//! Encoded files and pixel buffers are never dumped as hex: a binary cell
//! prints as `<jpeg 4.1 MB>`, an image value as `<image 4992x3328x3>`, and
//! long lists show their first items and their length.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result};
use rookery_image::args::binary_value;
use rookery_image::codec::{format_name, sniff_format};
use rookery_image::{is_image_type, ImageArray};

/// Items of a list cell shown before `…`.
const LIST_ITEMS_SHOWN: usize = 5;

/// `4.1 MB`, `12 B`: decimal units, as file browsers show them.
pub fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn describe_bytes(bytes: &[u8]) -> String {
    let kind = sniff_format(bytes).map(format_name).unwrap_or("binary");
    format!("<{kind} {}>", human_bytes(bytes.len()))
}

/// Formats the cells of one column.
enum CellFormatter<'a> {
    Image(ImageArray<'a>),
    Binary(&'a dyn Array),
    Struct(Vec<(String, CellFormatter<'a>)>, &'a dyn Array),
    List(&'a dyn Array, Box<CellFormatter<'a>>),
    Plain(ArrayFormatter<'a>, &'a dyn Array),
}

impl<'a> CellFormatter<'a> {
    fn try_new(array: &'a dyn Array, options: &FormatOptions<'a>) -> Result<Self> {
        Ok(match array.data_type() {
            dt if is_image_type(dt) => CellFormatter::Image(ImageArray::try_new(array)?),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                CellFormatter::Binary(array)
            }
            DataType::Struct(fields) => {
                let columns = array.as_struct();
                let children = fields
                    .iter()
                    .zip(columns.columns())
                    .map(|(f, c)| Ok((f.name().clone(), CellFormatter::try_new(c.as_ref(), options)?)))
                    .collect::<Result<Vec<_>>>()?;
                CellFormatter::Struct(children, array)
            }
            DataType::List(_) => CellFormatter::List(
                array,
                Box::new(Self::try_new(array.as_list::<i32>().values().as_ref(), options)?),
            ),
            DataType::LargeList(_) => CellFormatter::List(
                array,
                Box::new(Self::try_new(array.as_list::<i64>().values().as_ref(), options)?),
            ),
            DataType::FixedSizeList(_, _) => CellFormatter::List(
                array,
                Box::new(Self::try_new(array.as_fixed_size_list().values().as_ref(), options)?),
            ),
            _ => CellFormatter::Plain(ArrayFormatter::try_new(array, options)?, array),
        })
    }

    fn array(&self) -> Option<&dyn Array> {
        match self {
            CellFormatter::Image(_) => None,
            CellFormatter::Binary(a)
            | CellFormatter::Struct(_, a)
            | CellFormatter::List(a, _)
            | CellFormatter::Plain(_, a) => Some(*a),
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            CellFormatter::Image(images) => matches!(images.get(row), Ok(None)),
            other => other.array().is_some_and(|a| a.is_null(row)),
        }
    }

    /// Writes the cell; NULL as `null_text`.
    fn write(&self, row: usize, out: &mut String, null_text: &str) -> Result<()> {
        if self.is_null(row) {
            out.push_str(null_text);
            return Ok(());
        }
        match self {
            CellFormatter::Image(images) => {
                if let Some(image) = images.get(row)? {
                    out.push_str(&image.describe());
                }
            }
            CellFormatter::Binary(array) => {
                out.push_str(&describe_bytes(binary_value(*array, row).unwrap_or_default()));
            }
            CellFormatter::Struct(children, _) => {
                out.push('{');
                for (i, (name, child)) in children.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{name}: ");
                    child.write(row, out, "NULL")?;
                }
                out.push('}');
            }
            CellFormatter::List(array, child) => {
                let (start, end) = list_bounds(*array, row);
                let len = end - start;
                out.push('[');
                for (i, item) in (start..end).take(LIST_ITEMS_SHOWN).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    child.write(item, out, "NULL")?;
                }
                if len > LIST_ITEMS_SHOWN {
                    let _ = write!(out, ", … ({len} items)");
                }
                out.push(']');
            }
            CellFormatter::Plain(formatter, _) => {
                let _ = write!(out, "{}", formatter.value(row));
            }
        }
        Ok(())
    }
}

fn list_bounds(array: &dyn Array, row: usize) -> (usize, usize) {
    match array.data_type() {
        DataType::List(_) => {
            let offsets = array.as_list::<i32>().value_offsets();
            (offsets[row] as usize, offsets[row + 1] as usize)
        }
        DataType::LargeList(_) => {
            let offsets = array.as_list::<i64>().value_offsets();
            (offsets[row] as usize, offsets[row + 1] as usize)
        }
        DataType::FixedSizeList(_, n) => {
            let start = array.as_fixed_size_list().value_offset(row) as usize;
            (start, start + *n as usize)
        }
        _ => (0, 0),
    }
}

/// Every cell of a batch as text, row by row; NULL as `null_text`.
pub fn batch_to_strings(batch: &RecordBatch, null_text: &str) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null(null_text);
    let formatters = batch
        .columns()
        .iter()
        .map(|c| CellFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>>>()?;
    (0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|f| {
                    let mut cell = String::new();
                    f.write(row, &mut cell, null_text)?;
                    Ok(cell)
                })
                .collect()
        })
        .collect()
}

/// The text of one cell (used by tests and small helpers).
pub fn cell_to_string(array: &ArrayRef, row: usize) -> Result<String> {
    let options = FormatOptions::default().with_null("NULL");
    let formatter = CellFormatter::try_new(array.as_ref(), &options)?;
    let mut out = String::new();
    formatter.write(row, &mut out, "NULL")?;
    Ok(out)
}

/// True for types that writers would dump whole (images, bytes) or, with
/// `nested_as_text`, cannot write at all (lists and structs, for CSV).
fn needs_text(data_type: &DataType, nested_as_text: bool) -> bool {
    if is_image_type(data_type) {
        return true;
    }
    match data_type {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => true,
        DataType::Struct(fields) => nested_as_text || fields.iter().any(|f| needs_text(f.data_type(), false)),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            nested_as_text || needs_text(f.data_type(), false)
        }
        DataType::Map(..) | DataType::Union(..) | DataType::Dictionary(..) => nested_as_text,
        _ => false,
    }
}

/// `batch` ready for a text writer (Arrow's CSV and JSON writers): image,
/// binary and (with `nested_as_text`) nested columns become text columns of
/// their compact cells, NULLs kept; other columns are shared unchanged.
pub fn compact_for_text(batch: &RecordBatch, nested_as_text: bool) -> Result<RecordBatch> {
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| needs_text(f.data_type(), nested_as_text))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !needs_text(field.data_type(), nested_as_text) {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        }
        let formatter = CellFormatter::try_new(column.as_ref(), &options)?;
        let mut text = StringBuilder::with_capacity(column.len(), column.len() * 16);
        let mut cell = String::new();
        for row in 0..column.len() {
            if formatter.is_null(row) {
                text.append_null();
            } else {
                cell.clear();
                formatter.write(row, &mut cell, "")?;
                text.append_value(&cell);
            }
        }
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text.finish()) as ArrayRef);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DataFusionError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, LargeBinaryArray, ListArray};
    use datafusion::arrow::datatypes::Int32Type;
    use rookery_image::{Image, ImageArrayBuilder};

    #[test]
    fn binaries_and_images_print_compactly() {
        let jpeg_magic: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];
        let mut content = jpeg_magic.to_vec();
        content.resize(4_100_000, 0);
        let binary: ArrayRef = Arc::new(LargeBinaryArray::from(vec![
            Some(content.as_slice()),
            Some(&b"abc"[..]),
            None,
        ]));
        assert_eq!(cell_to_string(&binary, 0).unwrap(), "<jpeg 4.1 MB>");
        assert_eq!(cell_to_string(&binary, 1).unwrap(), "<binary 3 B>");
        assert_eq!(cell_to_string(&binary, 2).unwrap(), "NULL");

        let images = image_and_null();
        assert_eq!(cell_to_string(&images, 0).unwrap(), "<image 2x2x3>");
        assert_eq!(cell_to_string(&images, 1).unwrap(), "NULL");
    }

    /// A 2x2 RGB image, then NULL.
    fn image_and_null() -> ArrayRef {
        let mut builder = ImageArrayBuilder::with_capacity(2);
        builder
            .append(Image::new(2, 2, 3, vec![0; 12]).unwrap().view())
            .unwrap();
        builder.append_null();
        Arc::new(builder.finish())
    }

    #[test]
    fn long_lists_are_cut() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some((0..8).map(Some).collect::<Vec<_>>()),
            Some(vec![Some(1), None]),
        ]));
        assert_eq!(cell_to_string(&list, 0).unwrap(), "[0, 1, 2, 3, 4, … (8 items)]");
        assert_eq!(cell_to_string(&list, 1).unwrap(), "[1, NULL]");
    }

    #[test]
    fn compact_columns_for_text_writers() {
        let images = image_and_null();
        let numbers: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
        ]));
        let batch = RecordBatch::try_from_iter(vec![("i", images), ("n", Arc::clone(&numbers)), ("l", list)]).unwrap();

        let json = compact_for_text(&batch, false).unwrap();
        assert_eq!(json.column(0).as_string::<i32>().value(0), "<image 2x2x3>");
        assert!(json.column(0).is_null(1));
        assert!(Arc::ptr_eq(json.column(1), &numbers), "plain columns are shared");
        assert!(
            matches!(json.schema().field(2).data_type(), DataType::List(_)),
            "JSON keeps lists"
        );

        let csv = compact_for_text(&batch, true).unwrap();
        assert_eq!(csv.column(2).as_string::<i32>().value(0), "[1, 2]");
        assert!(csv.column(2).is_null(1));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(4_100_000), "4.1 MB");
    }
}
