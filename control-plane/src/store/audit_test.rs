//! Unit tests of the audit log store.
use super::*;

fn event(id: &str) -> AuditEvent {
    AuditEvent {
        event_id: id.to_owned(),
        payload_json: format!("{{\"id\":\"{id}\"}}"),
        ..AuditEvent::default()
    }
}

#[test]
fn resent_events_are_stored_once_and_the_chain_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    {
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open(&db, &path).unwrap();
        let first = log
            .append(vec![event("a"), event("b"), event("a")], 1)
            .unwrap();
        assert_eq!((first.stored, first.duplicates, first.last_seq), (2, 1, 2));
        let again = log.append(vec![event("b"), event("c")], 2).unwrap();
        assert_eq!((again.stored, again.duplicates, again.last_seq), (1, 1, 3));
    }
    let db = sled::open(dir.path()).unwrap();
    let log = AuditLog::open(&db, &path).unwrap();
    assert_eq!(log.head().unwrap().0, 3);
    let records = log.records_after(0, 10).unwrap();
    assert_eq!(records[0].prev_hash, GENESIS_HASH.to_vec());
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(record_hash(&pair[1]), pair[1].hash);
    }
    let next = log.append(vec![event("d")], 3).unwrap();
    assert_eq!(next.last_seq, 4);
    assert_eq!(
        log.records_after(3, 10).unwrap()[0].prev_hash,
        records[2].hash
    );
}

#[test]
fn pruning_keeps_the_newest_record_and_a_checkpoint_of_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = AuditLog::open(&db, "test").unwrap();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        log.append(vec![event(id)], 10 + i as u64).unwrap();
    }
    // Everything is old: all but the newest go.
    let pruned = log
        .prune_before(1_000, 1_000, |cp| cp.signature = vec![1])
        .unwrap();
    assert_eq!(pruned, 3);
    let cp = log.last_checkpoint().unwrap().unwrap();
    assert_eq!((cp.first_pruned_seq, cp.seq), (1, 3));
    let left = log.records_after(0, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].prev_hash, cp.hash);
    assert_eq!(log.prune_before(1_000, 1_000, |_| {}).unwrap(), 0);
    drop(log);
    // The head survives a reopen even when only the checkpoint remembers it.
    let log = AuditLog::open(&db, "test").unwrap();
    assert_eq!(log.head().unwrap().0, 4);
}

#[test]
fn records_left_unindexed_by_a_crash_are_reindexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    {
        let log = AuditLog::open(&db, "test").unwrap();
        log.append(vec![event("a"), event("b")], 1).unwrap();
    }
    // As if the process died between the records batch and the index batch.
    db.open_tree("audit_by_event_id")
        .unwrap()
        .remove("b")
        .unwrap();
    let log = AuditLog::open(&db, "test").unwrap();
    let again = log.append(vec![event("b")], 2).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 1));
}
