//! The reviewer page's live stream: `GET /ui/api/approvals/events` tells a signed-in
//! reviewer at once that an approval changed; without a token or with a node's it
//! is refused like the approval list.

mod support;

use airlock_control_plane::api;
use api::approval_service_client::ApprovalServiceClient;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::{authed, config, Plane, ADMIN, NODE};

/// Opens the stream with `token`; returns the reader after the response head and
/// the status line.
fn open(addr: SocketAddr, token: Option<&str>) -> (BufReader<TcpStream>, String) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        socket,
        "GET /ui/api/approvals/events HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    (reader, status)
}

/// Reads until a line contains `needle`; the lines read.
fn read_until(reader: &mut BufReader<TcpStream>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the stream ended before `{needle}`: {seen:?}");
        let found = line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_hears_of_a_new_approval_at_once_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = airlock_bundle::SigningKey::generate();
    let mut cfg = config(dir.path(), &key);
    cfg.ui_listen = Some("127.0.0.1:0".parse().unwrap());
    let plane = Plane::start_with(cfg).await;
    let ui = plane.ui_addr.expect("the page listens");

    for (token, status) in [(None, "401"), (Some(NODE), "403")] {
        let (_, line) = tokio::task::spawn_blocking(move || open(ui, token))
            .await
            .unwrap();
        assert!(line.contains(status), "{token:?}: {line}");
    }

    let watcher = tokio::task::spawn_blocking(move || {
        let (mut reader, status) = open(ui, Some(ADMIN));
        assert!(status.contains("200"), "{status}");
        read_until(&mut reader, ": connected");
        read_until(&mut reader, "apr_live_events1")
    });
    // Give the stream a moment to subscribe before the change happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let submit = api::ApprovalServiceSubmitRequest {
        approval_id: "apr_live_events1".into(),
        subject: "agent".into(),
        server: "demo".into(),
        method: "tools/call".into(),
        tool: "execute".into(),
        payload_json: r#"{"method":"tools/call","params":{"name":"execute"}}"#.into(),
        payload_sha256: airlock_policy::canonical::payload_sha256(
            r#"{"method":"tools/call","params":{"name":"execute"}}"#,
        ),
        min_approvals: 1,
        timeout_s: 60,
        ..Default::default()
    };
    ApprovalServiceClient::new(plane.channel().await)
        .submit(authed(submit, NODE))
        .await
        .unwrap();
    let lines = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the change arrives within 5 s")
        .unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("event: change")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"state\":\"pending\"")),
        "{lines:?}"
    );
}
