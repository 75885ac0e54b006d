//! A Ballista cluster made of segflow: `segflow scheduler` and `segflow executor` are Apache
//! DataFusion Ballista's scheduler and executor, started with what segflow's queries need in
//! every process that plans or runs them — its SQL functions (`sha256_email`,
//! `normalize_phone`, `segflow_bucket`, …), rows numbered per key in one pass, and object stores
//! opened from the process's environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as for a run) — so
//! that `segflow run --engine ballista://HOST:PORT` publishes the rows a run in process does.
//!
//! The client side (a run's session on a cluster) is in `engine`; a cluster only runs what a
//! client plans, and never publishes anything itself.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("this segflow was built without the `ballista` feature")]
    NotBuilt,
    #[error("{what}: {message}")]
    Ballista { what: &'static str, message: String },
}

/// How `segflow scheduler` listens.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub struct SchedulerOptions {
    /// The address to listen on (`0.0.0.0` for every interface).
    pub bind_host: String,
    pub port: u16,
    /// The host name clients and executors reach this scheduler by.
    pub external_host: String,
    /// An executor silent for this long is taken as gone, and its tasks run elsewhere.
    pub executor_timeout: Duration,
}

/// How `segflow executor` joins a cluster.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub struct ExecutorOptions {
    /// The scheduler, `host:port`.
    pub scheduler: String,
    pub bind_host: String,
    /// The host name the scheduler, clients and other executors reach this executor by
    /// (default: the address the scheduler sees it connect from).
    pub external_host: Option<String>,
    /// The Arrow Flight port results and shuffles are fetched from.
    pub flight_port: u16,
    /// The port the scheduler hands tasks to.
    pub grpc_port: u16,
    /// Where shuffle files and spills go; one folder per executor.
    pub work_dir: PathBuf,
    /// Tasks run at once (default: the machine's cores).
    pub concurrent_tasks: usize,
    /// Memory the executor's tasks may hold together before they spill.
    pub memory_limit: Option<usize>,
    /// How often the executor tells the scheduler it is alive.
    pub heartbeat: Duration,
}

#[cfg(feature = "ballista")]
mod ballista;
#[cfg(feature = "ballista")]
mod sink;

#[cfg(feature = "ballista")]
pub use ballista::{executor, scheduler};

#[cfg(not(feature = "ballista"))]
pub async fn scheduler(_options: SchedulerOptions) -> Result<(), ClusterError> {
    Err(ClusterError::NotBuilt)
}

#[cfg(not(feature = "ballista"))]
pub async fn executor(_options: ExecutorOptions) -> Result<(), ClusterError> {
    Err(ClusterError::NotBuilt)
}
