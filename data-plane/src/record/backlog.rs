//! The bounded in-memory backlog of audit events not yet acknowledged by their sink.
//!
//! Events get a local, increasing number; a sink reads batches after a number,
//! and acknowledges through a number once they are durable. Nothing leaves the
//! backlog before it is acknowledged, so a reconnect simply resends from the front.

use super::AuditEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The backlog; the lock is never held across an await.
#[derive(Debug)]
pub(crate) struct Backlog {
    state: Mutex<State>,
    capacity: usize,
    notify: Notify,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    events: VecDeque<(u64, Arc<AuditEvent>)>,
    next: u64,
}

impl Backlog {
    pub(crate) fn new(capacity: usize) -> Backlog {
        Backlog {
            state: Mutex::new(State::default()),
            capacity,
            notify: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue inconsistent (each
        // operation is a single push/pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events waiting for an acknowledgement.
    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether a new call may start (the backlog is under its capacity).
    pub(crate) fn has_room(&self) -> bool {
        self.len() < self.capacity
    }

    /// Events dropped so far (only over twice the capacity, with `on_full = "allow"`
    /// or from calls admitted before the backlog filled).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Adds an event; `false` when it was dropped because the backlog is at twice
    /// its capacity (the caller logs it: never silently).
    pub(crate) fn push(&self, event: AuditEvent) -> bool {
        {
            let mut state = self.lock();
            if state.events.len() >= self.capacity.saturating_mul(2) {
                drop(state);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            state.next += 1;
            let n = state.next;
            state.events.push_back((n, Arc::new(event)));
        }
        self.notify.notify_one();
        true
    }

    /// Up to `max` events numbered after `after`, oldest first.
    pub(crate) fn after(&self, after: u64, max: usize) -> Vec<(u64, Arc<AuditEvent>)> {
        let state = self.lock();
        let start = state.events.partition_point(|(n, _)| *n <= after);
        state.events.range(start..).take(max).cloned().collect()
    }

    /// Removes every event numbered up to `through`: they are durable.
    pub(crate) fn acknowledge(&self, through: u64) {
        let mut state = self.lock();
        while state.events.front().is_some_and(|(n, _)| *n <= through) {
            state.events.pop_front();
        }
    }

    /// Waits until an event is pushed (a push while nobody waits is remembered).
    pub(crate) async fn pushed(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> AuditEvent {
        AuditEvent {
            event_id: id.to_owned(),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn events_stay_until_acknowledged_and_resend_from_the_front() {
        let backlog = Backlog::new(2);
        assert!(backlog.push(event("a")) && backlog.push(event("b")));
        assert!(!backlog.has_room());
        let batch = backlog.after(0, 10);
        assert_eq!(batch.len(), 2);
        assert_eq!(backlog.after(batch[0].0, 10)[0].1.event_id, "b");
        backlog.acknowledge(batch[0].0);
        assert_eq!(backlog.len(), 1);
        // After a reconnect the sink starts over from 0: only the unacknowledged one.
        assert_eq!(backlog.after(0, 10)[0].1.event_id, "b");
    }

    #[test]
    fn over_twice_the_capacity_events_are_counted_as_dropped() {
        let backlog = Backlog::new(1);
        assert!(backlog.push(event("a")));
        assert!(backlog.push(event("b")));
        assert!(!backlog.push(event("c")));
        assert_eq!(backlog.dropped(), 1);
        assert_eq!(backlog.len(), 2);
    }
}
