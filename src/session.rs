//! Rookery's DataFusion session: configuration, memory pool, image tables
//! and image functions.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::{TableFunction, TableFunctionImpl};
use datafusion::common::{plan_err, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;

use crate::atomic_copy::AtomicCopy;
use crate::images::{
    CapBatchesOverImages, ImageConfig, ImageFileFormatFactory, ImageTableFactory, ImageTilesTableFunction,
    ImagesTableFunction,
};
use crate::read_blob::ReadBlob;
use crate::resume::{LocalQueryPlanner, ResumingQueryPlanner};
use crate::stores::{ObjectStoresFromEnv, WithStoreOptions};
use crate::tsv::TsvTableFactory;
use rookery_image::{ImageMemory, RookeryConfig};
use rookery_models::control::TrainingControl;
use rookery_udfs::Models;

/// How a session is set up; `None` means DataFusion's default.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Partitions (parallel streams) per query; default: all cores.
    pub partitions: Option<usize>,
    /// Memory pool size in bytes; a query that needs more fails with an
    /// error. Default: 80 % of the machine's memory (as DuckDB), so the
    /// kernel's OOM killer is never the answer.
    pub memory_limit: Option<usize>,
    /// Rows per batch for ordinary (non-image) operators.
    pub batch_size: Option<usize>,
    /// Progress and cancellation of `cnn_train` in this session.
    pub training: TrainingControl,
}

/// Number of cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Builds a session with image tables (`STORED AS IMAGES`, `images()`),
/// TSV label tables (`STORED AS TSV`) and every Rookery function.
pub fn new_session(options: &EngineOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(options.partitions.unwrap_or_else(available_cores).max(1));
    if let Some(batch_size) = options.batch_size {
        if batch_size == 0 {
            return plan_err!("batch size must be above 0");
        }
        config = config.with_batch_size(batch_size);
    }
    let builder = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime_env(options.memory_limit)?);
    Ok(SessionContext::new_with_state(
        register_with_training(builder, &options.training).build(),
    ))
}

/// A runtime whose memory pool holds `memory_limit` bytes (default:
/// [`default_memory_limit`]); a query that needs more fails with an error.
pub fn runtime_env(memory_limit: Option<usize>) -> Result<Arc<RuntimeEnv>> {
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit.or_else(default_memory_limit) {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    runtime.build_arc()
}

/// Adds everything Rookery has to a session being built: the `IMAGES` and
/// `TSV` table factories, the `images` file format (COPY's sink),
/// `images()` and `image_tiles()`, every image function (reserving in the
/// builder's memory pool), `rookery.*` options, the rule that keeps
/// batches of images small, the one that makes COPYs all or nothing, and
/// the query planner of resumable COPYs (`crate::resume`). Call it after `with_config` and
/// `with_runtime_env`, which replace what it added to them.
///
/// ```ignore
/// let state = rookery::register(SessionStateBuilder::new().with_default_features()).build();
/// let ctx = SessionContext::new_with_state(state);
/// ```
pub fn register(builder: SessionStateBuilder) -> SessionStateBuilder {
    register_with_training(builder, &TrainingControl::default())
}

/// [`register`], with `cnn_train` reporting each epoch to `training` and
/// stopping when it is cancelled (the REPL's Ctrl-C).
pub fn register_with_training(mut builder: SessionStateBuilder, training: &TrainingControl) -> SessionStateBuilder {
    // Object store locations (s3://...) resolve from the environment on
    // first use; stores the application registered stay first.
    let runtime = {
        let slot = builder.runtime_env();
        let current = slot.get_or_insert_with(|| Arc::new(RuntimeEnv::default()));
        let stores = Arc::new(ObjectStoresFromEnv::new(Arc::clone(&current.object_store_registry)));
        // Rebuilding keeps the pool, disk manager and caches; it cannot
        // fail for a runtime that was built, but if it did the session
        // would keep its registry as it was.
        if let Ok(wrapped) = RuntimeEnvBuilder::from_runtime_env(current)
            .with_object_store_registry(stores)
            .build()
        {
            *current = Arc::new(wrapped);
        }
        Arc::clone(current)
    };
    let config = builder.config().get_or_insert_with(SessionConfig::new);
    if config.options().extensions.get::<RookeryConfig>().is_none() {
        config.options_mut().extensions.insert(RookeryConfig::default());
    }
    if config.options().extensions.get::<ImageConfig>().is_none() {
        config.options_mut().extensions.insert(ImageConfig::default());
    }
    let factories = builder.table_factories().get_or_insert_with(HashMap::new);
    factories.insert("IMAGES".to_string(), Arc::new(ImageTableFactory));
    factories.insert("TSV".to_string(), Arc::new(TsvTableFactory::default()));
    // Every format's tables take the store options of their location.
    for factory in factories.values_mut() {
        *factory = Arc::new(WithStoreOptions::new(Arc::clone(factory)));
    }
    builder
        .file_formats()
        .get_or_insert_with(Vec::new)
        .push(Arc::new(ImageFileFormatFactory));
    let table_functions = builder.table_functions().get_or_insert_with(HashMap::new);
    let udtfs: [(&str, Arc<dyn TableFunctionImpl>); 3] = [
        ("images", Arc::new(ImagesTableFunction)),
        ("image_tiles", Arc::new(ImageTilesTableFunction)),
        ("video_frames", Arc::new(crate::video::VideoFramesTableFunction)),
    ];
    for (name, udtf) in udtfs {
        table_functions.insert(name.to_string(), Arc::new(TableFunction::new(name.to_string(), udtf)));
    }
    let memory = ImageMemory::new(Arc::clone(&runtime.memory_pool));
    let models = Models::new(Arc::clone(&runtime.object_store_registry), memory.clone());
    let scalars = builder.scalar_functions().get_or_insert_with(Vec::new);
    scalars.extend(rookery_udfs::scalar_functions(&memory, &models));
    scalars.push(Arc::new(ReadBlob::udf(runtime)));
    builder
        .aggregate_functions()
        .get_or_insert_with(Vec::new)
        .extend(rookery_udfs::aggregate_functions(training, &models));
    // COPY ... OPTIONS ('resume' 'key') runs resumably; every other plan
    // goes to the planner the builder had (DataFusion's by default).
    let inner = builder
        .query_planner()
        .take()
        .unwrap_or_else(|| Arc::new(LocalQueryPlanner));
    builder
        .with_query_planner(Arc::new(ResumingQueryPlanner::new(inner)))
        .with_physical_optimizer_rule(Arc::new(CapBatchesOverImages))
        .with_physical_optimizer_rule(Arc::new(AtomicCopy))
}

/// The memory pool's size when none is given: 80 % of the memory this
/// process may use (the machine's, or its cgroup's limit when lower).
pub fn default_memory_limit() -> Option<usize> {
    let total = total_memory()?;
    Some((total as f64 * 0.8) as usize)
}

fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let machine = kib * 1024;
    // cgroup v2 ("max" when unlimited) or v1.
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|path| std::fs::read_to_string(path).ok())
    .find_map(|text| text.trim().parse::<u64>().ok());
    Some(cgroup.map_or(machine, |limit| limit.min(machine)))
}

/// Parses sizes such as `4G`, `512M`, `1.5GB`, `100k` or `1048576` (bytes).
pub fn parse_byte_size(text: &str) -> Result<usize> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, scale) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n * scale as f64) as usize),
        _ => plan_err!("'{trimmed}' is not a size (examples: 4G, 512M, 1048576)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_byte_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_byte_size("100").unwrap(), 100);
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("-1G").is_err());
    }

    #[test]
    fn default_pool_is_bounded() {
        let limit = default_memory_limit().expect("this machine has /proc/meminfo");
        assert!(limit > 0);
        let ctx = new_session(&EngineOptions::default()).unwrap();
        assert!(matches!(
            ctx.runtime_env().memory_pool.memory_limit(),
            datafusion::execution::memory_pool::MemoryLimit::Finite(n) if n == limit
        ));
    }
}
