//! Verification of the whole log: every record is where its sequence number says,
//! decodes, chains to the previous record's hash and hashes to what it claims; every
//! checkpoint's signature is valid and matches the record it covers; no checkpoint
//! points past the end (a cut tail). The first failure is reported by sequence
//! number.

use super::checkpoint;
use crate::api::{AuditCheckpoint, AuditRecord};
use crate::store::{record_hash, AuditLog, StoreError, GENESIS_HASH};
use ed25519_dalek::VerifyingKey;
use prost::Message;
use std::collections::BTreeMap;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The first broken sequence number and what is wrong there.
    pub broken: Option<(u64, String)>,
}

/// Walks the log and its checkpoints.
pub fn verify(log: &AuditLog, key: &VerifyingKey) -> Result<Verification, StoreError> {
    let checkpoints: BTreeMap<u64, AuditCheckpoint> =
        log.checkpoints()?.into_iter().map(|c| (c.seq, c)).collect();
    let mut report = Verification {
        checkpoints: checkpoints.len() as u64,
        ..Verification::default()
    };
    for cp in checkpoints.values() {
        if !checkpoint::verify(key, cp) {
            return Ok(broken(
                report,
                cp.seq,
                "its checkpoint's signature does not verify",
            ));
        }
    }
    let mut chain = Chain::new(&checkpoints);
    for row in log.raw_records() {
        let (seq, bytes) = row?;
        if let Err((at, problem)) = chain.check(seq, &bytes, &checkpoints) {
            return Ok(broken(report, at, &problem));
        }
        report.records += 1;
    }
    if let Some((&last_cp, _)) = checkpoints.iter().next_back() {
        if last_cp > chain.last {
            let problem = format!(
                "missing: a signed checkpoint covers records up to {last_cp}, the log ends at {}",
                chain.last
            );
            return Ok(broken(report, chain.last + 1, &problem));
        }
    }
    Ok(report)
}

fn broken(mut report: Verification, seq: u64, problem: &str) -> Verification {
    report.broken = Some((seq, problem.to_owned()));
    report
}

/// The walk's state: the next expected sequence number and the hash it chains to.
struct Chain {
    next: u64,
    prev: Vec<u8>,
    last: u64,
}

impl Chain {
    /// Starts at 1, or after the latest pruned range a signed checkpoint vouches for.
    fn new(checkpoints: &BTreeMap<u64, AuditCheckpoint>) -> Chain {
        let pruned = checkpoints.values().rev().find(|c| c.first_pruned_seq > 0);
        match pruned {
            Some(cp) => Chain {
                next: cp.seq + 1,
                prev: cp.hash.clone(),
                last: cp.seq,
            },
            None => Chain {
                next: 1,
                prev: GENESIS_HASH.to_vec(),
                last: 0,
            },
        }
    }

    fn check(
        &mut self,
        seq: u64,
        bytes: &[u8],
        checkpoints: &BTreeMap<u64, AuditCheckpoint>,
    ) -> Result<(), (u64, String)> {
        if seq != self.next {
            let problem = if seq > self.next {
                format!("missing (the next stored record is {seq})")
            } else {
                format!("a record keyed {seq} is out of place (pruned or malformed key)")
            };
            return Err((self.next, problem));
        }
        let record = AuditRecord::decode(bytes)
            .map_err(|e| (seq, format!("the stored record does not decode ({e})")))?;
        if record.seq != seq {
            return Err((
                seq,
                format!(
                    "the record stored here says it is record {} (records were moved)",
                    record.seq
                ),
            ));
        }
        if record.prev_hash != self.prev {
            return Err((
                seq,
                "its prev_hash is not the previous record's hash".to_owned(),
            ));
        }
        if record_hash(&record) != record.hash {
            return Err((
                seq,
                "its content does not match its hash (altered)".to_owned(),
            ));
        }
        if let Some(cp) = checkpoints.get(&seq) {
            if cp.hash != record.hash {
                return Err((
                    seq,
                    "its hash differs from the signed checkpoint".to_owned(),
                ));
            }
        }
        self.prev = record.hash;
        self.last = seq;
        self.next = seq + 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AuditEvent;
    use ed25519_dalek::SigningKey;

    fn log_of(n: u64) -> (tempfile::TempDir, sled::Db, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open(&db, "test").unwrap();
        for i in 1..=n {
            let event = AuditEvent {
                event_id: format!("e{i}"),
                ..AuditEvent::default()
            };
            log.append(vec![event], i).unwrap();
        }
        (dir, db, log)
    }

    #[test]
    fn a_pruned_log_verifies_from_its_signed_checkpoint_and_a_forged_one_does_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let (_dir, db, log) = log_of(6);
        assert_eq!(
            log.prune_before(4, 100, |cp| checkpoint::sign(&key, cp))
                .unwrap(),
            3
        );
        let report = verify(&log, &key.verifying_key()).unwrap();
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.records, 3);

        // A checkpoint signed with another key is refused.
        let other = SigningKey::from_bytes(&[8; 32]);
        let mut forged = log.last_checkpoint().unwrap().unwrap();
        checkpoint::sign(&other, &mut forged);
        log.put_checkpoint(&forged).unwrap();
        let report = verify(&log, &key.verifying_key()).unwrap();
        assert_eq!(report.broken.map(|b| b.0), Some(3));
        drop(db);
    }

    #[test]
    fn a_cut_tail_under_a_checkpoint_is_reported() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let (_dir, db, log) = log_of(5);
        let (seq, hash) = log.head().unwrap();
        let mut cp = AuditCheckpoint {
            seq,
            hash,
            unix_ms: 1,
            first_pruned_seq: 0,
            signature: vec![],
        };
        checkpoint::sign(&key, &mut cp);
        log.put_checkpoint(&cp).unwrap();
        db.open_tree("audit")
            .unwrap()
            .remove(5u64.to_be_bytes())
            .unwrap();
        let report = verify(&log, &key.verifying_key()).unwrap();
        assert_eq!(report.broken.map(|b| b.0), Some(5));
    }
}
