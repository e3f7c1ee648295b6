//! `COPY (query) TO 'dir/' STORED AS IMAGES`: one image file per row, as a
//! DataFusion file format and data sink, so `SessionContext::sql` runs it.
//!
//! The query gives a file name and the picture: a `name` column (else the
//! first text column) and a binary column of encoded bytes (written as
//! they are, the extension from their content) or an image value (encoded
//! as PNG, or JPEG with `OPTIONS ('format' 'jpeg', 'quality' '90')`).
//! Files are `dir/<name>.<ext>`, written through `object_store`; two rows
//! that would write the same file are an error. The COPY is all or
//! nothing: the session's `atomic_copy` rule has the sink write into a
//! staging folder and puts the files in place only when every row was
//! written. Used alone, the sink removes the files it wrote when it fails.
//!
//! The format only writes: image folders are read by the `IMAGES` table
//! factory and `images()`, whose scan decides per file what to read.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{exec_err, not_impl_err, plan_err, DataFusionError, GetExt, Result, Statistics};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::{FileFormat, FileFormatFactory};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSinkConfig, FileSource};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::LexRequirement;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use rookery_image::args::binary_value;
use rookery_image::codec::{encode, format_name, sniff_format};
use rookery_image::{is_image_type, ImageArray};

/// The name after `STORED AS`.
pub const IMAGES_FORMAT: &str = "images";

/// How image values are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageWriteOptions {
    /// `png` or `jpeg`.
    pub format: &'static str,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
}

impl Default for ImageWriteOptions {
    fn default() -> Self {
        Self {
            format: "png",
            quality: 90,
        }
    }
}

impl ImageWriteOptions {
    /// Reads COPY's `OPTIONS`; DataFusion's SQL planner prefixes keys
    /// without a namespace with `format.`, and sink options (`execution.*`)
    /// are not the format's business.
    pub fn from_map(options: &HashMap<String, String>) -> Result<Self> {
        let mut parsed = Self::default();
        let mut keys: Vec<_> = options.keys().collect();
        keys.sort();
        for key in keys {
            let text = &options[key];
            if key.starts_with("execution.") {
                continue;
            }
            match key.to_ascii_lowercase().trim_start_matches("format.") {
                "format" => {
                    parsed.format = match text.to_ascii_lowercase().as_str() {
                        "png" => "png",
                        "jpeg" | "jpg" => "jpeg",
                        other => {
                            return plan_err!(
                                "COPY ... STORED AS IMAGES: format must be 'png' or 'jpeg', not '{other}'"
                            )
                        }
                    }
                }
                "quality" => match text.trim().parse::<u8>() {
                    Ok(q) if (1..=100).contains(&q) => parsed.quality = q,
                    _ => return plan_err!("COPY ... STORED AS IMAGES: quality must be 1 to 100, not '{text}'"),
                },
                other => {
                    return plan_err!("COPY ... STORED AS IMAGES: unknown option '{other}' (known: format, quality)")
                }
            }
        }
        Ok(parsed)
    }

    fn extension(&self) -> &'static str {
        if self.format == "jpeg" {
            "jpg"
        } else {
            "png"
        }
    }
}

/// Makes [`ImageFileFormat`]s for `STORED AS IMAGES`.
#[derive(Debug, Default)]
pub struct ImageFileFormatFactory;

impl GetExt for ImageFileFormatFactory {
    fn get_ext(&self) -> String {
        IMAGES_FORMAT.to_string()
    }
}

impl FileFormatFactory for ImageFileFormatFactory {
    fn create(&self, _state: &dyn Session, format_options: &HashMap<String, String>) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(ImageFileFormat {
            options: ImageWriteOptions::from_map(format_options)?,
        }))
    }

    fn default(&self) -> Arc<dyn FileFormat> {
        Arc::new(ImageFileFormat {
            options: ImageWriteOptions::default(),
        })
    }
}

/// A folder of image files, one per row.
#[derive(Debug, Clone, Default)]
pub struct ImageFileFormat {
    options: ImageWriteOptions,
}

impl ImageFileFormat {
    pub fn new(options: ImageWriteOptions) -> Self {
        Self { options }
    }

    pub fn options(&self) -> &ImageWriteOptions {
        &self.options
    }
}

const READ_HINT: &str =
    "image folders are read with CREATE EXTERNAL TABLE ... STORED AS IMAGES LOCATION 'dir/' or images('dir/')";

#[async_trait]
impl FileFormat for ImageFileFormat {
    fn get_ext(&self) -> String {
        self.options.extension().to_string()
    }

    fn get_ext_with_compression(&self, _compression: &FileCompressionType) -> Result<String> {
        Ok(self.get_ext())
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        None
    }

    async fn infer_schema(
        &self,
        _state: &dyn Session,
        _store: &Arc<dyn ObjectStore>,
        _objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        Ok(super::image_table_schema())
    }

    async fn infer_stats(
        &self,
        _state: &dyn Session,
        _store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        _object: &ObjectMeta,
    ) -> Result<Statistics> {
        Ok(Statistics::new_unknown(&table_schema))
    }

    async fn create_physical_plan(
        &self,
        _state: &dyn Session,
        _conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        not_impl_err!("{READ_HINT}")
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        _state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !conf.table_partition_cols.is_empty() {
            return plan_err!("COPY ... STORED AS IMAGES does not support PARTITIONED BY");
        }
        let sink = ImageSink::try_new(conf, self.options.clone())?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), order_requirements)))
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        Arc::new(unreadable::ImageFileSource::new(table_schema))
    }
}

/// Which columns hold the file name and the picture.
pub fn pick_columns(schema: &Schema) -> Result<(usize, usize)> {
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

/// Image file extensions a name may end with (as `relative_path` does);
/// the written file gets the extension of what it holds instead.
const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp", "webp", "gif"];

/// The written file's path below the COPY's folder, without extension, as
/// folder names and a file stem: a name may hold `/` to write a tree
/// (`interesting/0001`, a table's `relative_path`), but never leave the
/// folder.
fn safe_file_stem(name: &str) -> Result<Vec<&str>> {
    let mut parts: Vec<&str> = name.split('/').collect();
    let bad = |p: &&str| p.is_empty() || *p == "." || *p == ".." || p.contains('\\');
    if parts.iter().any(bad) {
        return exec_err!("COPY ... STORED AS IMAGES: '{name}' cannot be a file name");
    }
    if let Some(last) = parts.last_mut() {
        if let Some((stem, ext)) = last.rsplit_once('.') {
            if !stem.is_empty() && IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
                *last = stem;
            }
        }
    }
    Ok(parts)
}

/// Writes each row of its input as one file under the COPY's target.
#[derive(Debug)]
pub struct ImageSink {
    config: FileSinkConfig,
    options: ImageWriteOptions,
    name_column: usize,
    picture_column: usize,
}

impl ImageSink {
    pub fn try_new(config: FileSinkConfig, options: ImageWriteOptions) -> Result<Self> {
        let (name_column, picture_column) = pick_columns(&config.output_schema)?;
        if config.table_paths.len() != 1 {
            return plan_err!("COPY ... STORED AS IMAGES writes to one folder");
        }
        Ok(Self {
            config,
            options,
            name_column,
            picture_column,
        })
    }

    pub fn config(&self) -> &FileSinkConfig {
        &self.config
    }

    pub fn options(&self) -> &ImageWriteOptions {
        &self.options
    }

    /// The encoded file of row `row`, with its extension; `None` for NULL.
    /// `images` is the column read as image values, when it holds them.
    /// The reservation grows to the row's pixels (or bytes) first:
    /// encoding needs about that much again.
    fn encoded_file(
        &self,
        images: Option<&ImageArray>,
        column: &dyn Array,
        row: usize,
        reservation: &MemoryReservation,
    ) -> Result<Option<(Vec<u8>, &'static str)>> {
        if let Some(images) = images {
            let Some(image) = images.get(row).map_err(|e| DataFusionError::Execution(e.to_string()))? else {
                return Ok(None);
            };
            reservation.try_resize(image.data.len())?;
            let bytes = encode(image, self.options.format, self.options.quality)
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            return Ok(Some((bytes, self.options.extension())));
        }
        let Some(bytes) = binary_value(column, row) else {
            return Ok(None);
        };
        reservation.try_resize(bytes.len())?;
        let ext = match sniff_format(bytes).map(format_name) {
            Some("jpeg") => "jpg",
            Some(other) => other,
            None => "bin",
        };
        Ok(Some((bytes.to_vec(), ext)))
    }

    async fn write_rows(
        &self,
        mut data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
        store: &dyn ObjectStore,
        written: &mut Vec<StorePath>,
    ) -> Result<u64> {
        let prefix = self.config.table_paths[0].prefix();
        let reservation = MemoryConsumer::new("ImageSink").register(context.memory_pool());
        // The file names written so far, to refuse a second row of a name.
        let mut names_seen = std::collections::HashSet::new();
        let names_reservation = MemoryConsumer::new("ImageSink names").register(context.memory_pool());
        let mut count = 0;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            let names = datafusion::arrow::compute::cast(batch.column(self.name_column), &DataType::Utf8)?;
            let names = names.as_string::<i32>();
            let pictures = batch.column(self.picture_column);
            let images = is_image_type(pictures.data_type())
                .then(|| ImageArray::try_new(pictures.as_ref()))
                .transpose()
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            for row in 0..batch.num_rows() {
                if names.is_null(row) {
                    return exec_err!("COPY ... STORED AS IMAGES: row {count} has a NULL name");
                }
                let parts = safe_file_stem(names.value(row))?;
                let stem = parts.join("/");
                let Some((bytes, ext)) = self.encoded_file(images.as_ref(), pictures.as_ref(), row, &reservation)?
                else {
                    continue;
                };
                let file_name = format!("{stem}.{ext}");
                names_reservation.try_grow(file_name.len() + std::mem::size_of::<String>())?;
                if !names_seen.insert(file_name.clone()) {
                    return exec_err!(
                        "COPY ... STORED AS IMAGES: two rows are named '{stem}' (both would be written to {file_name}); \
                         give each row a unique name, for example with the folder in it"
                    );
                }
                let (folders, _) = parts.split_at(parts.len() - 1);
                let path: StorePath = prefix
                    .parts()
                    .chain(folders.iter().map(|f| object_store::path::PathPart::from(*f)))
                    .chain(std::iter::once(object_store::path::PathPart::from(
                        file_name.rsplit('/').next().unwrap_or(&file_name),
                    )))
                    .collect();
                store.put(&path, PutPayload::from(bytes)).await?;
                written.push(path);
                count += 1;
            }
        }
        Ok(count)
    }
}

impl DisplayAs for ImageSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ImageSink: format={}, target={}",
            self.options.format, self.config.original_url
        )
    }
}

#[async_trait]
impl DataSink for ImageSink {
    fn schema(&self) -> &SchemaRef {
        &self.config.output_schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> Result<u64> {
        let store = context.runtime_env().object_store(&self.config.object_store_url)?;
        let mut written = Vec::new();
        let result = self.write_rows(data, context, store.as_ref(), &mut written).await;
        if result.is_err() {
            for path in &written {
                let _ = store.delete(path).await;
            }
        }
        result
    }
}

/// The `FileSource` DataFusion asks every file format for. Image folders
/// are never read through a `ListingTable` of this format (the `IMAGES`
/// table factory and `images()` make their own scan), so opening a file
/// says where to read them instead.
mod unreadable {
    use super::*;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::physical_plan::FileOpener;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;

    #[derive(Debug, Clone)]
    pub struct ImageFileSource {
        table_schema: TableSchema,
        metrics: ExecutionPlanMetricsSet,
    }

    impl ImageFileSource {
        pub fn new(table_schema: TableSchema) -> Self {
            Self {
                table_schema,
                metrics: ExecutionPlanMetricsSet::new(),
            }
        }
    }

    impl FileSource for ImageFileSource {
        fn create_file_opener(
            &self,
            _store: Arc<dyn ObjectStore>,
            _config: &FileScanConfig,
            _partition: usize,
        ) -> Result<Arc<dyn FileOpener>> {
            not_impl_err!("{READ_HINT}")
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }

        fn table_schema(&self) -> &TableSchema {
            &self.table_schema
        }

        fn with_batch_size(&self, _batch_size: usize) -> Arc<dyn FileSource> {
            Arc::new(self.clone())
        }

        fn metrics(&self) -> &ExecutionPlanMetricsSet {
            &self.metrics
        }

        fn file_type(&self) -> &str {
            IMAGES_FORMAT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn write_options() {
        assert_eq!(
            ImageWriteOptions::from_map(&options(&[])).unwrap(),
            ImageWriteOptions::default()
        );
        let jpeg =
            ImageWriteOptions::from_map(&options(&[("format.format", "JPG"), ("format.quality", "75")])).unwrap();
        assert_eq!((jpeg.format, jpeg.quality, jpeg.extension()), ("jpeg", 75, "jpg"));
        let sink_only = options(&[("execution.keep_partition_by_columns", "true")]);
        assert!(ImageWriteOptions::from_map(&sink_only).is_ok());
        for (key, value, message) in [
            ("format.format", "gif", "format must be 'png' or 'jpeg', not 'gif'"),
            ("format.quality", "0", "quality must be 1 to 100, not '0'"),
            ("format.quality", "high", "quality must be 1 to 100"),
            ("format.compression", "zstd", "unknown option 'compression'"),
        ] {
            let err = ImageWriteOptions::from_map(&options(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
    }

    #[test]
    fn columns_by_name_then_type() {
        let schema = Schema::new(vec![
            Field::new("label", DataType::Utf8, true),
            Field::new("name", DataType::Utf8View, true),
            Field::new("bytes", DataType::BinaryView, true),
        ]);
        assert_eq!(pick_columns(&schema).unwrap(), (1, 2));
        let schema = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
        let err = pick_columns(&schema).unwrap_err();
        assert!(err.to_string().contains("the query gives (x Int32)"), "{err}");
    }

    #[test]
    fn file_names_stay_in_the_folder() {
        for bad in ["", ".", "..", "..\\x", "/abs", "a/../b", "a//b", "a/"] {
            assert!(safe_file_stem(bad).is_err(), "{bad}");
        }
        assert_eq!(safe_file_stem("tile_0_64").unwrap(), ["tile_0_64"]);
        // Trees, and names that already carry an image extension.
        assert_eq!(safe_file_stem("interesting/0001.jpg").unwrap(), ["interesting", "0001"]);
        assert_eq!(safe_file_stem("a.b").unwrap(), ["a.b"]);
        assert_eq!(safe_file_stem(".png").unwrap(), [".png"]);
    }
}
