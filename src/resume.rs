//! COPYs that survive being stopped: `COPY (query) TO 'sub.csv' OPTIONS
//! ('resume' 'test_id')` runs the query a few images at a time, and commits
//! each part of the result to a journal beside the target once it is
//! durable. Run again after Ctrl-C, `kill -9` or a lost machine, the same
//! statement skips the images whose part was committed, and writes the
//! target as one uninterrupted run would: every part, sorted by the
//! query's ORDER BY (or by the key), through the COPY's own sink.
//!
//! - The journal is `.<target name>.rookery-resume/` in the target's
//!   folder (hidden, so tables over the folder skip it), on the target's
//!   store: a local folder or an object store prefix. Each commit is one
//!   Arrow IPC file, `part-NNNNN.arrow`, holding the rows and, in its
//!   footer, the image files it covers and the statement it belongs to.
//!   Locally it is written under a temporary name, fsynced and renamed; on
//!   an object store a PUT is all or nothing. After the target is written
//!   the journal goes.
//! - The key names the images' results: a key may not appear in two
//!   commits (rows of one key must come from one image, as with `GROUP BY
//!   name`), so a query whose rows mix images is refused rather than
//!   written wrong.
//! - A journal of another statement is an error naming it, never mixed in.
//! - The query runs through the session's own planner, so on a cluster
//!   each part's query runs on the cluster and the client commits it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::{provider_as_source, source_as_provider, MemTable};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::CopyTo;
use datafusion::logical_expr::expr_rewriter::unnormalize_cols;
use datafusion::logical_expr::{col, lit, Expr, LogicalPlan, LogicalPlanBuilder, SortExpr, TableScan};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, Metric, MetricBuilder, MetricValue, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{collect, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::images::ImageScanExec;
use crate::progress::ScanCounts;

/// The COPY option naming the key column (`OPTIONS ('resume' 'test_id')`;
/// SQL files it under `format.`).
pub const RESUME_OPTION: &str = "format.resume";
/// The COPY option giving images per commit (`'resume_every' '8'`).
pub const RESUME_EVERY_OPTION: &str = "format.resume_every";
/// Footer keys of a journal part.
const META_STATEMENT: &str = "rookery.resume.statement";
const META_FILES: &str = "rookery.resume.files";

/// How a resumable COPY commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeOptions {
    /// The output column whose values name each image's rows.
    pub key: String,
    /// Images per commit (default: two per partition).
    pub every: Option<usize>,
}

impl ResumeOptions {
    /// The resume options of a COPY, and its options without them; `None`
    /// for a COPY without `resume`.
    pub fn of_copy(copy: &CopyTo) -> Result<Option<(Self, HashMap<String, String>)>> {
        let mut rest = copy.options.clone();
        let key = rest.remove(RESUME_OPTION);
        let every = rest.remove(RESUME_EVERY_OPTION);
        let Some(key) = key else {
            if every.is_some() {
                return plan_err!("COPY option resume_every needs the option resume (the key column)");
            }
            return Ok(None);
        };
        if key.trim().is_empty() {
            return plan_err!("COPY option resume must name a column of the query's result");
        }
        let every = match every {
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return plan_err!("COPY option resume_every must be a whole number of images above 0, not '{text}'")
                }
            },
            None => None,
        };
        Ok(Some((Self { key, every }, rest)))
    }
}

/// The session's query planner with resumable COPYs: a COPY with the
/// option `resume` becomes a [`ResumableCopyExec`]; every other plan goes
/// to the planner it wraps (DataFusion's, or Ballista's on a cluster).
#[derive(Debug)]
pub struct ResumingQueryPlanner {
    inner: Arc<dyn QueryPlanner + Send + Sync>,
}

impl ResumingQueryPlanner {
    pub fn new(inner: Arc<dyn QueryPlanner + Send + Sync>) -> Self {
        Self { inner }
    }
}

/// DataFusion's own planner, for sessions that set none.
#[derive(Debug)]
pub(crate) struct LocalQueryPlanner;

#[async_trait]
impl QueryPlanner for LocalQueryPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::default()
            .create_physical_plan(plan, session)
            .await
    }
}

#[async_trait]
impl QueryPlanner for ResumingQueryPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        if let LogicalPlan::Copy(copy) = plan {
            if let Some((options, rest)) = ResumeOptions::of_copy(copy)? {
                let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
                    return plan_err!("COPY with resume needs a DataFusion SessionState");
                };
                let exec = ResumableCopyExec::try_new(copy, options, rest, state.clone())?;
                return Ok(Arc::new(exec));
            }
        }
        self.inner.create_physical_plan(plan, session).await
    }
}

/// Runs a resumable COPY (see the module): a leaf that does all the work
/// when executed and returns the rows written, as COPY does.
pub struct ResumableCopyExec {
    copy: CopyTo,
    /// The COPY's format options, without the resume ones.
    format_options: HashMap<String, String>,
    options: ResumeOptions,
    /// The final sort: the query's ORDER BY, then the key.
    order: Vec<SortExpr>,
    state: SessionState,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// What the part queries' scans did, finished and running.
    scans: Arc<Mutex<ScanProgress>>,
}

#[derive(Default)]
struct ScanProgress {
    finished: ScanCounts,
    running: Option<Arc<dyn ExecutionPlan>>,
}

impl fmt::Debug for ResumableCopyExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableCopyExec")
            .field("target", &self.copy.output_url)
            .field("options", &self.options)
            .finish()
    }
}

impl ResumableCopyExec {
    fn try_new(
        copy: &CopyTo,
        options: ResumeOptions,
        format_options: HashMap<String, String>,
        state: SessionState,
    ) -> Result<Self> {
        let output = copy.input.schema();
        if output.field_with_unqualified_name(&options.key).is_err() {
            let names: Vec<&str> = output.fields().iter().map(|f| f.name().as_str()).collect();
            return plan_err!(
                "COPY option resume names '{}', which is not a column of the query's result ({})",
                options.key,
                names.join(", ")
            );
        }
        if !copy.partition_by.is_empty() {
            return plan_err!("COPY with resume does not take PARTITIONED BY");
        }
        let order = final_order(&copy.input, &options.key)?;
        let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            copy: copy.clone(),
            format_options,
            options,
            order,
            state,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            scans: Arc::default(),
        })
    }
}

const LIMIT_AT_TOP: &str = "COPY with resume cannot run a query with LIMIT at its top (it would apply to each part)";

/// The order the query's rows come in: its top ORDER BY (on output
/// columns) with the key last, or the key alone. A LIMIT at the top would
/// apply to each part, so it is refused.
fn final_order(input: &LogicalPlan, key: &str) -> Result<Vec<SortExpr>> {
    let output = input.schema();
    let mut order = Vec::new();
    let mut node = input;
    loop {
        match node {
            LogicalPlan::Limit(_) => return plan_err!("{LIMIT_AT_TOP}"),
            LogicalPlan::Sort(sort) if sort.fetch.is_some() => return plan_err!("{LIMIT_AT_TOP}"),
            LogicalPlan::Sort(sort) => {
                for s in &sort.expr {
                    let name = match &s.expr {
                        Expr::Column(c) if output.field_with_unqualified_name(&c.name).is_ok() => &c.name,
                        other => {
                            return plan_err!(
                            "COPY with resume: ORDER BY {other} is not a column of the result; order by output columns"
                        )
                        }
                    };
                    order.push(SortExpr::new(col(quoted(name)), s.asc, s.nulls_first));
                }
                break;
            }
            LogicalPlan::Projection(p) if matches!(p.input.as_ref(), LogicalPlan::Sort(_)) => node = &p.input,
            LogicalPlan::SubqueryAlias(a) => node = &a.input,
            _ => break,
        }
    }
    order.push(SortExpr::new(col(quoted(key)), true, false));
    Ok(order)
}

/// A column name as `col` reads it, whatever its case or characters.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl DisplayAs for ResumableCopyExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResumableCopyExec: target={}, key={}",
            self.copy.output_url, self.options.key
        )
    }
}

impl ExecutionPlan for ResumableCopyExec {
    fn name(&self) -> &'static str {
        "ResumableCopyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            plan_err!("ResumableCopyExec has no children")
        }
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return plan_err!("ResumableCopyExec has one partition, not {partition}");
        }
        let run = Run {
            copy: self.copy.clone(),
            format_options: self.format_options.clone(),
            options: self.options.clone(),
            order: self.order.clone(),
            state: self.state.clone(),
            counters: Counters::new(&self.metrics),
            scans: Arc::clone(&self.scans),
        };
        let schema = Arc::clone(&self.schema);
        let stream = futures::stream::once(async move {
            let rows = run.run().await?;
            RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(vec![rows]))]).map_err(DataFusionError::from)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    /// Its own counts, with the files read and images decoded by the part
    /// queries (the one running included), for progress displays.
    fn metrics(&self) -> Option<MetricsSet> {
        let mut set = self.metrics.clone_inner();
        let scans = self.scans.lock().ok()?;
        let mut counts = scans.finished;
        if let Some(running) = &scans.running {
            counts = counts.plus(ScanCounts::of_plan(running.as_ref()));
        }
        for (name, value) in [
            ("files_read", counts.files_read),
            ("images_decoded", counts.images_decoded),
        ] {
            let count = Count::new();
            count.add(value as usize);
            set.push(Arc::new(Metric::new(
                MetricValue::Count {
                    name: name.into(),
                    count,
                },
                None,
            )));
        }
        Some(set)
    }
}

/// The counters a resumable COPY keeps, which progress displays read.
struct Counters {
    /// Images the statement covers.
    total: Count,
    /// Images committed by an earlier run, skipped by this one.
    skipped: Count,
    /// Images committed, by earlier runs and this one.
    committed: Count,
}

impl Counters {
    fn new(metrics: &ExecutionPlanMetricsSet) -> Self {
        let counter = |name: &'static str| MetricBuilder::new(metrics).global_counter(name);
        Self {
            total: counter(crate::progress::IMAGES_TOTAL),
            skipped: counter(crate::progress::IMAGES_SKIPPED),
            committed: counter(crate::progress::IMAGES_COMMITTED),
        }
    }
}

/// One execution of a resumable COPY.
struct Run {
    copy: CopyTo,
    format_options: HashMap<String, String>,
    options: ResumeOptions,
    order: Vec<SortExpr>,
    state: SessionState,
    counters: Counters,
    scans: Arc<Mutex<ScanProgress>>,
}

impl Run {
    async fn run(self) -> Result<u64> {
        let (source, files) = self.image_files().await?;
        let journal = Journal::open(&self.state, &self.copy, &self.format_options).await?;
        let mut done = journal.load(&self.options.key).await?;
        let total = files.len();
        let remaining: Vec<String> = files.into_iter().filter(|f| !done.files.contains(f)).collect();
        self.counters.total.add(total);
        self.counters.skipped.add(total - remaining.len());
        self.counters.committed.add(total - remaining.len());
        let every = self
            .options
            .every
            .unwrap_or(2 * self.state.config_options().execution.target_partitions.max(1));
        let reservation = MemoryConsumer::new("resumable COPY").register(&self.state.runtime_env().memory_pool);
        reservation.try_grow(
            done.batches
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum::<usize>(),
        )?;
        let mut schema = done.schema.clone();
        for chunk in remaining.chunks(every) {
            let plan = with_path_filter(&self.copy.input, &source, chunk)?;
            let physical = self.state.create_physical_plan(&plan).await?;
            self.watch(Some(Arc::clone(&physical)));
            let batches = collect(Arc::clone(&physical), self.state.task_ctx()).await;
            self.watch(None);
            let batches = batches?;
            let part_schema = physical.schema();
            done.add_keys(&self.options.key, &part_schema, &batches)?;
            let size = batches.iter().map(RecordBatch::get_array_memory_size).sum::<usize>();
            reservation.try_grow(size)?;
            journal.commit(&part_schema, chunk, &batches).await?;
            self.counters.committed.add(chunk.len());
            schema.get_or_insert(part_schema);
            done.batches.extend(batches);
        }
        let Some(schema) = schema else {
            return plan_err!("COPY with resume: no images to read");
        };
        let rows = self.write_target(schema, done.batches).await?;
        drop(reservation);
        journal.remove().await?;
        Ok(rows)
    }

    fn watch(&self, plan: Option<Arc<dyn ExecutionPlan>>) {
        if let Ok(mut scans) = self.scans.lock() {
            if let Some(finished) = scans.running.take() {
                scans.finished = scans.finished.plus(ScanCounts::of_plan(finished.as_ref()));
            }
            scans.running = plan;
        }
    }

    /// The query's one image scan, and the files it reads (as its `path`
    /// column gives them), sorted.
    async fn image_files(&self) -> Result<(Arc<dyn datafusion::logical_expr::TableSource>, Vec<String>)> {
        let mut scans: Vec<TableScan> = Vec::new();
        self.copy.input.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                scans.push(scan.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let mut found = Vec::new();
        for scan in scans {
            let Ok(provider) = source_as_provider(&scan.source) else {
                continue;
            };
            // As DataFusion's planner gives them: without the table's name.
            let filters = unnormalize_cols(scan.filters.iter().cloned());
            let plan = provider.scan(&self.state, None, &filters, None).await?;
            let mut paths = Vec::new();
            plan.apply(|node| {
                if let Some(images) = node.downcast_ref::<ImageScanExec>() {
                    paths.extend(images.file_paths());
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            if !paths.is_empty() {
                found.push((scan, paths));
            }
        }
        match found.len() {
            1 => {
                let (scan, mut paths) = found.remove(0);
                paths.sort();
                paths.dedup();
                Ok((scan.source, paths))
            }
            0 => plan_err!(
                "COPY with resume runs a query over image files (images(), image_tiles() or an IMAGES table); this one reads none"
            ),
            n => plan_err!("COPY with resume runs a query over one image table; this one reads {n}"),
        }
    }

    /// Writes every row, in the query's order, through the COPY's own sink
    /// (all or nothing, as every COPY); returns the rows written.
    async fn write_target(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<u64> {
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches])?;
        let sorted = LogicalPlanBuilder::scan("resumed", provider_as_source(Arc::new(table)), None)?
            .sort(self.order.clone())?
            .build()?;
        let copy = LogicalPlan::Copy(CopyTo::new(
            Arc::new(sorted),
            self.copy.output_url.clone(),
            Vec::new(),
            Arc::clone(&self.copy.file_type),
            self.format_options.clone(),
        ));
        // Here, not on a cluster: the rows are in this process.
        let plan = DefaultPhysicalPlanner::default()
            .create_physical_plan(&copy, &self.state)
            .await?;
        let counts = collect(plan, self.state.task_ctx()).await?;
        let mut rows = 0;
        for batch in &counts {
            if let Some(count) = batch.column(0).as_any().downcast_ref::<UInt64Array>() {
                rows += count.iter().flatten().sum::<u64>();
            }
        }
        Ok(rows)
    }
}

/// `plan` with its scan of `source` reading only `files` (a filter on the
/// `path` column, which image scans apply while listing).
fn with_path_filter(
    plan: &LogicalPlan,
    source: &Arc<dyn datafusion::logical_expr::TableSource>,
    files: &[String],
) -> Result<LogicalPlan> {
    let filter = col("path").in_list(files.iter().map(|f| lit(f.as_str())).collect(), false);
    plan.clone()
        .transform_up(|node| match node {
            LogicalPlan::TableScan(scan) if Arc::ptr_eq(&scan.source, source) => {
                let mut scan = scan;
                scan.filters.push(filter.clone());
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// What earlier runs committed.
#[derive(Default)]
struct Committed {
    files: HashSet<String>,
    keys: HashSet<String>,
    batches: Vec<RecordBatch>,
    /// The rows' schema, from the first part (which may hold no rows).
    schema: Option<SchemaRef>,
}

impl Committed {
    /// Adds a part's keys; a key already committed by another part means
    /// the query's rows mix images.
    fn add_keys(&mut self, key: &str, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        let index = schema.index_of(key)?;
        let mut part = BTreeSet::new();
        for batch in batches {
            let values = cast(batch.column(index), &DataType::Utf8)?;
            let Some(values) = values.as_any().downcast_ref::<StringArray>() else {
                return Err(exec_datafusion_err!(
                    "COPY with resume: cannot read key column {key} as text"
                ));
            };
            part.extend(values.iter().flatten().map(str::to_string));
        }
        if let Some(twice) = part.iter().find(|k| self.keys.contains(*k)) {
            return plan_err!(
                "COPY with resume: key {key} = '{twice}' came from two parts of the input, so the query's rows are not one image's each; \
                 resume needs a key whose rows come from one image (such as GROUP BY name)"
            );
        }
        self.keys.extend(part);
        Ok(())
    }
}

/// Where a resumable COPY commits (see the module).
struct Journal {
    store: Arc<dyn ObjectStore>,
    folder: StorePath,
    /// The folder on the local disk, when the store is one (to fsync).
    local: Option<std::path::PathBuf>,
    statement: String,
    next: std::sync::atomic::AtomicUsize,
}

impl Journal {
    async fn open(state: &SessionState, copy: &CopyTo, format_options: &HashMap<String, String>) -> Result<Self> {
        let url = ListingTableUrl::parse(&copy.output_url)?;
        let store = state.runtime_env().object_store(url.object_store())?;
        let target = url.prefix();
        let parts: Vec<_> = target.parts().collect();
        let Some((name, parent)) = parts.split_last() else {
            return plan_err!(
                "COPY with resume needs a target below a folder, not '{}'",
                copy.output_url
            );
        };
        let folder: StorePath = parent
            .iter()
            .cloned()
            .chain(std::iter::once(format!(".{}.rookery-resume", name.as_ref()).into()))
            .collect();
        let local = url
            .object_store()
            .as_str()
            .starts_with("file://")
            .then(|| std::path::PathBuf::from(format!("/{folder}")));
        let mut options: Vec<_> = format_options.iter().collect();
        options.sort();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        copy.input.display_indent().to_string().hash(&mut hasher);
        copy.output_url.hash(&mut hasher);
        options.hash(&mut hasher);
        Ok(Self {
            store,
            folder,
            local,
            statement: format!("{:016x}", hasher.finish()),
            next: std::sync::atomic::AtomicUsize::new(1),
        })
    }

    fn describe(&self) -> String {
        match &self.local {
            Some(path) => path.display().to_string(),
            None => self.folder.to_string(),
        }
    }

    /// Every committed part; files that are not parts (a write a kill cut
    /// short) are removed.
    async fn load(&self, key: &str) -> Result<Committed> {
        let listed: Vec<_> = self.store.list(Some(&self.folder)).try_collect().await?;
        let mut parts: Vec<(usize, StorePath)> = Vec::new();
        for meta in listed {
            let name = meta.location.filename().unwrap_or_default().to_string();
            match part_number(&name) {
                Some(n) => parts.push((n, meta.location)),
                None => {
                    let _ = self.store.delete(&meta.location).await;
                }
            }
        }
        parts.sort();
        let mut committed = Committed::default();
        for (n, location) in parts {
            let bytes = self.store.get(&location).await?.bytes().await?;
            let reader = FileReader::try_new(std::io::Cursor::new(bytes), None)
                .map_err(|e| exec_datafusion_err!("COPY with resume: journal part {location} is unreadable: {e}"))?;
            let metadata = reader.custom_metadata().clone();
            if metadata.get(META_STATEMENT) != Some(&self.statement) {
                return plan_err!(
                    "COPY with resume: the journal at {} was written by a different statement (or different settings); \
                     delete it to start this one from the beginning",
                    self.describe()
                );
            }
            let files: Vec<String> = metadata
                .get(META_FILES)
                .and_then(|f| serde_json::from_str(f).ok())
                .ok_or_else(|| exec_datafusion_err!("COPY with resume: journal part {location} names no files"))?;
            let schema = reader.schema();
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            committed.files.extend(files);
            committed.add_keys(key, &schema, &batches)?;
            committed.batches.extend(batches);
            committed.schema.get_or_insert(schema);
            self.next.fetch_max(n + 1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(committed)
    }

    /// Commits the rows of `files` as the next part, durably.
    async fn commit(&self, schema: &SchemaRef, files: &[String], batches: &[RecordBatch]) -> Result<()> {
        let mut writer = FileWriter::try_new(Vec::new(), schema)?;
        writer.write_metadata(META_STATEMENT, self.statement.clone());
        writer.write_metadata(
            META_FILES,
            serde_json::to_string(files).map_err(|e| DataFusionError::External(Box::new(e)))?,
        );
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
        let bytes = writer.into_inner()?;
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("part-{n:05}.arrow");
        let location = self.folder.clone().join(name.as_str());
        match &self.local {
            Some(folder) => write_local_durably(folder, &name, &bytes),
            None => {
                self.store.put(&location, PutPayload::from(bytes)).await?;
                Ok(())
            }
        }
    }

    async fn remove(&self) -> Result<()> {
        if let Some(folder) = &self.local {
            return match std::fs::remove_dir_all(folder) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(exec_datafusion_err!(
                    "COPY with resume: cannot remove its journal {}: {e}",
                    folder.display()
                )),
                _ => Ok(()),
            };
        }
        let listed: Vec<_> = self.store.list(Some(&self.folder)).try_collect().await?;
        let locations = futures::stream::iter(listed.into_iter().map(|m| Ok(m.location))).boxed();
        self.store.delete_stream(locations).try_collect::<Vec<_>>().await?;
        Ok(())
    }
}

/// `n` of a part's file name `part-NNNNN.arrow`.
fn part_number(name: &str) -> Option<usize> {
    name.strip_prefix("part-")?.strip_suffix(".arrow")?.parse().ok()
}

/// Writes `bytes` as `folder/name`: a temporary file, fsynced, renamed,
/// and the folder synced, so the name appears only with the whole part.
fn write_local_durably(folder: &std::path::Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let failed = |what: &str, e: std::io::Error| {
        exec_datafusion_err!("COPY with resume: cannot {what} in {}: {e}", folder.display())
    };
    std::fs::create_dir_all(folder).map_err(|e| failed("create the journal", e))?;
    let temporary = folder.join(format!(".{name}.partial"));
    let mut file = std::fs::File::create(&temporary).map_err(|e| failed("write a part", e))?;
    file.write_all(bytes).map_err(|e| failed("write a part", e))?;
    file.sync_all().map_err(|e| failed("sync a part", e))?;
    std::fs::rename(&temporary, folder.join(name)).map_err(|e| failed("commit a part", e))?;
    // Makes the rename durable; not every file system can sync a folder.
    let _ = std::fs::File::open(folder).and_then(|f| f.sync_all());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(part_number("part-00012.arrow"), Some(12));
        assert_eq!(part_number(".part-00012.arrow.partial"), None);
        assert_eq!(part_number("part-x.arrow"), None);
    }

    #[test]
    fn keys_may_not_come_from_two_parts() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let batch = |values: Vec<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(datafusion::arrow::array::Int64Array::from(values))],
            )
            .unwrap()
        };
        let mut committed = Committed::default();
        committed.add_keys("k", &schema, &[batch(vec![1, 1, 2])]).unwrap();
        committed.add_keys("k", &schema, &[batch(vec![3])]).unwrap();
        let e = committed
            .add_keys("k", &schema, &[batch(vec![4, 2])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("k = '2'") && e.contains("two parts"), "{e}");
    }
}
