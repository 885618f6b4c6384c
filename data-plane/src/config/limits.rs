//! `[limits]`: how long a client may take to send a request, and how much one
//! identity may ask of the proxy, so that one agent cannot starve the others.
//!
//! ```toml
//! [limits]
//! header_timeout_s = 10                # a whole request head; also how long an idle connection stays open
//! body_idle_timeout_s = 5              # longest gap between two pieces of a request body
//! body_timeout_s = 30                  # a whole request body
//! max_concurrent_per_identity = 256    # default: a quarter of server.max_concurrent_requests
//! max_unauthenticated_per_source = 256 # open connections from one IP address not yet authenticated
//!
//! [limits.rate]                        # every MCP request of one identity (a token bucket)
//! per_minute = 600
//! burst = 100                          # default: per_minute
//!
//! [limits.tools.query]                 # every `tools/call` of `query`, per identity and upstream
//! per_minute = 30
//! burst = 5
//! ```
//! Without `[limits.rate]` and `[limits.tools.*]` there are no rate limits; the
//! timeouts and concurrency caps always apply, with the defaults above.

use super::Validator;
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    header_timeout_s: Option<u64>,
    body_idle_timeout_s: Option<u64>,
    body_timeout_s: Option<u64>,
    max_concurrent_per_identity: Option<usize>,
    max_unauthenticated_per_source: Option<usize>,
    rate: Option<RawRate>,
    #[serde(default)]
    tools: BTreeMap<String, RawRate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_minute: u32,
    burst: Option<u32>,
}

const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
const DEFAULT_BODY_IDLE_TIMEOUT_S: u64 = 5;
const DEFAULT_BODY_TIMEOUT_S: u64 = 30;
const DEFAULT_UNAUTHENTICATED_PER_SOURCE: usize = 256;

/// Validated `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Time to receive a whole request head, and the longest an idle keep-alive
    /// connection stays open (the connection is closed after it).
    pub header_timeout: Duration,
    /// Longest gap between two pieces of a request body (answered 408 after it).
    pub body_idle_timeout: Duration,
    /// Time to receive a whole request body (answered 408 after it).
    pub body_timeout: Duration,
    /// MCP requests one identity may have in progress at once (429 past it).
    pub max_concurrent_per_identity: usize,
    /// Open connections from one IP address that have not yet carried an
    /// authenticated request; past it new connections are closed at once.
    pub max_unauthenticated_per_source: usize,
    /// Every MCP request of one identity (`[limits.rate]`); `None`: unlimited.
    pub rate: Option<RateLimit>,
    /// `tools/call` of a tool, per identity and upstream (`[limits.tools.NAME]`).
    pub tools: BTreeMap<String, RateLimit>,
}

impl LimitsConfig {
    /// The defaults, for a proxy whose `server.max_concurrent_requests` is `global`.
    pub fn defaults(global: usize) -> Self {
        Self {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_S),
            body_idle_timeout: Duration::from_secs(DEFAULT_BODY_IDLE_TIMEOUT_S),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_S),
            max_concurrent_per_identity: default_per_identity(global),
            max_unauthenticated_per_source: DEFAULT_UNAUTHENTICATED_PER_SOURCE,
            rate: None,
            tools: BTreeMap::new(),
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub per_minute: NonZeroU32,
    /// Requests that may come at once after a quiet spell.
    pub burst: NonZeroU32,
}

/// A quarter of the proxy's capacity: one identity that stalls or floods holds at
/// most that, and three quarters stay for the others.
fn default_per_identity(global: usize) -> usize {
    (global / 4).max(1)
}

impl Validator<'_> {
    /// `global` is the validated `server.max_concurrent_requests`.
    pub(super) fn limits(
        &self,
        raw: RawLimits,
        global: usize,
    ) -> Result<LimitsConfig, ConfigError> {
        let defaults = LimitsConfig::defaults(global);
        let seconds = |key: &str, value: Option<u64>, default: Duration, hint: &str| match value {
            None => Ok(default),
            Some(0) => Err(self.invalid(format!("limits.{key}"), "must be above 0", hint)),
            Some(s) => Ok(Duration::from_secs(s)),
        };
        let header_timeout = seconds(
            "header_timeout_s",
            raw.header_timeout_s,
            defaults.header_timeout,
            "the default is 10",
        )?;
        let body_idle_timeout = seconds(
            "body_idle_timeout_s",
            raw.body_idle_timeout_s,
            defaults.body_idle_timeout,
            "the default is 5",
        )?;
        let body_timeout = seconds(
            "body_timeout_s",
            raw.body_timeout_s,
            defaults.body_timeout,
            "the default is 30",
        )?;
        if body_timeout < body_idle_timeout {
            return Err(self.invalid(
                "limits.body_timeout_s",
                format!(
                    "is shorter than limits.body_idle_timeout_s ({} s)",
                    body_idle_timeout.as_secs()
                ),
                "the whole body's budget must hold at least one idle gap",
            ));
        }
        Ok(LimitsConfig {
            header_timeout,
            body_idle_timeout,
            body_timeout,
            max_concurrent_per_identity: self
                .per_identity(raw.max_concurrent_per_identity, global)?
                .unwrap_or(defaults.max_concurrent_per_identity),
            max_unauthenticated_per_source: match raw.max_unauthenticated_per_source {
                Some(0) => {
                    return Err(self.invalid(
                        "limits.max_unauthenticated_per_source",
                        "must be above 0",
                        "the default is 256",
                    ))
                }
                Some(n) => n,
                None => defaults.max_unauthenticated_per_source,
            },
            rate: raw
                .rate
                .map(|rate| self.rate("limits.rate", &rate))
                .transpose()?,
            tools: self.tool_rates(raw.tools)?,
        })
    }

    fn per_identity(
        &self,
        value: Option<usize>,
        global: usize,
    ) -> Result<Option<usize>, ConfigError> {
        match value {
            Some(0) => Err(self.invalid(
                "limits.max_concurrent_per_identity",
                "must be above 0",
                "the default is a quarter of server.max_concurrent_requests",
            )),
            Some(n) if n > global => Err(self.invalid(
                "limits.max_concurrent_per_identity",
                format!("{n} is above server.max_concurrent_requests ({global})"),
                "one identity must not be able to take the whole proxy; lower it or raise the global limit",
            )),
            other => Ok(other),
        }
    }

    fn tool_rates(
        &self,
        raw: BTreeMap<String, RawRate>,
    ) -> Result<BTreeMap<String, RateLimit>, ConfigError> {
        let mut tools = BTreeMap::new();
        for (name, rate) in raw {
            if name.trim().is_empty() {
                return Err(self.invalid(
                    "limits.tools",
                    "has a table with an empty tool name",
                    "name the tool as the server lists it, e.g. [limits.tools.query]",
                ));
            }
            let limit = self.rate(&format!("limits.tools.{name}"), &rate)?;
            tools.insert(name, limit);
        }
        Ok(tools)
    }

    fn rate(&self, key: &str, raw: &RawRate) -> Result<RateLimit, ConfigError> {
        let Some(per_minute) = NonZeroU32::new(raw.per_minute) else {
            return Err(self.invalid(
                format!("{key}.per_minute"),
                "must be above 0",
                "to forbid a tool, deny it in the policy; to lift the limit, remove the table",
            ));
        };
        let burst = match raw.burst {
            None => per_minute,
            Some(burst) => NonZeroU32::new(burst).ok_or_else(|| {
                self.invalid(
                    format!("{key}.burst"),
                    "must be above 0",
                    "leave it out to allow a minute's worth at once",
                )
            })?,
        };
        Ok(RateLimit { per_minute, burst })
    }
}
