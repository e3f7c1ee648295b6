//! `ImageScanExec`: streams the files of an image table as record batches.
//!
//! Files are listed once at planning time and dealt round-robin to the
//! partitions, so all cores decode. Each partition reads a few files at a
//! time, runs the pushed-down filter on what the headers say, then reads and
//! decodes only the files that pass. A file that cannot be read becomes a
//! row with `error` set (or is skipped with `drop_invalid`); it never stops
//! the query.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryViewBuilder, BooleanArray, StringBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, plan_err, DFSchema, DataFusionError, Result, Statistics};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use rookery_udfs::codec::{self, ImageHeader};
use rookery_udfs::image_value::append_buffer;
use rookery_udfs::{Image, ImageArrayBuilder};

use super::columns;
use super::options::ImageOptions;

/// Bytes read for a header-only query; JPEG EXIF blocks are at most 64 KiB,
/// so the frame header nearly always lies within. Files whose header lies
/// further in are read whole.
const HEADER_BYTES: u64 = 64 * 1024;

/// Requests in flight per partition.
const CONCURRENT_READS: usize = 16;

/// Counters across all scans of the process, for progress display.
#[derive(Debug, Default)]
pub struct ScanProgress {
    pub files_read: AtomicU64,
    pub images_decoded: AtomicU64,
}

pub static SCAN_PROGRESS: ScanProgress = ScanProgress {
    files_read: AtomicU64::new(0),
    images_decoded: AtomicU64::new(0),
};

/// What a scan must do per file, from the columns it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Work {
    header: bool,
    content: bool,
    decode: bool,
    /// The filter reads `format`, `width` or `height`: headers come before it.
    filter_needs_header: bool,
}

impl Work {
    fn describe(&self) -> &'static str {
        match (self.decode, self.content, self.header) {
            (true, _, _) => "decode",
            (false, true, _) => "content",
            (false, false, true) => "header",
            _ => "listing",
        }
    }
}

/// Plan-wide settings shared by the partition streams.
#[derive(Debug)]
struct ScanSettings {
    table_schema: SchemaRef,
    projection: Vec<usize>,
    projected_schema: SchemaRef,
    filter: Option<Arc<dyn PhysicalExpr>>,
    options: ImageOptions,
    work: Work,
    store_url: ObjectStoreUrl,
    limit: Option<usize>,
    rows_per_batch: usize,
}

#[derive(Debug)]
pub struct ImageScanExec {
    location: String,
    partitions: Vec<Arc<Vec<ObjectMeta>>>,
    file_count: usize,
    settings: Arc<ScanSettings>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl ImageScanExec {
    pub(super) async fn try_new(
        state: &dyn Session,
        location: &ListingTableUrl,
        options: ImageOptions,
        table_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Self> {
        let store_url = location.object_store();
        let store = state.runtime_env().object_store(&store_url)?;
        let mut files: Vec<ObjectMeta> = location
            .list_all_files(state, store.as_ref(), "")
            .await?
            .try_filter(|meta| futures::future::ready(!is_hidden(meta)))
            .try_collect()
            .await?;
        if files.is_empty() {
            return plan_err!("no files found at '{}'", location.as_str());
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let file_count = files.len();

        let target = state.config_options().execution.target_partitions.max(1);
        let n = target.min(file_count);
        let mut partitions: Vec<Vec<ObjectMeta>> = (0..n).map(|_| Vec::new()).collect();
        for (i, file) in files.into_iter().enumerate() {
            partitions[i % n].push(file);
        }

        let projection = projection.unwrap_or_else(|| (0..table_schema.fields().len()).collect());
        let projected_schema = Arc::new(table_schema.project(&projection)?);
        let mut used: Vec<String> = projected_schema.fields().iter().map(|f| f.name().clone()).collect();
        let filter_expr = conjunction(filters.iter().cloned());
        let mut filter_needs_header = false;
        let filter = match filter_expr {
            Some(expr) => {
                for column in expr.column_refs() {
                    filter_needs_header |=
                        [columns::FORMAT, columns::WIDTH, columns::HEIGHT].contains(&column.name.as_str());
                    used.push(column.name.clone());
                }
                let df_schema = DFSchema::try_from(table_schema.as_ref().clone())?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };
        let uses = |name: &str| used.iter().any(|u| u == name);
        let decode = uses(columns::IMAGE);
        let content = decode || uses(columns::CONTENT);
        let header = content
            || options.drop_invalid
            || [columns::FORMAT, columns::WIDTH, columns::HEIGHT, columns::ERROR]
                .iter()
                .any(|c| uses(c));
        let work = Work {
            header,
            content,
            decode,
            filter_needs_header,
        };
        let rows_per_batch = if content {
            options.batch_rows
        } else {
            state.config().batch_size().max(1)
        };

        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected_schema)),
            Partitioning::UnknownPartitioning(n),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            location: location.as_str().to_string(),
            partitions: partitions.into_iter().map(Arc::new).collect(),
            file_count,
            settings: Arc::new(ScanSettings {
                table_schema,
                projection,
                projected_schema,
                filter,
                options,
                work,
                store_url,
                limit,
                rows_per_batch,
            }),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        })
    }

    /// True when this scan decodes pixels (the query uses `image`).
    pub fn decodes(&self) -> bool {
        self.settings.work.decode
    }

    /// True when this scan reads whole files (the query uses `content` or `image`).
    pub fn reads_content(&self) -> bool {
        self.settings.work.content
    }

    /// Images per batch this scan emits.
    pub fn rows_per_batch(&self) -> usize {
        self.settings.rows_per_batch
    }
}

fn is_hidden(meta: &ObjectMeta) -> bool {
    meta.location.filename().is_some_and(|name| name.starts_with('.'))
}

impl DisplayAs for ImageScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.settings;
        let columns: Vec<&str> = s.projected_schema.fields().iter().map(|f| f.name().as_str()).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "ImageScanExec: location={}, files={}, partitions={}, reads={}, projection=[{}]",
                    self.location,
                    self.file_count,
                    self.partitions.len(),
                    s.work.describe(),
                    columns.join(", ")
                )?;
                if let Some(filter) = &s.filter {
                    write!(f, ", filter={filter}")?;
                }
                if let Some(limit) = s.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "files={}", self.file_count)?;
                write!(f, "reads={}", s.work.describe())
            }
        }
    }
}

impl ExecutionPlan for ImageScanExec {
    fn name(&self) -> &str {
        "ImageScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.settings.filter {
            Some(filter) => f(filter),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("ImageScanExec has no children")
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let Some(files) = self.partitions.get(partition) else {
            return internal_err!("ImageScanExec has no partition {partition}");
        };
        let settings = Arc::clone(&self.settings);
        let store = context.runtime_env().object_store(&settings.store_url)?;
        let reservation = MemoryConsumer::new(format!("ImageScanExec[{partition}]")).register(context.memory_pool());
        let metric = |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        let reader = PartitionReader {
            files: Arc::clone(files),
            next_file: 0,
            store,
            remaining: settings.limit,
            settings,
            reservation,
            metrics: ScanMetrics {
                files_read: metric("files_read"),
                bytes_read: metric("bytes_read"),
                images_decoded: metric("images_decoded"),
                invalid_files: metric("invalid_files"),
                decode_time: MetricBuilder::new(&self.metrics).subset_time("decode_time", partition),
            },
        };
        let schema = Arc::clone(&self.settings.projected_schema);
        let stream = futures::stream::try_unfold(reader, |mut reader| async move {
            Ok(reader.next_batch().await?.map(|batch| (batch, reader)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// Rows and an estimate of the bytes the scan makes, so that the join
    /// planner builds its hash tables on the side without pixels and
    /// collects a small side instead of repartitioning the frames.
    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let files: Vec<&ObjectMeta> = match partition {
            Some(i) => match self.partitions.get(i) {
                Some(files) => files.iter().collect(),
                None => return internal_err!("ImageScanExec has no partition {i}"),
            },
            None => self.partitions.iter().flat_map(|p| p.iter()).collect(),
        };
        let file_bytes: u64 = files.iter().map(|m| m.size).sum();
        let work = self.settings.work;
        // Decoded pixels are about a dozen times the JPEG bytes; other
        // columns are small beside them.
        let bytes = if work.decode {
            file_bytes.saturating_mul(12)
        } else if work.content {
            file_bytes
        } else {
            files.len() as u64 * 64
        };
        let mut statistics = Statistics::new_unknown(&self.settings.projected_schema);
        let rows = self.settings.limit.map_or(files.len(), |limit| limit.min(files.len()));
        statistics.num_rows = Precision::Inexact(rows);
        statistics.total_byte_size = Precision::Inexact(usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(Arc::new(statistics))
    }
}

struct ScanMetrics {
    files_read: Count,
    bytes_read: Count,
    images_decoded: Count,
    invalid_files: Count,
    decode_time: Time,
}

/// One file on its way to becoming a row.
struct FileRow {
    meta: ObjectMeta,
    path: String,
    name: String,
    header: Option<ImageHeader>,
    content: Option<Bytes>,
    /// The decoded pixels, until they move into the batch.
    image: Option<Image>,
    error: Option<String>,
}

impl FileRow {
    fn new(meta: ObjectMeta, store_url: &ObjectStoreUrl) -> Self {
        let path = if store_url.as_str().starts_with("file://") {
            format!("/{}", meta.location)
        } else {
            format!("{}{}", store_url.as_str(), meta.location)
        };
        let file_name = meta.location.filename().unwrap_or_default();
        let name = match file_name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_string(),
            _ => file_name.to_string(),
        };
        Self {
            meta,
            path,
            name,
            header: None,
            content: None,
            image: None,
            error: None,
        }
    }
}

struct PartitionReader {
    files: Arc<Vec<ObjectMeta>>,
    next_file: usize,
    store: Arc<dyn ObjectStore>,
    settings: Arc<ScanSettings>,
    remaining: Option<usize>,
    reservation: MemoryReservation,
    metrics: ScanMetrics,
}

fn io_error(e: object_store::Error) -> String {
    format!("cannot read file: {e}")
}

/// Reads the header from the start of the file, or from the whole file when
/// the start is not enough.
async fn read_header(store: &dyn ObjectStore, meta: &ObjectMeta) -> (std::result::Result<ImageHeader, String>, u64) {
    if meta.size == 0 {
        return (Err(rookery_udfs::ImageError::Empty.to_string()), 0);
    }
    let prefix_len = meta.size.min(HEADER_BYTES);
    let prefix = match store.get_range(&meta.location, 0..prefix_len).await {
        Ok(bytes) => bytes,
        Err(e) => return (Err(io_error(e)), 0),
    };
    match header_from_prefix(&prefix, meta.size) {
        Some(header) => (header, prefix_len),
        None => match read_whole(store, meta).await {
            Ok(bytes) => (
                codec::read_header(&bytes).map_err(|e| e.to_string()),
                prefix_len + meta.size,
            ),
            Err(e) => (Err(e), prefix_len),
        },
    }
}

/// What a file's first bytes say: its header, a final error, or `None`
/// when the header may lie further in and the whole file must be read.
fn header_from_prefix(prefix: &[u8], size: u64) -> Option<std::result::Result<ImageHeader, String>> {
    match codec::read_header(prefix) {
        Ok(header) => Some(Ok(header)),
        Err(e) if size <= prefix.len() as u64 => Some(Err(e.to_string())),
        Err(_) => None,
    }
}

/// The file that object_store's `LocalFileSystem` (rooted at `/`, as
/// DataFusion registers it for `file://`) reads for `location`.
fn local_file(location: &object_store::path::Path) -> Option<std::path::PathBuf> {
    let mut url = url::Url::parse("file:///").ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().extend(location.parts());
    url.to_file_path().ok()
}

/// [`read_header`] for a local file, with plain blocking reads: one
/// blocking task reads a whole batch of headers, where going through
/// object_store would hop to a blocking thread once per file (measured:
/// 3x slower for header-only queries).
fn read_header_local(meta: &ObjectMeta) -> (std::result::Result<ImageHeader, String>, u64) {
    use std::io::Read;
    if meta.size == 0 {
        return (Err(rookery_udfs::ImageError::Empty.to_string()), 0);
    }
    let Some(path) = local_file(&meta.location) else {
        return (Err(format!("cannot map {} to a local file", meta.location)), 0);
    };
    let read_err = |e: std::io::Error| format!("cannot read file: {e}");
    let mut prefix = Vec::with_capacity(meta.size.min(HEADER_BYTES) as usize);
    let opened = std::fs::File::open(&path).and_then(|f| f.take(HEADER_BYTES).read_to_end(&mut prefix));
    if let Err(e) = opened {
        return (Err(read_err(e)), 0);
    }
    let prefix_len = prefix.len() as u64;
    match header_from_prefix(&prefix, meta.size) {
        Some(header) => (header, prefix_len),
        None => match std::fs::read(&path) {
            Ok(bytes) => (
                codec::read_header(&bytes).map_err(|e| e.to_string()),
                prefix_len + bytes.len() as u64,
            ),
            Err(e) => (Err(read_err(e)), prefix_len),
        },
    }
}

async fn read_whole(store: &dyn ObjectStore, meta: &ObjectMeta) -> std::result::Result<Bytes, String> {
    let result = store.get(&meta.location).await.map_err(io_error)?;
    result.bytes().await.map_err(io_error)
}

impl PartitionReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // What the previous batch held is now downstream's to account for.
        self.reservation.free();
        loop {
            if self.remaining == Some(0) || self.next_file >= self.files.len() {
                return Ok(None);
            }
            let end = (self.next_file + self.settings.rows_per_batch).min(self.files.len());
            let metas = self.files[self.next_file..end].to_vec();
            self.next_file = end;
            let batch = self.read_files(metas).await?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = match self.remaining.as_mut() {
                Some(remaining) => {
                    let take = batch.num_rows().min(*remaining);
                    *remaining -= take;
                    batch.slice(0, take)
                }
                None => batch,
            };
            return Ok(Some(batch));
        }
    }

    async fn read_files(&mut self, metas: Vec<ObjectMeta>) -> Result<RecordBatch> {
        let settings = Arc::clone(&self.settings);
        let work = settings.work;
        let mut rows: Vec<FileRow> = metas
            .into_iter()
            .map(|m| FileRow::new(m, &settings.store_url))
            .collect();

        if work.header && (!work.content || work.filter_needs_header) {
            self.read_headers(&mut rows).await?;
        }
        if let Some(filter) = &settings.filter {
            rows = self.apply_filter(rows, filter.as_ref())?;
        }
        if work.content {
            self.read_contents(&mut rows).await?;
        }
        if work.decode {
            self.decode(&mut rows)?;
        }
        for row in &rows {
            if row.error.is_some() {
                self.metrics.invalid_files.add(1);
            }
        }
        if settings.options.drop_invalid {
            rows.retain(|row| row.error.is_none());
        }
        build_batch(
            &settings.table_schema,
            &settings.projection,
            &settings.projected_schema,
            &mut rows,
        )
    }

    async fn read_headers(&mut self, rows: &mut [FileRow]) -> Result<()> {
        let results: Vec<_> = if self.settings.store_url.as_str() == "file:///" {
            let metas: Vec<ObjectMeta> = rows.iter().map(|row| row.meta.clone()).collect();
            tokio::task::spawn_blocking(move || metas.iter().map(read_header_local).collect())
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
        } else {
            let reads = rows.iter().map(|row| {
                let (store, meta) = (Arc::clone(&self.store), row.meta.clone());
                async move { read_header(store.as_ref(), &meta).await }
            });
            futures::stream::iter(reads.collect::<Vec<_>>())
                .buffered(CONCURRENT_READS)
                .collect()
                .await
        };
        for (row, (header, bytes)) in rows.iter_mut().zip(results) {
            self.metrics.bytes_read.add(bytes as usize);
            match header {
                Ok(header) => row.header = Some(header),
                Err(e) => row.error = Some(e),
            }
        }
        Ok(())
    }

    async fn read_contents(&mut self, rows: &mut [FileRow]) -> Result<()> {
        let total: u64 = rows.iter().map(|r| r.meta.size).sum();
        self.reservation.try_grow(total as usize)?;
        let reads = rows.iter().map(|row| {
            let (store, meta) = (Arc::clone(&self.store), row.meta.clone());
            async move { read_whole(store.as_ref(), &meta).await }
        });
        let results: Vec<_> = futures::stream::iter(reads.collect::<Vec<_>>())
            .buffered(CONCURRENT_READS)
            .collect()
            .await;
        for (row, content) in rows.iter_mut().zip(results) {
            self.metrics.files_read.add(1);
            SCAN_PROGRESS.files_read.fetch_add(1, Ordering::Relaxed);
            match content {
                Ok(bytes) => {
                    self.metrics.bytes_read.add(bytes.len());
                    if row.header.is_none() && row.error.is_none() {
                        match codec::read_header(&bytes) {
                            Ok(header) => row.header = Some(header),
                            Err(e) => row.error = Some(e.to_string()),
                        }
                    }
                    row.content = Some(bytes);
                }
                Err(e) => row.error = Some(e),
            }
        }
        Ok(())
    }

    /// Decodes every row that has content, each into a buffer of its own
    /// that becomes the image column's data without a copy (so a row kept
    /// downstream keeps only its own pixels alive). Each image's bytes are
    /// reserved before it is decoded, so the memory limit refuses a batch
    /// instead of the kernel killing the process.
    fn decode(&mut self, rows: &mut [FileRow]) -> Result<()> {
        let max_pixels = self.settings.options.max_pixels;
        for row in rows.iter_mut() {
            let (Some(bytes), None, Some(header)) = (&row.content, &row.error, &row.header) else {
                continue;
            };
            // At most four bytes a pixel until the decoder says how many;
            // an image over max_pixels is refused by the decoder unread.
            let pixels = header.width as u64 * header.height as u64;
            let upper_bound = if pixels <= max_pixels { pixels as usize * 4 } else { 0 };
            self.reservation.try_grow(upper_bound)?;
            let timer = self.metrics.decode_time.timer();
            let decoded = codec::decode(bytes, max_pixels);
            timer.done();
            self.reservation.shrink(upper_bound);
            match decoded {
                Ok((_, image)) => {
                    self.reservation.grow(image.data.len());
                    self.metrics.images_decoded.add(1);
                    SCAN_PROGRESS.images_decoded.fetch_add(1, Ordering::Relaxed);
                    row.image = Some(image);
                }
                Err(e) => row.error = Some(e.to_string()),
            }
        }
        Ok(())
    }

    fn apply_filter(&self, mut rows: Vec<FileRow>, filter: &dyn PhysicalExpr) -> Result<Vec<FileRow>> {
        let settings = &self.settings;
        let all: Vec<usize> = (0..settings.table_schema.fields().len()).collect();
        let batch = build_batch(&settings.table_schema, &all, &settings.table_schema, &mut rows)?;
        let mask = filter.evaluate(&batch)?.into_array(batch.num_rows())?;
        let Some(mask) = mask.as_any().downcast_ref::<BooleanArray>() else {
            return internal_err!("image scan filter did not return booleans");
        };
        Ok(rows
            .into_iter()
            .enumerate()
            .filter(|(i, _)| mask.is_valid(*i) && mask.value(*i))
            .map(|(_, row)| row)
            .collect())
    }
}

/// Builds the projected columns from the rows as they stand; what has not
/// been read yet (content, pixels) is NULL. Decoded images move into the
/// batch.
fn build_batch(
    table_schema: &SchemaRef,
    projection: &[usize],
    projected_schema: &SchemaRef,
    rows: &mut [FileRow],
) -> Result<RecordBatch> {
    let columns = projection
        .iter()
        .map(|&i| match table_schema.field(i).name().as_str() {
            columns::IMAGE => image_column(rows),
            name => build_column(name, rows),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(Arc::clone(projected_schema), columns, &options).map_err(DataFusionError::from)
}

/// The image column, each decoded image's buffer moved in without a copy.
fn image_column(rows: &mut [FileRow]) -> Result<ArrayRef> {
    let mut images = ImageArrayBuilder::with_capacity(rows.len());
    for row in rows.iter_mut() {
        images
            .append_owned_option(row.image.take())
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", row.path)))?;
    }
    Ok(Arc::new(images.finish()))
}

fn string_column(rows: &[FileRow], value: impl Fn(&FileRow) -> Option<&str>) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in rows {
        builder.append_option(value(row));
    }
    Arc::new(builder.finish())
}

fn dimension_column(rows: &[FileRow], value: impl Fn(&ImageHeader) -> u32) -> ArrayRef {
    let mut builder = UInt32Builder::with_capacity(rows.len());
    for row in rows {
        builder.append_option(row.header.as_ref().filter(|_| row.error.is_none()).map(&value));
    }
    Arc::new(builder.finish())
}

fn build_column(name: &str, rows: &[FileRow]) -> Result<ArrayRef> {
    Ok(match name {
        columns::PATH => string_column(rows, |r| Some(r.path.as_str())),
        columns::NAME => string_column(rows, |r| Some(r.name.as_str())),
        columns::FORMAT => string_column(rows, |r| {
            r.header.as_ref().filter(|_| r.error.is_none()).map(|h| h.format)
        }),
        columns::ERROR => string_column(rows, |r| r.error.as_deref()),
        columns::SIZE => {
            let mut builder = UInt64Builder::with_capacity(rows.len());
            for row in rows {
                builder.append_value(row.meta.size);
            }
            Arc::new(builder.finish())
        }
        columns::WIDTH => dimension_column(rows, |h| h.width),
        columns::HEIGHT => dimension_column(rows, |h| h.height),
        columns::CONTENT => {
            // The bytes as read, shared with the reader's buffers (no copy).
            let mut builder = BinaryViewBuilder::with_capacity(rows.len());
            for row in rows {
                match row.content.as_ref().filter(|_| row.error.is_none()) {
                    Some(bytes) => append_buffer(&mut builder, Buffer::from(bytes.clone()))
                        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", row.path)))?,
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        other => return internal_err!("image tables have no column '{other}'"),
    })
}
