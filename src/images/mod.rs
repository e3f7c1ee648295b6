//! Image folders as tables: `CREATE EXTERNAL TABLE t STORED AS IMAGES
//! LOCATION 'dir/'` and the table function `images('dir/*.jpg')`.
//!
//! One row per file. Files are listed through `object_store`, so any store
//! registered in the session (local files, `s3://`) works the same way.
//! What is read depends on the columns a query needs:
//!
//! | columns used | work per file |
//! |---|---|
//! | `path`, `name`, `size`, `relative_path`, `label`, partition columns | none (listing only) |
//! | `format`, `width`, `height`, `error`, `taken_at`, `gps_*`, `camera`, `orientation` | the first 64 KiB (header) |
//! | `content` | the whole file |
//! | `image` | the whole file, decoded |
//!
//! Filters on every column but `content`, `image` and `error` run inside
//! the scan, before any content is read or decoded; those on listing
//! columns run before anything is read, and equalities on partition
//! columns narrow the listing itself ([`tree`]).

mod batching;
mod options;
mod scan;
mod sink;
mod tiles;
pub mod tree;

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
pub(crate) use scan::path_and_name;
pub(crate) use scan::plan::deal as deal_files;
pub use scan::{partition_keys, ImageScanExec};
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
    pub const RELATIVE_PATH: &str = "relative_path";
    pub const LABEL: &str = "label";
    pub const TAKEN_AT: &str = "taken_at";
    pub const GPS_LAT: &str = "gps_lat";
    pub const GPS_LON: &str = "gps_lon";
    pub const GPS_ALT: &str = "gps_alt";
    pub const CAMERA: &str = "camera";
    pub const ORIENTATION: &str = "orientation";

    /// Known from the listing alone (with the partition columns).
    pub const LISTING: [&str; 5] = [PATH, NAME, SIZE, RELATIVE_PATH, LABEL];
    /// Read from the EXIF block of the header.
    pub const PHOTO: [&str; 6] = [TAKEN_AT, GPS_LAT, GPS_LON, GPS_ALT, CAMERA, ORIENTATION];
}

/// Columns that need more than a file's header, which filters cannot use
/// inside the scan.
const NOT_FILTERABLE: [&str; 3] = [columns::CONTENT, columns::IMAGE, columns::ERROR];

/// The schema of an image table without partition columns.
pub fn image_table_schema() -> SchemaRef {
    image_table_schema_with(&[])
}

/// The schema of an image table: its fixed columns (the tree's and the
/// EXIF header's after the first nine, so that older queries' positions
/// hold), then one text column per partition key.
pub fn image_table_schema_with(partition_keys: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new(columns::NAME, DataType::Utf8, false),
        Field::new(columns::FORMAT, DataType::Utf8, true),
        Field::new(columns::SIZE, DataType::UInt64, false),
        Field::new(columns::WIDTH, DataType::UInt32, true),
        Field::new(columns::HEIGHT, DataType::UInt32, true),
        Field::new(columns::CONTENT, DataType::BinaryView, true),
        Field::new(columns::IMAGE, rookery_image::image_type(), true),
        Field::new(columns::ERROR, DataType::Utf8, true),
        Field::new(columns::RELATIVE_PATH, DataType::Utf8, false),
        Field::new(columns::LABEL, DataType::Utf8, true),
        Field::new(
            columns::TAKEN_AT,
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(columns::GPS_LAT, DataType::Float64, true),
        Field::new(columns::GPS_LON, DataType::Float64, true),
        Field::new(columns::GPS_ALT, DataType::Float64, true),
        Field::new(columns::CAMERA, DataType::Utf8, true),
        Field::new(columns::ORIENTATION, DataType::UInt16, true),
    ];
    fields.extend(partition_keys.iter().map(|k| Field::new(k, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}

/// A folder (or glob) of images.
#[derive(Debug)]
pub struct ImageTable {
    /// The location as given, glob included (what a cluster's codec sends).
    source: String,
    location: ListingTableUrl,
    options: ImageOptions,
    /// Keys of the tree's `key=value` folders, one column each.
    partition_keys: Vec<String>,
    schema: SchemaRef,
}

impl ImageTable {
    /// `location` is a folder (`dir/`), a glob (`dir/*.jpg`, `dir/**/*.jpg`)
    /// or one file, as a path or a URL such as `s3://bucket/prefix/`; its
    /// partition keys are found by looking at the first folders below it.
    pub async fn open(state: &dyn Session, location: &str, options: ImageOptions) -> Result<Self> {
        let url = crate::stores::table_url(location)?;
        let store = state.runtime_env().object_store(url.object_store())?;
        let keys = tree::discover_partition_keys(store.as_ref(), &url).await?;
        Self::with_partition_keys(location, options, keys)
    }

    /// [`ImageTable::open`] from synchronous code (a table function).
    pub fn open_blocking(state: &dyn Session, location: &str, options: ImageOptions) -> Result<Self> {
        let url = crate::stores::table_url(location)?;
        let store = state.runtime_env().object_store(url.object_store())?;
        let keys =
            rookery_image::blocking::block_on_io(
                async move { tree::discover_partition_keys(store.as_ref(), &url).await },
            )
            .map_err(|e| datafusion::common::DataFusionError::Execution(format!("listing '{location}': {e}")))??;
        Self::with_partition_keys(location, options, keys)
    }

    /// A table at `location` whose partition keys are known.
    pub fn with_partition_keys(location: &str, options: ImageOptions, partition_keys: Vec<String>) -> Result<Self> {
        let schema = image_table_schema_with(&partition_keys);
        let mut names = std::collections::HashSet::new();
        if let Some(repeated) = schema.fields().iter().find(|f| !names.insert(f.name().as_str())) {
            return plan_err!(
                "the folders at '{location}' name a partition column '{}' that the image table already has",
                repeated.name()
            );
        }
        Ok(Self {
            source: location.to_string(),
            location: crate::stores::table_url(location)?,
            options,
            partition_keys,
            schema,
        })
    }

    /// Keys of the tree's `key=value` folders.
    pub fn partition_keys(&self) -> &[String] {
        &self.partition_keys
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
    !expr.is_volatile()
        && expr
            .column_refs()
            .iter()
            .all(|c| !NOT_FILTERABLE.contains(&c.name.as_str()))
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
            &self.partition_keys,
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
    async fn create(&self, state: &dyn Session, cmd: &CreateExternalTable) -> Result<Arc<dyn TableProvider>> {
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
        Ok(Arc::new(ImageTable::open(state, location, options).await?))
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

/// The `(location [, 'options'])` arguments of a table function, both
/// string literals (options empty when not given); `usage` completes the
/// error.
pub(crate) fn location_and_options<'e>(name: &str, exprs: &'e [Expr], usage: &str) -> Result<(&'e str, &'e str)> {
    let (location, options) = match exprs {
        [location] => (string_literal(location), Some("")),
        [location, options] => (string_literal(location), string_literal(options)),
        _ => return plan_err!("{name}() takes 1 or 2 arguments: {usage}"),
    };
    match (location, options) {
        (Some(location), Some(options)) => Ok((location, options)),
        _ => plan_err!("{name}() takes string literals: {usage}"),
    }
}

impl TableFunctionImpl for ImagesTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = "images('folder/' | 'folder/*.jpg' [, 'drop_invalid=true, batch_rows=4, max_pixels=N'])";
        let (location, options) = location_and_options("images", args.exprs(), usage)?;
        let options = ImageOptions::parse_list(options)?;
        Ok(Arc::new(ImageTable::open_blocking(args.session(), location, options)?))
    }
}
