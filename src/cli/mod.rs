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
pub mod proxy;
pub mod sessions;

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

/// Installs the tracing subscriber: logs to stderr, filtered by `RUST_LOG`
/// (default `info`), as JSON when `json` is set.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling twice) is harmless: ignore the error.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
