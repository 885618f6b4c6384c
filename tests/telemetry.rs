//! Spans over OTLP, end to end: a real OTLP/gRPC collector (a tonic
//! `TraceService` on 127.0.0.1:0) receives the spans of `airlock proxy` in front
//! of the recording upstream. Checks the `mcp` root and its stage children, their
//! attributes, the agent's `traceparent` as the parent, and the `traceparent` the
//! upstream receives. Then: with the collector down, calls still succeed and the
//! proxy stops cleanly on SIGTERM.

mod approval_common;
mod sdk_common;
mod support;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::recording::RecordingUpstream;
use support::{ProxyBuilder, AGENT_KEY};

const POLICY: &str = r#"package airlock

import rego.v1

decision := {"verdict": "deny", "reasons": ["test.no_drop"], "message": "not here"} if {
	input.tool.name == "drop_table"
} else := {"verdict": "allow", "reasons": ["test.allow"]}
"#;

/// The agent's trace: trace id and the span id of its own client span.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Spans received, with the `service.name` of their resource.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

struct Collector {
    received: Received,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    received.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Starts the collector; returns its endpoint and what it received.
async fn collector() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let service = TraceServiceServer::new(Collector {
        received: Arc::clone(&received),
    });
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    (endpoint, received)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

/// Waits until the collector holds an `mcp` span with `tool` = `tool` and all its
/// `children` (the batch exporter sends every second).
async fn request_spans(received: &Received, tool: &str, children: &[&str]) -> (Span, Vec<Span>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let spans = received.lock().unwrap();
            let root = spans
                .iter()
                .map(|(_, s)| s)
                .find(|s| s.name == "mcp" && attr(s, "tool").as_deref() == Some(tool));
            if let Some(root) = root {
                let kids: Vec<Span> = spans
                    .iter()
                    .map(|(_, s)| s)
                    .filter(|s| s.parent_span_id == root.span_id)
                    .cloned()
                    .collect();
                if children.iter().all(|c| kids.iter().any(|k| k.name == *c)) {
                    return (root.clone(), kids);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no complete `mcp` span for {tool}; received: {:?}",
            received
                .lock()
                .unwrap()
                .iter()
                .map(|(_, s)| s.name.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn spans_reach_the_collector_with_stages_attributes_and_trace_context() {
    let (endpoint, received) = collector().await;
    let upstream = RecordingUpstream::start().await;
    let proxy = ProxyBuilder::new()
        .policy(POLICY)
        .upstream("rec", &upstream.url, "prod")
        .table(&format!(
            "[telemetry]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"proxy-under-test\"\n"
        ))
        // A sink, so the record stage runs.
        .table("[audit]\nfile = \"audit.jsonl\"\n")
        .start();
    let mut client = proxy.client("rec", Some(AGENT_KEY));
    client.initialize().await;

    // Allowed, inside the agent's trace.
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "query", "arguments": {}}});
    let reply = client
        .post_raw(
            call.to_string(),
            &[
                ("accept", "application/json"),
                ("traceparent", &traceparent),
            ],
        )
        .await;
    assert!(reply.last().get("result").is_some(), "{reply:?}");
    // Denied, no trace context: a new trace.
    let denied = client.call_tool("drop_table", json!({})).await;
    assert!(denied.error_code().is_some(), "{denied:?}");

    let stages = [
        "authenticate",
        "decode",
        "decide",
        "forward",
        "respond",
        "record",
    ];
    let (root, children) = request_spans(&received, "query", &stages).await;
    assert_eq!(
        hex(&root.trace_id),
        CLIENT_TRACE,
        "the agent's trace is kept"
    );
    assert_eq!(
        hex(&root.parent_span_id),
        CLIENT_SPAN,
        "the agent's span is the parent"
    );
    assert_eq!(attr(&root, "server").as_deref(), Some("rec"));
    assert_eq!(attr(&root, "method").as_deref(), Some("tools/call"));
    assert_eq!(attr(&root, "verdict").as_deref(), Some("allow"));
    assert_eq!(attr(&root, "subject").as_deref(), Some("demo-agent"));
    assert_eq!(attr(&root, "status").as_deref(), Some("200"));
    for child in &children {
        assert_eq!(
            child.trace_id, root.trace_id,
            "{} is in the trace",
            child.name
        );
    }
    let decide = children.iter().find(|s| s.name == "decide").unwrap();
    assert_eq!(attr(decide, "verdict").as_deref(), Some("allow"));
    assert_eq!(attr(decide, "reasons").as_deref(), Some("1"));
    assert!(attr(decide, "revision").is_some_and(|r| r.starts_with("sha256:")));
    let forward = children.iter().find(|s| s.name == "forward").unwrap();
    assert_eq!(attr(forward, "status").as_deref(), Some("200"));
    assert_eq!(attr(forward, "upstream").as_deref(), Some("rec"));

    // The upstream saw the proxy's `forward` span as the parent, in the agent's trace.
    let sent = upstream.recorded.lock().unwrap().clone();
    let (headers, _) = sent
        .iter()
        .find(|(_, body)| body["params"]["name"] == "query")
        .expect("the allowed call reached the upstream");
    let upstream_parent = headers["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(
        upstream_parent,
        format!("00-{CLIENT_TRACE}-{}-01", hex(&forward.span_id)),
        "the client's traceparent is replaced, not passed through"
    );
    assert_eq!(headers.get_all("traceparent").iter().count(), 1);

    let (deny_root, deny_children) = request_spans(&received, "drop_table", &["decide"]).await;
    assert_ne!(hex(&deny_root.trace_id), CLIENT_TRACE, "a trace of its own");
    assert!(deny_root.parent_span_id.is_empty(), "a root span");
    assert_eq!(attr(&deny_root, "verdict").as_deref(), Some("deny"));
    assert_eq!(attr(&deny_root, "server").as_deref(), Some("rec"));
    let decide = deny_children.iter().find(|s| s.name == "decide").unwrap();
    assert_eq!(attr(decide, "verdict").as_deref(), Some("deny"));
    assert!(
        deny_children.iter().all(|s| s.name != "forward"),
        "a denied call is not forwarded"
    );
    let services: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert!(
        services.iter().all(|s| s == "proxy-under-test"),
        "{services:?}"
    );
    assert!(
        sent.iter()
            .all(|(_, body)| body["params"]["name"] != "drop_table"),
        "denied call forwarded"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_costs_no_request() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let upstream = RecordingUpstream::start().await;
    let mut proxy = ProxyBuilder::new()
        .policy(POLICY)
        .upstream("rec", &upstream.url, "prod")
        .table(&format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\n"))
        .start();
    let mut client = proxy.client("rec", Some(AGENT_KEY));
    client.initialize().await;
    for _ in 0..20 {
        // Generous bound: the point is that no call waits on the exporter (5 s timeout).
        let reply =
            tokio::time::timeout(Duration::from_secs(4), client.call_tool("query", json!({})))
                .await
                .expect("a call waited on the span exporter");
        assert!(reply.last().get("result").is_some(), "{reply:?}");
    }
    // Let a batch fail, then stop: the last spans cannot leave, the proxy exits anyway.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = proxy
        .child
        .terminate(Duration::from_secs(15))
        .expect("the proxy did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A held call's trace crosses to the control plane: the proxy sends its request's
/// context with `ApprovalService.Submit`, and the control plane's `approval.submit`
/// span lands in the agent's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_calls_submission_joins_the_agents_trace_on_the_control_plane() {
    let (endpoint, received) = collector().await;
    let telemetry = format!("\n[telemetry]\notlp_endpoint = \"{endpoint}\"\n");
    let approval =
        json!({"reviewers": ["dba"], "min_approvals": 1, "timeout_s": 60, "mode": "sync"});
    let stack = approval_common::ApprovalStack::start_full(
        approval,
        &telemetry,
        &format!("keepalive_s = 1\n{telemetry}"),
    );
    let mut client = support::McpClient::new(stack.mcp_url.clone(), Some(&stack.api_key));
    client.initialize().await;
    let insert = "INSERT INTO customers (name, email, phone, card_number, address, city, country, created_at) VALUES ('Traced', 't@example.com', '+1 555 0102', '4111111111111111', '3 Main St', 'Springfield', 'US', '2026-01-01')";
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": "execute", "arguments": {"sql": insert}}});
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let held = tokio::spawn(async move {
        client
            .post_raw(body.to_string(), &[("traceparent", traceparent.as_str())])
            .await
    });
    let id = stack.wait_pending(1).await[0].approval_id.clone();
    stack
        .decide(
            approval_common::DANA,
            &id,
            airlock_control_plane::api::ApprovalVerdict::Approve,
            "",
        )
        .await
        .unwrap();
    let reply = held.await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.last().get("result").is_some(), "{reply:?}");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let submit = received
            .lock()
            .unwrap()
            .iter()
            .find(|(service, span)| {
                service == "airlock-control-plane" && span.name == "approval.submit"
            })
            .map(|(_, span)| span.clone());
        if let Some(span) = submit {
            assert_eq!(hex(&span.trace_id), CLIENT_TRACE, "the agent's trace");
            assert_eq!(attr(&span, "approval_id").as_deref(), Some(id.as_str()));
            assert_eq!(attr(&span, "created").as_deref(), Some("true"));
            break;
        }
        assert!(Instant::now() < deadline, "no approval.submit span arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `airlock dev --otlp-endpoint` exports the spans of its proxy and control plane
/// (service `airlock-dev`), and flushes them when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airlock_dev_exports_its_spans_when_asked() {
    let (endpoint, received) = collector().await;
    let ws = support::fleet::Workspace::new();
    let (mut dev, lines) =
        support::fleet::spawn_dev_with(&ws.path("dev"), &["--otlp-endpoint", &endpoint]);
    let mcp = support::fleet::value_after(&lines, "MCP endpoint:").to_owned();
    let key = support::fleet::value_after(&lines, "API key:");
    let mut client = support::McpClient::new(mcp, Some(key));
    client.initialize().await;
    let reply = client
        .call_tool("query", json!({"sql": "SELECT count(*) FROM customers"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let status = dev
        .terminate(Duration::from_secs(15))
        .expect("airlock dev stops within 15 s");
    assert!(status.success(), "{status}");

    let spans = received.lock().unwrap().clone();
    let dev_spans: Vec<&Span> = spans
        .iter()
        .filter(|(service, _)| service == "airlock-dev")
        .map(|(_, span)| span)
        .collect();
    let call = dev_spans
        .iter()
        .find(|s| s.name == "mcp" && attr(s, "tool").as_deref() == Some("query"))
        .unwrap_or_else(|| panic!("no mcp span for the query: {dev_spans:#?}"));
    assert!(
        dev_spans
            .iter()
            .any(|s| s.name == "decide" && s.trace_id == call.trace_id),
        "its stages are exported too"
    );
    assert!(
        dev_spans.iter().any(|s| s.name == "audit.append"),
        "the control plane's spans are exported too"
    );
}
