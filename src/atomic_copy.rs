//! All-or-nothing `COPY ... TO`, as a rule of the session: a COPY that
//! fails removes the file or folder it was writing when that did not exist
//! before, whatever the format (CSV, JSON, Parquet, images) and wherever
//! it writes (a local path, or an object store's object or prefix), so a
//! failure never leaves a partial result that looks like one. What was
//! there before is left as it is.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::{FileSink, FileSinkConfig};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

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

/// What a sink writes: a local file or folder, or an object store's object
/// or prefix.
fn sink_target(config: &FileSinkConfig) -> Option<TargetToRemove> {
    let [table_path] = config.table_paths.as_slice() else {
        return None;
    };
    if config.object_store_url.as_str() == "file:///" {
        return Some(TargetToRemove::Local(PathBuf::from(format!(
            "/{}",
            table_path.prefix()
        ))));
    }
    Some(TargetToRemove::Objects {
        store: config.object_store_url.clone(),
        prefix: table_path.prefix().clone(),
    })
}

/// Wraps every file-writing `DataSinkExec` in a [`RemoveTargetOnError`].
#[derive(Debug, Default)]
pub struct AtomicCopy;

impl PhysicalOptimizerRule for AtomicCopy {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(sink) = node.downcast_ref::<DataSinkExec>() else {
                return Ok(Transformed::no(node));
            };
            match file_sink_config(sink.sink()).and_then(sink_target) {
                Some(target) => Ok(Transformed::yes(
                    Arc::new(RemoveTargetOnError::new(Arc::clone(&node), target)) as Arc<dyn ExecutionPlan>,
                )),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "atomic_copy"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Runs a sink; if it fails, removes its target when the target did not
/// exist when the sink started.
pub type RemoveTargetOnError = PassThroughExec<TargetToRemove>;

/// What a [`RemoveTargetOnError`] guards.
#[derive(Debug, Clone)]
pub enum TargetToRemove {
    /// A local file or folder.
    Local(PathBuf),
    /// The object at `prefix` and every object under it.
    Objects { store: ObjectStoreUrl, prefix: StorePath },
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
        match self {
            Self::Local(path) => write!(f, "target={}", path.display()),
            Self::Objects { store, prefix } => write!(f, "target={store}{prefix}"),
        }
    }

    fn execute(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        match self {
            Self::Local(path) => {
                let existed = path.exists();
                let target = path.clone();
                let stream = input.execute(partition, context)?;
                let schema = stream.schema();
                let guarded = stream.inspect_err(move |_| {
                    if !existed {
                        remove_path(&target);
                    }
                });
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, guarded.boxed())))
            }
            Self::Objects { store, prefix } => {
                let store = context.runtime_env().object_store(store)?;
                let (input, prefix, schema) = (Arc::clone(input), prefix.clone(), input.schema());
                // Whether anything was there is asked before the sink starts.
                let guarded = futures::stream::once(async move {
                    let existed = has_objects(store.as_ref(), &prefix).await?;
                    let stream = input.execute(partition, context)?;
                    Ok::<_, DataFusionError>(stream.or_else(move |e| {
                        let (store, prefix) = (Arc::clone(&store), prefix.clone());
                        async move {
                            if !existed {
                                remove_objects(store.as_ref(), &prefix).await;
                            }
                            Err(e)
                        }
                    }))
                })
                .try_flatten();
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, guarded.boxed())))
            }
        }
    }
}

/// Whether there is an object at `prefix` or under it.
async fn has_objects(store: &dyn ObjectStore, prefix: &StorePath) -> Result<bool> {
    match store.head(prefix).await {
        Ok(_) => return Ok(true),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(store.list(Some(prefix)).try_next().await?.is_some())
}

/// Deletes the object at `prefix` and every object under it, as far as the
/// store lets it: the COPY's own error is what the user sees.
async fn remove_objects(store: &dyn ObjectStore, prefix: &StorePath) {
    let _ = store.delete(prefix).await;
    let listed: Vec<StorePath> = store
        .list(Some(prefix))
        .filter_map(|meta| async move { meta.ok().map(|m| m.location) })
        .collect()
        .await;
    for location in listed {
        let _ = store.delete(&location).await;
    }
}
