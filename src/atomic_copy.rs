//! All-or-nothing `COPY ... TO` for local targets, as a rule of the
//! session: a COPY that fails removes the file or folder it was writing
//! when that did not exist before, whatever the format (CSV, JSON,
//! Parquet, images), so a failure never leaves a partial file that
//! looks like a result. Files that were there before are left as they are.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::{FileSink, FileSinkConfig};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};

use crate::images::ImageSink;
use crate::pass_through::{AroundInput, PassThroughExec};

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
                Some(target) => Ok(Transformed::yes(Arc::new(RemoveTargetOnError::new(
                    Arc::clone(&node),
                    TargetToRemove { target },
                )) as Arc<dyn ExecutionPlan>)),
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
pub type RemoveTargetOnError = PassThroughExec<TargetToRemove>;

/// The local file or folder a [`RemoveTargetOnError`] guards.
#[derive(Debug, Clone)]
pub struct TargetToRemove {
    target: PathBuf,
}

fn remove_path(path: &std::path::Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

impl AroundInput for TargetToRemove {
    const NAME: &'static str = "RemoveTargetOnError";

    fn fmt_details(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "target={}", self.target.display())
    }

    fn execute(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let existed = self.target.exists();
        let target = self.target.clone();
        let stream = input.execute(partition, context)?;
        let schema = stream.schema();
        let guarded = stream.inspect_err(move |_| {
            if !existed {
                remove_path(&target);
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, guarded.boxed())))
    }
}
