//! Reconnect delays: 100 ms doubling to 10 s, each jittered to 50–100 % so a
//! fleet that lost its control plane does not reconnect in lockstep.

use std::time::Duration;

/// First delay after a failure.
const FIRST: Duration = Duration::from_millis(100);
/// Longest delay between attempts.
const CAP: Duration = Duration::from_secs(10);

/// A jittered, capped exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt; doubles the one after (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(CAP);
        base.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first >= FIRST / 2 && first <= FIRST, "{first:?}");
        let mut last = first;
        for _ in 0..20 {
            last = backoff.next_delay();
            assert!(last <= CAP, "{last:?}");
        }
        assert!(last >= CAP / 2, "{last:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST);
    }
}
