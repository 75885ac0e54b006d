use std::process::ExitCode;

use clap::Parser;
use segflow::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(cli: &Cli) {
    // On a terminal the progress display shows the steps; log lines would tear it.
    let default = if cli.quiet || cli.shows_progress() {
        "warn"
    } else if cli.is_cluster_process() {
        "info"
    } else {
        "info,ballista=warn,ballista_core=warn"
    };
    let filter = EnvFilter::try_from_env("SEGFLOW_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Planning recurses down a query's plan, and a cluster's scheduler decodes and plans
        // the deepest ones segflow sends (explain's every condition of every segment): 2 MiB,
        // tokio's default, overflowed. Only what a thread touches is ever allocated.
        .thread_stack_size(64 << 20)
        .build()
        .expect("tokio runtime starts");
    let json = cli.log_format == LogFormat::Json;
    match runtime.block_on(segflow::cli::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = segflow::chain(&err);
            if json {
                // One more JSON line, so that a collector parsing every line reads the error.
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let line = serde_json::json!({
                    "timestamp": now,
                    "level": "ERROR",
                    "message": message,
                    "exit_code": err.exit_code(),
                });
                eprintln!("{line}");
            } else {
                eprintln!("segflow: error: {message}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
