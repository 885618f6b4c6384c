//! One module per subcommand; each exposes its clap arguments and a `run`.

pub mod approvals;
pub mod audit;
pub mod bundle;
pub mod client;
pub mod control_plane;
pub mod demo;
pub mod dev;
mod dev_control;
pub mod nodes;
pub mod policy;
mod proofs;
pub mod proxy;
pub mod sessions;
pub mod tools;

use std::future::Future;
use std::process::ExitCode;

/// Runs an async subcommand on a multi-threaded tokio runtime.
pub fn runtime<F>(fut: F) -> anyhow::Result<ExitCode>
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(fut)
}

/// Where log lines go.
pub enum LogOutput {
    /// Standard error, as JSON lines when `json` is set.
    Stderr {
        /// JSON lines instead of text.
        json: bool,
    },
    /// A file, as text without colours (`airlock dev`).
    File(std::fs::File),
}

/// Installs the tracing subscriber without span export: logs to stderr, filtered
/// by `RUST_LOG` (default `info`), as JSON when `json` is set.
pub fn init_logging(json: bool) {
    let disabled = airlock_telemetry::TelemetryConfig::disabled("airlock");
    // Without an endpoint nothing can fail.
    let _ = init_tracing(LogOutput::Stderr { json }, &disabled);
}

/// Installs the tracing subscriber: the log lines (filtered by `RUST_LOG`, default
/// `info`) and, when `telemetry` has an endpoint, the OTLP span export (its own
/// filter: the planes' spans at `debug`). Call inside the runtime; flush the
/// returned handle with `Telemetry::shutdown` before exiting.
pub fn init_tracing(
    output: LogOutput,
    telemetry: &airlock_telemetry::TelemetryConfig,
) -> anyhow::Result<airlock_telemetry::Telemetry> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};
    type Boxed = Box<dyn Layer<Registry> + Send + Sync>;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log: Boxed = match output {
        LogOutput::Stderr { json: true } => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogOutput::Stderr { json: false } => fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogOutput::File(file) => fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![log];
    let mut handle = airlock_telemetry::Telemetry::default();
    if let Some((otlp, running)) = airlock_telemetry::otlp_layer::<Registry>(telemetry)? {
        layers.push(otlp);
        handle = running;
    }
    // A second init (tests calling twice) is harmless: ignore the error.
    if tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok()
    {
        if let Some(endpoint) = &telemetry.otlp_endpoint {
            tracing::info!(%endpoint, service = %telemetry.service_name, "exporting spans over OTLP");
        }
    }
    Ok(handle)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
