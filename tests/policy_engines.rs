//! End-to-end: one Rego semantics. Each policy below denies `execute DROP TABLE
//! customers` under OPA's semantics (and `airlock policy test` says so), but
//! regorus's RVM reads it differently (a rule conflict as undefined, an `else` it
//! skips) and would allow it. Through the proxy, in front of the real demo server,
//! the call must be refused and the table must still be there: the proxy runs such
//! a bundle on the interpreter (and `/readyz` says why).

mod support;

use serde_json::json;
use support::{demo_server, ProxyBuilder, AGENT_KEY};

struct Case {
    name: &'static str,
    rego: &'static str,
    /// The reason the refusal carries: the policy's own, or `policy.error` for a
    /// conflict (OPA's eval_conflict_error).
    reason: &'static str,
}

const HEAD: &str = "package airlock\n\nimport rego.v1\n\n\
    default decision := {\"verdict\": \"allow\", \"reasons\": [\"default\"]}\n\n\
    is_drop if contains(lower(input.tool.arguments.sql), \"drop\")\n\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "two values of `risk` clash",
            rego: "risk := 3 if input.tool.name == \"execute\"\n\
                   risk := 2 if is_drop\n\
                   decision := {\"verdict\": \"deny\", \"reasons\": [\"risky\"]} if risk > 1\n",
            reason: "policy.error",
        },
        Case {
            name: "two decisions clash",
            rego: "decision := {\"verdict\": \"deny\", \"reasons\": [\"drop\"]} if is_drop\n\
                   decision := {\"verdict\": \"allow\", \"reasons\": [\"execute\"]} if input.tool.name == \"execute\"\n",
            reason: "policy.error",
        },
        Case {
            name: "else after an undefined label",
            rego: "tier := t if { t := input.server.labels.tier } else := \"unknown\"\n\
                   decision := {\"verdict\": \"deny\", \"reasons\": [\"tier.unknown\"]} if { is_drop; tier == \"unknown\" }\n",
            reason: "tier.unknown",
        },
        Case {
            name: "else after `some x in` an empty list",
            rego: "exempt := x if { some x in data.exempt_tools; x == input.tool.name } else := \"none\"\n\
                   decision := {\"verdict\": \"deny\", \"reasons\": [\"not_exempt\"]} if { is_drop; exempt == \"none\" }\n",
            reason: "not_exempt",
        },
        Case {
            name: "a function's else after an undefined lookup",
            rego: "class(name) := c if { c := data.classes[name] } else := \"unknown\"\n\
                   decision := {\"verdict\": \"deny\", \"reasons\": [\"class.unknown\"]} if { is_drop; class(input.tool.name) == \"unknown\" }\n",
            reason: "class.unknown",
        },
        Case {
            name: "a complete rule that iterates to two values",
            rego: "word := w if { some w in split(lower(input.tool.arguments.sql), \" \") }\n\
                   decision := {\"verdict\": \"deny\", \"reasons\": [\"word\"]} if word != \"\"\n",
            reason: "policy.error",
        },
    ]
}

#[tokio::test]
async fn what_the_interpreter_denies_the_proxy_denies_and_the_table_stays() {
    let demo = demo_server();
    for case in cases() {
        let rego = format!("{HEAD}{}", case.rego);
        let proxy = ProxyBuilder::new()
            .upstream("demo", &demo.url, "prod")
            .policy(&rego)
            .start();
        let (status, ready) = support::fleet::readyz(&proxy).await;
        assert_eq!(status, 200, "{}: {ready}", case.name);
        assert_eq!(ready["engine"], "interpreter", "{}: {ready}", case.name);
        assert!(
            !ready["engine_reason"].as_str().unwrap_or("").is_empty(),
            "{}: {ready}",
            case.name
        );
        let mut client = proxy.client("demo", Some(AGENT_KEY));
        client.initialize().await;
        let reply = client
            .call_tool("execute", json!({"sql": "DROP TABLE customers"}))
            .await;
        let error = &reply.last()["error"];
        assert_eq!(error["code"], -32001, "{}: {reply:?}", case.name);
        assert_eq!(
            error["data"]["reasons"][0], case.reason,
            "{}: {reply:?}",
            case.name
        );
        assert!(
            !error["message"]
                .as_str()
                .unwrap_or("")
                .contains("add `default decision"),
            "{}: wrong advice in {reply:?}",
            case.name
        );
    }
    // Straight to the demo server: the table is still there.
    let mut direct = support::McpClient::new(demo.url.clone(), Some(support::UPSTREAM_TOKEN));
    direct.initialize().await;
    let reply = direct
        .call_tool(
            "query",
            json!({"sql": "SELECT count(*) FROM sqlite_master WHERE name='customers'"}),
        )
        .await;
    assert_eq!(
        reply.last()["result"]["structuredContent"]["rows"][0][0],
        1,
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_bundle_the_engines_agree_on_runs_on_the_rvm_and_still_denies() {
    let demo = demo_server();
    let proxy = ProxyBuilder::new()
        .upstream("demo", &demo.url, "prod")
        .start();
    let (_, ready) = support::fleet::readyz(&proxy).await;
    assert_eq!(ready["engine"], "rvm", "{ready}");
    assert!(
        ready["engine_reason"]
            .as_str()
            .unwrap()
            .starts_with("proved"),
        "{ready}"
    );
    let mut client = proxy.client("demo", Some(AGENT_KEY));
    client.initialize().await;
    let reply = client
        .call_tool("execute", json!({"sql": "DROP TABLE customers"}))
        .await;
    assert_eq!(reply.last()["error"]["data"]["reasons"][0], "sql.ddl");
}
