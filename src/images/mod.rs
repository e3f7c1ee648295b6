//! Image folders as tables: `CREATE EXTERNAL TABLE t STORED AS IMAGES
//! LOCATION 'dir/'` and the table function `images('dir/*.jpg')`.
//!
//! One row per file. Files are listed through `object_store`, so any store
//! registered in the session (local files, `s3://`) works the same way.
//! What is read depends on the columns a query needs:
//!
//! | columns used | work per file |
//! |---|---|
//! | `path`, `name`, `size` | none (listing only) |
//! | `format`, `width`, `height`, `error` | the first 64 KiB (header) |
//! | `content` | the whole file |
//! | `image` | the whole file, decoded |
//!
//! Filters on `path`, `name`, `format`, `size`, `width` and `height` run
//! inside the scan, before any content is read or decoded.

mod batching;
mod options;
mod scan;
mod sink;
mod tiles;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider, TableProviderFactory};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

pub use batching::{image_batch_rows, BatchSizeCap, CapBatchesOverImages, ImageBatchSizeExec};
pub use options::{ImageConfig, ImageOptions, DEFAULT_BATCH_ROWS};
pub use scan::ImageScanExec;
pub use sink::{ImageFileFormat, ImageFileFormatFactory, ImageSink, ImageWriteOptions, IMAGES_FORMAT};
pub use tiles::{tile_table_schema, ImageTileTable, ImageTilesTableFunction, TileExec, TileOptions, TileSpec};

/// Column names of an image table, in schema order.
pub mod columns {
    pub const PATH: &str = "path";
    pub const NAME: &str = "name";
    pub const FORMAT: &str = "format";
    pub const SIZE: &str = "size";
    pub const WIDTH: &str = "width";
    pub const HEIGHT: &str = "height";
    pub const CONTENT: &str = "content";
    pub const IMAGE: &str = "image";
    pub const ERROR: &str = "error";
}

/// Columns known before a file's content is read (header at most), which
/// filters may use inside the scan.
const FILTERABLE: [&str; 6] = [
    columns::PATH,
    columns::NAME,
    columns::FORMAT,
    columns::SIZE,
    columns::WIDTH,
    columns::HEIGHT,
];

/// The schema every image table has.
pub fn image_table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new(columns::NAME, DataType::Utf8, false),
        Field::new(columns::FORMAT, DataType::Utf8, true),
        Field::new(columns::SIZE, DataType::UInt64, false),
        Field::new(columns::WIDTH, DataType::UInt32, true),
        Field::new(columns::HEIGHT, DataType::UInt32, true),
        Field::new(columns::CONTENT, DataType::BinaryView, true),
        Field::new(columns::IMAGE, rookery_image::image_type(), true),
        Field::new(columns::ERROR, DataType::Utf8, true),
    ]))
}

/// A folder (or glob) of images.
#[derive(Debug)]
pub struct ImageTable {
    /// The location as given, glob included (what a cluster's codec sends).
    source: String,
    location: ListingTableUrl,
    options: ImageOptions,
    schema: SchemaRef,
}

impl ImageTable {
    /// `location` is a folder (`dir/`), a glob (`dir/*.jpg`) or one file, as
    /// a path or a URL such as `s3://bucket/prefix/`.
    pub fn try_new(location: &str, options: ImageOptions) -> Result<Self> {
        Ok(Self {
            source: location.to_string(),
            location: crate::stores::table_url(location)?,
            options,
            schema: image_table_schema(),
        })
    }

    pub fn options(&self) -> &ImageOptions {
        &self.options
    }

    /// The location as given to [`ImageTable::try_new`].
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Exact pushdown for the filters that `pushable` accepts, none for others.
fn pushdown(filters: &[&Expr], pushable: fn(&Expr) -> bool) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| {
            if pushable(f) {
                TableProviderFilterPushDown::Exact
            } else {
                TableProviderFilterPushDown::Unsupported
            }
        })
        .collect()
}

fn filter_is_pushable(expr: &Expr) -> bool {
    let allowed: HashSet<&str> = FILTERABLE.into_iter().collect();
    !expr.is_volatile() && expr.column_refs().iter().all(|c| allowed.contains(c.name.as_str()))
}

#[async_trait]
impl TableProvider for ImageTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(filters, filter_is_pushable))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let exec = ImageScanExec::try_new(
            state,
            &self.location,
            &self.options,
            Arc::clone(&self.schema),
            projection.cloned(),
            filters,
            limit,
        )
        .await?;
        Ok(Arc::new(exec))
    }
}

/// Makes `STORED AS IMAGES` tables.
#[derive(Debug, Default)]
pub struct ImageTableFactory;

#[async_trait]
impl TableProviderFactory for ImageTableFactory {
    async fn create(&self, _state: &dyn Session, cmd: &CreateExternalTable) -> Result<Arc<dyn TableProvider>> {
        if !cmd.schema.fields().is_empty() {
            return plan_err!(
                "image tables have a fixed schema ({}); remove the column list",
                image_table_schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !cmd.table_partition_cols.is_empty() {
            return plan_err!("image tables do not support PARTITIONED BY");
        }
        let options = ImageOptions::from_map(&cmd.options)?;
        let [location] = cmd.locations.as_slice() else {
            return plan_err!("image tables take one LOCATION (a folder or a glob)");
        };
        Ok(Arc::new(ImageTable::try_new(location, options)?))
    }
}

/// `images('dir/' [, 'option=value, ...'])`: an image folder as an ad-hoc table.
#[derive(Debug, Default)]
pub struct ImagesTableFunction;

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.as_str()),
        _ => None,
    }
}

impl TableFunctionImpl for ImagesTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let usage = "images('folder/' | 'folder/*.jpg' [, 'drop_invalid=true, batch_rows=4, max_pixels=N'])";
        let (location, options) = match exprs {
            [location] => (string_literal(location), Some("")),
            [location, options] => (string_literal(location), string_literal(options)),
            _ => return plan_err!("images() takes 1 or 2 arguments: {usage}"),
        };
        let (Some(location), Some(options)) = (location, options) else {
            return plan_err!("images() takes string literals: {usage}");
        };
        let options = ImageOptions::parse_list(options)?;
        Ok(Arc::new(ImageTable::try_new(location, options)?))
    }
}
