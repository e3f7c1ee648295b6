//! All-or-nothing `COPY ... TO` (and `INSERT INTO` a file table), as a rule
//! of the session, for every format (CSV, JSON, Parquet, images) and every
//! store (a local path, or an object store's object or prefix).
//!
//! The sink writes under a staging name of its own, `.rookery-copy-<pid>-<n>`
//! (a folder inside the target folder, or beside the target file), and its
//! files are put in place, each by a rename, only once the whole sink has
//! succeeded. So:
//!
//! - a COPY that fails or is cancelled (Ctrl-C, a dropped stream, a
//!   server's timeout) removes its staging folder and leaves every file
//!   that was there before as it was;
//! - after `kill -9` no final name is incomplete: what the killed COPY
//!   staged sits in its hidden staging folder, which readers skip (a table
//!   over a folder ignores its subfolders) and which the next COPY into the
//!   same place removes once its process is gone (local folders);
//! - two COPYs at once stage apart and never remove each other's files.
//!
//! A COPY that has started putting files in place finishes doing so even if
//! its query is cancelled then: the renames run on a task of their own.
//! Locally every file is fsynced before its rename, so a name that appears
//! holds the whole file after a power cut too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_datafusion_err, internal_err, DataFusionError, Result};
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::{ParquetFormat, ParquetSink};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::{FileOutputMode, FileSink, FileSinkConfig};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::images::ImageSink;
use crate::pass_through::{AroundInput, PassThroughExec};

/// The start of every staging folder's name.
pub const STAGING_PREFIX: &str = ".rookery-copy-";

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

/// Where a sink writes: one file, or files in a folder.
fn copy_target(config: &FileSinkConfig) -> Option<CopyTarget> {
    let [table_path] = config.table_paths.as_slice() else {
        return None;
    };
    Some(CopyTarget {
        store: config.object_store_url.clone(),
        prefix: table_path.prefix().clone(),
        single_file: config.file_output_mode.single_file_output(table_path),
    })
}

/// Wraps every file-writing `DataSinkExec` in a [`StagedCopyExec`].
#[derive(Debug, Default)]
pub struct AtomicCopy;

impl PhysicalOptimizerRule for AtomicCopy {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(sink) = node.downcast_ref::<DataSinkExec>() else {
                return Ok(Transformed::no(node));
            };
            match file_sink_config(sink.sink()).and_then(copy_target) {
                Some(target) => Ok(Transformed::yes(
                    Arc::new(StagedCopyExec::new(Arc::clone(&node), target)) as Arc<dyn ExecutionPlan>,
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

/// Runs its `DataSinkExec` child into a staging folder and, when the sink
/// succeeds, puts the staged files in place.
pub type StagedCopyExec = PassThroughExec<CopyTarget>;

/// What a [`StagedCopyExec`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget {
    pub store: ObjectStoreUrl,
    /// The file, or the folder, the COPY names.
    pub prefix: StorePath,
    /// Whether `prefix` is one file (else a folder of files).
    pub single_file: bool,
}

impl CopyTarget {
    fn is_local(&self) -> bool {
        self.store.as_str() == "file:///"
    }

    /// The folder the staging folder goes in, and where the staged files'
    /// relative paths land: the target folder, or the target file's folder.
    fn final_root(&self) -> StorePath {
        if !self.single_file {
            return self.prefix.clone();
        }
        let mut parts: Vec<_> = self.prefix.parts().collect();
        parts.pop();
        StorePath::from_iter(parts)
    }

    /// Where the sink writes instead: a file or folder in `staging`.
    fn staged_url(&self, staging: &StorePath) -> Result<ListingTableUrl> {
        let mut path = match self.prefix.filename().filter(|_| self.single_file) {
            Some(name) => staging.clone().join(name).to_string(),
            None => format!("{staging}/"),
        };
        path.insert(0, '/');
        let mut url = url::Url::parse(self.store.as_str()).map_err(|e| DataFusionError::External(Box::new(e)))?;
        url.set_path(&path);
        ListingTableUrl::try_new(url, None)
    }
}

/// The local file or folder of `path` (see [`crate::stores::local_file`]).
fn local_path(path: &StorePath) -> PathBuf {
    crate::stores::local_file(path).unwrap_or_else(|| PathBuf::from(format!("/{path}")))
}

impl AroundInput for CopyTarget {
    const NAME: &'static str = "StagedCopyExec";

    fn fmt_details(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = if self.single_file { "file" } else { "folder" };
        write!(f, "{kind}={}{}", self.store, self.prefix)
    }

    fn execute(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if input.downcast_ref::<DataSinkExec>().is_none() {
            return internal_err!("{} runs a DataSinkExec, not {}", Self::NAME, input.name());
        }
        let (input, target, schema) = (Arc::clone(input), self.clone(), input.schema());
        let store = context.runtime_env().object_store(&self.store)?;
        let staged = futures::stream::once(async move {
            let staging = Staging::start(store, &target).await?;
            let written = async {
                let url = target.staged_url(&staging.root)?;
                let exec = retarget(&input, url).await?;
                exec.execute(partition, context)?
                    .try_collect::<Vec<RecordBatch>>()
                    .await
            }
            .await;
            match written {
                Ok(batches) => {
                    staging.commit(&target).await?;
                    Ok(batches)
                }
                Err(e) => {
                    staging.abandon().await;
                    Err(e)
                }
            }
        })
        .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, staged.boxed())))
    }
}

/// The same sink node, writing to `url` instead.
async fn retarget(node: &Arc<dyn ExecutionPlan>, url: ListingTableUrl) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(exec) = node.downcast_ref::<DataSinkExec>() else {
        return internal_err!("a staged COPY runs a DataSinkExec, not {}", node.name());
    };
    let sink = exec.sink();
    let Some(config) = file_sink_config(sink) else {
        return internal_err!("a staged COPY writes files, not through {sink:?}");
    };
    let mut config = config.clone();
    // The staging name must not change how the output is laid out.
    config.file_output_mode = if config.file_output_mode.single_file_output(&config.table_paths[0]) {
        FileOutputMode::SingleFile
    } else {
        FileOutputMode::Directory
    };
    config.table_paths = vec![url];
    let (input, order) = (Arc::clone(exec.input()), exec.sort_order().clone());
    let sink: Arc<dyn DataSink> = if let Some(images) = sink.downcast_ref::<ImageSink>() {
        Arc::new(ImageSink::try_new(config, images.options().clone())?)
    } else if let Some(csv) = sink.downcast_ref::<CsvSink>() {
        Arc::new(CsvSink::new(config, csv.writer_options().clone()))
    } else if let Some(json) = sink.downcast_ref::<JsonSink>() {
        Arc::new(JsonSink::new(config, json.writer_options().clone()))
    } else if let Some(parquet) = sink.downcast_ref::<ParquetSink>() {
        // Through the format, which also derives the files' sorting
        // columns from the order (a ParquetSink does not give them back).
        let format = ParquetFormat::default().with_options(parquet.parquet_options().clone());
        let state = SessionStateBuilder::new().build();
        return format.create_writer_physical_plan(input, &state, config, order).await;
    } else {
        return internal_err!("a staged COPY cannot write through {sink:?}");
    };
    Ok(Arc::new(DataSinkExec::new(input, sink, order)))
}

/// One COPY's staging folder.
struct Staging {
    store: Arc<dyn ObjectStore>,
    /// `<final root>/.rookery-copy-<pid>-<n>`.
    root: StorePath,
    local: bool,
    /// The target folder did not exist before (local): an empty one is
    /// removed again when the COPY does not succeed.
    made_folder: Option<PathBuf>,
    /// Whether dropping this removes the staging folder (until committed).
    armed: bool,
}

fn staging_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{STAGING_PREFIX}{}-{nanos:08x}{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The process a staging folder's name says made it, if the name is one.
fn staging_owner(name: &str) -> Option<u32> {
    name.strip_prefix(STAGING_PREFIX)?.split('-').next()?.parse().ok()
}

/// The staging folders of this process's COPYs under way.
fn live_staging() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn set_live(name: &str, live: bool) {
    if let Ok(mut names) = live_staging().lock() {
        if live {
            names.insert(name.to_string());
        } else {
            names.remove(name);
        }
    }
}

/// Removes the staging folders in `folder` that no COPY under way owns:
/// those of processes that have ended (a COPY killed before it could clean
/// up), and this process's that are not live (a write that landed after a
/// cancelled COPY's cleanup). Other live processes' folders stay.
fn remove_stale_staging(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let live = live_staging().lock().map(|names| names.clone()).unwrap_or_default();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(pid) = staging_owner(name) else {
            continue;
        };
        let stale = if pid == std::process::id() {
            !live.contains(name)
        } else {
            !Path::new(&format!("/proc/{pid}")).exists()
        };
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs blocking file work on the blocking pool, off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

impl Staging {
    async fn start(store: Arc<dyn ObjectStore>, target: &CopyTarget) -> Result<Self> {
        let name = staging_name();
        let root = target.final_root().join(name.as_str());
        let local = target.is_local();
        let mut made_folder = None;
        if local {
            let folder = local_path(&target.final_root());
            let existed = folder.exists();
            let cleaned = folder.clone();
            blocking(move || {
                if existed {
                    remove_stale_staging(&cleaned);
                }
            })
            .await?;
            if !existed && !target.single_file {
                made_folder = Some(folder);
            }
        }
        set_live(&name, true);
        Ok(Self {
            store,
            root,
            local,
            made_folder,
            armed: true,
        })
    }

    /// Removes what was staged, when the sink failed.
    async fn abandon(mut self) {
        self.armed = false;
        if self.local {
            let (root, made) = (local_path(&self.root), self.made_folder.take());
            let _ = blocking(move || remove_local(&root, made.as_deref())).await;
        } else {
            remove_objects(self.store.as_ref(), &self.root).await;
        }
    }

    /// Puts every staged file in place. The renames run on a task of their
    /// own, so a cancel once they have started does not stop them halfway.
    async fn commit(mut self, target: &CopyTarget) -> Result<()> {
        self.armed = false;
        let final_root = target.final_root();
        if self.local {
            let (root, destination) = (local_path(&self.root), local_path(&final_root));
            blocking(move || {
                let moved = move_local(&root, &destination);
                let _ = std::fs::remove_dir_all(&root);
                moved
            })
            .await?
        } else {
            let (store, root) = (Arc::clone(&self.store), self.root.clone());
            tokio::spawn(async move {
                let moved = move_objects(store.as_ref(), &root, &final_root).await;
                if moved.is_err() {
                    remove_objects(store.as_ref(), &root).await;
                }
                moved
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        }
    }
}

/// A COPY dropped before it finished (cancelled): its staging goes.
impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(name) = self.root.filename() {
            set_live(name, false);
        }
        if !self.armed {
            return;
        }
        if self.local {
            let (root, made) = (local_path(&self.root), self.made_folder.take());
            // A write the sink had handed to the blocking pool may still
            // land after the first pass: a second one follows it, and the
            // next COPY into the folder removes any straggler.
            let remove = move || {
                remove_local(&root, made.as_deref());
                std::thread::sleep(std::time::Duration::from_millis(100));
                remove_local(&root, made.as_deref());
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(remove)),
                Err(_) => remove(),
            }
        } else if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (store, root) = (Arc::clone(&self.store), self.root.clone());
            handle.spawn(async move { remove_objects(store.as_ref(), &root).await });
        }
    }
}

fn remove_local(root: &Path, made_folder: Option<&Path>) {
    let _ = std::fs::remove_dir_all(root);
    // Only if empty: another COPY may be staging in it.
    if let Some(folder) = made_folder {
        let _ = std::fs::remove_dir(folder);
    }
}

/// Moves every file under `from` to the same relative path under `to`,
/// each fsynced first, then syncs the folders that changed.
fn move_local(from: &Path, to: &Path) -> Result<()> {
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        exec_datafusion_err!("COPY: cannot {what} {}: {e}", path.display())
    };
    let mut files = Vec::new();
    let mut folders = vec![from.to_path_buf()];
    while let Some(folder) = folders.pop() {
        // A sink that wrote no file (an empty result) made no folder.
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && folder == from => return Ok(()),
            Err(e) => return Err(failed("list", &folder, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| failed("list", &folder, e))?;
            let kind = entry.file_type().map_err(|e| failed("read", &entry.path(), e))?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut synced_folders = std::collections::BTreeSet::new();
    for file in &files {
        std::fs::File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(|e| failed("sync", file, e))?;
    }
    for file in &files {
        let relative = file
            .strip_prefix(from)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let destination = to.join(relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed("create", parent, e))?;
            synced_folders.insert(parent.to_path_buf());
        }
        std::fs::rename(file, &destination).map_err(|e| failed("put in place", &destination, e))?;
    }
    for folder in synced_folders {
        // Makes the renames durable; not every file system can sync a folder.
        let _ = std::fs::File::open(&folder).and_then(|f| f.sync_all());
    }
    Ok(())
}

/// Moves every object under `from` to the same relative path under `to`.
async fn move_objects(store: &dyn ObjectStore, from: &StorePath, to: &StorePath) -> Result<()> {
    let staged: Vec<StorePath> = store
        .list(Some(from))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await?;
    for location in staged {
        let Some(relative) = location.prefix_match(from) else {
            continue;
        };
        let destination = relative.fold(to.clone(), |path, part| path.join(part));
        store
            .rename(&location, &destination)
            .await
            .map_err(|e| exec_datafusion_err!("COPY: cannot put {destination} in place: {e}"))?;
    }
    Ok(())
}

/// Deletes every object under `prefix`, as far as the store lets it: the
/// COPY's own error is what the user sees.
async fn remove_objects(store: &dyn ObjectStore, prefix: &StorePath) {
    let listed: Vec<StorePath> = store
        .list(Some(prefix))
        .filter_map(|meta| async move { meta.ok().map(|m| m.location) })
        .collect()
        .await;
    for location in listed {
        let _ = store.delete(&location).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_name_their_process() {
        let name = staging_name();
        assert!(name.starts_with(STAGING_PREFIX), "{name}");
        assert_eq!(staging_owner(&name), Some(std::process::id()));
        assert_ne!(staging_name(), name);
        assert_eq!(staging_owner("a.png"), None);
        assert_eq!(staging_owner(".rookery-copy-x-1"), None);
    }

    #[test]
    fn targets_and_their_staging() {
        let file = CopyTarget {
            store: ObjectStoreUrl::parse("s3://bucket").unwrap(),
            prefix: StorePath::from("out/sub.csv"),
            single_file: true,
        };
        assert_eq!(file.final_root(), StorePath::from("out"));
        let url = file.staged_url(&StorePath::from("out/.rookery-copy-1-2")).unwrap();
        assert_eq!(url.as_str(), "s3://bucket/out/.rookery-copy-1-2/sub.csv");
        let folder = CopyTarget {
            store: ObjectStoreUrl::local_filesystem(),
            prefix: StorePath::from("tmp/a b/out"),
            single_file: false,
        };
        assert_eq!(folder.final_root(), StorePath::from("tmp/a b/out"));
        let url = folder
            .staged_url(&StorePath::from("tmp/a b/out/.rookery-copy-1-2"))
            .unwrap();
        assert_eq!(url.prefix().as_ref(), "tmp/a b/out/.rookery-copy-1-2");
        assert!(url.is_collection(), "{url}");
    }

    #[test]
    fn moves_nested_files_and_removes_dead_staging() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join(".rookery-copy-1-0");
        std::fs::create_dir_all(staged.join("k=1")).unwrap();
        std::fs::write(staged.join("a.csv"), "a").unwrap();
        std::fs::write(staged.join("k=1").join("b.csv"), "b").unwrap();
        std::fs::write(dir.path().join("a.csv"), "old").unwrap();
        move_local(&staged, dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a.csv")).unwrap(), "a");
        assert_eq!(std::fs::read_to_string(dir.path().join("k=1/b.csv")).unwrap(), "b");
        // pid 0 is never a user process: its folder is stale. Of this
        // process's, a live COPY's stays and a finished one's goes.
        let stale = dir.path().join(format!("{STAGING_PREFIX}0-5"));
        let (live_name, done_name) = (staging_name(), staging_name());
        let (live, done) = (dir.path().join(&live_name), dir.path().join(&done_name));
        for folder in [&stale, &live, &done] {
            std::fs::create_dir_all(folder).unwrap();
        }
        set_live(&live_name, true);
        remove_stale_staging(dir.path());
        assert!(!stale.exists() && live.exists() && !done.exists());
        set_live(&live_name, false);
    }
}
