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
            match self.write(&lines) {
                Ok(()) => backlog.acknowledge(last),
                Err(err) => {
                    tracing::error!(path = %self.path.display(), error = %err, "cannot write audit events; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.file.write_all(lines)?;
        self.file.sync_data()
    }
}
