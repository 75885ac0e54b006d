//! The client of a Ballista cluster: a session whose queries the cluster's scheduler plans and
//! its executors run. Tables come back through shared storage (see `engine::execute`); only
//! small results (row counts, the rows `explain` shows) stream back over Arrow Flight.

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

/// What went wrong, when `err` is the cluster failing to answer rather than a query failing:
/// a gRPC call that got no answer, or a connection that broke or was refused. Ballista hands
/// these over as text (a gRPC status or a transport error, printed), so they are recognized by
/// that text; only the status and the connection's failure are kept, never a message that may
/// quote the query.
pub(super) fn lost(err: &datafusion::error::DataFusionError) -> Option<String> {
    const GONE: [&str; 6] = [
        "BrokenPipe",
        "ConnectionRefused",
        "ConnectionReset",
        "ConnectionAborted",
        "UnexpectedEof",
        "TimedOut",
    ];
    const NO_ANSWER: [&str; 2] = ["The service is currently unavailable", "Timeout expired"];
    let text = format!("{err} {err:?}");
    let status = match text.split_once("code: '") {
        Some((_, rest)) => rest.split('\'').next(),
        None => text.contains("transport::Error").then_some("no connection"),
    }?;
    let kind = GONE
        .iter()
        .find(|kind| text.contains(&format!("kind: {kind}")));
    match kind {
        Some(kind) => Some(format!("{status}: {kind}")),
        None => NO_ANSWER.contains(&status).then(|| status.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::error::DataFusionError;

    use super::lost;

    #[test]
    fn a_cluster_gone_is_told_from_a_failed_query() {
        // As Ballista reported them: an executor killed while its results were read, and a
        // scheduler that refused the connection.
        let broken = DataFusionError::Execution(
            "code: 'Unknown error', message: \"h2 protocol error: error reading a body from connection\", source: hyper::Error(Body, Error { kind: Io(Custom { kind: BrokenPipe, error: \"stream closed because of a broken pipe\" }) })".into(),
        );
        assert_eq!(lost(&broken).as_deref(), Some("Unknown error: BrokenPipe"));
        let refused = DataFusionError::External(
            "tonic::transport::Error(Transport, ConnectError(ConnectError(\"tcp connect error\", 127.0.0.1:40675, Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" })))".into(),
        );
        assert_eq!(
            lost(&refused).as_deref(),
            Some("no connection: ConnectionRefused")
        );
        let fetched = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::ExternalError(
                Box::new(broken),
            )),
            None,
        );
        assert_eq!(lost(&fetched).as_deref(), Some("Unknown error: BrokenPipe"));
        let failed = DataFusionError::Execution("Cannot cast string 'code: 'x'' to Int64".into());
        assert_eq!(lost(&failed), None);
    }
}
