//! The keeper against a control plane that grows, rolls back, forks or changes
//! key, with proofs computed by `tlog_tiles` (the control plane's code path).

use super::*;
use crate::control::ControlPlaneConfig;
use airlock_checkpoint::CheckpointSigner;
use tlog_tiles::{Hash, HashReader};

/// An in-memory log: stored hashes in tlog order.
#[derive(Default, Clone)]
struct Log(Vec<Hash>, u64);

impl HashReader for Log {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

impl Log {
    fn grow(&mut self, records: &[&str]) {
        for r in records {
            let leaf = Hash(airlock_checkpoint::leaf_hash(r.as_bytes()));
            let hashes = tlog_tiles::stored_hashes_for_record_hash(self.1, leaf, self).unwrap();
            self.0.extend(hashes);
            self.1 += 1;
        }
    }

    /// The acknowledgement a control plane with this log sends to a node holding
    /// a checkpoint of `from` records.
    fn ack(&self, signer: &CheckpointSigner, from: u64) -> AuditServiceAppendResponse {
        let root = tlog_tiles::tree_hash(self.1, self).unwrap();
        let proof = if from > 0 && from < self.1 {
            tlog_tiles::prove_tree(self.1, from, self).unwrap()
        } else {
            Vec::new()
        };
        AuditServiceAppendResponse {
            checkpoint: signer.sign(self.1, &root.0).unwrap().note().to_owned(),
            consistency_from: from,
            consistency_proof: proof.iter().map(|h| h.0.to_vec()).collect(),
            verifier_key: signer.verifier().key().to_owned(),
            ..Default::default()
        }
    }
}

fn signer(seed: u8) -> CheckpointSigner {
    CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]), "t/log").unwrap()
}

fn link(file: Option<PathBuf>) -> ControlPlaneLink {
    ControlPlaneLink::new(&ControlPlaneConfig {
        url: "http://127.0.0.1:9".into(),
        token: "t".into(),
        ca_cert: None,
        node_id: "unit".into(),
        bundle_keys: vec![],
        bundle_cache_dir: None,
        checkpoint_file: file,
        heartbeat: std::time::Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn a_growing_log_is_accepted_and_remembered_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache").join(CHECKPOINT_FILE);
    let keeper = CheckpointKeeper::start(link(Some(file.clone()))).unwrap();
    let (key, mut log) = (signer(1), Log::default());
    log.grow(&["a", "b", "c"]);
    keeper.accept(&log.ack(&key, 0)).unwrap();
    log.grow(&["d", "e"]);
    keeper.accept(&log.ack(&key, 3)).unwrap();
    assert_eq!(keeper.link.audit_status().trust, AuditTrust::Verified);
    assert_eq!(keeper.link.audit_status().checkpoint_size, 5);
    // The file follows (written off the shipping path).
    for _ in 0..200 {
        if std::fs::read_to_string(&file).is_ok_and(|t| t.lines().nth(1) == Some("5")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let again = CheckpointKeeper::start(link(Some(file))).unwrap();
    assert_eq!(again.held_note(), keeper.held_note());
    assert_eq!(again.link.audit_status().checkpoint_size, 5);
    // After the restart the held checkpoint still anchors: a rolled-back log fails.
    let mut old = Log::default();
    old.grow(&["a", "b", "c"]);
    let problem = again.accept(&old.ack(&key, 5)).unwrap_err();
    assert!(problem.contains("rolled back"), "{problem}");
    assert_eq!(again.link.audit_status().trust, AuditTrust::Refused);
}

#[tokio::test]
async fn a_fork_another_key_and_an_old_control_plane_are_refused() {
    let keeper = CheckpointKeeper::start(link(None)).unwrap();
    let (key, mut log) = (signer(1), Log::default());
    log.grow(&["a", "b", "c"]);
    keeper.accept(&log.ack(&key, 0)).unwrap();
    // The same first two records, then another third, and more.
    let mut fork = Log::default();
    fork.grow(&["a", "b", "forged", "d"]);
    let problem = keeper.accept(&fork.ack(&key, 3)).unwrap_err();
    assert!(problem.contains("does not extend"), "{problem}");
    // Signed by another key, even over the genuine log.
    log.grow(&["d"]);
    let problem = keeper.accept(&log.ack(&signer(2), 3)).unwrap_err();
    assert!(problem.contains("key changed"), "{problem}");
    let problem = keeper
        .accept(&AuditServiceAppendResponse::default())
        .unwrap_err();
    assert!(problem.contains("upgrade it"), "{problem}");
    // The genuine log is still accepted: the held checkpoint did not move.
    keeper.accept(&log.ack(&key, 3)).unwrap();
}

#[tokio::test]
async fn a_held_checkpoint_of_another_key_refuses_the_first_log_met() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CHECKPOINT_FILE);
    let mut log = Log::default();
    log.grow(&["a"]);
    let other = log.ack(&signer(9), 0).checkpoint;
    std::fs::write(&file, other).unwrap();
    let keeper = CheckpointKeeper::start(link(Some(file.clone()))).unwrap();
    let problem = keeper.accept(&log.ack(&signer(1), 1)).unwrap_err();
    assert!(
        problem.contains("was not signed by the control plane's key"),
        "{problem}"
    );
    std::fs::write(&file, "garbage").unwrap();
    assert!(CheckpointKeeper::start(link(Some(file))).is_err());
}
