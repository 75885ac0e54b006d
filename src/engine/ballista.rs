//! The client of a Ballista cluster: a session whose queries the cluster's scheduler plans and
//! its executors run, streaming results back over Arrow Flight.

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::EngineError;

/// A session that runs its queries on the cluster whose scheduler is `scheduler`
/// (`host:port`). Fails at once when the scheduler does not answer within `timeout`: the
/// client itself would only find out at the first query.
#[cfg(feature = "ballista")]
pub(super) async fn client(
    scheduler: &str,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    timeout: Duration,
) -> Result<SessionContext, EngineError> {
    use ballista::prelude::{SessionConfigExt, SessionContextExt};
    use datafusion::execution::session_state::SessionStateBuilder;

    let failed = |problem: String| EngineError::Cluster {
        scheduler: scheduler.to_string(),
        problem,
    };
    reachable(scheduler, timeout).await.map_err(failed)?;
    let mut config = config.with_ballista_job_name("segflow");
    let seconds = timeout.as_secs().max(1).to_string();
    for key in [
        "ballista.client.grpc_connect_timeout_seconds",
        "ballista.client.grpc_timeout_seconds",
    ] {
        config
            .options_mut()
            .set(key, &seconds)
            .map_err(|e| failed(e.to_string()))?;
    }
    // Ballista's adaptive planner turns a stage that produced no rows into an empty input and
    // then plans a new stage above it, after every stage, without end (the sample pipeline's
    // checks find no duplicates); its static planner runs every query of the pipeline.
    config
        .options_mut()
        .set("ballista.planner.adaptive.enabled", "false")
        .map_err(|e| failed(e.to_string()))?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    SessionContext::remote_with_state(&format!("df://{scheduler}"), state)
        .await
        .map_err(|e| failed(e.to_string()))
}

/// Whether a TCP connection to the scheduler opens within `timeout`.
#[cfg(feature = "ballista")]
async fn reachable(scheduler: &str, timeout: Duration) -> Result<(), String> {
    let advice = "start one with `segflow scheduler` (and executors with `segflow executor`), or check --engine / SEGFLOW_ENGINE";
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(scheduler)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the scheduler does not answer ({e}); {advice}")),
        Err(_) => Err(format!(
            "the scheduler did not answer within {}s; {advice}",
            timeout.as_secs()
        )),
    }
}

#[cfg(not(feature = "ballista"))]
pub(super) async fn client(
    scheduler: &str,
    _config: SessionConfig,
    _runtime: Arc<RuntimeEnv>,
    _timeout: Duration,
) -> Result<SessionContext, EngineError> {
    Err(EngineError::Cluster {
        scheduler: scheduler.to_string(),
        problem: "this segflow was built without the `ballista` feature".into(),
    })
}
