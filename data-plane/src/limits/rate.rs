//! Token buckets per key (`governor`'s GCRA): `burst` requests at once, refilled
//! at `per_minute`. Keys whose bucket is full again are forgotten by `forget_idle`,
//! so the table holds only keys seen within the last refill time.

use crate::config::RateLimit;
use airlock_policy::RateInput;
use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::hash::Hash;
use std::time::Duration;

/// One quota, one bucket per key.
pub(crate) struct Bucket<K: Hash + Eq + Clone> {
    limit: RateLimit,
    limiter: DefaultKeyedRateLimiter<K, StateInformationMiddleware>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Bucket<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("limit", &self.limit)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let quota = Quota::per_minute(limit.per_minute).allow_burst(limit.burst);
        Self {
            limit,
            limiter: DefaultKeyedRateLimiter::keyed(quota).with_middleware(),
        }
    }

    /// The limit, for messages.
    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token for `key`: the bucket's state after it, or how long until one
    /// is there.
    pub(crate) fn take(&self, key: &K) -> Result<RateInput, Duration> {
        match self.limiter.check_key(key) {
            Ok(state) => Ok(RateInput {
                per_minute: u64::from(self.limit.per_minute.get()),
                burst: u64::from(self.limit.burst.get()),
                remaining: u64::from(state.remaining_burst_capacity()),
            }),
            Err(not_until) => Err(not_until.wait_time_from(self.limiter.clock().now())),
        }
    }

    /// Drops the buckets that are full again (their keys would start afresh anyway).
    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys with a bucket.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn limit(per_minute: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_minute: NonZeroU32::new(per_minute).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    #[test]
    fn a_burst_passes_then_the_next_waits_about_one_refill() {
        let bucket = Bucket::new(limit(60, 3));
        let key = "ci-bot".to_owned();
        let remaining: Vec<u64> = (0..3)
            .map(|_| bucket.take(&key).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let wait = bucket.take(&key).unwrap_err();
        // 60 per minute: one token a second.
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(bucket.take(&"other".to_owned()).unwrap().remaining, 2);
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let bucket = Bucket::new(limit(6000, 1));
        for i in 0..50 {
            bucket.take(&i).unwrap();
        }
        assert_eq!(bucket.keys(), 50);
        // 6000 a minute refills one token in 10 ms.
        std::thread::sleep(Duration::from_millis(30));
        bucket.forget_idle();
        assert_eq!(bucket.keys(), 0);
    }
}
