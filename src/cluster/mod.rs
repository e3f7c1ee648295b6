//! Rookery on an Apache Ballista 55 cluster: the client plans a query and
//! sends its logical plan to a scheduler, which plans stages and hands
//! tasks to executors. Every process runs Rookery's session (its table
//! factories, functions and settings) and Rookery's codecs
//! ([`codec`]), so image tables, scans, tiles and image sinks cross the
//! wire like DataFusion's own nodes.
//!
//! - [`connect`]: a client session (`rookery --cluster df://HOST:PORT`);
//! - [`run_scheduler`]: `rookery scheduler --bind HOST:PORT`;
//! - [`run_executor`]: `rookery executor --scheduler HOST:PORT`.

pub mod codec;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

pub use codec::{RookeryLogicalCodec, RookeryPhysicalCodec};

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use crate::images::{ImageConfig, ImageScanExec};
use crate::session::{new_session, EngineOptions};
use rookery_image::RookeryConfig;

/// `config` with Rookery's settings (`rookery.*`, `images.*`), Ballista's,
/// and Rookery's codecs, as every process of a cluster needs it.
pub fn cluster_config(config: SessionConfig) -> SessionConfig {
    let mut config = config.upgrade_for_ballista();
    if config.options().extensions.get::<RookeryConfig>().is_none() {
        config.options_mut().extensions.insert(RookeryConfig::default());
    }
    if config.options().extensions.get::<ImageConfig>().is_none() {
        config.options_mut().extensions.insert(ImageConfig::default());
    }
    // Ballista's adaptive planner re-plans stages with its own fixed list
    // of physical optimizer rules; the static planner runs the session's,
    // which Rookery's plans need (image scans numbered for splitting,
    // all-or-nothing COPY, small batches above image scans).
    config
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_logical_extension_codec(Arc::new(RookeryLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(RookeryPhysicalCodec::default()))
}

/// Rookery's session state over `config` (a client's, as the scheduler
/// receives it), ready for a cluster.
fn rookery_state(config: SessionConfig, options: &EngineOptions) -> Result<SessionState> {
    Ok(for_cluster(new_session(options)?.state(), config))
}

/// `state` with [`cluster_config`] over `config` and image scans numbered
/// for Ballista to split.
fn for_cluster(state: SessionState, config: SessionConfig) -> SessionState {
    SessionStateBuilder::new_from_existing(state)
        .with_config(cluster_config(config))
        .with_physical_optimizer_rule(Arc::new(NumberImageScanPartitions))
        .build()
}

/// Gives every image scan a partition-numbering child (see
/// [`ImageScanExec::with_partition_ids`]), so a task of a stage reads only
/// its own partitions.
#[derive(Debug)]
struct NumberImageScanPartitions;

impl PhysicalOptimizerRule for NumberImageScanPartitions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match node.downcast_ref::<ImageScanExec>() {
            Some(scan) if !scan.has_partition_ids() => Ok(Transformed::yes(
                Arc::new(scan.with_partition_ids()?) as Arc<dyn ExecutionPlan>
            )),
            _ => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "number_image_scan_partitions"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A session whose queries run on the Ballista scheduler at `url`
/// (`df://HOST:PORT`), with every Rookery function and table.
pub async fn connect(url: &str, options: &EngineOptions) -> Result<SessionContext> {
    let local = new_session(options)?.state();
    let state = for_cluster(local.clone(), local.config().clone());
    let ctx = SessionContext::remote_with_state(url, state).await?;
    // Resumable COPYs run their part queries on the cluster and commit
    // them here: Ballista's planner goes inside Rookery's.
    let remote = ctx.state();
    let ballista = Arc::clone(remote.query_planner());
    let ctx = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(remote)
            .with_query_planner(Arc::new(crate::resume::ResumingQueryPlanner::new(ballista)))
            .build(),
    );
    // Ballista's upgrade replaces the function lists with its built-ins:
    // Rookery's (and DataFusion's) go back in.
    for function in local.scalar_functions().values() {
        ctx.register_udf(function.as_ref().clone());
    }
    for function in local.aggregate_functions().values() {
        ctx.register_udaf(function.as_ref().clone());
    }
    for function in local.window_functions().values() {
        ctx.register_udwf(function.as_ref().clone());
    }
    Ok(ctx)
}

fn ballista_error(e: ballista_core::error::BallistaError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// How long the scheduler waits for a silent executor before it gives the
/// executor's tasks to others: Ballista's default, three of its executors'
/// default heartbeats (60 s).
pub const DEFAULT_EXECUTOR_TIMEOUT_SECONDS: u64 = 180;

/// Runs a Ballista scheduler on `bind` whose sessions are Rookery's; an
/// executor silent for `executor_timeout_seconds` is dead and its tasks
/// run elsewhere.
pub async fn run_scheduler(bind: SocketAddr, executor_timeout_seconds: u64, options: EngineOptions) -> Result<()> {
    let producer_options = options.clone();
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        override_logical_codec: Some(Arc::new(RookeryLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(RookeryPhysicalCodec::default())),
        executor_timeout_seconds,
        no_executors_grace_period_seconds: executor_timeout_seconds,
        expire_dead_executor_interval_seconds: executor_timeout_seconds.clamp(1, 15),
        ..Default::default()
    }
    .with_override_config_producer(Arc::new(|| cluster_config(SessionConfig::new())))
    .with_override_session_builder(Arc::new(move |config| rookery_state(config, &producer_options)));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista_error)?;
    start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(ballista_error)
}

/// How an executor joins a cluster.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler: SocketAddr,
    /// Where the executor serves its Flight data (shuffle output).
    pub bind: SocketAddr,
    /// Its gRPC port (tasks pushed by the scheduler).
    pub grpc_port: u16,
    /// Tasks at once; default: one per core.
    pub concurrency: Option<usize>,
    /// Seconds between heartbeats to the scheduler (Ballista's default: 60);
    /// the scheduler's executor timeout must be longer.
    pub heartbeat_interval_seconds: Option<u64>,
    pub engine: EngineOptions,
}

/// Runs a Ballista executor with Rookery's functions and codecs until it
/// stops.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let state = rookery_state(SessionConfig::new(), &options.engine)?;
    let runtime = Arc::clone(state.runtime_env());
    let config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: Some(options.bind.ip().to_string()),
        port: options.bind.port(),
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        vcores: options
            .concurrency
            .unwrap_or_else(crate::session::available_cores)
            .max(1),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_config_producer: Some(Arc::new(|| cluster_config(SessionConfig::new()))),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| -> Result<Arc<RuntimeEnv>> {
            Ok(Arc::clone(&runtime))
        })),
        override_logical_codec: Some(Arc::new(RookeryLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(RookeryPhysicalCodec::default())),
        ..Default::default()
    };
    let config = match options.heartbeat_interval_seconds {
        Some(seconds) => ExecutorProcessConfig {
            executor_heartbeat_interval_seconds: seconds.max(1),
            ..config
        },
        None => config,
    };
    start_executor_process(Arc::new(config)).await.map_err(ballista_error)
}
