//! Turning result batches into text for people: table, CSV or JSON.
//!
//! Encoded files and pixel buffers are never dumped as hex: a binary cell
//! prints as `<jpeg 4.1 MB>`, an image value as `<image 4992x3328x3>`, and
//! long lists show their first items and their length.

use std::fmt::Write as _;
use std::io::Write;
use std::str::FromStr;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{plan_err, DataFusionError, Result};
use rookery_udfs::args::binary_value;
use rookery_udfs::codec::{format_name, sniff_format};
use rookery_udfs::{is_image_type, ImageArray};

/// Items of a list cell shown before `…`.
const LIST_ITEMS_SHOWN: usize = 5;

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Csv,
    Json,
}

impl FromStr for OutputFormat {
    type Err = DataFusionError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => plan_err!("unknown format '{other}' (expected table, csv or json)"),
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Json => "json",
        })
    }
}

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

/// How results are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub format: OutputFormat,
    /// Rows shown in table format; all when `None`.
    pub max_rows: Option<usize>,
    /// A `(N rows)` line under tables.
    pub footer: bool,
}

impl Layout {
    pub fn new(format: OutputFormat) -> Self {
        Self {
            format,
            max_rows: None,
            footer: true,
        }
    }
}

/// Writes results as `layout` says.
pub fn write_results(out: &mut dyn Write, schema: &Schema, batches: &[RecordBatch], layout: Layout) -> Result<()> {
    match layout.format {
        OutputFormat::Table => write_table(out, schema, batches, layout.max_rows, layout.footer),
        OutputFormat::Csv => write_csv(out, schema, batches),
        OutputFormat::Json => write_json(out, batches),
    }
}

fn write_table(
    out: &mut dyn Write,
    schema: &Schema,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
    footer: bool,
) -> Result<()> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let limit = max_rows.unwrap_or(usize::MAX);
    let mut table = comfy_table::Table::new();
    table.load_preset("||--+-++|    ++++++");
    table.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let mut shown = 0;
    'batches: for batch in batches {
        for row in batch_to_strings(batch, "NULL")? {
            if shown == limit {
                break 'batches;
            }
            table.add_row(row);
            shown += 1;
        }
    }
    if schema.fields().is_empty() {
        writeln!(out, "OK").map_err(DataFusionError::from)?;
        return Ok(());
    }
    writeln!(out, "{table}")?;
    if !footer {
        return Ok(());
    }
    let noun = if total == 1 { "row" } else { "rows" };
    if shown < total {
        writeln!(out, "({total} {noun}, first {shown} shown; \\pset maxrows N to change)")?;
    } else {
        writeln!(out, "({total} {noun})")?;
    }
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn write_csv(out: &mut dyn Write, schema: &Schema, batches: &[RecordBatch]) -> Result<()> {
    let header: Vec<String> = schema.fields().iter().map(|f| csv_field(f.name())).collect();
    writeln!(out, "{}", header.join(","))?;
    for batch in batches {
        for row in batch_to_strings(batch, "")? {
            let fields: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
            writeln!(out, "{}", fields.join(","))?;
        }
    }
    Ok(())
}

fn is_json_literal(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean)
}

fn write_json(out: &mut dyn Write, batches: &[RecordBatch]) -> Result<()> {
    writeln!(out, "[")?;
    let mut first = true;
    for batch in batches {
        let schema = batch.schema();
        for (row_index, row) in batch_to_strings(batch, "null")?.into_iter().enumerate() {
            if !first {
                writeln!(out, ",")?;
            }
            first = false;
            let mut object = serde_json::Map::new();
            for ((field, cell), column) in schema.fields().iter().zip(row).zip(batch.columns()) {
                let value = if column.is_null(row_index) {
                    serde_json::Value::Null
                } else if is_json_literal(field.data_type()) {
                    serde_json::from_str(&cell).unwrap_or(serde_json::Value::String(cell))
                } else {
                    serde_json::Value::String(cell)
                };
                object.insert(field.name().clone(), value);
            }
            write!(out, "  {}", serde_json::Value::Object(object))?;
        }
    }
    if !first {
        writeln!(out)?;
    }
    writeln!(out, "]")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, LargeBinaryArray, ListArray, StringArray};
    use datafusion::arrow::datatypes::{Field, Int32Type};
    use rookery_udfs::{Image, ImageArrayBuilder};
    use std::sync::Arc;

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

        let mut builder = ImageArrayBuilder::with_capacity(2);
        builder
            .append(Image::new(2, 2, 3, vec![0; 12]).unwrap().view())
            .unwrap();
        builder.append_null();
        let images: ArrayRef = Arc::new(builder.finish());
        assert_eq!(cell_to_string(&images, 0).unwrap(), "<image 2x2x3>");
        assert_eq!(cell_to_string(&images, 1).unwrap(), "NULL");
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
    fn table_csv_and_json() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a,b"), Some("c")])),
            ],
        )
        .unwrap();
        let render = |format, max_rows| {
            let mut out = Vec::new();
            let layout = Layout {
                format,
                max_rows,
                footer: true,
            };
            write_results(&mut out, &schema, std::slice::from_ref(&batch), layout).unwrap();
            String::from_utf8(out).unwrap()
        };
        let table = render(OutputFormat::Table, None);
        assert!(table.contains("| n    | s   |"), "{table}");
        assert!(table.ends_with("(2 rows)\n"), "{table}");
        assert!(render(OutputFormat::Table, Some(1)).contains("(2 rows, first 1 shown"));
        assert_eq!(render(OutputFormat::Csv, None), "n,s\n1,\"a,b\"\n,c\n");
        assert_eq!(
            render(OutputFormat::Json, None),
            "[\n  {\"n\":1,\"s\":\"a,b\"},\n  {\"n\":null,\"s\":\"c\"}\n]\n"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(4_100_000), "4.1 MB");
    }
}
