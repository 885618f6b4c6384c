//! Copies of new checkpoints off the box, so that a later rollback or fork of the
//! log can be proven against something its host cannot rewrite.
//!
//! - `[audit] witness_dir`: the newest checkpoint is written to `checkpoint` in that
//!   directory (written aside, synced, renamed: a reader never sees half of one),
//!   and the verifier key to `verifier-key`. Point it at storage another machine
//!   owns (a network mount, a directory a backup job ships away).
//! - `[audit] checkpoint_webhooks`: the newest checkpoint is POSTed as JSON
//!   (`origin`, `size`, `root`, `checkpoint`, `verifier_key`), retried with backoff.
//!
//! Both run off the ingest path, on their own tasks, and coalesce: while one copy
//! is being written or delivered, newer checkpoints replace each other and only the
//! newest is copied next. Each checkpoint signs everything before it, so the newest
//! is the one worth keeping; consistency between two kept copies is provable
//! (`airlock audit verify --checkpoint`).

use super::AuditSettings;
use crate::webhooks::{deliver, http_client};
use airlock_checkpoint::{Checkpoint, CheckpointVerifier};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// The file the newest checkpoint is written to in `witness_dir`.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The file the verifier key is written to in `witness_dir`.
pub const KEY_FILE: &str = "verifier-key";

type Newest = watch::Receiver<Option<Arc<Checkpoint>>>;

/// Starts the copies `settings` asks for; they end when `stop` turns true.
pub(super) fn spawn(
    settings: &AuditSettings,
    newest: Newest,
    verifier: CheckpointVerifier,
    stop: watch::Receiver<bool>,
) {
    if let Some(dir) = settings.witness_dir.clone() {
        let key = verifier.key().to_owned();
        tokio::spawn(copy_each(newest.clone(), stop.clone(), move |cp| {
            let (dir, key) = (dir.clone(), key.clone());
            async move {
                let written = tokio::task::spawn_blocking(move || write_witness(&dir, &cp, &key))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r);
                if let Err(error) = written {
                    tracing::warn!(%error, "cannot write the audit checkpoint to [audit] witness_dir; will write the next one");
                }
            }
        }));
    }
    for url in settings.checkpoint_webhooks.clone() {
        let client = http_client();
        let key = verifier.key().to_owned();
        tokio::spawn(copy_each(newest.clone(), stop.clone(), move |cp| {
            let body = Bytes::from(body(&cp, &key).to_string());
            let (client, url) = (client.clone(), url.clone());
            async move {
                if !deliver(client, url.clone(), body).await {
                    tracing::warn!(%url, size = cp.size(), "audit checkpoint webhook failed after retries; the next checkpoint will be sent");
                }
            }
        }));
    }
}

/// Runs `copy` on the newest checkpoint each time there is a new one (skipping
/// those replaced while a copy ran), until `stop`.
async fn copy_each<F, Fut>(mut newest: Newest, mut stop: watch::Receiver<bool>, copy: F)
where
    F: Fn(Arc<Checkpoint>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let current = newest.borrow_and_update().clone();
        if let Some(cp) = current {
            copy(cp).await;
        }
        tokio::select! {
            changed = newest.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// The webhook's JSON body.
fn body(cp: &Checkpoint, key: &str) -> serde_json::Value {
    serde_json::json!({
        "origin": cp.origin(),
        "size": cp.size(),
        "root": BASE64_STANDARD.encode(cp.root()),
        "checkpoint": cp.note(),
        "verifier_key": key,
    })
}

/// Writes `checkpoint` and `verifier-key` into `dir`, each atomically.
pub fn write_witness(dir: &Path, cp: &Checkpoint, key: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let key_file = dir.join(KEY_FILE);
    if std::fs::read_to_string(&key_file).ok().as_deref() != Some(key) {
        replace(&key_file, key.as_bytes())?;
    }
    replace(&dir.join(CHECKPOINT_FILE), cp.note().as_bytes())
}

/// Writes `bytes` beside `path`, syncs, and renames over it.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut aside = PathBuf::from(path);
    aside.set_extension("partial");
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&aside, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_checkpoint::CheckpointSigner;

    #[tokio::test]
    async fn the_newest_checkpoint_lands_in_the_witness_dir_whole() {
        let dir = tempfile::tempdir().unwrap();
        let signer =
            CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]), "w/log")
                .unwrap();
        let (tx, rx) = watch::channel(None);
        let (stop_tx, stop) = watch::channel(false);
        let settings = AuditSettings {
            witness_dir: Some(dir.path().join("witness")),
            ..AuditSettings::default()
        };
        spawn(&settings, rx, signer.verifier(), stop);
        for size in 1..=5 {
            tx.send_replace(Some(Arc::new(
                signer.sign(size, &[size as u8; 32]).unwrap(),
            )));
        }
        let file = dir.path().join("witness").join(CHECKPOINT_FILE);
        let mut seen = String::new();
        for _ in 0..200 {
            seen = std::fs::read_to_string(&file).unwrap_or_default();
            if seen.lines().nth(1) == Some("5") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let verifier = CheckpointVerifier::from_key(
            &std::fs::read_to_string(dir.path().join("witness").join(KEY_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(verifier.verify(&seen).unwrap().size(), 5);
        let _ = stop_tx.send(true);
    }

    /// Accepts one HTTP request on `listener`, answers `status`, returns the body.
    fn receive(listener: &std::net::TcpListener, status: u16) -> String {
        use std::io::{BufRead as _, Read as _, Write as _};
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        String::from_utf8(body).unwrap()
    }

    #[tokio::test]
    async fn a_new_checkpoint_is_posted_to_the_webhook_and_retried_after_a_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/witness", listener.local_addr().unwrap());
        let receiver = std::thread::spawn(move || {
            let first = receive(&listener, 503);
            let second = receive(&listener, 200);
            (first, second)
        });
        let signer =
            CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[2; 32]), "w/hook")
                .unwrap();
        let cp = Arc::new(signer.sign(9, &[9; 32]).unwrap());
        let (_tx, rx) = watch::channel(Some(cp.clone()));
        let (stop_tx, stop) = watch::channel(false);
        let settings = AuditSettings {
            checkpoint_webhooks: vec![url],
            ..AuditSettings::default()
        };
        spawn(&settings, rx, signer.verifier(), stop);
        let (first, second) = tokio::task::spawn_blocking(move || receiver.join().unwrap())
            .await
            .unwrap();
        assert_eq!(first, second, "the same checkpoint is sent again");
        let body: serde_json::Value = serde_json::from_str(&second).unwrap();
        let verifier =
            CheckpointVerifier::from_key(body["verifier_key"].as_str().unwrap()).unwrap();
        let got = verifier
            .verify(body["checkpoint"].as_str().unwrap())
            .unwrap();
        assert_eq!((got.size(), body["size"].as_u64()), (9, Some(9)));
        assert_eq!(body["origin"], "w/hook");
        let _ = stop_tx.send(true);
    }
}
