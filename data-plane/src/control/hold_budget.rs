//! How many approval requests this node keeps open: `approvals.max_pending` for the
//! node and `approvals.max_pending_per_identity` per identity, sync and async alike.
//!
//! A sync hold keeps its slot while the call waits. An async request (the agent was
//! answered at once and will repeat the call) keeps its slot until the control plane
//! reports it decided, expired or cancelled (on the node's watch stream), or until its
//! own expiry passes, whichever comes first: so a flood of async requests cannot fill
//! the control plane behind the node's back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Which limit refused a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `approvals.max_pending`.
    Node,
    /// `approvals.max_pending_per_identity`.
    Identity,
}

/// The node's budget of open approval requests.
#[derive(Debug)]
pub(crate) struct HoldBudget {
    node: Arc<Semaphore>,
    per_identity: usize,
    identities: Mutex<HashMap<String, usize>>,
    /// Async requests, by approval id, until they end.
    parked: Mutex<HashMap<String, (HoldSlot, Instant)>>,
}

/// One open request's place in the budget; given back on drop.
#[derive(Debug)]
pub(crate) struct HoldSlot {
    _permit: OwnedSemaphorePermit,
    budget: Arc<HoldBudget>,
    subject: String,
}

impl Drop for HoldSlot {
    fn drop(&mut self) {
        let mut identities = self.budget.identities();
        if let Some(count) = identities.get_mut(&self.subject) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                identities.remove(&self.subject);
            }
        }
    }
}

impl HoldBudget {
    /// A budget of `total` requests, `per_identity` of them per identity.
    pub(crate) fn new(total: usize, per_identity: usize) -> Arc<HoldBudget> {
        Arc::new(HoldBudget {
            node: Arc::new(Semaphore::new(total)),
            per_identity,
            identities: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
        })
    }

    fn identities(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.identities
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn parked(&self) -> MutexGuard<'_, HashMap<String, (HoldSlot, Instant)>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new request of `subject`, or which limit is full.
    pub(crate) fn take(self: &Arc<Self>, subject: &str) -> Result<HoldSlot, Full> {
        self.expire_parked();
        {
            let mut identities = self.identities();
            let count = identities.entry(subject.to_owned()).or_insert(0);
            if *count >= self.per_identity {
                return Err(Full::Identity);
            }
            *count += 1;
        }
        match Arc::clone(&self.node).try_acquire_owned() {
            Ok(permit) => Ok(HoldSlot {
                _permit: permit,
                budget: Arc::clone(self),
                subject: subject.to_owned(),
            }),
            Err(_) => {
                // Give the identity's count back (no slot was made to drop).
                let mut identities = self.identities();
                if let Some(count) = identities.get_mut(subject) {
                    *count = count.saturating_sub(1);
                }
                Err(Full::Node)
            }
        }
    }

    /// Keeps `slot` for the async request `approval_id` until it ends or `until`.
    pub(crate) fn park(&self, approval_id: &str, slot: HoldSlot, until: Instant) {
        self.parked().insert(approval_id.to_owned(), (slot, until));
    }

    /// The request `approval_id` ended (decided, expired, cancelled): its slot is free.
    pub(crate) fn ended(&self, approval_id: &str) {
        let slot = self.parked().remove(approval_id);
        drop(slot);
    }

    /// Requests open now (sync and async).
    pub(crate) fn open(&self) -> usize {
        self.identities().values().sum()
    }

    fn expire_parked(&self) {
        let now = Instant::now();
        let expired: Vec<(HoldSlot, Instant)> = {
            let mut parked = self.parked();
            let ids: Vec<String> = parked
                .iter()
                .filter(|(_, (_, until))| *until <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| parked.remove(id)).collect()
        };
        drop(expired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_node_and_each_identity_are_capped_and_slots_come_back() {
        let budget = HoldBudget::new(3, 2);
        let a1 = budget.take("a").unwrap();
        let a2 = budget.take("a").unwrap();
        assert_eq!(budget.take("a").unwrap_err(), Full::Identity);
        let b1 = budget.take("b").unwrap();
        assert_eq!(budget.take("c").unwrap_err(), Full::Node);
        assert_eq!(budget.open(), 3);
        drop(a1);
        let c1 = budget.take("c").unwrap();
        assert_eq!(budget.take("a").unwrap_err(), Full::Node);
        drop((a2, b1, c1));
        assert_eq!(budget.open(), 0);
    }

    #[tokio::test]
    async fn a_parked_async_request_holds_its_slot_until_it_ends_or_expires() {
        let budget = HoldBudget::new(2, 2);
        let slot = budget.take("a").unwrap();
        budget.park("apr_1", slot, Instant::now() + Duration::from_secs(60));
        let slot = budget.take("a").unwrap();
        budget.park("apr_2", slot, Instant::now() + Duration::from_millis(10));
        assert_eq!(budget.take("a").unwrap_err(), Full::Identity);
        budget.ended("apr_1");
        let again = budget.take("a").unwrap();
        drop(again);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // apr_2 expired: taking sweeps it.
        let x = budget.take("a").unwrap();
        let y = budget.take("a").unwrap();
        assert_eq!(budget.open(), 2);
        drop((x, y));
    }
}
