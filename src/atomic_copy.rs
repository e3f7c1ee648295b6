//! All-or-nothing `COPY ... TO` for local targets, as a rule of the
//! session: a COPY that fails removes the file or folder it was writing
//! when that did not exist before, whatever the format (CSV, JSON,
//! Parquet, images), so a failure never leaves a partial file that
//! looks like a result. Files that were there before are left as they are.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result, Statistics};
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::{FileSink, FileSinkConfig};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream, StatisticsArgs,
};
use futures::{StreamExt, TryStreamExt};

use crate::images::ImageSink;

/// The configuration of a file-writing sink, for the formats there are.
fn file_sink_config(sink: &dyn DataSink) -> Option<&FileSinkConfig> {
    if let Some(sink) = sink.downcast_ref::<ImageSink>() {
        return Some(sink.config());
    }
    if let Some(sink) = sink.downcast_ref::<CsvSink>() {
        return Some(sink.config());
    }
    if let Some(sink) = sink.downcast_ref::<JsonSink>() {
        return Some(sink.config());
    }
    if let Some(sink) = sink.downcast_ref::<ParquetSink>() {
        return Some(FileSink::config(sink));
    }
    None
}

/// The local path a sink writes (a file or a folder), when it is local.
fn local_target(config: &FileSinkConfig) -> Option<PathBuf> {
    if config.object_store_url.as_str() != "file:///" {
        return None;
    }
    let [table_path] = config.table_paths.as_slice() else {
        return None;
    };
    Some(PathBuf::from(format!("/{}", table_path.prefix())))
}

/// Wraps every local `DataSinkExec` in a [`RemoveTargetOnError`].
#[derive(Debug, Default)]
pub struct AtomicLocalCopy;

impl PhysicalOptimizerRule for AtomicLocalCopy {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(sink) = node.downcast_ref::<DataSinkExec>() else {
                return Ok(Transformed::no(node));
            };
            match file_sink_config(sink.sink()).and_then(local_target) {
                Some(target) => Ok(Transformed::yes(Arc::new(RemoveTargetOnError {
                    input: Arc::clone(&node),
                    target,
                }) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "atomic_local_copy"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Runs a sink; if it fails, removes its target when the target did not
/// exist when the sink started.
#[derive(Debug)]
pub struct RemoveTargetOnError {
    input: Arc<dyn ExecutionPlan>,
    target: PathBuf,
}

impl DisplayAs for RemoveTargetOnError {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RemoveTargetOnError: target={}", self.target.display())
    }
}

fn remove_path(path: &std::path::Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

impl ExecutionPlan for RemoveTargetOnError {
    fn name(&self) -> &str {
        "RemoveTargetOnError"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self {
                input,
                target: self.target.clone(),
            })),
            Err(_) => internal_err!("RemoveTargetOnError has one child"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let existed = self.target.exists();
        let target = self.target.clone();
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let guarded = stream.inspect_err(move |_| {
            if !existed {
                remove_path(&target);
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, guarded.boxed())))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match input_stats {
            [input] => Ok(Arc::clone(input)),
            _ => internal_err!("RemoveTargetOnError has one child"),
        }
    }
}
