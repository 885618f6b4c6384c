//! Verification against logs altered in each way an attacker with the data
//! directory (but not the key) can.

use super::*;
use crate::api::AuditEvent;
use airlock_checkpoint::CheckpointSigner;
use ed25519_dalek::SigningKey;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(key(), "test/log").unwrap()
}

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_id: format!("e{i}"),
        payload_json: format!("{{\"n\":{i}}}"),
        ..AuditEvent::default()
    }
}

/// A log of `n` records, appended two per commit, each commit signed.
fn log_of(n: u64) -> (tempfile::TempDir, sled::Db, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let log = AuditLog::open(&db, "test").unwrap();
    let signer = signer();
    for pair in (1..=n).collect::<Vec<_>>().chunks(2) {
        let batch = pair.iter().map(|&i| event(i)).collect();
        for outcome in log.append_many(vec![batch], pair[0], |size, root| {
            signer.sign(size, root).map_err(|e| e.to_string())
        }) {
            outcome.unwrap();
        }
    }
    (dir, db, log)
}

fn check(log: &AuditLog) -> Verification {
    verify(log, &signer().verifier(), &key().verifying_key()).unwrap()
}

/// Rewrites record `seq` with `edit` applied, recomputing its hash and the chain
/// after it, as an attacker without the key would.
fn rewrite_chain_from(db: &sled::Db, seq: u64, edit: impl Fn(&mut AuditRecord)) {
    let tree = db.open_tree("audit").unwrap();
    let mut prev: Option<Vec<u8>> = None;
    for item in tree.range(seq.to_be_bytes()..) {
        let (key, value) = item.unwrap();
        let mut record = AuditRecord::decode(&value[..]).unwrap();
        if record.seq == seq {
            edit(&mut record);
        }
        if let Some(prev) = prev {
            record.prev_hash = prev;
        }
        record.hash = record_hash(&record);
        prev = Some(record.hash.clone());
        tree.insert(key, record.encode_to_vec()).unwrap();
    }
}

#[test]
fn an_untouched_log_verifies_with_every_checkpoint() {
    let (_dir, _db, log) = log_of(9);
    let report = check(&log);
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!((report.records, report.checkpoints), (9, 5));
}

#[test]
fn an_edited_record_with_its_chain_recomputed_is_named() {
    let (_dir, db, log) = log_of(9);
    rewrite_chain_from(&db, 6, |r| {
        r.event.as_mut().unwrap().payload_json = "{\"n\":600}".into();
    });
    let report = check(&log);
    let (seq, problem) = report.broken.unwrap();
    assert_eq!(seq, 6, "{problem}");
    assert!(problem.contains("Merkle leaf differs"), "{problem}");
}

#[test]
fn records_rewritten_with_their_tree_fail_the_signed_root() {
    let (_dir, db, log) = log_of(9);
    rewrite_chain_from(&db, 8, |r| {
        r.event.as_mut().unwrap().payload_json = "{\"n\":800}".into();
    });
    // Recompute the whole tree from the altered records, as the attacker would.
    let nodes = db.open_tree("audit_tree").unwrap();
    nodes.clear().unwrap();
    let mut frontier = Frontier::default();
    let mut array = Vec::new();
    for record in log.records_after(0, 100).unwrap() {
        for h in frontier.push(airlock_checkpoint::leaf_hash(&record.hash)) {
            array.extend_from_slice(&h);
        }
    }
    // One chunk (fewer than 256 hashes), as the store lays it out.
    nodes.insert(0u64.to_be_bytes(), array).unwrap();
    let report = check(&log);
    let (seq, problem) = report.broken.unwrap();
    // Checkpoints are signed every two records: 7..=8 is the range that broke.
    assert_eq!(seq, 7, "{problem}");
    assert!(problem.contains("signed for 8 records"), "{problem}");
}

#[test]
fn a_forged_checkpoint_and_a_cut_tail_are_reported() {
    let (_dir, db, log) = log_of(6);
    // A checkpoint of another key stored for 4 records.
    let other = CheckpointSigner::new(SigningKey::from_bytes(&[8; 32]), "test/log").unwrap();
    let forged = other.sign(4, &log.tree_root(4).unwrap()).unwrap();
    let notes = db.open_tree("audit_checkpoints").unwrap();
    let genuine = notes
        .insert(4u64.to_be_bytes(), forged.note())
        .unwrap()
        .unwrap();
    let report = check(&log);
    assert_eq!(report.broken.as_ref().map(|b| b.0), Some(4), "{report:?}");
    notes.insert(4u64.to_be_bytes(), genuine).unwrap();
    // The last record removed: the checkpoint of 6 signs more than the log holds.
    db.open_tree("audit")
        .unwrap()
        .remove(6u64.to_be_bytes())
        .unwrap();
    let report = check(&log);
    let (seq, problem) = report.broken.unwrap();
    assert_eq!(seq, 6, "{problem}");
    assert!(problem.contains("covers records up to 6"), "{problem}");
}

#[test]
fn a_pruned_log_verifies_from_its_signed_record_and_a_forged_one_does_not() {
    let (_dir, _db, log) = log_of(6);
    assert_eq!(
        log.prune_before(3, 100, |cp| checkpoint::sign(&key(), cp))
            .unwrap(),
        2
    );
    let report = check(&log);
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!(report.records, 4);

    // A pruning record signed with another key is refused.
    let other = SigningKey::from_bytes(&[8; 32]);
    let mut forged = log.last_checkpoint().unwrap().unwrap();
    checkpoint::sign(&other, &mut forged);
    log.put_checkpoint(&forged).unwrap();
    let report = check(&log);
    assert_eq!(report.broken.map(|b| b.0), Some(2));
}
