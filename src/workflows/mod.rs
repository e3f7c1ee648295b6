//! The workflows behind `rookery augment`, `rookery train` and `rookery
//! crops`: each builds SQL over Rookery's functions and runs it on a
//! session, so the commands stay thin and anything they do can be done
//! (and read) as a query.

pub mod augment;
pub mod crops;
pub mod train;

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{plan_err, Result};
use datafusion::prelude::SessionContext;

use crate::exec::{run_sql, StatementResult};

/// `text` as an SQL string literal.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A path as an SQL string literal; folders get the trailing `/` a table
/// location needs.
fn sql_path(path: &Path, folder: bool) -> String {
    let mut text = path.display().to_string();
    if folder && !text.ends_with('/') {
        text.push('/');
    }
    sql_string(&text)
}

/// Checks that `path` is an existing folder, naming what it is for.
pub fn existing_folder(what: &str, path: &Path) -> Result<()> {
    if !path.is_dir() {
        return plan_err!("{what} {} is not a folder", path.display());
    }
    Ok(())
}

/// Checks that `path` is an existing file, naming what it is for.
pub fn existing_file(what: &str, path: &Path) -> Result<()> {
    if !path.is_file() {
        return plan_err!("{what} {} does not exist", path.display());
    }
    Ok(())
}

/// The SQL of a file name's stem: no folders, no extension. Label files
/// name images with or without their folder and extension.
fn stem_sql(column: &str) -> String {
    format!("regexp_replace(regexp_replace(CAST({column} AS VARCHAR), '^.*/', ''), '\\.[^.]*$', '')")
}

/// Runs `sql` and returns the first column of the first row as an integer.
async fn single_count(ctx: &SessionContext, sql: &str) -> Result<i64> {
    let results = run_sql(ctx, sql).await?;
    Ok(first_value(results.last()).unwrap_or(0))
}

/// The first column of a result as text, row by row.
fn first_column_strings(result: Option<&StatementResult>) -> Vec<String> {
    let Some(result) = result else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for batch in &result.batches {
        if let Ok(column) =
            datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)
        {
            let column = column.as_string::<i32>();
            out.extend((0..column.len()).map(|i| column.value(i).to_string()));
        }
    }
    out
}

fn first_value(result: Option<&StatementResult>) -> Option<i64> {
    let batch = result?.batches.first()?;
    let column = batch.column(0).as_primitive_opt::<Int64Type>()?;
    (!column.is_empty() && column.is_valid(0)).then(|| column.value(0))
}

/// An image folder and its labels registered as the table
/// `{prefix}_images` and the view `{prefix}_labelled` (`filename`, `stem`,
/// `label`, `path`, `format`, `content`, `image`): every labelled image,
/// once. The labels come from a label file (`filename,label` or
/// `index,filename,label`, with a header; also registered, as
/// `{prefix}_labels`), or without one from a class-per-folder tree: each
/// image's label is its folder's name, and its `filename` and `stem` keep
/// the folder (`interesting/0001.jpg`, `interesting/0001`), so what is
/// written from them has the tree's shape. Fails, naming them, when the
/// label file lists images the folder does not have, or a tree has no
/// class folders.
pub async fn register_labelled_folder(
    ctx: &SessionContext,
    prefix: &str,
    images: &Path,
    labels: Option<&Path>,
) -> Result<()> {
    existing_folder("image folder", images)?;
    let Some(labels) = labels else {
        return register_class_tree(ctx, prefix, images).await;
    };
    existing_file("label file", labels)?;
    run_sql(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE {prefix}_images STORED AS IMAGES LOCATION {};
             CREATE EXTERNAL TABLE {prefix}_labels STORED AS CSV LOCATION {} OPTIONS ('format.has_header' 'true');",
            sql_path(images, true),
            sql_path(labels, false)
        ),
    )
    .await?;
    let table = ctx.table(format!("{prefix}_labels")).await?;
    let columns: Vec<String> = table.schema().fields().iter().map(|f| f.name().clone()).collect();
    if !columns.iter().any(|c| c == "filename") || !columns.iter().any(|c| c == "label") {
        return plan_err!(
            "label file {} needs a header line with the columns filename and label (filename,label or index,filename,label); its columns are: {}",
            labels.display(),
            columns.join(", ")
        );
    }
    run_sql(
        ctx,
        &format!(
            "CREATE VIEW {prefix}_labelled AS
             SELECT CAST(l.filename AS VARCHAR) AS filename, {label_stem} AS stem, CAST(l.label AS VARCHAR) AS label,
                 i.path, i.format, i.content, i.image
             FROM {prefix}_labels l JOIN {prefix}_images i ON {label_stem} = {image_stem}
             WHERE l.label IS NOT NULL;",
            label_stem = stem_sql("l.filename"),
            image_stem = stem_sql("i.path"),
        ),
    )
    .await?;
    let missing = run_sql(
        ctx,
        &format!(
            "SELECT CAST(l.filename AS VARCHAR) AS filename FROM {prefix}_labels l
             WHERE {label_stem} NOT IN (SELECT {image_stem} FROM {prefix}_images i)
             ORDER BY 1;",
            label_stem = stem_sql("l.filename"),
            image_stem = stem_sql("i.path"),
        ),
    )
    .await?;
    let names = first_column_strings(missing.last());
    if !names.is_empty() {
        let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        let more = if names.len() > 5 {
            format!(" and {} more", names.len() - 5)
        } else {
            String::new()
        };
        return plan_err!(
            "label file {} lists {} image(s) not in {}: {}{more}",
            labels.display(),
            names.len(),
            images.display(),
            shown.join(", ")
        );
    }
    Ok(())
}

/// [`register_labelled_folder`] for a class-per-folder tree.
async fn register_class_tree(ctx: &SessionContext, prefix: &str, images: &Path) -> Result<()> {
    run_sql(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE {prefix}_images STORED AS IMAGES LOCATION {};
             CREATE VIEW {prefix}_labelled AS
             SELECT relative_path AS filename, regexp_replace(relative_path, '\\.[^./]*$', '') AS stem, label,
                 path, format, content, image
             FROM {prefix}_images WHERE label IS NOT NULL;",
            sql_path(images, true),
        ),
    )
    .await?;
    if single_count(ctx, &format!("SELECT count(*) FROM {prefix}_labelled;")).await? == 0 {
        return plan_err!(
            "{} has no class folders (one folder of images per label, such as interesting/ and not_interesting/); \
             give a label file instead",
            images.display()
        );
    }
    Ok(())
}

/// Labels and how many images each has, in label order.
async fn label_counts(ctx: &SessionContext, relation: &str) -> Result<Vec<(String, i64)>> {
    let results = run_sql(
        ctx,
        &format!("SELECT label, count(*) AS images FROM {relation} GROUP BY label ORDER BY label;"),
    )
    .await?;
    let mut counts = Vec::new();
    if let Some(result) = results.last() {
        for batch in &result.batches {
            let labels =
                datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let labels = labels.as_string::<i32>();
            let images = batch.column(1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                counts.push((labels.value(i).to_string(), images.value(i)));
            }
        }
    }
    Ok(counts)
}
