//! One MCP server process spoken to over stdio: newline-delimited JSON-RPC on its
//! stdin and stdout, its stderr kept as a bounded tail for error messages.
//!
//! ```text
//! spawn (own process group, env cleared) ─▶ writer task ◀─ send()
//!                                         ─▶ stdout reader ─▶ route by id ─▶ the waiting POST
//!                                                         └─▶ server request / notification
//!                                                              ─▶ newest POST stream, else GET stream, else backlog
//!                                         ─▶ stderr reader (tail, flood guard)
//!                                         ─▶ waiter: exit ─▶ every waiting request gets an error
//! ```
//! A child that writes anything but JSON on stdout, a line over the size limit, or
//! floods stderr is ended: its stream can no longer be trusted to carry what the
//! proxy decided. Ending a child sends SIGTERM to its process group, and SIGKILL
//! after a grace period; the waiter reaps it.

use super::lines::LineReader;
use super::routes::{Delivery, Routes};
use crate::config::{StdioConfig, INHERITED_ENV};
use crate::error::{codes, ProxyError};
use bytes::Bytes;
use rustix::process::{kill_process_group, Pid, Signal};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};

/// Bytes of stderr kept for error messages.
const STDERR_TAIL_BYTES: usize = 2048;
/// Stderr above this many bytes in one second ends the child.
const STDERR_FLOOD_BYTES_PER_S: usize = 1024 * 1024;
/// Between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Messages waiting to be written to stdin.
const STDIN_QUEUE: usize = 256;

/// Why a child ended, for errors and logs.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    /// What happened, in words ("exited with exit status: 1", "was ended: ...").
    pub(crate) what: String,
    /// The end of its stderr.
    pub(crate) stderr_tail: String,
}

/// A running (or ended) stdio child.
pub(crate) struct Child {
    upstream: String,
    pid: u32,
    stdin: mpsc::Sender<Bytes>,
    pub(super) routes: Mutex<Routes>,
    ended: watch::Receiver<Option<Exit>>,
    end: watch::Sender<Option<String>>,
    last_used: AtomicU64,
    born: Instant,
    stderr: Arc<Mutex<StderrTail>>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("upstream", &self.upstream)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Child {
    /// Spawns the configured command: no shell, environment cleared but for
    /// PATH/HOME/LANG and `env`, its own process group, stdin/stdout piped.
    /// `max_line` bounds one message on stdout; `pooled` children have their ids
    /// rewritten (see `routes`).
    pub(crate) fn spawn(
        upstream: &str,
        config: &StdioConfig,
        max_line: usize,
        pooled: bool,
    ) -> Result<Arc<Child>, ProxyError> {
        let mut command = Command::new(&config.command[0]);
        command
            .args(&config.command[1..])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for name in INHERITED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.envs(&config.env);
        if let Some(dir) = &config.cwd {
            command.current_dir(dir);
        }
        let mut process = command
            .spawn()
            .map_err(|e| ProxyError::UpstreamUnavailable {
                upstream: upstream.to_owned(),
                detail: format!("cannot start `{}`: {e}", config.command[0]),
            })?;
        let pid = process.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(ProxyError::Internal(
                "a child's pipes are missing".to_owned(),
            ));
        };
        let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
        let (ended_tx, ended) = watch::channel(None);
        let (end, end_rx) = watch::channel(None);
        let child = Arc::new(Child {
            upstream: upstream.to_owned(),
            pid,
            stdin: stdin_tx,
            routes: Mutex::new(Routes::new(pooled)),
            ended,
            end,
            last_used: AtomicU64::new(0),
            born: Instant::now(),
            stderr: Arc::new(Mutex::new(StderrTail::default())),
        });
        child.touch();
        tokio::spawn(write_stdin(stdin, stdin_rx));
        tokio::spawn(read_stdout(Arc::downgrade(&child), stdout, max_line));
        tokio::spawn(read_stderr(Arc::downgrade(&child), stderr));
        tokio::spawn(wait(Arc::clone(&child), process, end_rx, ended_tx));
        tracing::info!(upstream, pid, "stdio upstream started");
        Ok(child)
    }

    /// Marks the child used now (for the idle timeout).
    pub(crate) fn touch(&self) {
        self.last_used
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since it was last used.
    pub(crate) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_used.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    /// Whether the process is still running.
    pub(crate) fn is_alive(&self) -> bool {
        self.ended.borrow().is_none()
    }

    /// Requests in flight on it.
    pub(crate) fn in_flight(&self) -> usize {
        self.routes.lock().map(|r| r.pending()).unwrap_or(0)
    }

    /// Writes one message (one line) to its stdin.
    pub(crate) async fn send(&self, message: Bytes) -> Result<(), ProxyError> {
        self.touch();
        if let Some(exit) = self.ended.borrow().clone() {
            return Err(self.unavailable(&exit));
        }
        self.stdin
            .send(message)
            .await
            .map_err(|_| ProxyError::UpstreamUnavailable {
                upstream: self.upstream.clone(),
                detail: "its stdin is closed (the process is ending)".to_owned(),
            })
    }

    /// Ends the process (idempotent): stdin closed, SIGTERM to its group, SIGKILL
    /// after a grace period. `why` is logged with its exit.
    pub(crate) fn end(&self, why: &str) {
        self.end.send_if_modified(|reason| {
            if reason.is_some() {
                return false;
            }
            *reason = Some(why.to_owned());
            true
        });
    }

    /// Waits until the process has exited and been reaped.
    pub(crate) async fn exited(&self) -> Exit {
        let mut ended = self.ended.clone();
        loop {
            if let Some(exit) = ended.borrow_and_update().clone() {
                return exit;
            }
            if ended.changed().await.is_err() {
                return Exit {
                    what: "ended".to_owned(),
                    stderr_tail: String::new(),
                };
            }
        }
    }

    /// The error a request gets when the child is gone.
    pub(crate) fn unavailable(&self, exit: &Exit) -> ProxyError {
        ProxyError::UpstreamUnavailable {
            upstream: self.upstream.clone(),
            detail: describe(exit),
        }
    }

    /// The error of a request the child did not answer within `within`.
    pub(crate) fn silent(&self, within: Duration) -> ProxyError {
        let tail = self.stderr_tail();
        ProxyError::UpstreamUnavailable {
            upstream: self.upstream.clone(),
            detail: format!(
                "the stdio server (pid {}) wrote no answer within {}s; its stderr ends with: {}",
                self.pid,
                within.as_secs_f32(),
                if tail.trim().is_empty() {
                    "(nothing)"
                } else {
                    tail.trim()
                }
            ),
        }
    }

    /// The end of its stderr so far.
    pub(crate) fn stderr_tail(&self) -> String {
        self.stderr.lock().map(|t| t.text()).unwrap_or_default()
    }

    /// Hands one message from stdout to whoever waits for it.
    fn route(self: &Arc<Child>, line: Bytes) -> Result<(), String> {
        let value: Value = serde_json::from_slice(&line).map_err(|e| {
            let shown: String = String::from_utf8_lossy(&line).chars().take(120).collect();
            format!("wrote something that is not JSON on stdout ({e}): {shown:?}")
        })?;
        let deliveries = match self.routes.lock() {
            Ok(mut routes) => routes.incoming(value, line),
            Err(_) => return Err("its routing table is poisoned".to_owned()),
        };
        for delivery in deliveries {
            match delivery {
                Delivery::To(tx, bytes) => deliver(&tx, bytes),
                Delivery::Answer(bytes) => {
                    // A server request nobody can answer (a pooled child): say so.
                    let stdin = self.stdin.clone();
                    tokio::spawn(async move { stdin.send(bytes).await });
                }
                Delivery::Dropped(why) => {
                    tracing::debug!(upstream = %self.upstream, pid = self.pid, "{why}")
                }
            }
        }
        Ok(())
    }
}

/// Sends one message to a client stream without ever blocking the child's reader:
/// a full stream gets it from a task instead.
fn deliver(tx: &mpsc::Sender<Bytes>, bytes: Bytes) {
    if let Err(mpsc::error::TrySendError::Full(bytes)) = tx.try_send(bytes) {
        let tx = tx.clone();
        tokio::spawn(async move { tx.send(bytes).await });
    }
}

/// "exited with exit status: 1; its stderr ends with: ...".
pub(crate) fn describe(exit: &Exit) -> String {
    if exit.stderr_tail.trim().is_empty() {
        format!("the stdio server {} (nothing on stderr)", exit.what)
    } else {
        format!(
            "the stdio server {}; its stderr ends with: {}",
            exit.what,
            exit.stderr_tail.trim()
        )
    }
}

/// The JSON-RPC error answering `id` when the child ended before answering it.
pub(crate) fn ended_error(upstream: &str, id: &Value, exit: &Exit) -> Bytes {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": codes::UPSTREAM_UNAVAILABLE,
            "message": format!("upstream `{upstream}` is unavailable: {}; retry, or check the server's command and logs", describe(exit)),
            "data": {"upstream": upstream, "exit": exit.what, "stderr_tail": exit.stderr_tail},
        }
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

async fn write_stdin(mut stdin: ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(message) = rx.recv().await {
        let written = async {
            stdin.write_all(&message).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        if written.await.is_err() {
            return; // the child closed stdin or died; the waiter reports it
        }
    }
    // Every sender dropped: closing stdin asks the server to exit (MCP stdio).
}

async fn read_stdout(child: std::sync::Weak<Child>, stdout: ChildStdout, max_line: usize) {
    let mut lines = LineReader::new(stdout, max_line);
    let failure = loop {
        let line = match lines.next().await {
            Ok(Some(line)) => line,
            Ok(None) => break "closed its stdout".to_owned(),
            Err(e) => break e,
        };
        let Some(child) = child.upgrade() else { return };
        if let Err(e) = child.route(line) {
            break e;
        }
    };
    if let Some(child) = child.upgrade() {
        child.end(&failure);
    }
}

/// The end of a child's stderr, and the flood guard's window.
#[derive(Debug, Default)]
struct StderrTail {
    tail: VecDeque<u8>,
    window_start: Option<Instant>,
    window_bytes: usize,
}

impl StderrTail {
    /// Keeps the chunk's end; returns false when the child floods stderr.
    fn push(&mut self, chunk: &[u8]) -> bool {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                self.window_bytes += chunk.len();
            }
            _ => {
                self.window_start = Some(now);
                self.window_bytes = chunk.len();
            }
        }
        let keep = &chunk[chunk.len().saturating_sub(STDERR_TAIL_BYTES)..];
        self.tail.extend(keep);
        let excess = self.tail.len().saturating_sub(STDERR_TAIL_BYTES);
        self.tail.drain(..excess);
        self.window_bytes <= STDERR_FLOOD_BYTES_PER_S
    }

    fn text(&self) -> String {
        let bytes: Vec<u8> = self.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

async fn read_stderr(child: std::sync::Weak<Child>, mut stderr: ChildStderr) {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Some(child) = child.upgrade() else { return };
        let calm = child
            .stderr
            .lock()
            .map(|mut t| t.push(&buf[..n]))
            .unwrap_or(true);
        if !calm {
            child.end(&format!(
                "flooded stderr (over {STDERR_FLOOD_BYTES_PER_S} bytes in a second)"
            ));
            return; // stop reading: the pipe fills and the process is being ended anyway
        }
    }
}

/// Owns the process: waits for it to exit (or to be ended), reaps it, then fails
/// every request still waiting on it.
async fn wait(
    child: Arc<Child>,
    mut process: tokio::process::Child,
    mut end: watch::Receiver<Option<String>>,
    ended: watch::Sender<Option<Exit>>,
) {
    let ended_by_us = tokio::select! {
        status = process.wait() => Err(status),
        reason = end.wait_for(Option::is_some) => Ok(reason.is_ok()),
    };
    let status = match ended_by_us {
        Err(status) => status,
        Ok(_) => terminate(&mut process, child.pid).await,
    };
    // Whatever is left of the group (a grandchild that ignored SIGTERM) goes too.
    signal_group(child.pid, Signal::KILL);
    let reason = end.borrow().clone();
    let what = match (&reason, status) {
        (Some(reason), Ok(status)) => format!("was ended ({reason}); {}", exit_words(status)),
        (None, Ok(status)) => exit_words(status),
        (_, Err(e)) => format!("could not be waited for: {e}"),
    };
    // The stderr reader may still hold the last lines: give it a moment.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let exit = Exit {
        what,
        stderr_tail: child.stderr_tail(),
    };
    let expected = reason.as_deref().is_some_and(|r| {
        r.starts_with("session ") || r.starts_with("idle") || r.starts_with("proxy ")
    });
    if expected {
        tracing::info!(upstream = %child.upstream, pid = child.pid, exit = %exit.what, "stdio upstream ended");
    } else {
        tracing::warn!(upstream = %child.upstream, pid = child.pid, exit = %exit.what, stderr_tail = %exit.stderr_tail.trim(), "stdio upstream ended unexpectedly");
    }
    let waiting = child
        .routes
        .lock()
        .map(|mut routes| routes.close())
        .unwrap_or_default();
    for (tx, id) in waiting {
        deliver(&tx, ended_error(&child.upstream, &id, &exit));
    }
    ended.send_replace(Some(exit));
}

/// Sends SIGTERM to the group, then SIGKILL after the grace period.
async fn terminate(process: &mut tokio::process::Child, pid: u32) -> std::io::Result<ExitStatus> {
    signal_group(pid, Signal::TERM);
    match tokio::time::timeout(TERM_GRACE, process.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pid, Signal::KILL);
            process.wait().await
        }
    }
}

fn signal_group(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    // ESRCH (the group is gone) is the normal case here.
    let _ = kill_process_group(pid, signal);
}

fn exit_words(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("exited ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_is_bounded_and_keeps_the_end() {
        let mut tail = StderrTail::default();
        for i in 0..100 {
            assert!(tail.push(format!("line {i}\n").as_bytes()));
        }
        let text = tail.text();
        assert!(text.len() <= STDERR_TAIL_BYTES);
        assert!(text.ends_with("line 99\n"));
    }

    #[test]
    fn a_flood_of_stderr_is_noticed() {
        let mut tail = StderrTail::default();
        let chunk = vec![b'x'; 64 * 1024];
        let calm = (0..17).fold(true, |calm, _| tail.push(&chunk) && calm);
        assert!(!calm, "17 x 64 KiB in well under a second is a flood");
        assert!(tail.text().len() <= STDERR_TAIL_BYTES);
    }
}
