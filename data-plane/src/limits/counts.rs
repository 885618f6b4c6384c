//! Things in progress per key (an identity, a source address) against one cap:
//! a slot is taken with `try_take` and given back when it drops, so a request that
//! ends any way at all (answered, failed, cancelled) frees its slot.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

type Table<K> = Arc<Mutex<HashMap<K, usize>>>;

/// Per-key counts under one cap. Keys at zero are removed, so the table holds only
/// keys with something in progress.
#[derive(Debug)]
pub(crate) struct Counts<K> {
    cap: usize,
    table: Table<K>,
}

/// One unit of a key's count, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot<K: Hash + Eq> {
    table: Table<K>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            table: Arc::default(),
        }
    }

    /// The cap every key is held to.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for `key` and the key's count with it, or `None` at the cap.
    pub(crate) fn try_take(&self, key: &K) -> Option<(Slot<K>, usize)> {
        let mut table = lock(&self.table);
        let count = table.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        let in_use = *count;
        drop(table);
        Some((
            Slot {
                table: Arc::clone(&self.table),
                key: key.clone(),
            },
            in_use,
        ))
    }

    /// The count of `key` now.
    #[cfg(test)]
    pub(crate) fn in_use(&self, key: &K) -> usize {
        lock(&self.table).get(key).copied().unwrap_or(0)
    }

    /// Keys with something in progress.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        lock(&self.table).len()
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        if let Some(count) = table.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.remove(&self.key);
            }
        }
    }
}

/// The table stays consistent even if a holder panicked (every critical section is
/// a few integer operations), so a poisoned lock is taken as is.
fn lock<K>(table: &Mutex<HashMap<K, usize>>) -> MutexGuard<'_, HashMap<K, usize>> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_at_most_cap_slots_and_others_are_unaffected() {
        let counts = Counts::new(2);
        let a = "a".to_owned();
        let (first, n1) = counts.try_take(&a).unwrap();
        let (_second, n2) = counts.try_take(&a).unwrap();
        assert_eq!((n1, n2), (1, 2));
        assert!(counts.try_take(&a).is_none(), "the third slot of `a`");
        assert!(
            counts.try_take(&"b".to_owned()).is_some(),
            "`b` has its own"
        );
        drop(first);
        assert_eq!(counts.in_use(&a), 1);
        assert!(
            counts.try_take(&a).is_some(),
            "a dropped slot is given back"
        );
    }

    #[test]
    fn keys_at_zero_leave_the_table() {
        let counts = Counts::new(4);
        let slots: Vec<_> = (0..100).filter_map(|i| counts.try_take(&i)).collect();
        assert_eq!(counts.keys(), 100);
        drop(slots);
        assert_eq!(counts.keys(), 0);
    }
}
