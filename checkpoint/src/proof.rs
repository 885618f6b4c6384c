//! Merkle proofs (RFC 6962 §2.1.1 inclusion, §2.1.2 consistency) checked against
//! checkpoints.

use crate::{Checkpoint, CheckpointError};
use tlog_tiles::Hash;

/// Bytes in a tree hash.
pub const HASH_LEN: usize = 32;

/// The Merkle leaf of a record: `SHA-256(0x00 || record hash)`.
pub fn leaf_hash(record_hash: &[u8]) -> [u8; 32] {
    tlog_tiles::record_hash(record_hash).0
}

fn hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, CheckpointError> {
    proof
        .iter()
        .map(|h| {
            <[u8; HASH_LEN]>::try_from(h.as_ref())
                .map(Hash)
                .map_err(|_| {
                    CheckpointError::Malformed(format!(
                        "a proof hash of {} bytes (expected {HASH_LEN})",
                        h.as_ref().len()
                    ))
                })
        })
        .collect()
}

/// Checks that `newer` extends `held`: same log, not smaller, and `proof` is the
/// RFC 6962 consistency proof from `held.size()` to `newer.size()`. Both
/// checkpoints must already be verified.
pub fn verify_consistency(
    held: &Checkpoint,
    newer: &Checkpoint,
    proof: &[impl AsRef<[u8]>],
) -> Result<(), CheckpointError> {
    if held.origin() != newer.origin() {
        return Err(CheckpointError::WrongOrigin {
            expected: held.origin().to_owned(),
            found: newer.origin().to_owned(),
        });
    }
    if newer.size() < held.size() {
        return Err(CheckpointError::RolledBack {
            held: held.size(),
            offered: newer.size(),
        });
    }
    if held.size() == 0 {
        // Every tree extends the empty one.
        return Ok(());
    }
    let proof = hashes(proof)?;
    tlog_tiles::check_tree(
        &proof,
        newer.size(),
        Hash(*newer.root()),
        held.size(),
        Hash(*held.root()),
    )
    .map_err(|_| CheckpointError::Inconsistent {
        held: held.size(),
        offered: newer.size(),
    })
}

/// Checks that the record with `record_hash` is leaf `index` (its sequence number
/// minus one) of the tree `checkpoint` signs, by the RFC 6962 audit path `proof`.
pub fn verify_inclusion(
    checkpoint: &Checkpoint,
    index: u64,
    record_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<(), CheckpointError> {
    let not_included = CheckpointError::NotIncluded {
        index,
        size: checkpoint.size(),
    };
    if index >= checkpoint.size() {
        return Err(not_included);
    }
    let proof = hashes(proof)?;
    tlog_tiles::check_record(
        &proof,
        checkpoint.size(),
        Hash(*checkpoint.root()),
        index,
        Hash(leaf_hash(record_hash)),
    )
    .map_err(|_| not_included)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CheckpointSigner;
    use tlog_tiles::HashReader;

    /// Stored hashes in tlog order (what the control plane keeps in sled).
    #[derive(Default)]
    struct Store(Vec<Hash>);

    impl HashReader for Store {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
        }
    }

    fn tree(records: &[&str]) -> Store {
        let mut store = Store::default();
        for (n, r) in records.iter().enumerate() {
            let hashes = tlog_tiles::stored_hashes_for_record_hash(
                n as u64,
                Hash(leaf_hash(r.as_bytes())),
                &store,
            )
            .unwrap();
            store.0.extend(hashes);
        }
        store
    }

    fn checkpoint(signer: &CheckpointSigner, store: &Store, size: u64) -> Checkpoint {
        let root = tlog_tiles::tree_hash(size, store).unwrap();
        signer.sign(size, &root.0).unwrap()
    }

    #[test]
    fn a_grown_log_is_consistent_and_a_rollback_or_fork_is_not() {
        let signer =
            CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]), "t/log")
                .unwrap();
        let log: Vec<String> = (0..13).map(|i| format!("record {i}")).collect();
        let log: Vec<&str> = log.iter().map(String::as_str).collect();
        let store = tree(&log);
        let old = checkpoint(&signer, &store, 5);
        let new = checkpoint(&signer, &store, 13);
        let proof: Vec<Vec<u8>> = tlog_tiles::prove_tree(13, 5, &store)
            .unwrap()
            .iter()
            .map(|h| h.0.to_vec())
            .collect();
        verify_consistency(&old, &new, &proof).unwrap();
        verify_consistency(&old, &old, &Vec::<Vec<u8>>::new()).unwrap();
        assert_eq!(
            verify_consistency(&new, &old, &proof),
            Err(CheckpointError::RolledBack {
                held: 13,
                offered: 5
            })
        );
        // A fork: the same first 4 records, then another fifth.
        let mut forked = log.clone();
        forked[4] = "another record 4";
        let fork = tree(&forked);
        let fork_new = checkpoint(&signer, &fork, 13);
        let fork_proof: Vec<Vec<u8>> = tlog_tiles::prove_tree(13, 5, &fork)
            .unwrap()
            .iter()
            .map(|h| h.0.to_vec())
            .collect();
        assert_eq!(
            verify_consistency(&old, &fork_new, &fork_proof),
            Err(CheckpointError::Inconsistent {
                held: 5,
                offered: 13
            })
        );
        assert!(verify_consistency(&old, &new, &[vec![0u8; 3]]).is_err());
    }

    #[test]
    fn every_record_has_an_inclusion_proof_and_an_altered_one_has_none() {
        let signer =
            CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]), "t/log")
                .unwrap();
        let log: Vec<String> = (0..7).map(|i| format!("record {i}")).collect();
        let refs: Vec<&str> = log.iter().map(String::as_str).collect();
        let store = tree(&refs);
        let cp = checkpoint(&signer, &store, 7);
        for (i, record) in log.iter().enumerate() {
            let proof: Vec<Vec<u8>> = tlog_tiles::prove_record(7, i as u64, &store)
                .unwrap()
                .iter()
                .map(|h| h.0.to_vec())
                .collect();
            verify_inclusion(&cp, i as u64, record.as_bytes(), &proof).unwrap();
            assert!(verify_inclusion(&cp, i as u64, b"altered", &proof).is_err());
        }
        assert!(verify_inclusion(&cp, 7, b"x", &Vec::<Vec<u8>>::new()).is_err());
    }
}
