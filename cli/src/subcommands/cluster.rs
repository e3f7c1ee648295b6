//! `rookery scheduler` and `rookery executor`: a Ballista cluster whose
//! sessions are Rookery's.

use datafusion::common::{plan_err, Result};

use super::{Engine, GlobalArgs};

/// Run a Ballista scheduler whose sessions are Rookery's (its tables,
/// functions and codecs); clients connect with --cluster df://HOST:PORT.
#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,
    /// Bind an address other hosts can reach. Ballista's plans are not
    /// authenticated: anyone who reaches the port runs plans with this
    /// process's rights, so use it only on a private network.
    #[arg(long)]
    pub allow_remote: bool,
    /// Seconds without a heartbeat after which an executor is dead and its
    /// tasks run on the others; longer than the executors'
    /// --heartbeat-interval (default 60 s).
    #[arg(long, value_name = "SECONDS", default_value_t = rookery::cluster::DEFAULT_EXECUTOR_TIMEOUT_SECONDS)]
    pub executor_timeout: u64,
}

impl SchedulerArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        check_cluster_bind("scheduler", &self.bind, self.allow_remote)?;
        let engine = Engine::start(global)?;
        engine.runtime.block_on(rookery::cluster::run_scheduler(
            self.bind,
            self.executor_timeout.max(1),
            engine.options,
        ))
    }
}

/// Run a Ballista executor with Rookery's functions and codecs, joining
/// the scheduler at HOST:PORT.
#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: std::net::SocketAddr,
    /// Where it serves shuffle data (Arrow Flight).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub bind: std::net::SocketAddr,
    /// Its gRPC port.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks at once (default: one per core).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Bind an address other hosts can reach (see the scheduler's).
    #[arg(long)]
    pub allow_remote: bool,
    /// Seconds between heartbeats to the scheduler [default: 60]; keep it
    /// below the scheduler's --executor-timeout.
    #[arg(long, value_name = "SECONDS")]
    pub heartbeat_interval: Option<u64>,
}

impl ExecutorArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        check_cluster_bind("executor", &self.bind, self.allow_remote)?;
        let engine = Engine::start(global)?;
        let executor = rookery::cluster::ExecutorOptions {
            scheduler: self.scheduler,
            bind: self.bind,
            grpc_port: self.grpc_port,
            concurrency: self.concurrency,
            heartbeat_interval_seconds: self.heartbeat_interval,
            engine: engine.options,
        };
        engine.runtime.block_on(rookery::cluster::run_executor(executor))
    }
}

/// A scheduler or executor listens on loopback unless told otherwise:
/// Ballista runs any plan it is sent, unauthenticated.
fn check_cluster_bind(what: &str, bind: &std::net::SocketAddr, allow_remote: bool) -> Result<()> {
    if bind.ip().is_loopback() {
        return Ok(());
    }
    if !allow_remote {
        return plan_err!(
            "the {what} would listen on {bind}, which other hosts can reach, and Ballista does not authenticate \
             the plans it is sent; bind 127.0.0.1, or give --allow-remote on a private network"
        );
    }
    eprintln!(
        "rookery {what}: listening on {bind} with --allow-remote: Ballista does not authenticate plans, so anyone \
         who reaches this port runs queries with this process's rights"
    );
    Ok(())
}
