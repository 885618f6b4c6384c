//! The newest audit checkpoint this node was given, and the rule that the control
//! plane's log must extend it (promise 6, checked from outside the control plane's
//! box).
//!
//! Every acknowledgement of `AuditService.Append` carries the checkpoint signed in
//! the same flush (a C2SP signed note) and a consistency proof from the one this
//! node held before. The keeper accepts it only when it verifies with the log's
//! key and the proof holds; it then becomes the held checkpoint, kept in memory
//! and written to `audit_checkpoint_file` (aside, synced, renamed; off the
//! shipping path). On reconnect the held checkpoint is sent first, and nothing is
//! shipped before the control plane proved that its log extends it. A log that is
//! smaller (rolled back), does not extend it (forked, rewritten) or is signed by
//! another key is refused: events stay in the backlog, so calls fail closed when it
//! fills, and `/readyz` and `airlock nodes list` say why.
//!
//! The first checkpoint a node ever sees is trusted as given (with its key); from
//! then on the held checkpoint is the anchor: the control plane's key is the one
//! that signed it. The file holds the note exactly as signed, so an operator can
//! hand it to `airlock audit verify --checkpoint FILE`.

use crate::control::{AuditTrust, ControlPlaneLink};
use crate::error::ProxyError;
use airlock_checkpoint::{verify_consistency, Checkpoint, CheckpointVerifier};
use airlock_proto::v1::AuditServiceAppendResponse;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::watch;

/// File name of the held checkpoint inside `bundle_cache_dir` (the default place).
pub const CHECKPOINT_FILE: &str = "audit-checkpoint";

/// The held checkpoint and the key it verifies with.
#[derive(Debug, Default)]
struct Held {
    checkpoint: Option<Checkpoint>,
    /// Known once a control plane proved itself in this process.
    verifier: Option<CheckpointVerifier>,
}

/// Keeps the newest checkpoint and judges every new one.
#[derive(Debug)]
pub(crate) struct CheckpointKeeper {
    held: Mutex<Held>,
    link: ControlPlaneLink,
    persist: watch::Sender<Option<String>>,
}

impl CheckpointKeeper {
    /// Loads the held checkpoint from the link's `audit_checkpoint_file` (if any)
    /// and starts writing new ones there. Needs a Tokio runtime.
    pub(crate) fn start(link: ControlPlaneLink) -> Result<CheckpointKeeper, ProxyError> {
        let file = link.checkpoint_file().map(Path::to_path_buf);
        let checkpoint = match &file {
            Some(path) => load(path)?,
            None => None,
        };
        let size = checkpoint.as_ref().map_or(0, Checkpoint::size);
        link.set_audit_status(AuditTrust::Unchecked, size, None);
        let (persist, written) = watch::channel(None);
        if let Some(path) = file {
            tokio::spawn(write_each(path, written));
        }
        Ok(CheckpointKeeper {
            held: Mutex::new(Held {
                checkpoint,
                verifier: None,
            }),
            link,
            persist,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Each update replaces whole values: a poisoned lock is still consistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The held checkpoint's note, sent first on each new stream ("" for none).
    pub(crate) fn held_note(&self) -> String {
        self.lock()
            .checkpoint
            .as_ref()
            .map(|c| c.note().to_owned())
            .unwrap_or_default()
    }

    /// Judges the checkpoint of an acknowledgement; `Err` says why the log is
    /// refused (and the status says so too).
    pub(crate) fn accept(&self, ack: &AuditServiceAppendResponse) -> Result<(), String> {
        let mut held = self.lock();
        match judge(&held, ack) {
            Ok((checkpoint, verifier)) => {
                let size = checkpoint.size();
                self.persist
                    .send_replace(Some(checkpoint.note().to_owned()));
                held.checkpoint = Some(checkpoint);
                held.verifier = Some(verifier);
                drop(held);
                self.link.set_audit_status(AuditTrust::Verified, size, None);
                Ok(())
            }
            Err(problem) => {
                let size = held.checkpoint.as_ref().map_or(0, Checkpoint::size);
                drop(held);
                self.link
                    .set_audit_status(AuditTrust::Refused, size, Some(problem.clone()));
                Err(problem)
            }
        }
    }
}

/// The new checkpoint and its verifier when `ack` proves that the log extends the
/// held checkpoint.
fn judge(
    held: &Held,
    ack: &AuditServiceAppendResponse,
) -> Result<(Checkpoint, CheckpointVerifier), String> {
    if ack.verifier_key.is_empty() || ack.checkpoint.is_empty() {
        return Err("the control plane sent no signed checkpoint with its acknowledgement: it predates Merkle checkpoints; upgrade it".to_owned());
    }
    let verifier = CheckpointVerifier::from_key(&ack.verifier_key).map_err(|e| e.to_string())?;
    if let Some(known) = &held.verifier {
        if *known != verifier {
            return Err(format!(
                "the control plane's audit key changed from {} to {}: it is another log",
                known.key(),
                verifier.key()
            ));
        }
    }
    let new = verifier
        .verify(&ack.checkpoint)
        .map_err(|e| format!("its checkpoint is not valid: {e}"))?;
    let Some(old) = &held.checkpoint else {
        return Ok((new, verifier));
    };
    if held.verifier.is_none() {
        // The held checkpoint (from the file) anchors the key: it must be this one.
        verifier.verify(old.note()).map_err(|e| {
            format!(
                "the checkpoint this node holds ({} records) was not signed by the control plane's key {}: it is another log, or its key was replaced ({e})",
                old.size(),
                verifier.key()
            )
        })?;
    }
    if new.size() >= old.size() && ack.consistency_from != old.size() {
        return Err(format!(
            "the control plane proved consistency from {} records, this node holds a checkpoint of {}",
            ack.consistency_from,
            old.size()
        ));
    }
    verify_consistency(old, &new, &ack.consistency_proof).map_err(|e| e.to_string())?;
    Ok((new, verifier))
}

/// The checkpoint kept in `path`; `None` when there is none yet.
fn load(path: &Path) -> Result<Option<Checkpoint>, ProxyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ProxyError::Internal(format!(
                "cannot read the audit checkpoint file {} ({e}); check its permissions",
                path.display()
            )))
        }
    };
    Checkpoint::parse(&text).map(Some).map_err(|e| {
        ProxyError::Internal(format!(
            "the audit checkpoint file {} is not a signed checkpoint ({e}); restore it from a copy, or delete it to trust the control plane's log as it is now",
            path.display()
        ))
    })
}

/// Writes each new held checkpoint to `path` (the newest only, when several came
/// while one was written), until the keeper is dropped.
async fn write_each(path: PathBuf, mut notes: watch::Receiver<Option<String>>) {
    while notes.changed().await.is_ok() {
        let Some(note) = notes.borrow_and_update().clone() else {
            continue;
        };
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || replace(&target, note.as_bytes()))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        if let Err(error) = written {
            tracing::warn!(
                target: "airlock::audit",
                path = %path.display(),
                %error,
                "cannot write the audit checkpoint file; a restarted node would not remember it"
            );
        }
    }
}

/// Writes `bytes` beside `path`, syncs, and renames over it.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(".partial");
    let aside = PathBuf::from(aside);
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&aside, path)
}

#[cfg(test)]
#[path = "checkpoint_test.rs"]
mod tests;
