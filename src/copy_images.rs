//! `COPY (query) TO 'dir/' STORED AS IMAGES`: one image file per row.
//!
//! The query gives a file name and the picture: a `name` column (else the
//! first text column) and a binary column of encoded bytes (written as
//! they are, the extension from their content) or an image value (encoded
//! as PNG, or JPEG with `OPTIONS ('format' 'jpeg', 'quality' '90')`).
//! Files are `dir/<name>.<ext>`, written through `object_store`. If the
//! COPY fails, the files it wrote are removed again.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::context::SessionContext;
use datafusion::sql::parser::{CopyToSource, CopyToStatement, Statement};
use datafusion::sql::sqlparser::ast::Value;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rookery_udfs::args::binary_value;
use rookery_udfs::codec::{encode, format_name, sniff_format};
use rookery_udfs::{is_image_type, ImageArray};

/// True when `copy` is `... STORED AS IMAGES`.
pub fn is_images_copy(copy: &CopyToStatement) -> bool {
    copy.stored_as
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("images"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct WriteOptions {
    format: &'static str,
    quality: u8,
}

fn write_options(copy: &CopyToStatement) -> Result<WriteOptions> {
    let mut options = WriteOptions {
        format: "png",
        quality: 90,
    };
    for (key, value) in &copy.options {
        let text = match value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            other => other.to_string(),
        };
        match key.to_ascii_lowercase().trim_start_matches("format.") {
            "format" => {
                options.format = match text.to_ascii_lowercase().as_str() {
                    "png" => "png",
                    "jpeg" | "jpg" => "jpeg",
                    other => {
                        return plan_err!("COPY ... STORED AS IMAGES: format must be 'png' or 'jpeg', not '{other}'")
                    }
                }
            }
            "quality" => match text.parse::<u8>() {
                Ok(q) if (1..=100).contains(&q) => options.quality = q,
                _ => return plan_err!("COPY ... STORED AS IMAGES: quality must be 1 to 100, not '{text}'"),
            },
            other => return plan_err!("COPY ... STORED AS IMAGES: unknown option '{other}' (known: format, quality)"),
        }
    }
    Ok(options)
}

/// Which columns hold the file name and the picture.
fn pick_columns(schema: &Schema) -> Result<(usize, usize)> {
    let is_text = |f: &Field| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let is_picture = |f: &Field| {
        is_image_type(f.data_type())
            || matches!(
                f.data_type(),
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            )
    };
    let fields = schema.fields();
    let name = fields
        .iter()
        .position(|f| f.name() == "name" && is_text(f))
        .or_else(|| fields.iter().position(|f| is_text(f)));
    let picture = fields.iter().position(|f| is_picture(f));
    match (name, picture) {
        (Some(n), Some(p)) => Ok((n, p)),
        _ => plan_err!(
            "COPY ... STORED AS IMAGES needs a text column for file names (`name`) and an image or binary column; the query gives ({})",
            fields.iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn safe_file_stem(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return exec_err!("COPY ... STORED AS IMAGES: '{name}' cannot be a file name");
    }
    Ok(name)
}

/// The encoded file of row `row`, with its extension; `None` for NULL.
fn encoded_file(column: &dyn Array, row: usize, options: &WriteOptions) -> Result<Option<(Vec<u8>, &'static str)>> {
    if is_image_type(column.data_type()) {
        let images = ImageArray::try_new(column).map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let Some(image) = images.get(row).map_err(|e| DataFusionError::Execution(e.to_string()))? else {
            return Ok(None);
        };
        let bytes =
            encode(image, options.format, options.quality).map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let ext = if options.format == "jpeg" { "jpg" } else { "png" };
        return Ok(Some((bytes, ext)));
    }
    let Some(bytes) = binary_value(column, row) else {
        return Ok(None);
    };
    let ext = match sniff_format(bytes).map(format_name) {
        Some("jpeg") => "jpg",
        Some(other) => other,
        None => "bin",
    };
    Ok(Some((bytes.to_vec(), ext)))
}

/// Runs the COPY; returns one row with the number of files written.
pub async fn copy_images(ctx: &SessionContext, copy: &CopyToStatement) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let options = write_options(copy)?;
    let state = ctx.state();
    let plan = match &copy.source {
        CopyToSource::Relation(name) => ctx.sql(&format!("SELECT * FROM {name}")).await?.into_unoptimized_plan(),
        CopyToSource::Query(query) => {
            let statement = datafusion::sql::sqlparser::ast::Statement::Query(query.clone());
            state
                .statement_to_plan(Statement::Statement(Box::new(statement)))
                .await?
        }
    };
    let frame = ctx.execute_logical_plan(plan).await?;
    let (name_column, picture_column) = pick_columns(frame.schema().as_arrow())?;

    let target = if copy.target.ends_with('/') {
        copy.target.clone()
    } else {
        format!("{}/", copy.target)
    };
    let url = ListingTableUrl::parse(&target)?;
    let store = state.runtime_env().object_store(url.object_store())?;
    let mut written: Vec<StorePath> = Vec::new();
    let result = write_rows(
        frame,
        store.as_ref(),
        url.prefix(),
        name_column,
        picture_column,
        &options,
        &mut written,
    )
    .await;
    if result.is_err() {
        for path in &written {
            let _ = store.delete(path).await;
        }
    }
    let count = result?;
    let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(UInt64Array::from(vec![count]))])?;
    Ok((schema, vec![batch]))
}

async fn write_rows(
    frame: datafusion::dataframe::DataFrame,
    store: &dyn ObjectStore,
    prefix: &StorePath,
    name_column: usize,
    picture_column: usize,
    options: &WriteOptions,
    written: &mut Vec<StorePath>,
) -> Result<u64> {
    let mut stream = frame.execute_stream().await?;
    let mut count = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let names = datafusion::arrow::compute::cast(batch.column(name_column), &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let pictures = batch.column(picture_column);
        for row in 0..batch.num_rows() {
            if names.is_null(row) {
                return exec_err!("COPY ... STORED AS IMAGES: row {count} has a NULL name");
            }
            let stem = safe_file_stem(names.value(row))?;
            let Some((bytes, ext)) = encoded_file(pictures.as_ref(), row, options)? else {
                continue;
            };
            let path = prefix.clone().join(format!("{stem}.{ext}"));
            store.put(&path, PutPayload::from(bytes)).await?;
            written.push(path);
            count += 1;
        }
    }
    Ok(count)
}
