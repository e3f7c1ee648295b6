//! A Rookery session for Python: DataFusion's `SessionContext` with
//! everything `rookery::register` adds, its own tokio runtime, and the
//! training control that Ctrl-C cancels.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatchReader;
use datafusion::arrow::error::ArrowError;
use datafusion::catalog::MemTable;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use pyo3::prelude::*;
use rookery::exec::{all_statements, parse_statement, run_statement};
use rookery::progress::PlanProgress;
use rookery::EngineOptions;
use rookery_models::control::TrainingControl;
use tokio::runtime::Runtime;

use crate::arrow_capsules::import_stream;
use crate::dataframe::DataFrame;
use crate::errors::{engine_error, guarded, Error};
use crate::wait::wait;

/// The last epoch `cnn_train` reported: (epoch, epochs, loss).
type LastEpoch = Arc<Mutex<Option<(usize, usize, f64)>>>;

#[pyclass(frozen, module = "rookery._rookery")]
pub struct Session {
    ctx: SessionContext,
    runtime: Arc<Runtime>,
    training: TrainingControl,
    last_epoch: LastEpoch,
    /// The plan this session runs now, for progress.
    progress: PlanProgress,
}

/// A tokio runtime with one worker per core, as DataFusion's CLI uses.
pub fn engine_runtime() -> PyResult<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rookery")
        .build()
        .map_err(|e| Error::new_err(format!("cannot start the engine's threads: {e}")))
}

#[pymethods]
impl Session {
    #[new]
    #[pyo3(signature = (memory_limit=None, partitions=None, batch_size=None, cluster=None))]
    fn new(
        py: Python<'_>,
        memory_limit: Option<usize>,
        partitions: Option<usize>,
        batch_size: Option<usize>,
        cluster: Option<String>,
    ) -> PyResult<Self> {
        guarded(|| {
            if partitions == Some(0) {
                return Err(Error::new_err("partitions must be at least 1"));
            }
            if memory_limit == Some(0) {
                return Err(Error::new_err("memory_limit must be above 0 bytes"));
            }
            let runtime = Arc::new(engine_runtime()?);
            let training = TrainingControl::default();
            let last_epoch: LastEpoch = Arc::default();
            let reported = Arc::clone(&last_epoch);
            training.on_progress(move |report| {
                if let Ok(mut last) = reported.lock() {
                    *last = Some((report.epoch, report.epochs, report.loss));
                }
            });
            let options = EngineOptions {
                partitions,
                memory_limit,
                batch_size,
                training: training.clone(),
            };
            let ctx = match cluster {
                None => rookery::new_session(&options).map_err(engine_error)?,
                Some(url) => wait(
                    py,
                    &runtime,
                    async move { rookery::cluster::connect(&url, &options).await },
                    None,
                    &training,
                )?,
            };
            Ok(Self {
                ctx,
                runtime,
                training,
                last_epoch,
                progress: PlanProgress::default(),
            })
        })
    }

    /// Runs every statement of `text` but the last, and plans the last
    /// one: its DataFrame runs when its results are asked for. DDL and
    /// `SET` run here, as in DataFusion.
    #[pyo3(signature = (text, tick=None))]
    fn sql(&self, py: Python<'_>, text: &str, tick: Option<Bound<'_, PyAny>>) -> PyResult<DataFrame> {
        guarded(|| {
            let mut statements = all_statements(text);
            let Some((last_line, last)) = statements.pop() else {
                return Err(Error::new_err("no SQL statement in the text"));
            };
            let several = !statements.is_empty();
            let ctx = self.ctx.clone();
            let progress = self.progress.clone();
            let frame = wait(
                py,
                &self.runtime,
                async move {
                    let located = |line: usize| {
                        move |e: DataFusionError| {
                            if several {
                                e.context(format!("statement at line {line}"))
                            } else {
                                e
                            }
                        }
                    };
                    for (line, text) in statements {
                        let statement = parse_statement(&text, line).map_err(located(line))?;
                        run_statement(&ctx, &statement).await.map_err(located(line))?;
                    }
                    let statement = parse_statement(&last, last_line).map_err(located(last_line))?;
                    let plan = ctx
                        .state()
                        .statement_to_plan(statement.statement)
                        .await
                        .map_err(located(last_line))?;
                    // COPY and INSERT run now, as DuckDB's sql() runs
                    // them; the frame then holds their result (the row
                    // count). Queries stay lazy.
                    let eager = matches!(plan, LogicalPlan::Copy(_) | LogicalPlan::Dml(_));
                    let frame = ctx.execute_logical_plan(plan).await.map_err(located(last_line))?;
                    if !eager {
                        return Ok(frame);
                    }
                    let schema = Arc::new(frame.schema().as_arrow().clone());
                    // Watched, so progress (a resumable COPY's parts) shows.
                    let stream = progress.execute(frame).await.map_err(located(last_line))?;
                    let batches: Vec<_> = futures::TryStreamExt::try_collect(stream)
                        .await
                        .map_err(located(last_line))?;
                    ctx.read_table(Arc::new(MemTable::try_new(schema, vec![batches])?))
                },
                tick.as_ref(),
                &self.training,
            )?;
            Ok(DataFrame::new(
                frame,
                Arc::clone(&self.runtime),
                self.training.clone(),
                self.progress.clone(),
            ))
        })
    }

    /// Registers an Arrow table or stream (anything with
    /// `__arrow_c_stream__`) as table `name`, replacing a table of that
    /// name. Its buffers are shared with Python, not copied.
    fn register_arrow(&self, name: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            let reader = import_stream(data)?;
            let schema = reader.schema();
            let batches = reader
                .collect::<std::result::Result<Vec<_>, ArrowError>>()
                .map_err(|e| Error::new_err(format!("cannot read the data for table '{name}': {e}")))?;
            let table = MemTable::try_new(schema, vec![batches]).map_err(engine_error)?;
            self.ctx.deregister_table(name).map_err(engine_error)?;
            self.ctx.register_table(name, Arc::new(table)).map_err(engine_error)?;
            Ok(())
        })
    }

    /// Removes table `name`; no error when there is none.
    fn deregister(&self, name: &str) -> PyResult<()> {
        self.ctx.deregister_table(name).map(drop).map_err(engine_error)
    }

    /// Image files read and images decoded by the statement this session
    /// runs now (or ran last), from its plan's metrics.
    fn scan_progress(&self) -> (u64, u64) {
        let counts = self.progress.counts();
        (counts.files_read, counts.images_decoded)
    }

    /// For a resumable COPY running now (or last): images it covers, those
    /// an earlier run committed, and those committed so far; None for other
    /// statements.
    fn resume_progress(&self) -> Option<(u64, u64, u64)> {
        let counts = self.progress.counts();
        (counts.images_total > 0).then_some((counts.images_total, counts.images_skipped, counts.images_committed))
    }

    /// The last epoch a `cnn_train` of this session reported, as
    /// `(epoch, epochs, loss)`, or None.
    fn last_epoch(&self) -> Option<(usize, usize, f64)> {
        self.last_epoch.lock().ok().and_then(|last| *last)
    }
}

/// Bytes in a size such as `4G`, `512M` or `1048576`, as the CLI's
/// `--memory-limit` reads it.
#[pyfunction]
pub fn parse_byte_size(text: &str) -> PyResult<usize> {
    rookery::session::parse_byte_size(text).map_err(engine_error)
}
