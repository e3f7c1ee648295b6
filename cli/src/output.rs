//! Query results as the user asked for them: a table for people, or CSV,
//! JSON and newline-delimited JSON on Arrow's writers, written batch by
//! batch as the rows arrive.
//!
//! Image and binary cells are written compactly (`<image 4992x3328x3>`,
//! `<jpeg 4.1 MB>`) in every format: see [`rookery::display`].

use std::io::Write;
use std::str::FromStr;

use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{JsonFormat, LineDelimited};
use datafusion::arrow::json::{self, Writer as JsonWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{plan_err, DataFusionError, Result};
use rookery::display::{batch_to_strings, compact_for_text};

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Csv,
    /// One JSON array, an object per row, a row per line.
    Json,
    /// Newline-delimited JSON: one object per line, nothing around them.
    NdJson,
}

impl FromStr for OutputFormat {
    type Err = DataFusionError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "ndjson" => Ok(Self::NdJson),
            other => plan_err!("unknown format '{other}' (expected table, csv, json or ndjson)"),
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::NdJson => "ndjson",
        })
    }
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

/// A JSON array with one row per line, readable in a terminal and valid
/// JSON as a whole: `[\n  {...},\n  {...}\n]`.
#[derive(Debug, Default)]
struct JsonRowPerLine;

impl JsonFormat for JsonRowPerLine {
    fn start_stream<W: Write>(&self, writer: &mut W) -> std::result::Result<(), ArrowError> {
        Ok(writer.write_all(b"[")?)
    }

    fn start_row<W: Write>(&self, writer: &mut W, is_first_row: bool) -> std::result::Result<(), ArrowError> {
        Ok(writer.write_all(if is_first_row { b"\n  " } else { b",\n  " })?)
    }

    fn end_stream<W: Write>(&self, writer: &mut W) -> std::result::Result<(), ArrowError> {
        Ok(writer.write_all(b"\n]\n")?)
    }
}

enum Sink<'a> {
    /// Tables need every shown row to size their columns: rows are kept as
    /// text (never as batches of pixels) up to `max_rows`, then only counted.
    Table {
        out: &'a mut dyn Write,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        total: usize,
        layout: Layout,
    },
    Csv {
        writer: Box<csv::Writer<&'a mut dyn Write>>,
        schema: SchemaRef,
        wrote: bool,
    },
    Json(Box<JsonWriter<&'a mut dyn Write, JsonRowPerLine>>),
    NdJson(Box<JsonWriter<&'a mut dyn Write, LineDelimited>>),
}

/// Writes one statement's results batch by batch; call [`finish`] after
/// the last batch.
///
/// [`finish`]: ResultWriter::finish
pub struct ResultWriter<'a> {
    sink: Sink<'a>,
}

impl<'a> ResultWriter<'a> {
    pub fn new(out: &'a mut dyn Write, schema: &Schema, layout: Layout) -> Self {
        let json = || json::WriterBuilder::new().with_explicit_nulls(true);
        let sink = match layout.format {
            OutputFormat::Table => Sink::Table {
                out,
                header: schema.fields().iter().map(|f| f.name().clone()).collect(),
                rows: Vec::new(),
                total: 0,
                layout,
            },
            OutputFormat::Csv => Sink::Csv {
                writer: Box::new(csv::WriterBuilder::new().with_header(true).build(out)),
                schema: std::sync::Arc::new(schema.clone()),
                wrote: false,
            },
            OutputFormat::Json => Sink::Json(Box::new(json().build::<_, JsonRowPerLine>(out))),
            OutputFormat::NdJson => Sink::NdJson(Box::new(json().build::<_, LineDelimited>(out))),
        };
        Self { sink }
    }

    /// Writes `batch`'s rows (CSV and JSON at once; a table's at the end).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.sink {
            Sink::Table {
                rows, total, layout, ..
            } => {
                let room = layout.max_rows.unwrap_or(usize::MAX).saturating_sub(rows.len());
                if room > 0 {
                    let shown = batch.slice(0, batch.num_rows().min(room));
                    rows.extend(batch_to_strings(&shown, "NULL")?);
                }
                *total += batch.num_rows();
            }
            Sink::Csv { writer, wrote, .. } => {
                writer.write(&compact_for_text(batch, true)?)?;
                *wrote = true;
            }
            Sink::Json(writer) => writer.write(&compact_for_text(batch, false)?)?,
            Sink::NdJson(writer) => writer.write(&compact_for_text(batch, false)?)?,
        }
        Ok(())
    }

    /// Ends the output: the table itself, CSV's header when no row came,
    /// JSON's closing bracket.
    pub fn finish(self) -> Result<()> {
        match self.sink {
            Sink::Table {
                out,
                header,
                rows,
                total,
                layout,
            } => write_table(out, header, rows, total, layout),
            Sink::Csv {
                mut writer,
                schema,
                wrote,
            } => {
                if !wrote {
                    writer.write(&compact_for_text(&RecordBatch::new_empty(schema), true)?)?;
                }
                Ok(writer.into_inner().flush()?)
            }
            Sink::Json(mut writer) => {
                writer.finish()?;
                Ok(writer.into_inner().flush()?)
            }
            Sink::NdJson(mut writer) => {
                writer.finish()?;
                Ok(writer.into_inner().flush()?)
            }
        }
    }
}

fn write_table(
    out: &mut dyn Write,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    total: usize,
    layout: Layout,
) -> Result<()> {
    if header.is_empty() {
        writeln!(out, "OK")?;
        return Ok(());
    }
    let shown = rows.len();
    let mut table = comfy_table::Table::new();
    table.load_preset("||--+-++|    ++++++");
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    writeln!(out, "{table}")?;
    if !layout.footer {
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

/// Writes results that are already collected, as `layout` says.
pub fn write_results(out: &mut dyn Write, schema: &Schema, batches: &[RecordBatch], layout: Layout) -> Result<()> {
    let mut writer = ResultWriter::new(out, schema, layout);
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int32Array, ListArray, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int32Type};
    use rookery_image::{Image, ImageArrayBuilder};

    fn render(schema: &Schema, batches: &[RecordBatch], format: OutputFormat, max_rows: Option<usize>) -> String {
        let mut out = Vec::new();
        let layout = Layout {
            format,
            max_rows,
            footer: true,
        };
        write_results(&mut out, schema, batches, layout).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn numbers_and_text() -> (Arc<Schema>, RecordBatch) {
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
        (schema, batch)
    }

    #[test]
    fn table_csv_and_json() {
        let (schema, batch) = numbers_and_text();
        let batches = std::slice::from_ref(&batch);
        let table = render(&schema, batches, OutputFormat::Table, None);
        assert!(table.contains("| n    | s   |"), "{table}");
        assert!(table.ends_with("(2 rows)\n"), "{table}");
        assert!(render(&schema, batches, OutputFormat::Table, Some(1)).contains("(2 rows, first 1 shown"));
        assert_eq!(
            render(&schema, batches, OutputFormat::Csv, None),
            "n,s\n1,\"a,b\"\n,c\n"
        );
        assert_eq!(
            render(&schema, batches, OutputFormat::Json, None),
            "[\n  {\"n\":1,\"s\":\"a,b\"},\n  {\"n\":null,\"s\":\"c\"}\n]\n"
        );
        assert_eq!(
            render(&schema, batches, OutputFormat::NdJson, None),
            "{\"n\":1,\"s\":\"a,b\"}\n{\"n\":null,\"s\":\"c\"}\n"
        );
    }

    #[test]
    fn empty_results_keep_their_shape() {
        let (schema, _) = numbers_and_text();
        assert_eq!(render(&schema, &[], OutputFormat::Csv, None), "n,s\n");
        assert_eq!(render(&schema, &[], OutputFormat::Json, None), "[\n]\n");
        assert_eq!(render(&schema, &[], OutputFormat::NdJson, None), "");
        assert!(render(&schema, &[], OutputFormat::Table, None).ends_with("(0 rows)\n"));
    }

    #[test]
    fn rows_across_batches_stream_and_tables_keep_only_shown_rows() {
        let (schema, batch) = numbers_and_text();
        let batches = [batch.clone(), batch.clone(), batch];
        assert_eq!(
            render(&schema, &batches, OutputFormat::Csv, None),
            "n,s\n1,\"a,b\"\n,c\n1,\"a,b\"\n,c\n1,\"a,b\"\n,c\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&schema, &batches, OutputFormat::Json, None)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 6);

        let mut out = Vec::new();
        let mut writer = ResultWriter::new(
            &mut out,
            &schema,
            Layout {
                max_rows: Some(3),
                ..Layout::new(OutputFormat::Table)
            },
        );
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        let Sink::Table { rows, total, .. } = &writer.sink else {
            unreachable!()
        };
        assert_eq!((rows.len(), *total), (3, 6));
        writer.finish().unwrap();
        assert!(String::from_utf8(out).unwrap().contains("(6 rows, first 3 shown"));
    }

    #[test]
    fn images_and_lists_in_every_format() {
        let mut images = ImageArrayBuilder::with_capacity(1);
        images.append(Image::new(2, 2, 3, vec![0; 12]).unwrap().view()).unwrap();
        let images: ArrayRef = Arc::new(images.finish());
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![
            Some(1),
            Some(2),
        ])]));
        let batch = RecordBatch::try_from_iter(vec![("image", images), ("l", list)]).unwrap();
        let schema = batch.schema();
        let batches = std::slice::from_ref(&batch);
        assert_eq!(
            render(&schema, batches, OutputFormat::Csv, None),
            "image,l\n<image 2x2x3>,\"[1, 2]\"\n"
        );
        assert_eq!(
            render(&schema, batches, OutputFormat::NdJson, None),
            "{\"image\":\"<image 2x2x3>\",\"l\":[1,2]}\n"
        );
        assert!(render(&schema, batches, OutputFormat::Table, None).contains("<image 2x2x3>"));
    }
}
