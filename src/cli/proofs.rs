//! `airlock audit verify [--checkpoint FILE]` and `airlock audit prove EVENT_ID`:
//! the control plane's report and proofs, checked here against signed checkpoints
//! (`airlock-checkpoint`), so a control plane that lies about its log is caught.

use super::client::{ControlPlaneClient, Output};
use airlock_checkpoint::{verify_consistency, verify_inclusion, Checkpoint, CheckpointVerifier};
use airlock_control_plane::api;
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;

/// `airlock audit verify [--checkpoint FILE]`.
pub async fn verify(
    client: &ControlPlaneClient,
    output: Output,
    saved: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let report = client
        .audit()
        .verify(client.request(api::AuditServiceVerifyRequest {})?)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    let extends = match saved {
        Some(path) => Some(check_saved(client, &report.verifier_key, path).await?),
        None => None,
    };
    let extends_ok = extends.as_ref().is_none_or(|e| e.problem.is_none());
    if output == Output::Json {
        println!(
            "{}",
            serde_json::json!({
                "ok": report.ok && extends_ok, "records": report.records, "checkpoints": report.checkpoints,
                "first_broken_seq": report.first_broken_seq, "problem": report.problem,
                "public_key": report.public_key_hex, "verifier_key": report.verifier_key,
                "checkpoint": report.checkpoint, "set_aside": report.set_aside,
                "extends": extends.as_ref().map(|e| serde_json::json!({
                    "file": e.file, "held_size": e.held_size, "log_size": e.log_size,
                    "ok": e.problem.is_none(), "problem": e.problem,
                })),
            })
        );
    } else {
        print_report(&report, extends.as_ref());
    }
    Ok(if report.ok && extends_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &api::AuditServiceVerifyResponse, extends: Option<&Extends>) {
    if report.ok {
        let size = Checkpoint::parse(&report.checkpoint).map_or(0, |c| c.size());
        println!(
            "ok: {} records chain correctly and hash into the Merkle tree; {} signed checkpoints verify (newest: {size} records; key {})",
            report.records, report.checkpoints, report.verifier_key
        );
    } else {
        println!(
            "TAMPERED: the audit log is broken at sequence number {}: {}",
            report.first_broken_seq, report.problem
        );
    }
    if report.set_aside > 0 {
        println!(
            "note: {} records were set aside at start-up: no signed checkpoint covered them (never acknowledged); see docs/audit.md",
            report.set_aside
        );
    }
    match extends {
        Some(Extends { problem: None, file, held_size, log_size }) => println!(
            "ok: the log ({log_size} records) extends the checkpoint of {held_size} records in {file}"
        ),
        Some(Extends { problem: Some(problem), file, .. }) => {
            println!("TAMPERED: the log does not extend the checkpoint in {file}: {problem}")
        }
        None => {}
    }
}

/// What `--checkpoint FILE` found.
struct Extends {
    file: String,
    held_size: u64,
    log_size: u64,
    problem: Option<String>,
}

/// Proves here that the log extends the checkpoint saved in `path`.
async fn check_saved(
    client: &ControlPlaneClient,
    key: &str,
    path: &Path,
) -> anyhow::Result<Extends> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the checkpoint file {}", path.display()))?;
    let held = Checkpoint::parse(&text)
        .with_context(|| format!("{} is not a signed checkpoint", path.display()))?;
    let mut found = Extends {
        file: path.display().to_string(),
        held_size: held.size(),
        log_size: 0,
        problem: None,
    };
    // The saved checkpoint is the anchor: the control plane's key must have signed it.
    let verifier = CheckpointVerifier::from_key(key)?;
    if let Err(e) = verifier.verify(&text) {
        found.problem = Some(format!(
            "it is not signed by the control plane's key {key}: another log, or the key was replaced ({e})"
        ));
        return Ok(found);
    }
    let request = api::AuditServiceProveRequest {
        event_id: String::new(),
        from_size: held.size(),
    };
    let answer = client
        .audit()
        .prove(client.request(request)?)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    let newest = verifier
        .verify(&answer.checkpoint)
        .context("the control plane's newest checkpoint does not verify with its own key")?;
    found.log_size = newest.size();
    if let Err(e) = verify_consistency(&held, &newest, &answer.consistency_proof) {
        found.problem = Some(e.to_string());
    }
    Ok(found)
}

/// `airlock audit prove EVENT_ID`.
pub async fn prove(
    client: &ControlPlaneClient,
    output: Output,
    event_id: &str,
) -> anyhow::Result<ExitCode> {
    let request = api::AuditServiceProveRequest {
        event_id: event_id.to_owned(),
        from_size: 0,
    };
    let answer = client
        .audit()
        .prove(client.request(request)?)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    let record = answer
        .record
        .clone()
        .context("the control plane answered without the event's record")?;
    let verifier = CheckpointVerifier::from_key(&answer.verifier_key)?;
    let checkpoint = verifier.verify(&answer.checkpoint)?;
    let recomputed = airlock_control_plane::store::record_hash(&record) == record.hash;
    let included = verify_inclusion(
        &checkpoint,
        record.seq - 1,
        &record.hash,
        &answer.inclusion_proof,
    );
    let ok = recomputed && included.is_ok();
    let proof: Vec<String> = answer.inclusion_proof.iter().map(hex::encode).collect();
    if output == Output::Json {
        println!(
            "{}",
            serde_json::json!({
                "event_id": event_id, "seq": record.seq, "leaf_index": record.seq - 1,
                "record_hash": hex::encode(&record.hash),
                "leaf_hash": hex::encode(airlock_checkpoint::leaf_hash(&record.hash)),
                "tree_size": checkpoint.size(), "inclusion_proof": proof,
                "checkpoint": answer.checkpoint, "verifier_key": answer.verifier_key,
                "verified": ok, "record": super::audit::record_json(&record),
            })
        );
    } else {
        println!(
            "event {event_id}: record {} (leaf index {}), record hash {}",
            record.seq,
            record.seq - 1,
            hex::encode(&record.hash)
        );
        println!(
            "leaf hash SHA-256(0x00 || record hash): {}",
            hex::encode(airlock_checkpoint::leaf_hash(&record.hash))
        );
        println!(
            "inclusion proof in the tree of {} records ({} hashes, from the leaf up):",
            checkpoint.size(),
            proof.len()
        );
        for hash in &proof {
            println!("  {hash}");
        }
        println!(
            "checkpoint (C2SP signed note):\n{}",
            answer.checkpoint.trim_end()
        );
        println!("verifier key: {}", answer.verifier_key);
        match (&included, recomputed) {
            (Ok(()), true) => println!(
                "verified: the record hashes to its hash, and the proof leads to the signed root"
            ),
            (Err(e), _) => println!("NOT VERIFIED: {e}"),
            (Ok(()), false) => {
                println!("NOT VERIFIED: the record does not hash to its stored hash")
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
