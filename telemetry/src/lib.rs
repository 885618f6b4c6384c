//! Airlock's traces: the `[telemetry]` config table shared by both planes, the
//! OTLP span export as a `tracing` layer (batched, on its own thread, never on the
//! request path), and W3C trace context in HTTP headers.
//!
//! Without an endpoint nothing here runs: the planes' stage spans are `debug`
//! level and cost one level check when nobody listens.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod export;
pub mod propagate;

pub use config::{InvalidTelemetry, RawTelemetry, TelemetryConfig, ENDPOINT_ENV};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The crates whose spans are exported, at `debug` and above (the request stages).
/// Other crates' spans (hyper, tonic, h2) are not.
pub const EXPORTED_TARGETS: [&str; 2] = ["airlock_data_plane", "airlock_control_plane"];

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the last spans to leave.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the OTLP exporter for {endpoint}: {message}; check [telemetry] otlp_endpoint"
)]
pub struct TelemetryError {
    /// The configured endpoint.
    pub endpoint: String,
    /// The exporter's message.
    pub message: String,
}

/// The export as a `tracing` layer of subscriber `S`.
pub type ExportLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The running export; flush it with [`Telemetry::shutdown`] before the process
/// ends so the last spans are not lost.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter (bounded by a few
    /// seconds when the collector is unreachable).
    pub async fn shutdown(mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // The SDK's shutdown blocks on its export thread, which needs this
        // runtime's I/O: wait for it off the async workers.
        let result =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        if let Ok(Err(error)) = result {
            tracing::warn!(%error, "the last spans may not have been exported");
        }
    }
}

/// The OTLP export layer for `config`, filtered to [`EXPORTED_TARGETS`], or `None`
/// when no endpoint is configured. Must be called inside a Tokio runtime (the gRPC
/// channel's worker runs on it).
pub fn otlp_layer<S>(
    config: &TelemetryConfig,
) -> Result<Option<(ExportLayer<S>, Telemetry)>, TelemetryError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|error| TelemetryError {
            endpoint: endpoint.clone(),
            message: error.to_string(),
        })?;
    let processor = BatchSpanProcessor::builder(export::Reporting::new(exporter, endpoint))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("airlock");
    let targets = EXPORTED_TARGETS.iter().fold(Targets::new(), |t, target| {
        t.with_target(*target, LevelFilter::DEBUG)
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_filter(targets)
        .boxed();
    Ok(Some((
        layer,
        Telemetry {
            provider: Some(provider),
        },
    )))
}
