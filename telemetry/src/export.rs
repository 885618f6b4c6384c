//! The OTLP exporter behind a batch processor, wrapped so that a collector that is
//! down costs a warning now and then, never a request.

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one warning per this interval while exports keep failing.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Reports export failures as rate-limited warnings (the SDK's own logging is
/// compiled out), and the recovery once.
#[derive(Debug)]
pub(crate) struct Reporting<E> {
    inner: E,
    endpoint: String,
    state: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    /// Failed batches since the last warning.
    unreported: u64,
    last_warning: Option<Instant>,
    failing: bool,
}

impl<E> Reporting<E> {
    pub(crate) fn new(inner: E, endpoint: &str) -> Self {
        Self {
            inner,
            endpoint: endpoint.to_owned(),
            state: Mutex::new(Failures::default()),
        }
    }

    fn note(&self, result: &OTelSdkResult, spans: usize) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match result {
            Ok(()) if state.failing => {
                *state = Failures::default();
                tracing::info!(endpoint = %self.endpoint, "exporting spans again");
            }
            Ok(()) => {}
            Err(error) => {
                state.failing = true;
                state.unreported += 1;
                let due = state
                    .last_warning
                    .is_none_or(|at| at.elapsed() >= WARN_EVERY);
                if due {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %error,
                        failed_batches = state.unreported,
                        spans_in_batch = spans,
                        "cannot export spans to the OTLP collector; requests are not affected (next warning in at most 60 s)"
                    );
                    state.unreported = 0;
                    state.last_warning = Some(Instant::now());
                }
            }
        }
    }
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.note(&result, spans);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
