//! Webhooks: each new approval request is POSTed as JSON to the configured URLs
//! (Slack incoming-webhook compatible: a `text` with a link to the review page, plus
//! an `approval` object for other receivers).
//!
//! Never on the decision path: `notify` only queues (and drops with a warning when
//! the queue is full); a background task delivers, retrying with exponential
//! backoff.

use crate::store::ApprovalRecord;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Notifications queued before new ones are dropped.
const QUEUE: usize = 1024;
/// Delivery attempts per URL.
const ATTEMPTS: u32 = 5;
/// First retry delay; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Per-attempt timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The webhook sender (cheap to clone; does nothing without URLs).
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    queue: Option<mpsc::Sender<Value>>,
    page_url: String,
}

impl Webhooks {
    /// Starts delivering to `urls`; `page_url` is the review page linked in `text`.
    pub fn start(urls: Vec<String>, page_url: String) -> Webhooks {
        if urls.is_empty() {
            return Webhooks {
                queue: None,
                page_url,
            };
        }
        let (tx, mut rx) = mpsc::channel::<Value>(QUEUE);
        let client = http_client();
        tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                for url in &urls {
                    tokio::spawn(deliver(client.clone(), url.clone(), bytes.clone()));
                }
            }
        });
        Webhooks {
            queue: Some(tx),
            page_url,
        }
    }

    /// Queues a notification for a new request; never waits.
    pub(crate) fn notify(&self, record: &ApprovalRecord) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(self.body(record)).is_err() {
            tracing::warn!(approval = %record.approval_id, "webhook queue full: notification dropped");
        }
    }

    fn body(&self, r: &ApprovalRecord) -> Value {
        let what = if r.tool.is_empty() {
            r.method.clone()
        } else {
            format!("{} `{}`", r.method, r.tool)
        };
        let link = format!("{}#{}", self.page_url, r.approval_id);
        // The facts come first: what will run, parsed by the proxy from the unmasked
        // call (a reviewer must not approve a rendering).
        let facts = crate::approvals::summary::lines(&r.summary_json);
        let facts_text = if facts.is_empty() {
            String::new()
        } else {
            format!("\n```\n{}\n```", facts.join("\n"))
        };
        json!({
            "text": format!(
                "Approval needed: {} wants {what} on {} ({}).{facts_text}\nReview: <{link}|{}> or `airlock approvals show {}`",
                r.subject, r.server, r.reasons.join(", "), r.approval_id, r.approval_id
            ),
            "approval": {
                "id": r.approval_id,
                "subject": r.subject,
                "server": r.server,
                "method": r.method,
                "tool": r.tool,
                "reasons": r.reasons,
                "reviewer_groups": r.reviewer_groups,
                "expires_unix_ms": r.expires_unix_ms,
                "url": link,
                "facts": serde_json::from_str::<Value>(&r.summary_json).unwrap_or(Value::Null),
            }
        })
    }
}

/// The plain-HTTP client webhooks are POSTed with.
pub(crate) type HttpClient =
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A client for [`deliver`].
pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// POSTs `body` as JSON to `url`, retrying with exponential backoff; `true` once
/// it was accepted (2xx).
pub(crate) async fn deliver(client: HttpClient, url: String, body: Bytes) -> bool {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let request = http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()));
        let Ok(request) = request else {
            tracing::warn!(%url, "webhook URL is not valid; fix [webhooks] urls");
            return false;
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => return true,
            Ok(Ok(response)) => {
                tracing::warn!(%url, status = %response.status(), attempt, "webhook refused")
            }
            Ok(Err(err)) => tracing::warn!(%url, error = %err, attempt, "webhook failed"),
            Err(_) => tracing::warn!(%url, attempt, "webhook timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    false
}
