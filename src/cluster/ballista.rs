//! The scheduler and executor processes, from Ballista's building blocks.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::SessionBuilder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::common::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

use super::sink::{PartitionedWrites, SegflowCodec};
use super::{ClusterError, ExecutorOptions, SchedulerOptions};
use crate::engine::RowNumbers;
use crate::functions::{self, IdentifierStats};
use crate::objects;

/// Runs a scheduler until the process is stopped.
pub async fn scheduler(options: SchedulerOptions) -> Result<(), ClusterError> {
    let failed = |message: String| ClusterError::Ballista {
        what: "segflow scheduler",
        message,
    };
    let address = socket_address(&options.bind_host, options.port)
        .await
        .map_err(failed)?;
    // The scheduler plans every query: it lists a table's files and reads their footers, and
    // resolves segflow's functions by name.
    let sessions: SessionBuilder = Arc::new(|config| Ok(session_state(config, runtime(None)?)));
    let executor_timeout = options.executor_timeout.as_secs().max(1);
    let mut config = SchedulerConfig::default()
        .with_hostname(options.external_host)
        .with_port(options.port)
        .with_override_session_builder(sessions)
        // A finished query's results stay on the executors until the client has read them;
        // segflow writes a table as it reads it, which for a large one takes minutes.
        .with_finished_job_data_clean_up_interval_seconds(3600)
        .with_no_executors_grace_period_seconds(executor_timeout);
    config.override_physical_codec = Some(Arc::new(SegflowCodec::default()));
    config.bind_host = options.bind_host;
    config.executor_timeout_seconds = executor_timeout;
    config.expire_dead_executor_interval_seconds = (executor_timeout / 4).max(1);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| failed(e.to_string()))?;
    start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| failed(e.to_string()))
}

/// Runs an executor until the process is stopped (or its scheduler tells it to stop).
pub async fn executor(options: ExecutorOptions) -> Result<(), ClusterError> {
    let failed = |message: String| ClusterError::Ballista {
        what: "segflow executor",
        message,
    };
    let (scheduler_host, scheduler_port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            failed(format!(
                "--scheduler {}: expected HOST:PORT",
                options.scheduler
            ))
        })?;
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| failed(format!("{}: {e}", options.work_dir.display())))?;
    let work_dir = options.work_dir.to_string_lossy().to_string();
    let registry = BallistaFunctionRegistry::from(&session_state(
        SessionConfig::new(),
        runtime(None).map_err(|e| failed(e.to_string()))?,
    ));
    let spill_dir = options.work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host,
        external_host: options.external_host,
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        // Started beside its scheduler, an executor may come up first: it keeps trying.
        scheduler_connect_timeout_seconds: 30,
        vcores: options.concurrent_tasks,
        work_dir: Some(work_dir),
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        // Unset: Ballista sizes the pool from the host's (or container's) memory.
        memory_pool_size: options.memory_limit.map(|b| b as u64),
        print_thread_info: false,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(Arc::new(move |_| runtime(Some(&spill_dir)))),
        override_execution_engine: Some(Arc::new(SegflowEngine::default())),
        override_physical_codec: Some(Arc::new(SegflowCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| failed(e.to_string()))
}

/// `host:port` as a socket address, the host looked up if it is a name.
async fn socket_address(host: &str, port: u16) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))
}

/// The session a query is planned in on the scheduler, and whose functions executors run: Ballista's
/// defaults and segflow's functions. Their counts of invalid identifiers stay in this process.
fn session_state(mut config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    // The scheduler re-plans a stage's joins once its inputs are known and may swap their
    // sides, which a join that has already built a dynamic filter refuses: the query then
    // waits forever. Found running the sample pipeline's checks on a cluster.
    config
        .options_mut()
        .optimizer
        .enable_join_dynamic_filter_pushdown = false;
    let mut scalars = ballista_scalar_functions();
    scalars.extend(
        functions::udfs(&IdentifierStats::default())
            .into_iter()
            .map(Arc::new),
    );
    SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(scalars)
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .with_physical_optimizer_rules(crate::engine::scheduler_physical_optimizer_rules())
        .with_physical_optimizer_rule(Arc::new(PartitionedWrites))
        .build()
}

/// Object stores from the environment; spills under `spill_dir` when given.
fn runtime(spill_dir: Option<&Path>) -> Result<Arc<RuntimeEnv>, DataFusionError> {
    let mut runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(EnvStores::default()))
        .with_cache_manager(crate::engine::fresh_listings());
    if let Some(dir) = spill_dir {
        runtime = runtime.with_temp_file_path(dir);
    }
    runtime.build_arc()
}

/// Object stores opened on first use, each from the standard environment of its cloud, as a
/// run opens the stores its pipeline names (without the pipeline's `stores:` options, which
/// the cluster does not see).
#[derive(Debug, Default)]
struct EnvStores {
    open: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.open.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        self.open.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.open.get_store(url) {
            return Ok(store);
        }
        let store = objects::open_from_env(url, objects::DEFAULT_TIMEOUT)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.open.register_store(url, store.clone());
        Ok(store)
    }
}

/// Ballista's execution of a query stage, after numbering rows per key in one pass where a
/// windowing operator only numbers rows (as a run in process does): the scheduler plans
/// stages with Ballista's own rules, so segflow's are applied where the stage runs.
#[derive(Default)]
struct SegflowEngine {
    default: DefaultExecutionEngine,
}

impl ExecutionEngine for SegflowEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> datafusion::common::Result<Arc<dyn QueryStageExecutor>> {
        let plan = RowNumbers.optimize(plan, config.options())?;
        self.default.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )
    }
}
