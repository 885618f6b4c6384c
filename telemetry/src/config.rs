//! `[telemetry]`: where spans go. The same table in the proxy's and the control
//! plane's config files.
//!
//! ```toml
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4317"   # OTLP/gRPC collector; absent: no export
//! service_name = "airlock-proxy"            # default per binary
//! sample_ratio = 1.0                        # share of new traces kept, 0.0..=1.0
//! ```
//! Without `otlp_endpoint` the standard `OTEL_EXPORTER_OTLP_ENDPOINT` environment
//! variable enables the export; the file wins when both are set.

use serde::Deserialize;

/// The environment variable that enables the export when the file says nothing.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `[telemetry]` as written in a TOML file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
    sample_ratio: Option<f64>,
}

/// Validated `[telemetry]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The OTLP/gRPC collector (`http://` or `https://`); `None`: spans are not exported
    /// and no trace context is read or written.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Share of new traces kept (a trace started by the agent keeps its sampled flag).
    pub sample_ratio: f64,
}

impl TelemetryConfig {
    /// No export, under `service_name`.
    pub fn disabled(service_name: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: service_name.to_owned(),
            sample_ratio: 1.0,
        }
    }

    /// Whether spans are exported (and trace context propagated).
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }
}

/// A `[telemetry]` value that cannot be used; each plane wraps it in its own
/// config error, which adds the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}; hint: {hint}")]
pub struct InvalidTelemetry {
    /// The dotted key, e.g. `telemetry.sample_ratio`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl RawTelemetry {
    /// A table that sets only `otlp_endpoint` (from a command-line flag).
    pub fn with_endpoint(endpoint: Option<String>) -> RawTelemetry {
        RawTelemetry {
            otlp_endpoint: endpoint,
            ..RawTelemetry::default()
        }
    }

    /// Validates the table (absent: `RawTelemetry::default()`); `env` looks up
    /// environment variables (`std::env::var(..).ok()` outside tests).
    pub fn validate(
        self,
        default_service: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<TelemetryConfig, InvalidTelemetry> {
        let invalid = |key: String, message: String, hint: &str| InvalidTelemetry {
            key,
            message,
            hint: hint.to_owned(),
        };
        let (endpoint, key) = match self.otlp_endpoint {
            Some(endpoint) => (Some(endpoint), "telemetry.otlp_endpoint".to_owned()),
            None => (
                env(ENDPOINT_ENV).filter(|v| !v.trim().is_empty()),
                format!("telemetry.otlp_endpoint (from {ENDPOINT_ENV})"),
            ),
        };
        if let Some(endpoint) = &endpoint {
            check_endpoint(endpoint).map_err(|message| {
                invalid(
                    key,
                    message,
                    "give the collector's OTLP/gRPC address, e.g. \"http://127.0.0.1:4317\"",
                )
            })?;
        }
        let service_name = self
            .service_name
            .unwrap_or_else(|| default_service.to_owned());
        if service_name.trim().is_empty() {
            return Err(invalid(
                "telemetry.service_name".to_owned(),
                "is empty".to_owned(),
                &format!("omit it for \"{default_service}\" or name the service"),
            ));
        }
        let sample_ratio = self.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(invalid(
                "telemetry.sample_ratio".to_owned(),
                format!("{sample_ratio} is not between 0.0 and 1.0"),
                "1.0 keeps every trace (the default), 0.1 one in ten",
            ));
        }
        Ok(TelemetryConfig {
            otlp_endpoint: endpoint,
            service_name,
            sample_ratio,
        })
    }
}

/// An endpoint is an absolute `http://` or `https://` URL with a host.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri = endpoint
        .parse::<http::Uri>()
        .map_err(|_| format!("`{endpoint}` is not a URL"))?;
    if uri.host().is_none() {
        return Err(format!("`{endpoint}` has no host"));
    }
    match uri.scheme_str() {
        Some("http" | "https") => Ok(()),
        _ => Err(format!("`{endpoint}` is not an http:// or https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: Option<&str>) -> Result<TelemetryConfig, InvalidTelemetry> {
        let raw: RawTelemetry = toml::from_str(text).unwrap();
        let env = env.map(str::to_owned);
        raw.validate("airlock-proxy", move |name| {
            assert_eq!(name, ENDPOINT_ENV);
            env.clone()
        })
    }

    #[test]
    fn absent_means_disabled_with_the_default_name() {
        let config = parse("", None).unwrap();
        assert_eq!(config, TelemetryConfig::disabled("airlock-proxy"));
        assert!(!config.enabled());
    }

    #[test]
    fn the_file_sets_endpoint_name_and_ratio() {
        let config = parse(
            "otlp_endpoint = \"http://127.0.0.1:4317\"\nservice_name = \"edge\"\nsample_ratio = 0.25",
            Some("http://ignored:4317"),
        )
        .unwrap();
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(config.service_name, "edge");
        assert_eq!(config.sample_ratio, 0.25);
    }

    #[test]
    fn the_standard_env_var_enables_it_when_the_file_is_silent() {
        let config = parse("", Some("https://collector.example:4317")).unwrap();
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("https://collector.example:4317")
        );
        assert!(parse("", Some(" ")).unwrap().otlp_endpoint.is_none());
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let cases = [
            (
                "otlp_endpoint = \"127.0.0.1:4317\"",
                None,
                "telemetry.otlp_endpoint",
                "http",
            ),
            (
                "otlp_endpoint = \"udp://c:1\"",
                None,
                "telemetry.otlp_endpoint",
                "http",
            ),
            (
                "",
                Some("not a url"),
                "(from OTEL_EXPORTER_OTLP_ENDPOINT)",
                "not a URL",
            ),
            (
                "sample_ratio = 1.5",
                None,
                "telemetry.sample_ratio",
                "between 0.0 and 1.0",
            ),
            (
                "sample_ratio = -0.1",
                None,
                "telemetry.sample_ratio",
                "between",
            ),
            (
                "service_name = \"\"",
                None,
                "telemetry.service_name",
                "is empty",
            ),
        ];
        for (text, env, key, message) in cases {
            let error = parse(text, env).unwrap_err();
            let shown = error.to_string();
            assert!(shown.contains(key), "{text}: {shown}");
            assert!(shown.contains(message), "{text}: {shown}");
            assert!(shown.contains("hint:"), "{text}: {shown}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<RawTelemetry>("endpoint = \"http://c:4317\"").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `endpoint`"),
            "{error}"
        );
    }
}
