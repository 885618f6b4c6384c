//! Start-up against logs a crash or an attacker left behind.

use super::*;
use crate::api::{AuditEvent, AuditRecord};
use crate::store::record_hash;
use ed25519_dalek::SigningKey;
use prost::Message as _;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(key(), "test/startup").unwrap()
}

fn open(db: &sled::Db) -> AuditLog {
    let log = AuditLog::open(db, "test").unwrap();
    reconcile(&log, &signer(), &key().verifying_key()).unwrap();
    log
}

fn append(log: &AuditLog, ids: &[&str]) {
    let events = ids
        .iter()
        .map(|id| AuditEvent {
            event_id: (*id).to_owned(),
            ..AuditEvent::default()
        })
        .collect();
    let s = signer();
    for outcome in log.append_many(vec![events], 1, |size, root| {
        s.sign(size, root).map_err(|e| e.to_string())
    }) {
        outcome.unwrap();
    }
}

fn refused(db: &sled::Db) -> (u64, String) {
    let log = AuditLog::open(db, "test").unwrap();
    match reconcile(&log, &signer(), &key().verifying_key()) {
        Err(ControlPlaneError::AuditMismatch {
            first_bad_seq,
            problem,
        }) => (first_bad_seq, problem),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_new_log_gets_the_empty_tree_and_a_clean_restart_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = open(&db);
    assert_eq!(log.newest_checkpoint().unwrap().size(), 0);
    append(&log, &["a", "b", "c"]);
    drop(log);
    let log = open(&db);
    assert_eq!(log.newest_checkpoint().unwrap().size(), 3);
}

#[test]
fn the_last_record_edited_with_its_chain_recomputed_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = open(&db);
    append(&log, &["a", "b"]);
    append(&log, &["c", "d"]);
    drop(log);
    let records = db.open_tree("audit").unwrap();
    let mut last =
        AuditRecord::decode(&records.get(4u64.to_be_bytes()).unwrap().unwrap()[..]).unwrap();
    last.event.as_mut().unwrap().payload_json = "{\"forged\":true}".into();
    last.hash = record_hash(&last);
    records
        .insert(4u64.to_be_bytes(), last.encode_to_vec())
        .unwrap();
    let (seq, problem) = refused(&db);
    assert_eq!(seq, 4, "{problem}");
}

#[test]
fn records_past_the_newest_checkpoint_are_set_aside_and_never_signed() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = open(&db);
    append(&log, &["a", "b"]);
    append(&log, &["c", "d"]);
    drop(log);
    // As if the checkpoint of the second commit had never been written.
    db.open_tree("audit_checkpoints")
        .unwrap()
        .remove(4u64.to_be_bytes())
        .unwrap();
    let log = open(&db);
    assert_eq!(log.head().unwrap().0, 2);
    assert_eq!(log.set_aside_count(), 2);
    assert_eq!(log.newest_checkpoint().unwrap().size(), 2);
    // The ids of the set-aside records are free again: a resend stores them.
    append(&log, &["c", "d"]);
    assert_eq!(log.head().unwrap().0, 4);
    let report = verify::verify(&log, &signer().verifier(), &key().verifying_key()).unwrap();
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!(report.set_aside, 2);
}

#[test]
fn a_cut_log_and_a_foreign_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = open(&db);
    append(&log, &["a", "b", "c"]);
    drop(log);
    let other = CheckpointSigner::new(SigningKey::from_bytes(&[6; 32]), "test/startup").unwrap();
    let log = AuditLog::open(&db, "test").unwrap();
    assert!(matches!(
        reconcile(&log, &other, &key().verifying_key()),
        Err(ControlPlaneError::AuditMismatch {
            first_bad_seq: 3,
            ..
        })
    ));
    drop(log);
    db.open_tree("audit")
        .unwrap()
        .remove(3u64.to_be_bytes())
        .unwrap();
    let (seq, problem) = refused(&db);
    assert_eq!(seq, 3, "{problem}");
    assert!(problem.contains("missing"), "{problem}");
}
