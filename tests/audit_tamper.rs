//! `airlock audit verify` against a tampered log: the test appends events through
//! `AuditService.Append`, stops the control plane, edits its sled database directly
//! (flip a byte, delete a record, swap two), restarts it and expects verify to fail
//! naming the sequence number.

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
    // checkpoint_every = 10 in the test config: one signed checkpoint per 10 records.
    assert!(
        out.contains("ok: 30 records") && out.contains("3 signed checkpoints"),
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
