//! Reading one partition's files: headers first (from a prefix of each
//! file), the pushed-down filter on what they say, then whole files and
//! pixels only for the rows that pass. A file that cannot be read becomes a
//! row with `error` set (or is dropped with `drop_invalid`); it never stops
//! the query.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{internal_err, DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{Count, Time};
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use rookery_image::codec::{self, ImageHeader};
use rookery_image::exif::PhotoMetadata;

use super::batch::{build_batch, FileRow};
use super::plan::ScanSettings;

/// Bytes read for a header-only query; JPEG EXIF blocks are at most 64 KiB,
/// so the frame header nearly always lies within. Files whose header lies
/// further in are read whole.
const HEADER_BYTES: u64 = 64 * 1024;

/// Requests in flight per partition.
const CONCURRENT_READS: usize = 16;

pub(super) struct ScanMetrics {
    pub files_read: Count,
    pub bytes_read: Count,
    pub images_decoded: Count,
    pub invalid_files: Count,
    pub decode_time: Time,
}

/// Turns one partition's files into batches of `rows_per_batch` files.
pub(super) struct PartitionReader {
    files: Arc<Vec<ObjectMeta>>,
    next_file: usize,
    store: Arc<dyn ObjectStore>,
    settings: Arc<ScanSettings>,
    remaining: Option<usize>,
    reservation: MemoryReservation,
    metrics: ScanMetrics,
}

impl PartitionReader {
    pub fn new(
        files: Arc<Vec<ObjectMeta>>,
        store: Arc<dyn ObjectStore>,
        settings: Arc<ScanSettings>,
        reservation: MemoryReservation,
        metrics: ScanMetrics,
    ) -> Self {
        Self {
            files,
            next_file: 0,
            store,
            remaining: settings.limit,
            settings,
            reservation,
            metrics,
        }
    }

    /// The next non-empty batch, or `None` when the files or the limit are
    /// used up.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
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
            .map(|m| FileRow::new(m, &settings.store_url, &settings.layout))
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
        let photo = self.settings.work.photo;
        let results: Vec<_> = if self.settings.store_url.as_str() == "file:///" {
            let metas: Vec<ObjectMeta> = rows.iter().map(|row| row.meta.clone()).collect();
            tokio::task::spawn_blocking(move || metas.iter().map(|m| read_header_local(m, photo)).collect())
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
        } else {
            let reads = rows.iter().map(|row| {
                let (store, meta) = (Arc::clone(&self.store), row.meta.clone());
                async move { read_header(store.as_ref(), &meta, photo).await }
            });
            futures::stream::iter(reads.collect::<Vec<_>>())
                .buffered(CONCURRENT_READS)
                .collect()
                .await
        };
        for (row, read) in rows.iter_mut().zip(results) {
            self.metrics.bytes_read.add(read.bytes as usize);
            row.photo = read.photo;
            match read.header {
                Ok(header) => row.header = Some(self.as_decoded(header)),
                Err(e) => row.error = Some(e),
            }
        }
        Ok(())
    }

    /// The header with the width and height that decoding gives.
    fn as_decoded(&self, header: ImageHeader) -> ImageHeader {
        let (width, height) = header.size(self.settings.options.apply_orientation);
        ImageHeader {
            width,
            height,
            ..header
        }
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
            match content {
                Ok(bytes) => {
                    self.metrics.bytes_read.add(bytes.len());
                    if row.header.is_none() && row.error.is_none() {
                        match codec::read_header(&bytes) {
                            Ok(header) => row.header = Some(self.as_decoded(header)),
                            Err(e) => row.error = Some(e.to_string()),
                        }
                    }
                    if row.photo.is_none() && self.settings.work.photo {
                        row.photo = Some(PhotoMetadata::read(&bytes));
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
        let apply_orientation = self.settings.options.apply_orientation;
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
            // Decoded in place, not through `off_async_worker`: handing the
            // worker's other tasks to a new thread let more partitions decode
            // at once (seed count on 6 full-size frames: peak RSS 0.42-0.64
            // GB -> 0.75-0.91 GB). A server runs queries on a runtime of
            // their own instead.
            let decoded = codec::decode_oriented(bytes, max_pixels, apply_orientation);
            timer.done();
            self.reservation.shrink(upper_bound);
            match decoded {
                Ok((_, image)) => {
                    self.reservation.grow(image.data.len());
                    self.metrics.images_decoded.add(1);
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

fn io_error(e: object_store::Error) -> String {
    format!("cannot read file: {e}")
}

/// A file's header (or why not), its EXIF metadata when asked for, and
/// the bytes read for them.
struct HeaderRead {
    header: std::result::Result<ImageHeader, String>,
    photo: Option<PhotoMetadata>,
    bytes: u64,
}

impl HeaderRead {
    fn failed(error: String, bytes: u64) -> Self {
        Self {
            header: Err(error),
            photo: None,
            bytes,
        }
    }

    /// What `prefix` (of a file of `size` bytes) says, or `None` when the
    /// header lies further in.
    fn from_prefix(prefix: &[u8], size: u64, photo: bool) -> Option<Self> {
        header_from_prefix(prefix, size).map(|header| Self {
            photo: photo.then(|| PhotoMetadata::read(prefix)),
            header,
            bytes: prefix.len() as u64,
        })
    }

    /// What the whole file says, after a prefix of `prefix_len` bytes.
    fn from_whole(bytes: &[u8], prefix_len: u64, photo: bool) -> Self {
        Self {
            header: codec::read_header(bytes).map_err(|e| e.to_string()),
            photo: photo.then(|| PhotoMetadata::read(bytes)),
            bytes: prefix_len + bytes.len() as u64,
        }
    }
}

/// Reads the header from the start of the file, or from the whole file when
/// the start is not enough.
async fn read_header(store: &dyn ObjectStore, meta: &ObjectMeta, photo: bool) -> HeaderRead {
    if meta.size == 0 {
        return HeaderRead::failed(rookery_image::ImageError::Empty.to_string(), 0);
    }
    let prefix_len = meta.size.min(HEADER_BYTES);
    let prefix = match store.get_range(&meta.location, 0..prefix_len).await {
        Ok(bytes) => bytes,
        Err(e) => return HeaderRead::failed(io_error(e), 0),
    };
    match HeaderRead::from_prefix(&prefix, meta.size, photo) {
        Some(read) => read,
        None => match read_whole(store, meta).await {
            Ok(bytes) => HeaderRead::from_whole(&bytes, prefix_len, photo),
            Err(e) => HeaderRead::failed(e, prefix_len),
        },
    }
}

/// What a file's first bytes say: its header, a final error, or `None`
/// when the header may lie further in and the whole file must be read.
/// A file whose first bytes are no image format's signature is not read
/// further: a large non-image file (a video, an archive) costs 64 KiB.
fn header_from_prefix(prefix: &[u8], size: u64) -> Option<std::result::Result<ImageHeader, String>> {
    match codec::read_header(prefix) {
        Ok(header) => Some(Ok(header)),
        Err(e) if size <= prefix.len() as u64 || codec::sniff_format(prefix).is_none() => Some(Err(e.to_string())),
        Err(_) => None,
    }
}

/// [`read_header`] for a local file, with plain blocking reads: one
/// blocking task reads a whole batch of headers, where going through
/// object_store would hop to a blocking thread once per file (measured:
/// 3x slower for header-only queries).
fn read_header_local(meta: &ObjectMeta, photo: bool) -> HeaderRead {
    use std::io::Read;
    if meta.size == 0 {
        return HeaderRead::failed(rookery_image::ImageError::Empty.to_string(), 0);
    }
    let Some(path) = crate::stores::local_file(&meta.location) else {
        return HeaderRead::failed(format!("cannot map {} to a local file", meta.location), 0);
    };
    let read_err = |e: std::io::Error| format!("cannot read file: {e}");
    let mut prefix = Vec::with_capacity(meta.size.min(HEADER_BYTES) as usize);
    let opened = std::fs::File::open(&path).and_then(|f| f.take(HEADER_BYTES).read_to_end(&mut prefix));
    if let Err(e) = opened {
        return HeaderRead::failed(read_err(e), 0);
    }
    let prefix_len = prefix.len() as u64;
    match HeaderRead::from_prefix(&prefix, meta.size, photo) {
        Some(read) => read,
        None => match std::fs::read(&path) {
            Ok(bytes) => HeaderRead::from_whole(&bytes, prefix_len, photo),
            Err(e) => HeaderRead::failed(read_err(e), prefix_len),
        },
    }
}

async fn read_whole(store: &dyn ObjectStore, meta: &ObjectMeta) -> std::result::Result<Bytes, String> {
    let result = store.get(&meta.location).await.map_err(io_error)?;
    result.bytes().await.map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::image_table_schema;
    use crate::images::options::{ImageConfig, ImageOptions};
    use datafusion::arrow::array::AsArray;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
    use datafusion::prelude::SessionContext;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::PutPayload;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = rookery_image::Image::new(width, height, 3, vec![90; (width * height * 3) as usize]).unwrap();
        codec::encode(image.view(), "png", 90).unwrap()
    }

    /// An in-memory store holding `files` (name, bytes).
    async fn store_with(files: &[(&str, Vec<u8>)]) -> (Arc<dyn ObjectStore>, Arc<Vec<ObjectMeta>>) {
        let store = InMemory::new();
        let mut metas = Vec::new();
        for (name, bytes) in files {
            let path = Path::from(*name);
            store.put(&path, PutPayload::from(bytes.clone())).await.unwrap();
            metas.push(store.head(&path).await.unwrap());
        }
        (Arc::new(store), Arc::new(metas))
    }

    /// Settings for reading `columns` with `filter_sql` (a WHERE clause on
    /// the image table's columns).
    fn settings(columns: &[&str], filter_sql: Option<&str>, options: &str, limit: Option<usize>) -> ScanSettings {
        let ctx = SessionContext::new();
        let state = ctx.state();
        let schema = image_table_schema();
        let projection: Vec<usize> = columns.iter().map(|c| schema.index_of(c).unwrap()).collect();
        let filters = match filter_sql {
            Some(sql) => {
                let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone()).unwrap();
                vec![state.create_logical_expr(sql, &df_schema).unwrap()]
            }
            None => vec![],
        };
        ScanSettings::try_new(
            &state,
            ObjectStoreUrl::parse("memory://").unwrap(),
            crate::images::tree::TreeLayout {
                root: Path::from("d"),
                partition_keys: vec![],
            },
            &ImageOptions::parse_list(options).unwrap(),
            schema,
            Some(projection),
            &filters,
            limit,
        )
        .unwrap()
    }

    fn reader(
        files: Arc<Vec<ObjectMeta>>,
        store: Arc<dyn ObjectStore>,
        settings: ScanSettings,
        pool: &Arc<dyn MemoryPool>,
    ) -> (PartitionReader, ExecutionPlanMetricsSet) {
        let metrics = ExecutionPlanMetricsSet::new();
        let count = |name: &'static str| MetricBuilder::new(&metrics).counter(name, 0);
        let reader = PartitionReader::new(
            files,
            store,
            Arc::new(settings),
            MemoryConsumer::new("test").register(pool),
            ScanMetrics {
                files_read: count("files_read"),
                bytes_read: count("bytes_read"),
                images_decoded: count("images_decoded"),
                invalid_files: count("invalid_files"),
                decode_time: MetricBuilder::new(&metrics).subset_time("decode_time", 0),
            },
        );
        (reader, metrics)
    }

    async fn read_all(reader: &mut PartitionReader) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        while let Some(batch) = reader.next_batch().await.unwrap() {
            batches.push(batch);
        }
        batches
    }

    fn metric(metrics: &ExecutionPlanMetricsSet, name: &str) -> usize {
        metrics.clone_inner().sum_by_name(name).map_or(0, |v| v.as_usize())
    }

    fn unbounded() -> Arc<dyn MemoryPool> {
        Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default())
    }

    #[tokio::test]
    async fn header_filter_decodes_only_matching_files() {
        let (store, files) = store_with(&[
            ("d/a.png", png(4, 3)),
            ("d/b.png", png(8, 3)),
            ("d/c.png", png(4, 5)),
            ("d/broken.png", b"not an image".to_vec()),
        ])
        .await;
        let settings = settings(&["name", "image"], Some("width = 4"), "batch_rows=2", None);
        assert!(settings.work.filter_needs_header && settings.work.decode);
        let pool = unbounded();
        let (mut reader, metrics) = reader(files, store, settings, &pool);
        let batches = read_all(&mut reader).await;
        let names: Vec<String> = batches
            .iter()
            .flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()))
            .collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(metric(&metrics, "images_decoded"), 2);
        assert_eq!(metric(&metrics, "files_read"), 2);
        // Everything reserved for a batch is released once it is handed on.
        drop(reader);
        assert_eq!(pool.reserved(), 0);
    }

    #[tokio::test]
    async fn bad_files_are_rows_with_errors_or_dropped() {
        let files = [
            ("d/a.png", png(2, 2)),
            ("d/empty.png", vec![]),
            ("d/text.png", b"hello".to_vec()),
        ];
        let (store, metas) = store_with(&files).await;
        let settings_kept = settings(&["name", "width", "error"], None, "", None);
        let (mut kept, metrics) = reader(Arc::clone(&metas), Arc::clone(&store), settings_kept, &unbounded());
        let batch = read_all(&mut kept).await.remove(0);
        assert_eq!(batch.num_rows(), 3);
        let error = batch.column(2).as_string::<i32>();
        assert!(error.is_null(0));
        assert!(error.value(1).contains("empty"), "{}", error.value(1));
        assert!(!error.value(2).is_empty());
        assert_eq!(metric(&metrics, "invalid_files"), 2);

        let settings_dropped = settings(&["name"], None, "drop_invalid=true", None);
        assert!(settings_dropped.work.header, "dropping needs the headers");
        let (mut dropped, _) = reader(metas, store, settings_dropped, &unbounded());
        let batches = read_all(&mut dropped).await;
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }

    #[tokio::test]
    async fn limit_stops_reading_and_batches_follow_batch_rows() {
        let files: Vec<(String, Vec<u8>)> = (0..7).map(|i| (format!("d/{i}.png"), png(2, 2))).collect();
        let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        let (store, metas) = store_with(&files).await;

        let all = settings(&["name", "content"], None, "batch_rows=3", None);
        let (mut reader_all, _) = reader(Arc::clone(&metas), Arc::clone(&store), all, &unbounded());
        let sizes: Vec<usize> = read_all(&mut reader_all).await.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [3, 3, 1]);

        let limited = settings(&["name", "content"], None, "batch_rows=3", Some(4));
        let (mut reader_limited, metrics) = reader(metas, store, limited, &unbounded());
        let sizes: Vec<usize> = read_all(&mut reader_limited)
            .await
            .iter()
            .map(|b| b.num_rows())
            .collect();
        assert_eq!(sizes, [3, 1]);
        assert_eq!(metric(&metrics, "files_read"), 6, "the third batch is never read");
    }

    #[tokio::test]
    async fn decoding_beyond_the_memory_pool_is_an_error() {
        let (store, metas) = store_with(&[("d/big.png", png(64, 64))]).await;
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(4096));
        let (mut reader, _) = reader(metas, store, settings(&["image"], None, "", None), &pool);
        let err = reader.next_batch().await.unwrap_err();
        assert!(err.to_string().contains("Resources exhausted"), "{err}");
    }

    #[tokio::test]
    async fn max_pixels_makes_an_error_row_not_an_allocation() {
        let (store, metas) = store_with(&[("d/big.png", png(64, 64))]).await;
        let settings = settings(&["image", "error"], None, "max_pixels=100", None);
        assert_eq!(
            settings.options,
            ImageConfig {
                drop_invalid: false,
                batch_rows: 4,
                max_pixels: 100,
                apply_orientation: true,
            }
        );
        let (mut reader, _) = reader(metas, store, settings, &unbounded());
        let batch = reader.next_batch().await.unwrap().unwrap();
        assert!(batch.column(0).is_null(0));
        assert!(batch.column(1).as_string::<i32>().value(0).contains("100"));
    }

    #[test]
    fn headers_from_prefixes() {
        let bytes = png(5, 7);
        let header = header_from_prefix(&bytes, bytes.len() as u64).unwrap().unwrap();
        assert_eq!((header.format, header.width, header.height), ("png", 5, 7));
        // Not an image format's signature: a final error, with 1 MB unread.
        assert!(header_from_prefix(b"????", 1 << 20).unwrap().is_err());
        // An image format's signature but no header yet: read the whole file.
        assert!(header_from_prefix(&bytes[..20], 1 << 20).is_none());
        // Unreadable and that was all of it: a final error.
        assert!(header_from_prefix(b"????", 4).unwrap().is_err());
    }
}
