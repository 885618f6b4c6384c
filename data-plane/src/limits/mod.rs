//! Limits so that one caller cannot starve the others (`[limits]`).
//!
//! Where each applies, in the order a request meets them:
//! ```text
//! accept: source cap (connections not yet authenticated, per IP) · header timeout
//!   → authenticate → identity: a concurrency slot, then a rate token
//!   → proxy: a global permit (server.max_concurrent_requests)
//!   → body read (idle-gap and total timeouts) → decode
//!   → tool: a rate token per limited tools/call → decide (input.limits)
//! ```
//! Before authentication nothing can be charged to an identity, so what an
//! unauthenticated client holds is bounded by time (the header timeout, which also
//! closes idle connections) and by its address (the source cap; a connection leaves
//! it with its first authenticated request, so agents behind one NAT are not
//! capped once they have shown a credential). The body is read only after
//! authentication, so a stalled body always belongs to an identity, whose cap
//! bounds how much of the proxy it can hold, for at most the body timeout. The
//! global permit comes last: a request its identity's limits refuse never holds
//! one, nor does a JWT waiting for its issuer's keys.

mod counts;
mod rate;

use crate::config::{LimitsConfig, RateLimit};
use crate::error::{Limit, ProxyError};
use airlock_policy::{ConcurrencyInput, LimitsInput, RateInput};
use counts::{Counts, Slot};
use rate::Bucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often buckets that are full again are dropped.
const FORGET_EVERY: Duration = Duration::from_secs(60);
/// What a 429 for concurrency advertises: slots free as requests finish, so soon.
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

/// How long a request body may take (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeouts {
    /// Longest gap between two pieces of the body.
    pub(crate) idle: Duration,
    /// The whole body.
    pub(crate) total: Duration,
}

/// The proxy's limits, shared by every request.
#[derive(Debug)]
pub(crate) struct Limiter {
    identities: Counts<String>,
    sources: Counts<IpAddr>,
    rate: Option<Bucket<String>>,
    /// Per tool name; buckets keyed by (subject, upstream).
    tools: HashMap<String, Bucket<(String, String)>>,
    pub(crate) body: BodyTimeouts,
}

/// An admitted request's hold on its identity's budget: the concurrency slot
/// (given back on drop) and the budgets the policy sees.
#[derive(Debug)]
pub(crate) struct Admission {
    _slot: Slot<String>,
    /// `input.limits` without the tool part (added per `tools/call`).
    pub(crate) budgets: LimitsInput,
}

/// A connection's place in its source address's count of unauthenticated
/// connections, held until a request on it authenticates or it closes.
#[derive(Debug)]
pub(crate) struct PendingConnection(Mutex<Option<Slot<IpAddr>>>);

impl PendingConnection {
    /// A request on this connection authenticated: it no longer counts.
    pub(crate) fn authenticated(&self) {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(slot);
    }
}

impl Limiter {
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        Self {
            identities: Counts::new(config.max_concurrent_per_identity),
            sources: Counts::new(config.max_unauthenticated_per_source),
            rate: config.rate.map(Bucket::new),
            tools: config
                .tools
                .iter()
                .map(|(name, limit)| (name.clone(), Bucket::new(*limit)))
                .collect(),
            body: BodyTimeouts {
                idle: config.body_idle_timeout,
                total: config.body_timeout,
            },
        }
    }

    /// A new connection from `peer`, or `None` when that address already has
    /// `limits.max_unauthenticated_per_source` connections without a credential.
    pub(crate) fn connection(&self, peer: IpAddr) -> Option<PendingConnection> {
        let (slot, _) = self.sources.try_take(&peer.to_canonical())?;
        Some(PendingConnection(Mutex::new(Some(slot))))
    }

    /// After authentication: a slot among the identity's requests in progress,
    /// then a token from its rate bucket (no token is spent on a request the
    /// concurrency cap refuses).
    pub(crate) fn admit(&self, subject: &str) -> Result<Admission, ProxyError> {
        let key = subject.to_owned();
        let Some((slot, in_use)) = self.identities.try_take(&key) else {
            return Err(ProxyError::Limited {
                limit: Limit::IdentityConcurrency,
                message: format!(
                    "this identity already has {} requests in progress, the most limits.max_concurrent_per_identity allows; retry when one has finished",
                    self.identities.cap()
                ),
                retry_after: CONCURRENCY_RETRY,
            });
        };
        let rate = match &self.rate {
            None => None,
            Some(bucket) => Some(bucket.take(&key).map_err(|wait| {
                over_rate(
                    Limit::IdentityRate,
                    format!(
                        "this identity is over its request rate ({}, limits.rate)",
                        describe(bucket.limit())
                    ),
                    wait,
                )
            })?),
        };
        Ok(Admission {
            _slot: slot,
            budgets: LimitsInput {
                concurrent: ConcurrencyInput {
                    limit: self.identities.cap() as u64,
                    in_use: in_use as u64,
                },
                rate,
                tool: None,
            },
        })
    }

    /// A `tools/call` of `tool` on `server`: a token from the tool's bucket for
    /// this identity; `None` when the tool has no limit.
    pub(crate) fn admit_tool(
        &self,
        subject: &str,
        server: &str,
        tool: &str,
    ) -> Result<Option<RateInput>, ProxyError> {
        let Some(bucket) = self.tools.get(tool) else {
            return Ok(None);
        };
        let key = (subject.to_owned(), server.to_owned());
        bucket.take(&key).map(Some).map_err(|wait| {
            over_rate(
                Limit::ToolRate,
                format!(
                    "this identity is over the rate of tool `{}` ({}, limits.tools)",
                    tool.chars().take(64).collect::<String>(),
                    describe(bucket.limit())
                ),
                wait,
            )
        })
    }

    /// Drops, once a minute while the proxy lives, the rate buckets that are full
    /// again, so that many identities seen once do not stay in memory.
    pub(crate) fn forget_idle_buckets(limiter: &Arc<Limiter>) {
        if limiter.rate.is_none() && limiter.tools.is_empty() {
            return;
        }
        let weak = Arc::downgrade(limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                if let Some(bucket) = &limiter.rate {
                    bucket.forget_idle();
                }
                limiter.tools.values().for_each(Bucket::forget_idle);
            }
        });
    }
}

fn describe(limit: RateLimit) -> String {
    format!("{} per minute, burst {}", limit.per_minute, limit.burst)
}

fn over_rate(limit: Limit, what: String, wait: Duration) -> ProxyError {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    ProxyError::Limited {
        limit,
        message: format!("{what}; retry after {seconds} s"),
        retry_after: wait,
    }
}

#[cfg(test)]
#[path = "limits_test.rs"]
mod tests;
