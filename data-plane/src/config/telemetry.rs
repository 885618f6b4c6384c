//! `[telemetry]`: OTLP span export and W3C trace propagation (see
//! `airlock_telemetry::RawTelemetry`); `service_name` defaults to `airlock-proxy`.

use super::Validator;
use crate::config::ConfigError;
use airlock_telemetry::{RawTelemetry, TelemetryConfig};

/// `service.name` when the file does not set one.
pub const DEFAULT_SERVICE_NAME: &str = "airlock-proxy";

impl Validator<'_> {
    pub(super) fn telemetry(&self, raw: RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
        raw.validate(DEFAULT_SERVICE_NAME, |name| std::env::var(name).ok())
            .map_err(|e| self.invalid(e.key, e.message, &e.hint))
    }
}
