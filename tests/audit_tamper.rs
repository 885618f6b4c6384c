//! A tampered log, through the binary: the test appends events through
//! `AuditService.Append`, stops the control plane, edits its sled database directly
//! and restarts it. Edits that leave the last record alone (flip a byte, delete a
//! record, swap two) are named by `airlock audit verify`; an edit with the chain
//! recomputed is refused at start-up, naming the sequence number; records behind
//! the newest checkpoint are set aside, never signed, and a checkpoint kept
//! elsewhere proves the log no longer holds them.

mod audit_support;
mod sdk_common;

use airlock_control_plane::api;
use api::audit_service_client::AuditServiceClient;
use audit_support::{PlaneFiles, NODE_TOKEN};
use std::path::Path;

fn event(n: u64) -> api::AuditEvent {
    api::AuditEvent {
        event_id: format!("tamper-test-{n:04}"),
        node_id: "proxy-1".into(),
        unix_ms: 1_700_000_000_000 + n,
        identity: "demo-agent".into(),
        server: "demo".into(),
        direction: "client_to_server".into(),
        method: "tools/call".into(),
        tool: "query".into(),
        payload_json: format!("{{\"note\":\"event number {n}\"}}"),
        verdict: "allow".into(),
        ..Default::default()
    }
}

async fn append_thirty(url: &str) {
    let mut client = AuditServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let batches: Vec<_> = (0..3u64)
        .map(|b| api::AuditServiceAppendRequest {
            batch: b + 1,
            events: (b * 10 + 1..=b * 10 + 10).map(event).collect(),
            checkpoint: String::new(),
        })
        .collect();
    let mut request = tonic::Request::new(tokio_stream::iter(batches));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {NODE_TOKEN}").parse().expect("header"),
    );
    let mut acks = client.append(request).await.expect("append").into_inner();
    let mut last = 0;
    while let Some(ack) = acks.message().await.expect("ack") {
        last = ack.last_seq;
    }
    assert_eq!(last, 30);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn tamper(data: &Path, edit: impl FnOnce(&sled::Tree)) {
    let db = sled::open(data).expect("open the stopped control plane's sled db");
    let tree = db.open_tree("audit").expect("audit tree");
    edit(&tree);
    db.flush().expect("flush");
}

/// One way of tampering with the `audit` tree.
type Edit = dyn Fn(&sled::Tree);

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_first_tampered_sequence_number() {
    let files = PlaneFiles::new();
    let pristine = files.data_dir();
    let plane = files.start("127.0.0.1:0", &pristine);
    append_thirty(&plane.url).await;
    let (code, out) = plane.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "an untouched log verifies: {out}");
    // A checkpoint per commit: the newest one signs all 30 records.
    assert!(
        out.contains("ok: 30 records") && out.contains("newest: 30 records"),
        "{out}"
    );
    drop(plane);

    let flip = |tree: &sled::Tree| {
        let mut value = tree.get(key(7)).expect("get").expect("record 7").to_vec();
        let at = value
            .windows(5)
            .position(|w| w == b"event")
            .expect("payload text");
        value[at] = b'f'; // "event" becomes "fvent": still valid UTF-8, but altered
        tree.insert(key(7), value).expect("insert");
    };
    let delete = |tree: &sled::Tree| {
        tree.remove(key(12)).expect("remove");
    };
    let swap = |tree: &sled::Tree| {
        let a = tree.get(key(20)).expect("get").expect("20");
        let b = tree.get(key(21)).expect("get").expect("21");
        tree.insert(key(20), b).expect("insert");
        tree.insert(key(21), a).expect("insert");
    };
    let cases: [(&str, Box<Edit>, &str); 3] = [
        ("flip", Box::new(flip), "sequence number 7"),
        ("delete", Box::new(delete), "sequence number 12"),
        ("swap", Box::new(swap), "sequence number 20"),
    ];
    for (name, edit, expected) in cases {
        let copy = files.dir.path().join(format!("data-{name}"));
        copy_dir(&pristine, &copy);
        tamper(&copy, |tree| edit(tree));
        let plane = files.start("127.0.0.1:0", &copy);
        let (code, out) = plane.cli(&["audit", "verify"]);
        assert_eq!(code, 1, "{name}: verify must fail: {out}");
        assert!(
            out.contains(expected),
            "{name}: expected {expected:?} in {out}"
        );
    }
}

/// Rewrites record `seq` and every record after it as an attacker without the
/// key would: the edit, then each hash and `prev_hash` recomputed.
fn rewrite_from(tree: &sled::Tree, seq: u64) {
    use prost::Message as _;
    let mut prev: Option<Vec<u8>> = None;
    for item in tree.range(key(seq)..) {
        let (k, value) = item.expect("record");
        let mut record = api::AuditRecord::decode(&value[..]).expect("decode");
        if record.seq == seq {
            let event = record.event.as_mut().expect("event");
            event.payload_json = "{\"note\":\"nothing happened here\"}".into();
        }
        if let Some(prev) = prev {
            record.prev_hash = prev;
        }
        record.hash = airlock_control_plane::store::record_hash(&record);
        prev = Some(record.hash.clone());
        tree.insert(k, record.encode_to_vec()).expect("insert");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_with_the_chain_recomputed_is_refused_at_start_up_naming_the_record() {
    let files = PlaneFiles::new();
    let data = files.data_dir();
    let plane = files.start("127.0.0.1:0", &data);
    append_thirty(&plane.url).await;
    drop(plane);
    tamper(&data, |tree| rewrite_from(tree, 25));
    let (code, out) = files.start_refused(&data);
    assert_ne!(
        code, 0,
        "the control plane must not serve an altered log: {out}"
    );
    assert!(
        out.contains("first bad sequence number 25") && out.contains("will not sign over"),
        "{out}"
    );
    assert!(out.contains("restore it from a backup"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_behind_the_newest_checkpoint_are_set_aside_and_a_saved_checkpoint_shows_it() {
    let files = PlaneFiles::new();
    let data = files.data_dir();
    let plane = files.start("127.0.0.1:0", &data);
    append_thirty(&plane.url).await;
    // A copy of the newest checkpoint kept elsewhere (as a proxy or witness would).
    let (code, out) = plane.cli(&["audit", "verify", "--output", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let saved = files.dir.path().join("saved-checkpoint");
    std::fs::write(&saved, report["checkpoint"].as_str().expect("checkpoint")).expect("save");
    drop(plane);

    // The attacker removes the newest checkpoints and rewrites the tail after the
    // one left: records 11..30 are now behind the newest checkpoint.
    let kept = {
        let db = sled::open(&data).expect("open the stopped control plane's sled db");
        let notes = db.open_tree("audit_checkpoints").expect("checkpoints");
        for item in notes.range(11u64.to_be_bytes()..).keys() {
            notes.remove(item.expect("key")).expect("remove");
        }
        rewrite_from(&db.open_tree("audit").expect("audit tree"), 12);
        db.flush().expect("flush");
        let last = notes
            .last()
            .expect("read")
            .expect("an older checkpoint is left");
        u64::from_be_bytes(last.0[..].try_into().expect("8 bytes"))
    };

    let plane = files.start("127.0.0.1:0", &data);
    let (code, out) = plane.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "what is left is consistent: {out}");
    assert!(out.contains(&format!("ok: {kept} records")), "{out}");
    assert!(
        out.contains(&format!("{} records were set aside", 30 - kept)),
        "{out}"
    );
    let rewritten = "nothing happened here";
    assert!(
        !plane
            .export()
            .iter()
            .any(|r| r.to_string().contains(rewritten)),
        "a rewritten record is still in the log"
    );
    // The saved checkpoint proves that the log lost signed records.
    let path = saved.display().to_string();
    let (code, out) = plane.cli(&["audit", "verify", "--checkpoint", &path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolled back") && out.contains(&path), "{out}");
}
