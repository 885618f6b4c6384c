//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP headers.
//!
//! Used only when the export is on: without it the proxy takes no part in the
//! trace and reads no header.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C `tracestate` header.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Whether `name` is a trace-context header (replaced, never passed through, when
/// the proxy takes part in the trace).
pub fn is_trace_context(name: &HeaderName) -> bool {
    name == TRACEPARENT || name == TRACESTATE
}

/// Makes the trace context the client sent (if any, and valid) the parent of
/// `span`. Call it right after creating the span, before any child exists.
pub fn adopt_remote_parent(span: &Span, headers: &HeaderMap) {
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Fails only without an OpenTelemetry layer (an in-process proxy): nothing to do.
    let _ = span.set_parent(parent);
}

/// Writes `span`'s trace context into `headers` (replacing any there).
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
