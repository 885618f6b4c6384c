//! `airlock audit prove EVENT_ID` checked by a verifier written here from the
//! specifications alone, sharing no code with Airlock's: RFC 9162 §2.1.3.2 for the
//! audit path (iterative, where Airlock's crate recurses), C2SP signed-note for the
//! signature and key id, C2SP tlog-checkpoint for the body. It must accept what
//! `prove` prints and reject it once altered.

mod audit_support;
mod sdk_common;

use airlock_control_plane::api;
use audit_support::{append_direct, PlaneFiles, ADMIN_TOKEN};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use ed25519_dalek::Verifier as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 9162 §2.1.3.2: the root the audit path of leaf `index` leads to.
fn root_from_path(index: u64, size: u64, leaf: [u8; 32], path: &[[u8; 32]]) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = sha256(&[&[1], p, &r]);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = sha256(&[&[1], &r, p]);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// A C2SP signed note verified with a `name+id+base64(0x01 || key)` verifier
/// key; returns the checkpoint's (size, root).
fn verify_checkpoint(note: &str, vkey: &str) -> Option<(u64, [u8; 32])> {
    let (text, signatures) = note.split_once("\n\n")?;
    let message = format!("{text}\n");
    let mut parts = vkey.splitn(3, '+');
    let (name, id_hex, key) = (parts.next()?, parts.next()?, parts.next()?);
    let key = BASE64_STANDARD.decode(key).ok()?;
    if key.len() != 33 || key[0] != 1 {
        return None;
    }
    let id = sha256(&[name.as_bytes(), b"\n", &key]);
    if hex::encode(&id[..4]) != id_hex {
        return None;
    }
    let public = ed25519_dalek::VerifyingKey::from_bytes(key[1..].try_into().ok()?).ok()?;
    let signed = signatures.lines().any(|line| {
        let Some((who, sig)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|l| l.split_once(' '))
        else {
            return false;
        };
        let sig = BASE64_STANDARD.decode(sig).unwrap_or_default();
        who == name
            && sig.len() == 68
            && sig[..4] == id[..4]
            && ed25519_dalek::Signature::from_slice(&sig[4..])
                .is_ok_and(|s| public.verify(message.as_bytes(), &s).is_ok())
    });
    let mut lines = text.lines();
    let origin = lines.next()?;
    let size = lines.next()?.parse().ok()?;
    let root: [u8; 32] = BASE64_STANDARD
        .decode(lines.next()?)
        .ok()?
        .try_into()
        .ok()?;
    (signed && origin == name).then_some((size, root))
}

/// The whole check of one `prove --output json` answer.
fn independently_verified(proof: &Value) -> bool {
    let hash = |v: &Value| -> Option<[u8; 32]> { hex::decode(v.as_str()?).ok()?.try_into().ok() };
    let Some((size, root)) = verify_checkpoint(
        proof["checkpoint"].as_str().unwrap_or_default(),
        proof["verifier_key"].as_str().unwrap_or_default(),
    ) else {
        return false;
    };
    let Some(record_hash) = hash(&proof["record_hash"]) else {
        return false;
    };
    let path: Option<Vec<[u8; 32]>> = proof["inclusion_proof"]
        .as_array()
        .map(|a| a.iter().filter_map(hash).collect());
    let index = proof["leaf_index"].as_u64().unwrap_or(u64::MAX);
    let leaf = sha256(&[&[0], &record_hash]);
    path.and_then(|p| root_from_path(index, size, leaf, &p)) == Some(root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_inclusion_proof_verifies_offline_with_an_independent_verifier() {
    let files = PlaneFiles::new();
    let plane = files.start("127.0.0.1:0", &files.data_dir());
    assert_eq!(append_direct(&plane.url, "first", 7).await, 7);
    assert_eq!(append_direct(&plane.url, "second", 6).await, 13);
    for (event, seq) in [("first-1", 1), ("first-6", 6), ("second-6", 13)] {
        let (code, out) = plane.cli(&["audit", "prove", event, "--output", "json"]);
        assert_eq!(code, 0, "{out}");
        let proof: Value = serde_json::from_str(out.trim()).expect("prove json");
        assert_eq!(proof["seq"], seq, "{proof}");
        assert!(independently_verified(&proof), "{event}: {proof}");

        // The record printed is the one hashed: its canonical encoding, fetched
        // over gRPC, hashes to `record_hash`.
        let record = fetch(&plane.url, seq).await;
        assert_eq!(
            hex::encode(&record.hash),
            proof["record_hash"].as_str().unwrap()
        );
        let mut unhashed = record.clone();
        unhashed.hash.clear();
        let encoded = prost::Message::encode_to_vec(&unhashed);
        assert_eq!(sha256(&[&encoded]).to_vec(), record.hash);

        // Altered, it no longer verifies: a proof hash, the leaf, the signed size.
        let mut bad = proof.clone();
        if let Some(first) = bad["inclusion_proof"].get_mut(0) {
            *first = Value::String("00".repeat(32));
            assert!(!independently_verified(&bad), "{bad}");
        }
        let mut bad = proof.clone();
        bad["record_hash"] = Value::String("11".repeat(32));
        assert!(!independently_verified(&bad));
        let mut bad = proof.clone();
        let note = proof["checkpoint"].as_str().unwrap();
        bad["checkpoint"] = Value::String(note.replacen("\n13\n", "\n14\n", 1));
        assert!(!independently_verified(&bad));
    }
    let (code, out) = plane.cli(&["audit", "prove", "no-such-event"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no event"), "{out}");
}

async fn fetch(url: &str, seq: u64) -> api::AuditRecord {
    let mut client = api::audit_service_client::AuditServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let mut request = tonic::Request::new(api::AuditServiceQueryRequest {
        after_seq: seq - 1,
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    let mut stream = client.query(request).await.expect("query").into_inner();
    stream
        .message()
        .await
        .expect("message")
        .and_then(|m| m.record)
        .expect("the record")
}
