//! The JSONL sink: without a control plane, events are appended to `[audit] file`,
//! one JSON object per line, synced before they are acknowledged.

use super::backlog::Backlog;
use crate::error::ProxyError;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 1000;

pub(super) struct FileSink {
    file: std::fs::File,
    path: PathBuf,
}

impl FileSink {
    pub(super) fn open(path: &Path) -> Result<FileSink, ProxyError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                ProxyError::Internal(format!(
                    "cannot open the audit file {} ({e}); check [audit] file and its directory",
                    path.display()
                ))
            })?;
        Ok(FileSink {
            file,
            path: path.to_owned(),
        })
    }

    pub(super) async fn run(mut self, backlog: Arc<Backlog>) {
        loop {
            let batch = backlog.after(0, BATCH);
            let Some((last, _)) = batch.last() else {
                backlog.pushed().await;
                continue;
            };
            let last = *last;
            let mut lines = Vec::with_capacity(batch.len() * 512);
            for (_, event) in &batch {
                if serde_json::to_writer(&mut lines, event.as_ref()).is_ok() {
                    lines.push(b'\n');
                }
            }
            // The write and its sync block: keep them off the async workers.
            let mut file = self.file;
            let (file, written) = match tokio::task::spawn_blocking(move || {
                let written = write(&mut file, &lines);
                (file, written)
            })
            .await
            {
                Ok(done) => done,
                Err(err) => {
                    tracing::error!(error = %err, "the audit file writer failed; audit events are no longer written");
                    return;
                }
            };
            self.file = file;
            match written {
                Ok(()) => backlog.acknowledge(last),
                Err(err) => {
                    tracing::error!(path = %self.path.display(), error = %err, "cannot write audit events; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

fn write(file: &mut std::fs::File, lines: &[u8]) -> std::io::Result<()> {
    file.write_all(lines)?;
    file.sync_data()
}
