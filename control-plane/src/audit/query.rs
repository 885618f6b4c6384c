//! `AuditService.Query`: records in order, filtered, optionally only the last N,
//! optionally followed as they are appended.

use super::{matches, Audit, QUERY_PAGE};
use crate::api;
use crate::bundles::blocking;
use tokio::sync::mpsc;
use tonic::Status;

type QueryTx = mpsc::Sender<Result<api::AuditServiceQueryResponse, Status>>;

/// Sends one record; `false` when the client went away.
async fn send(tx: &QueryTx, record: api::AuditRecord) -> bool {
    let item = api::AuditServiceQueryResponse {
        record: Some(record),
    };
    tx.send(Ok(item)).await.is_ok()
}

impl Audit {
    /// Streams matching records; `last` keeps only the final N of the stored ones;
    /// `follow` then waits for appends until the client goes away.
    pub(super) async fn serve_query(
        &self,
        query: api::AuditServiceQueryRequest,
        tx: &QueryTx,
    ) -> Result<(), Status> {
        let mut appended = self.appended.subscribe();
        let mut after = query.after_seq;
        if query.last > 0 {
            let keep = query.last as usize;
            let mut tail = std::collections::VecDeque::with_capacity(keep + 1);
            while let Some(page) = self.next_page(&query, &mut after).await? {
                for record in page {
                    tail.push_back(record);
                    if tail.len() > keep {
                        tail.pop_front();
                    }
                }
            }
            for record in tail {
                if !send(tx, record).await {
                    return Ok(());
                }
            }
        } else if !self.send_stored(&query, &mut after, tx).await? {
            return Ok(());
        }
        if !query.follow {
            return Ok(());
        }
        loop {
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return Ok(()) },
                () = tx.closed() => return Ok(()),
            }
            if !self.send_stored(&query, &mut after, tx).await? {
                return Ok(());
            }
        }
    }

    /// Sends every matching record after `after`; `false` when the client went away.
    async fn send_stored(
        &self,
        query: &api::AuditServiceQueryRequest,
        after: &mut u64,
        tx: &QueryTx,
    ) -> Result<bool, Status> {
        while let Some(page) = self.next_page(query, after).await? {
            for record in page {
                if !send(tx, record).await {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The matching records of the next page after `after` (advanced), `None` at
    /// the end of the log.
    async fn next_page(
        &self,
        query: &api::AuditServiceQueryRequest,
        after: &mut u64,
    ) -> Result<Option<Vec<api::AuditRecord>>, Status> {
        let log = self.log.clone();
        let from = *after;
        let page = blocking(move || Ok(log.records_after(from, QUERY_PAGE)?)).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        *after = last.seq;
        Ok(Some(
            page.into_iter().filter(|r| matches(query, r)).collect(),
        ))
    }
}
