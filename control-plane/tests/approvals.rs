//! `ApprovalService` over gRPC on a real control plane: what a node may submit, see
//! and use. Grants are bound to payload, identity and server, used once, and only by
//! the node that asked; submissions are idempotent and checked.

mod support;

use airlock_control_plane::api::approval_service_client::ApprovalServiceClient;
use airlock_control_plane::api::{self, ApprovalState, ApprovalVerdict};
use airlock_control_plane::{Role, TokenEntry};
use airlock_policy::canonical::{canonical_payload, payload_sha256};
use serde_json::json;
use support::{authed, config, http_get, sample, scrape, Plane};
use tonic::transport::Channel;

const NODE_A: &str = "tok-node-a";
const NODE_B: &str = "tok-node-b";
const DBA: &str = "tok-dba";

async fn plane(dir: &std::path::Path) -> Plane {
    plane_with_metrics(dir, None).await
}

async fn plane_with_metrics(dir: &std::path::Path, metrics: Option<std::net::SocketAddr>) -> Plane {
    let key = airlock_bundle::SigningKey::generate();
    let mut config = config(dir, &key);
    config.metrics_listen = metrics;
    config.tokens.extend([
        TokenEntry::from_plain("node-a", NODE_A, &[Role::Node]),
        TokenEntry::from_plain("node-b", NODE_B, &[Role::Node]),
        TokenEntry::from_plain("dana", DBA, &[Role::Reviewer]).with_groups(&["dba"]),
    ]);
    Plane::start_with(config).await
}

fn submission(id: &str, sql: &str, mode: api::ApprovalMode) -> api::ApprovalServiceSubmitRequest {
    let payload = canonical_payload(
        "tools/call",
        &json!({"name": "execute", "arguments": {"sql": sql}}),
    );
    api::ApprovalServiceSubmitRequest {
        approval_id: id.into(),
        subject: "agent-7".into(),
        server: "warehouse".into(),
        node_id: "n".into(),
        method: "tools/call".into(),
        tool: "execute".into(),
        payload_sha256: payload_sha256(&payload),
        payload_json: payload,
        reasons: vec!["sql.write_on_prod".into()],
        reviewer_groups: vec!["dba".into()],
        min_approvals: 1,
        timeout_s: 60,
        mode: mode as i32,
        ..Default::default()
    }
}

fn consume(id: &str, s: &api::ApprovalServiceSubmitRequest) -> api::ApprovalServiceConsumeRequest {
    api::ApprovalServiceConsumeRequest {
        approval_id: id.into(),
        payload_sha256: s.payload_sha256.clone(),
        subject: s.subject.clone(),
        server: s.server.clone(),
    }
}

async fn approve(client: &mut ApprovalServiceClient<Channel>, id: &str) {
    let decide = api::ApprovalServiceDecideRequest {
        approval_id: id.into(),
        verdict: ApprovalVerdict::Approve as i32,
        reason: String::new(),
    };
    client.decide(authed(decide, DBA)).await.unwrap();
}

#[tokio::test]
async fn submissions_are_checked_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let plane = plane(dir.path()).await;
    let mut client = ApprovalServiceClient::new(plane.channel().await);
    let good = submission("apr_idempotent01", "INSERT 1", api::ApprovalMode::Sync);

    let mut tampered = good.clone();
    tampered.payload_json = tampered.payload_json.replace("INSERT 1", "INSERT 2");
    let err = client.submit(authed(tampered, NODE_A)).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::InvalidArgument,
        "hash mismatch: {err:?}"
    );
    let mut unsorted = good.clone();
    unsorted.payload_json =
        r#"{"params":{"name":"execute","arguments":{"sql":"INSERT 1"}},"method":"tools/call"}"#
            .into();
    let err = client.submit(authed(unsorted, NODE_A)).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::InvalidArgument,
        "not canonical: {err:?}"
    );

    let first = client
        .submit(authed(good.clone(), NODE_A))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .submit(authed(good.clone(), NODE_A))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.approval, again.approval,
        "a retried submission changes nothing"
    );
    let mut other = submission("apr_idempotent01", "DELETE 1", api::ApprovalMode::Sync);
    other.subject = "agent-8".into();
    let err = client.submit(authed(other, NODE_A)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    let err = client.submit(authed(good, DBA)).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "reviewers do not submit"
    );
}

#[tokio::test]
async fn a_grant_is_used_once_by_the_node_that_asked_for_that_exact_call() {
    let dir = tempfile::tempdir().unwrap();
    let plane = plane(dir.path()).await;
    let mut client = ApprovalServiceClient::new(plane.channel().await);
    let asked = submission("apr_grant_once01", "INSERT 1", api::ApprovalMode::Sync);
    client.submit(authed(asked.clone(), NODE_A)).await.unwrap();

    let early = client
        .consume(authed(consume("apr_grant_once01", &asked), NODE_A))
        .await
        .unwrap();
    assert!(!early.into_inner().consumed, "pending is no grant");
    approve(&mut client, "apr_grant_once01").await;

    let stolen = client
        .consume(authed(consume("apr_grant_once01", &asked), NODE_B))
        .await
        .unwrap();
    assert!(
        !stolen.into_inner().consumed,
        "another node cannot use the grant"
    );
    let other_payload = submission("x", "INSERT 2", api::ApprovalMode::Sync);
    let mut wrong = consume("apr_grant_once01", &other_payload);
    wrong.subject = asked.subject.clone();
    wrong.server = asked.server.clone();
    let wrong = client.consume(authed(wrong, NODE_A)).await.unwrap();
    assert!(
        !wrong.into_inner().consumed,
        "payload B is not covered by A's approval"
    );
    let mut other_agent = consume("apr_grant_once01", &asked);
    other_agent.subject = "agent-8".into();
    let other_agent = client.consume(authed(other_agent, NODE_A)).await.unwrap();
    assert!(
        !other_agent.into_inner().consumed,
        "another identity is not covered"
    );

    let used = client
        .consume(authed(consume("apr_grant_once01", &asked), NODE_A))
        .await
        .unwrap();
    assert!(used.into_inner().consumed);
    let twice = client
        .consume(authed(consume("apr_grant_once01", &asked), NODE_A))
        .await
        .unwrap();
    assert!(!twice.into_inner().consumed, "used once");
}

#[tokio::test]
async fn async_grants_are_found_by_payload_and_a_node_sees_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let plane = plane(dir.path()).await;
    let mut client = ApprovalServiceClient::new(plane.channel().await);
    let asked = submission("apr_async_0001", "INSERT 1", api::ApprovalMode::Async);
    client.submit(authed(asked.clone(), NODE_A)).await.unwrap();
    let twin = submission("apr_async_0002", "INSERT 1", api::ApprovalMode::Async);
    let merged = client
        .submit(authed(twin, NODE_A))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        merged.approval.unwrap().approval_id,
        "apr_async_0001",
        "an identical pending async request is reused"
    );

    let mut watch = client
        .watch(authed(api::ApprovalServiceWatchRequest::default(), NODE_B))
        .await
        .unwrap()
        .into_inner();
    approve(&mut client, "apr_async_0001").await;
    let seen = tokio::time::timeout(std::time::Duration::from_millis(300), watch.message()).await;
    assert!(seen.is_err(), "node B saw node A's approval: {seen:?}");

    let by_payload = client
        .consume(authed(consume("", &asked), NODE_A))
        .await
        .unwrap()
        .into_inner();
    assert!(by_payload.consumed);
    assert_eq!(
        by_payload.approval.unwrap().state,
        ApprovalState::Consumed as i32
    );
    let again = client
        .consume(authed(consume("", &asked), NODE_A))
        .await
        .unwrap();
    assert!(!again.into_inner().consumed, "used once");
    let list = client
        .list(authed(api::ApprovalServiceListRequest::default(), NODE_A))
        .await
        .unwrap_err();
    assert_eq!(
        list.code(),
        tonic::Code::PermissionDenied,
        "nodes do not list"
    );
}

/// (pending, granted, consumed, cancelled) as the metrics port reports them.
async fn approval_metrics(addr: std::net::SocketAddr) -> [Option<u64>; 4] {
    let text = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    [
        sample(&text, "airlock_approvals_pending"),
        sample(&text, "airlock_approvals_granted"),
        sample(&text, "airlock_approvals_ended_total{state=\"consumed\"}"),
        sample(&text, "airlock_approvals_ended_total{state=\"cancelled\"}"),
    ]
}

#[tokio::test]
async fn the_metrics_port_counts_pending_granted_and_ended_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let plane = plane_with_metrics(dir.path(), Some(free)).await;
    let mut client = ApprovalServiceClient::new(plane.channel().await);
    assert_eq!(approval_metrics(free).await, [Some(0); 4]);
    let other = tokio::task::spawn_blocking(move || http_get(free, "/ui"))
        .await
        .unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    let first = submission("apr_metrics_0001", "INSERT 1", api::ApprovalMode::Sync);
    let second = submission("apr_metrics_0002", "INSERT 2", api::ApprovalMode::Sync);
    client.submit(authed(first.clone(), NODE_A)).await.unwrap();
    client.submit(authed(second, NODE_A)).await.unwrap();
    // A resubmission (after a reconnect) is not a new pending approval.
    client.submit(authed(first.clone(), NODE_A)).await.unwrap();
    assert_eq!(
        approval_metrics(free).await,
        [Some(2), Some(0), Some(0), Some(0)]
    );

    approve(&mut client, "apr_metrics_0001").await;
    assert_eq!(
        approval_metrics(free).await,
        [Some(1), Some(1), Some(0), Some(0)]
    );
    let used = client
        .consume(authed(consume("apr_metrics_0001", &first), NODE_A))
        .await
        .unwrap();
    assert!(used.into_inner().consumed);
    let cancel = api::ApprovalServiceCancelRequest {
        approval_id: "apr_metrics_0002".into(),
    };
    client.cancel(authed(cancel, NODE_A)).await.unwrap();
    assert_eq!(
        approval_metrics(free).await,
        [Some(0), Some(0), Some(1), Some(1)]
    );
}

#[tokio::test]
async fn a_restarted_control_plane_reports_the_approvals_still_pending() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let plane = plane_with_metrics(dir.path(), Some(free)).await;
    let mut client = ApprovalServiceClient::new(plane.channel().await);
    let held = submission("apr_metrics_0003", "INSERT 3", api::ApprovalMode::Sync);
    client.submit(authed(held, NODE_A)).await.unwrap();
    drop(client);
    plane.stop().await;

    let plane = plane_with_metrics(dir.path(), Some(free)).await;
    assert_eq!(approval_metrics(free).await[0], Some(1));
    plane.stop().await;
}
