use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use futures::FutureExt;
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
    // Colours for a person at a terminal; a scheduler's log file gets plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // Every span, outermost first: `pipeline` (its name), `run` (its run date), then
            // the step's (`model`, …).
            .with_span_list(true)
            .init(),
    }
}

/// An error as one JSON line, for a collector that parses every line of `--log-format json`.
fn json_error(message: &str, exit_code: u8) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let line = serde_json::json!({
        "timestamp": now,
        "level": "ERROR",
        "message": message,
        "exit_code": exit_code,
    });
    segflow::cli::note(&line.to_string());
}

/// The signal a scheduler or a person stops segflow with, and the exit code it means
/// (128 + its number, as shells report it).
async fn stop_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => ("SIGTERM", 143),
        _ = interrupt.recv() => ("SIGINT", 130),
    }
}

/// Keeps what a panic said for the one-line error `main` prints when it reaches it.
fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = (info.payload().downcast_ref::<&str>().map(|m| m.to_string()))
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_default();
    let _ = PANIC.set(segflow::without_values(&message));
}

/// What the first panic said, without row values.
static PANIC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` print as clap prints them; a wrong argument asked for
            // JSON logs is one JSON line.
            let json = std::env::args()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "--log-format" && w[1] == "json")
                || std::env::args().any(|a| a == "--log-format=json");
            if json && err.use_stderr() {
                json_error(err.to_string().lines().next().unwrap_or_default(), 2);
                return ExitCode::from(2);
            }
            err.exit();
        }
    };
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
    // A signal drops the command, which stops its queries, removes its staging and gives up
    // its lock, as --timeout does.
    // A panic (a bug, in segflow or in the query engine it runs) unwinds to here, dropping the
    // command as a signal does, and is said in one line instead of a backtrace.
    // Cluster processes keep Rust's own report: they serve many runs and stop with none.
    if !cli.is_cluster_process() {
        std::panic::set_hook(Box::new(report_panic));
    }
    let outcome = runtime.block_on(async {
        let command = std::panic::AssertUnwindSafe(segflow::cli::execute(cli)).catch_unwind();
        tokio::select! {
            result = command => Ok(result),
            stopped = stop_signal() => Err(stopped),
        }
    });
    let result = match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => {
            let what = PANIC.get().map(String::as_str).unwrap_or_default();
            let message = format!(
                "segflow stopped on an internal error ({what}); nothing more was published, and what was published before stays; please report it with the command that met it"
            );
            match json {
                true => json_error(&message, 1),
                false => segflow::cli::note(&format!("segflow: error: {message}")),
            }
            return ExitCode::from(1);
        }
        Err((name, code)) => {
            let message = format!(
                "stopped by {name}: nothing more was published; what was published before stays"
            );
            if json {
                json_error(&message, code);
            } else {
                segflow::cli::note(&format!("segflow: {message}"));
            }
            return ExitCode::from(code);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = segflow::chain(&err);
            if json {
                json_error(&message, err.exit_code());
            } else {
                segflow::cli::note(&format!("segflow: error: {message}"));
            }
            ExitCode::from(err.exit_code())
        }
    }
}
