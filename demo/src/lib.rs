//! `airlock-demo`: the demo MCP upstream. A real MCP server over Streamable HTTP
//! (written directly on hyper) in front of an in-memory SQLite warehouse of fake
//! customers, orders and files. Its side effects are real inside its own database, so a
//! `DROP TABLE` that Airlock denied visibly did not happen, and one it allowed did.
//!
//! Tools: `query` (read-only SQL), `execute` (writes and DDL), `http_request` (simulated
//! egress, recorded in `egress_log`) and `read_file` (a virtual disk holding fake
//! secrets). Protocol revisions 2025-03-26, 2025-06-18 and 2025-11-25 with sessions, and
//! the stateless 2026-07-28 with `server/discover`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), airlock_demo::DemoError> {
//! use airlock_demo::{DemoOptions, DemoServer};
//! let server = DemoServer::bind("127.0.0.1:0".parse().unwrap(), DemoOptions::default()).await?;
//! println!("MCP endpoint: {}", server.url());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod database;
mod rpc;
mod seed;
mod session;
mod stream;
mod tools;
mod transport;

pub use tools::egress::{target_of, Target};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use transport::State;

/// How long `run` waits for in-flight requests after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The seed used when none is given: the data every demo and doc shows.
pub const DEFAULT_SEED: u64 = 42;

/// How the demo server is set up.
#[derive(Clone)]
pub struct DemoOptions {
    /// If set, requests without `Authorization: Bearer <it>` get 401.
    pub required_bearer: Option<String>,
    /// Seed of the deterministic fake data (same seed, same rows).
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            required_bearer: None,
            seed: DEFAULT_SEED,
        }
    }
}

impl std::fmt::Debug for DemoOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("DemoOptions")
            .field(
                "required_bearer",
                &self.required_bearer.as_ref().map(|_| "<redacted>"),
            )
            .field("seed", &self.seed)
            .finish()
    }
}

/// Why the demo server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}; pick another address or port (127.0.0.1:0 picks a free one)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The in-memory database could not be built.
    #[error(
        "cannot build the demo database: {0}; this is a bug in airlock-demo, please report it"
    )]
    Database(#[from] rusqlite::Error),
}

/// A bound, not yet running, demo MCP server.
pub struct DemoServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DemoServer {
    /// Builds the database from `options.seed` and binds `addr` (port 0 picks a free one).
    pub async fn bind(addr: SocketAddr, options: DemoOptions) -> Result<DemoServer, DemoError> {
        let bind_error = |source| DemoError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let db = database::Database::open(options.seed)?;
        let state = Arc::new(State {
            db: Arc::new(db),
            sessions: session::Sessions::default(),
            required_bearer: options.required_bearer,
        });
        Ok(DemoServer {
            listener,
            local_addr,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The MCP endpoint, e.g. `http://127.0.0.1:9100/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.local_addr)
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (up to 5 s).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DemoError> {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tracing::info!(url = %self.url(), "demo MCP server listening");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        serve_connection(&builder, &graceful, stream, Arc::clone(&self.state));
                        tracing::debug!(%peer, "connection accepted");
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("demo MCP server stopped"),
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {
                tracing::warn!("demo MCP server stopped with requests still in flight");
            }
        }
        Ok(())
    }
}

fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    state: Arc<State>,
) {
    // Answers are written in pieces (the head, then each SSE event as it is produced):
    // with Nagle's algorithm on, a piece that follows an unacknowledged one waits for
    // the peer's delayed ACK, up to 40 ms on Linux. A proxy that reads the head and
    // then waits for the body never sends the data that would carry the ACK sooner.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(transport::route(req, state).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection.into_owned());
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}
