//! `VideoScanExec`: streams the frames of a location's video files, files
//! dealt round-robin to partitions, each partition reading one file at a
//! time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, RecordBatchOptions, StringBuilder, UInt32Builder,
    UInt64Builder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use rookery_image::video::decode::FrameDecoder;
use rookery_image::video::{read_index_boxes, DecodeStep, FrameSelection, VideoError, VideoIndex};
use rookery_image::{Image, ImageArrayBuilder};

use super::{columns, VideoOptions};

/// Index rows per batch when no frame is decoded.
const INDEX_ROWS_PER_BATCH: usize = 8192;

/// The time range a filter on `timestamp` bounds, as (from, before).
pub(super) fn time_bounds(expr: &Expr) -> Option<(Option<f64>, Option<f64>)> {
    let number = |e: &Expr| match e {
        Expr::Literal(v, _) if !v.is_null() => v
            .cast_to(&datafusion::arrow::datatypes::DataType::Float64)
            .ok()
            .and_then(|v| match v {
                ScalarValue::Float64(Some(f)) if f.is_finite() => Some(f),
                _ => None,
            }),
        _ => None,
    };
    let is_timestamp = |e: &Expr| matches!(e, Expr::Column(c) if c.name == columns::TIMESTAMP);
    // Just above `t`, so that `timestamp <= t` keeps the frame at `t`.
    let after = |t: f64| t + 1e-9 * t.abs().max(1.0);
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, t) = if is_timestamp(left) {
                (*op, number(right)?)
            } else if is_timestamp(right) {
                (op.swap()?, number(left)?)
            } else if *op == Operator::And {
                let (a, b) = (time_bounds(left), time_bounds(right));
                return match (a, b) {
                    (Some((a0, a1)), Some((b0, b1))) => Some((max_opt(a0, b0), min_opt(a1, b1))),
                    (one, None) | (None, one) => one,
                };
            } else {
                return None;
            };
            match op {
                Operator::Gt | Operator::GtEq => Some((Some(t), None)),
                Operator::Lt => Some((None, Some(t))),
                Operator::LtEq => Some((None, Some(after(t)))),
                Operator::Eq => Some((Some(t), Some(after(t)))),
                _ => None,
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_timestamp(expr) => Some((Some(number(low)?), Some(after(number(high)?)))),
        _ => None,
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Plan-wide settings shared by the partition streams.
#[derive(Debug, Clone)]
struct VideoSettings {
    store_url: ObjectStoreUrl,
    table_schema: SchemaRef,
    projection: Vec<usize>,
    projected_schema: SchemaRef,
    selection: FrameSelection,
    /// The query uses `image`.
    decode: bool,
    limit: Option<usize>,
    batch_rows: usize,
}

#[derive(Debug, Clone)]
pub struct VideoScanExec {
    location: String,
    partitions: Vec<Arc<Vec<ObjectMeta>>>,
    settings: Arc<VideoSettings>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl VideoScanExec {
    pub(super) async fn try_new(
        state: &dyn Session,
        location: &ListingTableUrl,
        options: &VideoOptions,
        table_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Self> {
        let mut selection = options.selection()?;
        for (from, before) in filters.iter().filter_map(time_bounds) {
            if let Some(from) = from {
                selection.start = selection.start.max(from);
            }
            selection.end = min_opt(selection.end, before);
        }
        let projection = projection.unwrap_or_else(|| (0..table_schema.fields().len()).collect());
        let projected_schema = Arc::new(table_schema.project(&projection)?);
        let decode = projected_schema.fields().iter().any(|f| f.name() == columns::IMAGE);
        let store = state.runtime_env().object_store(location.object_store())?;
        let files = crate::images::tree::list_files(store, location, None).await?;
        if files.is_empty() {
            return datafusion::common::plan_err!("no files found at '{}'", location.as_str());
        }
        let partitions = crate::images::deal_files(files, state.config_options().execution.target_partitions);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected_schema)),
            Partitioning::UnknownPartitioning(partitions.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            location: location.as_str().to_string(),
            partitions,
            settings: Arc::new(VideoSettings {
                store_url: location.object_store(),
                table_schema,
                projection,
                projected_schema,
                selection,
                decode,
                limit,
                batch_rows: if decode {
                    options.batch_rows
                } else {
                    INDEX_ROWS_PER_BATCH
                },
            }),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        })
    }
}

impl VideoScanExec {
    /// Frames per batch when this scan decodes frames (the query uses
    /// `image`), for the session's cap on batches above image scans.
    pub fn frames_per_batch(&self) -> Option<usize> {
        self.settings.decode.then_some(self.settings.batch_rows)
    }
}

impl DisplayAs for VideoScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.settings;
        let files: usize = self.partitions.iter().map(|p| p.len()).sum();
        let columns: Vec<&str> = s.projected_schema.fields().iter().map(|f| f.name().as_str()).collect();
        write!(
            f,
            "VideoScanExec: location={}, files={files}, partitions={}, reads={}, projection=[{}]",
            self.location,
            self.partitions.len(),
            if s.decode { "frames" } else { "index" },
            columns.join(", ")
        )?;
        let sel = &s.selection;
        if sel.start > 0.0 || sel.end.is_some() {
            write!(f, ", time={}..", sel.start)?;
            if let Some(end) = sel.end {
                write!(f, "{end}")?;
            }
        }
        if let Some(fps) = sel.fps {
            write!(f, ", fps={fps}")?;
        }
        if sel.keyframes_only {
            write!(f, ", keyframes_only")?;
        }
        if let Some(limit) = s.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for VideoScanExec {
    fn name(&self) -> &str {
        "VideoScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("VideoScanExec has no children")
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let Some(files) = self.partitions.get(partition) else {
            return internal_err!("VideoScanExec has no partition {partition}");
        };
        let settings = Arc::clone(&self.settings);
        let store = context.runtime_env().object_store(&settings.store_url)?;
        let reservation = MemoryConsumer::new(format!("VideoScanExec[{partition}]")).register(context.memory_pool());
        let metric = |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        let metrics = VideoMetrics {
            files_read: metric("files_read"),
            bytes_read: metric("bytes_read"),
            frames_decoded: metric("frames_decoded"),
            invalid_files: metric("invalid_files"),
            decode_time: MetricBuilder::new(&self.metrics).subset_time("decode_time", partition),
        };
        let reader = VideoReader {
            files: Arc::clone(files),
            next_file: 0,
            open: None,
            store,
            remaining: settings.limit,
            settings: Arc::clone(&settings),
            step_reservation: reservation.new_empty(),
            reservation,
            metrics,
        };
        let stream = futures::stream::try_unfold(reader, |mut reader| async move {
            Ok(reader.next_batch().await?.map(|batch| (batch, reader)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&settings.projected_schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let settings = VideoSettings {
            limit,
            ..self.settings.as_ref().clone()
        };
        Some(Arc::new(Self {
            settings: Arc::new(settings),
            metrics: ExecutionPlanMetricsSet::new(),
            ..self.clone()
        }))
    }

    fn fetch(&self) -> Option<usize> {
        self.settings.limit
    }
}

struct VideoMetrics {
    files_read: Count,
    bytes_read: Count,
    frames_decoded: Count,
    invalid_files: Count,
    decode_time: Time,
}

/// One row on its way to a batch.
struct FrameRow {
    file: Arc<FileNames>,
    frame_index: Option<u64>,
    timestamp: Option<f64>,
    keyframe: Option<bool>,
    size: Option<(u32, u32)>,
    image: Option<Image>,
    error: Option<String>,
}

struct FileNames {
    path: String,
    name: String,
}

/// A file being read: its index, the decoding steps left, and the step
/// under way.
struct OpenVideo {
    file: Arc<FileNames>,
    index: VideoIndex,
    /// Wanted frames not yet emitted when nothing is decoded.
    index_rows: VecDeque<usize>,
    steps: VecDeque<DecodeStep>,
    decoder: Option<FrameDecoder>,
    step: Option<StepUnderWay>,
    /// The pictures still to come out of the decoder, in display order:
    /// (display index, wanted). Steps that follow each other in the file
    /// are decoded as one stream; the decoder is flushed only before a
    /// jump and at the end.
    pictures: VecDeque<(usize, bool)>,
    /// The sample after the last one sent.
    sent_up_to: usize,
}

struct StepUnderWay {
    /// The samples still to send.
    samples: std::ops::Range<usize>,
    /// The bytes of the step's samples, from `span_start` in the file.
    bytes: Bytes,
    span_start: u64,
}

struct VideoReader {
    files: Arc<Vec<ObjectMeta>>,
    next_file: usize,
    open: Option<OpenVideo>,
    store: Arc<dyn ObjectStore>,
    settings: Arc<VideoSettings>,
    remaining: Option<usize>,
    /// The frames of the batch being made (downstream's once handed on).
    reservation: MemoryReservation,
    /// The bytes of the decode step under way.
    step_reservation: MemoryReservation,
    metrics: VideoMetrics,
}

fn file_names(meta: &ObjectMeta, store_url: &ObjectStoreUrl) -> FileNames {
    let (path, name) = crate::images::path_and_name(meta, store_url);
    FileNames { path, name }
}

impl VideoReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // What the previous batch held is now downstream's to account for.
        self.reservation.free();
        let mut rows: Vec<FrameRow> = Vec::new();
        let wanted = self.settings.batch_rows.min(self.remaining.unwrap_or(usize::MAX));
        while rows.len() < wanted {
            if self.open.is_none() && !self.open_next_file(&mut rows).await? {
                break;
            }
            let Some(open) = self.open.as_mut() else { continue };
            if !self.settings.decode {
                let Some(frame) = open.index_rows.pop_front() else {
                    self.open = None;
                    continue;
                };
                rows.push(frame_row(open, frame, None));
                continue;
            }
            if let Err(e) = self.decode_some(&mut rows).await? {
                // Frames before the fault stay; the file's error is a row.
                self.metrics.invalid_files.add(1);
                self.step_reservation.free();
                if let Some(open) = self.open.take() {
                    rows.push(error_row(open.file, e.to_string()));
                }
            }
        }
        if let Some(remaining) = self.remaining.as_mut() {
            rows.truncate(*remaining);
            *remaining -= rows.len();
        }
        if rows.is_empty() {
            return Ok(None);
        }
        self.build_batch(rows).map(Some)
    }

    /// Opens the next file, reading its index. Returns false when no file
    /// is left; a file that cannot be read becomes an error row.
    async fn open_next_file(&mut self, rows: &mut Vec<FrameRow>) -> Result<bool> {
        let Some(meta) = self.files.get(self.next_file).cloned() else {
            return Ok(false);
        };
        self.next_file += 1;
        self.metrics.files_read.add(1);
        let file = Arc::new(file_names(&meta, &self.settings.store_url));
        let store = Arc::clone(&self.store);
        let location = meta.location.clone();
        let bytes_read = self.metrics.bytes_read.clone();
        let boxes = read_index_boxes(meta.size, |range| {
            let (store, location, bytes_read) = (Arc::clone(&store), location.clone(), bytes_read.clone());
            async move {
                let bytes = store.get_range(&location, range).await?;
                bytes_read.add(bytes.len());
                Ok::<_, object_store::Error>(bytes.to_vec())
            }
        })
        .await;
        let index = match boxes {
            Err(e) => Err(format!("cannot read file: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(boxes)) => VideoIndex::from_boxes(meta.size, boxes).map_err(|e| e.to_string()),
        };
        let index = match index {
            Ok(index) => index,
            Err(e) => {
                self.metrics.invalid_files.add(1);
                rows.push(error_row(file, e));
                return Ok(true);
            }
        };
        let wanted = index.select(&self.settings.selection);
        let (index_rows, steps) = if self.settings.decode {
            (VecDeque::new(), index.decode_plan(&wanted).into())
        } else {
            (wanted.into(), VecDeque::new())
        };
        self.open = Some(OpenVideo {
            file,
            index,
            index_rows,
            steps,
            decoder: None,
            step: None,
            pictures: VecDeque::new(),
            sent_up_to: usize::MAX,
        });
        Ok(true)
    }

    /// Sends the decoder one sample (or flushes it), adding the wanted
    /// pictures that come out to `rows`. The inner error is the file's
    /// fault.
    async fn decode_some(&mut self, rows: &mut Vec<FrameRow>) -> Result<std::result::Result<(), VideoError>> {
        let Some(open) = self.open.as_mut() else {
            return Ok(Ok(()));
        };
        if open.decoder.is_none() {
            match FrameDecoder::new(&open.index) {
                Ok(decoder) => open.decoder = Some(decoder),
                Err(e) => return Ok(Err(e)),
            }
        }
        let frame_bytes = open.index.width as usize * open.index.height as usize * 3;
        if open.step.is_none() {
            let jump = open
                .steps
                .front()
                .is_none_or(|next| next.samples.start != open.sent_up_to);
            if jump && !open.pictures.is_empty() {
                return Ok(self.flush(rows, frame_bytes));
            }
            let Some(step) = open.steps.pop_front() else {
                self.open = None;
                return Ok(Ok(()));
            };
            let Some(span) = open.index.byte_span(step.samples.clone()) else {
                return internal_err!("a decode step outside the file's samples");
            };
            self.step_reservation.try_grow((span.end - span.start) as usize)?;
            let location = &self.files[self.next_file - 1].location;
            let bytes = match self.store.get_range(location, span.clone()).await {
                Ok(bytes) => bytes,
                Err(e) => return Ok(Err(VideoError::Truncated(format!("cannot read frames: {e}")))),
            };
            self.metrics.bytes_read.add(bytes.len());
            let wanted = &step.wanted;
            open.pictures.extend(
                open.index
                    .frames_of(step.samples.clone())
                    .into_iter()
                    .map(|f| (f, wanted.binary_search(&f).is_ok())),
            );
            open.sent_up_to = step.samples.end;
            open.step = Some(StepUnderWay {
                samples: step.samples,
                bytes,
                span_start: span.start,
            });
        }
        let (Some(under_way), Some(decoder)) = (open.step.as_mut(), open.decoder.as_mut()) else {
            return internal_err!("video reader lost its decoder");
        };
        let Some(s) = under_way.samples.next() else {
            // The step's bytes are no longer needed.
            self.step_reservation.free();
            open.step = None;
            return Ok(Ok(()));
        };
        let range = open.index.samples[s];
        let start = (range.offset - under_way.span_start) as usize;
        let sample = under_way.bytes.slice(start..start + range.size as usize);
        let keyframe = open.index.is_keyframe_sample(s);
        // The picture this sample completes, if any, is the next in display
        // order; its pixels are reserved before they are made.
        let wanted = open.pictures.front().is_some_and(|(_, wanted)| *wanted);
        if wanted {
            self.reservation.try_grow(frame_bytes)?;
        }
        let timer = self.metrics.decode_time.timer();
        let decoded = decoder.decode(&sample, keyframe, |p| wanted.then(|| p.to_image()));
        timer.done();
        match decoded {
            Ok(Some(image)) => {
                if let Some((frame, _)) = open.pictures.pop_front() {
                    push_frame(rows, open, frame, image, &self.metrics);
                }
                Ok(Ok(()))
            }
            Ok(None) => {
                if wanted {
                    self.reservation.shrink(frame_bytes);
                }
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Takes the pictures the decoder holds, after the last sample before a
    /// jump or the end.
    fn flush(&mut self, rows: &mut Vec<FrameRow>, frame_bytes: usize) -> std::result::Result<(), VideoError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let Some(decoder) = open.decoder.as_mut() else {
            return Ok(());
        };
        let flags: Vec<bool> = open.pictures.iter().map(|(_, wanted)| *wanted).collect();
        let reserved = flags.iter().filter(|w| **w).count() * frame_bytes;
        if let Err(e) = self.reservation.try_grow(reserved) {
            return Err(VideoError::Decode(e.to_string()));
        }
        let mut next = flags.into_iter();
        let timer = self.metrics.decode_time.timer();
        let flushed = decoder.flush(|p| next.next().unwrap_or(false).then(|| p.to_image()));
        timer.done();
        let images = flushed?;
        let mut made = 0;
        for image in images {
            let Some((frame, _)) = open.pictures.pop_front() else {
                break;
            };
            made += usize::from(image.is_some()) * frame_bytes;
            push_frame(rows, open, frame, image, &self.metrics);
        }
        // Pixels reserved for pictures that never came out go back.
        self.reservation.shrink(reserved.saturating_sub(made));
        match open.pictures.len() {
            0 => Ok(()),
            lost => Err(VideoError::Decode(format!(
                "{lost} frames from frame {} did not come out of the decoder",
                open.pictures.front().map_or(0, |(f, _)| *f)
            ))),
        }
    }

    fn build_batch(&self, mut rows: Vec<FrameRow>) -> Result<RecordBatch> {
        let settings = &self.settings;
        let n = rows.len();
        let columns = settings
            .projection
            .iter()
            .map(|&i| -> Result<ArrayRef> {
                Ok(match settings.table_schema.field(i).name().as_str() {
                    columns::PATH => strings(&rows, |r| Some(r.file.path.as_str())),
                    columns::NAME => strings(&rows, |r| Some(r.file.name.as_str())),
                    columns::ERROR => strings(&rows, |r| r.error.as_deref()),
                    columns::FRAME_INDEX => {
                        let mut b = UInt64Builder::with_capacity(n);
                        rows.iter().for_each(|r| b.append_option(r.frame_index));
                        Arc::new(b.finish())
                    }
                    columns::TIMESTAMP => {
                        let mut b = Float64Builder::with_capacity(n);
                        rows.iter().for_each(|r| b.append_option(r.timestamp));
                        Arc::new(b.finish())
                    }
                    columns::KEYFRAME => {
                        let mut b = BooleanBuilder::with_capacity(n);
                        rows.iter().for_each(|r| b.append_option(r.keyframe));
                        Arc::new(b.finish())
                    }
                    columns::WIDTH | columns::HEIGHT => {
                        let width = settings.table_schema.field(i).name() == columns::WIDTH;
                        let mut b = UInt32Builder::with_capacity(n);
                        rows.iter()
                            .for_each(|r| b.append_option(r.size.map(|(w, h)| if width { w } else { h })));
                        Arc::new(b.finish())
                    }
                    columns::IMAGE => {
                        let mut images = ImageArrayBuilder::with_capacity(n);
                        for row in rows.iter_mut() {
                            images
                                .append_owned_option(row.image.take())
                                .map_err(|e| DataFusionError::Execution(format!("{}: {e}", row.file.path)))?;
                        }
                        Arc::new(images.finish())
                    }
                    other => return internal_err!("video tables have no column '{other}'"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        RecordBatch::try_new_with_options(Arc::clone(&settings.projected_schema), columns, &options)
            .map_err(DataFusionError::from)
    }
}

/// A decoded frame as a row, when it was wanted (its pixels were made).
fn push_frame(rows: &mut Vec<FrameRow>, open: &OpenVideo, frame: usize, image: Option<Image>, metrics: &VideoMetrics) {
    let Some(image) = image else { return };
    metrics.frames_decoded.add(1);
    rows.push(frame_row(open, frame, Some(image)));
}

/// The row of frame `frame` (display index) of an open file.
fn frame_row(open: &OpenVideo, frame: usize, image: Option<Image>) -> FrameRow {
    let f = open.index.frames[frame];
    FrameRow {
        file: Arc::clone(&open.file),
        frame_index: Some(f.index),
        timestamp: Some(f.timestamp),
        keyframe: Some(f.keyframe),
        size: Some(
            image
                .as_ref()
                .map_or((open.index.width, open.index.height), |i| (i.width, i.height)),
        ),
        image,
        error: None,
    }
}

fn error_row(file: Arc<FileNames>, error: String) -> FrameRow {
    FrameRow {
        file,
        frame_index: None,
        timestamp: None,
        keyframe: None,
        size: None,
        image: None,
        error: Some(error),
    }
}

fn strings(rows: &[FrameRow], value: impl Fn(&FrameRow) -> Option<&str>) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in rows {
        builder.append_option(value(row));
    }
    Arc::new(builder.finish())
}
