use super::*;
use std::collections::BTreeMap;
use std::num::NonZeroU32;

fn rate(per_minute: u32, burst: u32) -> RateLimit {
    RateLimit {
        per_minute: NonZeroU32::new(per_minute).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
    }
}

fn limiter(per_identity: usize, identity_rate: Option<RateLimit>) -> Limiter {
    let mut config = LimitsConfig::defaults(1024);
    config.max_concurrent_per_identity = per_identity;
    config.max_unauthenticated_per_source = 2;
    config.rate = identity_rate;
    config.tools = BTreeMap::from([("query".to_owned(), rate(60, 1))]);
    Limiter::new(&config)
}

fn refused_by(result: Result<impl std::fmt::Debug, ProxyError>) -> Limit {
    match result {
        Err(ProxyError::Limited { limit, .. }) => limit,
        other => panic!("expected a 429, got {other:?}"),
    }
}

#[test]
fn an_identity_at_its_cap_is_refused_and_another_is_not() {
    let limiter = limiter(2, None);
    let first = limiter.admit("flooder").unwrap();
    let second = limiter.admit("flooder").unwrap();
    assert_eq!(
        first.budgets.concurrent,
        ConcurrencyInput {
            limit: 2,
            in_use: 1
        }
    );
    assert_eq!(second.budgets.concurrent.in_use, 2);
    assert_eq!(
        refused_by(limiter.admit("flooder")),
        Limit::IdentityConcurrency
    );
    assert!(limiter.admit("victim").is_ok());
    drop(first);
    assert!(
        limiter.admit("flooder").is_ok(),
        "a finished request frees its slot"
    );
}

#[test]
fn the_rate_refuses_past_the_burst_and_says_when_to_retry() {
    let limiter = limiter(1, Some(rate(60, 2)));
    let admitted = limiter.admit("a").unwrap();
    assert_eq!(
        admitted.budgets.rate,
        Some(RateInput {
            per_minute: 60,
            burst: 2,
            remaining: 1
        })
    );
    // Refused by concurrency: no token is spent.
    assert_eq!(refused_by(limiter.admit("a")), Limit::IdentityConcurrency);
    drop(admitted);
    assert_eq!(
        limiter.admit("a").unwrap().budgets.rate.unwrap().remaining,
        0
    );
    match limiter.admit("a") {
        Err(error @ ProxyError::Limited { .. }) => {
            assert_eq!(error.retry_after_s(), Some(1));
            let text = error.to_string();
            assert!(
                text.contains("limits.rate") && text.contains("retry after 1 s"),
                "{text}"
            );
        }
        other => panic!("expected a rate refusal, got {other:?}"),
    }
    assert!(limiter.admit("b").is_ok(), "b has its own bucket");
}

#[test]
fn a_tool_limit_counts_per_identity_and_upstream() {
    let limiter = limiter(8, None);
    assert_eq!(limiter.admit_tool("a", "db", "execute").unwrap(), None);
    assert_eq!(
        limiter
            .admit_tool("a", "db", "query")
            .unwrap()
            .unwrap()
            .remaining,
        0
    );
    assert_eq!(
        refused_by(limiter.admit_tool("a", "db", "query")),
        Limit::ToolRate
    );
    assert!(limiter.admit_tool("b", "db", "query").unwrap().is_some());
    assert!(limiter.admit_tool("a", "other", "query").unwrap().is_some());
}

#[test]
fn unauthenticated_connections_are_capped_per_address_until_they_authenticate() {
    let limiter = limiter(8, None);
    let attacker: IpAddr = "10.0.0.9".parse().unwrap();
    let first = limiter.connection(attacker).unwrap();
    let _second = limiter.connection(attacker).unwrap();
    assert!(limiter.connection(attacker).is_none());
    // The same address written as IPv4-mapped IPv6 is the same source.
    assert!(limiter
        .connection("::ffff:10.0.0.9".parse().unwrap())
        .is_none());
    assert!(limiter.connection("10.0.0.10".parse().unwrap()).is_some());
    first.authenticated();
    assert!(limiter.connection(attacker).is_some());
}
