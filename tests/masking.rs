//! Masking end to end (promise 7), through the `airlock` binary: a control plane, the
//! demo server and a proxy as child processes on 127.0.0.1, a bundle whose decision
//! masks every tool answer with every detector (`"mask": ["all"]`), and the
//! tests/support MCP client as the agent.
//!
//! Each sensitive form goes upstream in clear (SQL literals in a `query`, cards cast
//! to JSON numbers, the demo's files) and must come back masked in the text content,
//! in `structuredContent`, over JSON and SSE, and in the stored log as `airlock audit
//! export` prints it. The log is checked with a detector written here, not the
//! proxy's. JSON-RPC ids that look like cards come back as sent; look-alikes (UUIDs,
//! SHAs, timestamps, order numbers) pass; a redaction never reaches past its match.

mod audit_support;
mod sdk_common;
mod support;

use audit_support::{eventually, AuditedProxy, Plane, PlaneFiles, ADMIN_TOKEN, AGENT_KEY};
use serde_json::{json, Value};
use std::process::Command;
use support::McpClient;

/// Allow everything; mask every tool answer with every detector (the default policy
/// is moving to this for every answer).
const MASK_ALL: &str = r#"package airlock

import rego.v1

default decision := {"verdict": "allow", "reasons": ["test.allow"], "mask": []}

decision := {"verdict": "allow", "reasons": ["test.mask_all"], "mask": ["all"]} if {
	input.message.method == "tools/call"
}
"#;

/// (what the form is, the SQL literal the demo returns in clear, the part of it that
/// must appear nowhere downstream).
const FORMS: &[(&str, &str, &str)] = &[
    ("card with dots", "4111.1111.1111.1111", "4111.1111.1111.1111"),
    ("card touching letters", "ref x5555555555554444y", "5555555555554444"),
    ("mastercard 2-series", "2223 0031 2200 3222", "2223 0031 2200 3222"),
    ("card with dashes", "3782-822463-10005", "822463"),
    ("iban", "GB82 WEST 1234 5698 7654 32", "1234 5698 7654"),
    ("ssn", "ssn 536-22-1234", "536-22-1234"),
    ("phone", "call +1 415 555 2671", "415 555 2671"),
    ("email", "ada.lovelace@example.org", "ada.lovelace@"),
    ("github token", "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"),
    ("slack token", "xoxb-127684268465-6321223307924-sajAIxNKu8iS2G8NPRVdD53X", "sajAIxNKu8iS2G8NPRVdD53X"),
    ("aws key id", "AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("google key", "AIza_799NksnRH9ucAUsdMlHUvTCQCyEZDz-Tdd", "799NksnRH9ucAUsdMlHUvTCQCyEZDz"),
    ("stripe key", "sk_live_YrEqmSM9wCZ7Uw9xfogoEmvn", "YrEqmSM9wCZ7Uw9xfogoEmvn"),
    ("jwt without Bearer", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("bearer credential", "Authorization: Bearer 4f9a8c7e6d5b4a3f2e1d", "4f9a8c7e6d5b4a3f2e1d"),
    ("url password", "postgres://app:Hunter2-pass@db:5432/x", "Hunter2-pass"),
    ("yaml password", "password: correct-horse-42", "correct-horse-42"),
    ("env secret", "SESSION_SECRET=3f6c1e0b9a8d7c6b5a4f3e2d1c0b9a8f", "3f6c1e0b9a8d7c6b5a4f3e2d1c0b9a8f"),
];

/// Look-alikes that must come back unchanged.
const LOOK_ALIKES: &[&str] = &[
    "123e4567-e89b-12d3-a456-426614174000",
    "commit a4111111111111111bcdef0123456789abcdef01",
    "order 1234567890123",
    "at 1732521600000 ms",
];

/// Issue 9's attack: an unterminated private-key marker must not hide what follows.
const ATTACK_SQL: &str = "UPDATE orders SET status=''shipped'' WHERE id=7; -- -----BEGIN PRIVATE KEY-----' || char(10) || 'DELETE FROM customers";

fn sql_literals(values: &[&str]) -> String {
    let columns: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("'{v}' AS c{i}"))
        .collect();
    format!("SELECT {}", columns.join(", "))
}

/// Builds a signed bundle of `rego` and makes it the active one.
fn publish(files: &PlaneFiles, plane: &Plane, rego: &str) {
    let dir = files.dir.path().join("mask-all");
    std::fs::create_dir_all(&dir).expect("bundle dir");
    std::fs::write(dir.join("policy.rego"), rego).expect("write policy");
    let key = airlock_bundle::SigningKey::from_file(&files.dir.path().join("release.key"))
        .expect("bundle key");
    let built = airlock_bundle::build_from_dir(&dir, Some("mask-all-1"), &key).expect("build");
    let path = files.dir.path().join("mask-all.tar.gz");
    std::fs::write(&path, built.bytes).expect("write the archive");
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["bundle", "push"])
        .arg(&path)
        .env("AIRLOCK_CONTROL_PLANE", &plane.url)
        .env("AIRLOCK_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run airlock bundle push");
    assert!(output.status.success(), "bundle push: {output:?}");
}

// === an independent detector (not the proxy's code) ===

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                (d * 2) / 10 + (d * 2) % 10
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What in `text` looks like a card, an email or a planted value.
fn leaks(text: &str, secrets: &[String]) -> Vec<String> {
    let mut found: Vec<String> = secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .map(|s| format!("planted value {s:?}"))
        .collect();
    if text.contains("@example.") {
        found.push("an @example. address".to_owned());
    }
    // Runs of digits and single separators, delimited by anything but letters and
    // digits: 13–19 digits starting 2–6 that pass Luhn are cards.
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = Vec::new();
        while j < bytes.len()
            && (bytes[j].is_ascii_digit()
                || (b" .-".contains(&bytes[j]) && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)))
        {
            if bytes[j].is_ascii_digit() {
                digits.push(bytes[j]);
            }
            j += 1;
        }
        let delimited = bytes.get(j).is_none_or(|b| !b.is_ascii_alphanumeric());
        if delimited
            && (13..=19).contains(&digits.len())
            && (b'2'..=b'6').contains(&digits[0])
            && luhn(&digits)
        {
            found.push(format!("a card-like number {}", &text[i..j]));
        }
        i = j.max(i + 1);
    }
    found
}

/// Everything the agent was shown of an answer: text content and structuredContent.
fn shown(answer: &Value) -> String {
    answer["result"].to_string()
}

async fn call(client: &mut McpClient, tool: &str, arguments: Value) -> Value {
    let reply = client.call_tool(tool, arguments).await;
    let answer = reply.last().clone();
    assert!(answer["result"].is_object(), "{tool} failed: {answer:#}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_is_masked_for_the_agent_and_in_the_log_and_ids_come_back_as_sent() {
    let files = PlaneFiles::new();
    let plane = files.start("127.0.0.1:0", &files.data_dir());
    let (_demo, demo_url) = sdk_common::demo_process();
    publish(&files, &plane, MASK_ALL);
    let proxy = AuditedProxy::start(&demo_url, &plane.url, &files.bundle_key(), "");

    // The demo's real card numbers, asked straight on the demo server.
    let mut direct = McpClient::new(demo_url.clone(), None);
    direct.initialize().await;
    let rows = call(
        &mut direct,
        "query",
        json!({"sql": "SELECT card_number FROM customers LIMIT 3"}),
    )
    .await;
    let mut secrets: Vec<String> = rows["result"]["structuredContent"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("a card").to_owned())
        .collect();
    assert_eq!(secrets.len(), 3);
    secrets.extend(FORMS.iter().map(|(_, _, core)| (*core).to_owned()));
    secrets.extend(
        [
            "Tr0ub4dor-and-3-horses",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "demo_live_51Hx9f8e7d6c5b4a3f2e1d0c9b8a7",
        ]
        .map(str::to_owned),
    );

    let mut agent = McpClient::new(proxy.mcp_url(), Some(AGENT_KEY));
    agent.initialize().await;

    // Every form in one query answer: text content and structuredContent.
    let values: Vec<&str> = FORMS
        .iter()
        .map(|(_, literal, _)| *literal)
        .chain(LOOK_ALIKES.iter().copied())
        .collect();
    let forms = call(&mut agent, "query", json!({"sql": sql_literals(&values)})).await;
    let text = shown(&forms);
    for (form, _, core) in FORMS {
        assert!(!text.contains(core), "{form} reached the agent: {text}");
    }
    let structured = &forms["result"]["structuredContent"]["rows"][0];
    for (i, look_alike) in LOOK_ALIKES.iter().enumerate() {
        assert_eq!(
            structured[FORMS.len() + i],
            *look_alike,
            "a look-alike was masked: {text}"
        );
    }
    assert_eq!(structured[1], "ref x[REDACTED:credit_card]y");
    assert_eq!(structured[13], "[REDACTED:secret]");
    assert_eq!(leaks(&text, &secrets), Vec::<String>::new(), "{text}");

    // Cards held as JSON numbers in structuredContent become strings.
    let numbers = call(
        &mut agent,
        "query",
        json!({"sql": "SELECT CAST(card_number AS INTEGER) AS card, id FROM customers LIMIT 3"}),
    )
    .await;
    for row in numbers["result"]["structuredContent"]["rows"]
        .as_array()
        .expect("rows")
    {
        assert_eq!(row[0], "[REDACTED:credit_card]", "{numbers:#}");
        assert!(row[1].is_u64(), "the id column stays a number: {numbers:#}");
    }
    assert_eq!(leaks(&shown(&numbers), &secrets), Vec::<String>::new());

    // read_file answers: YAML, .env and a log.
    for path in [
        "/app/config.yaml",
        "/app/.env",
        "/var/log/billing-api/app.log",
    ] {
        let file = call(&mut agent, "read_file", json!({"path": path})).await;
        let text = shown(&file);
        assert_eq!(
            leaks(&text, &secrets),
            Vec::<String>::new(),
            "{path}: {text}"
        );
        assert!(text.contains("[REDACTED:"), "{path}: {text}");
    }

    // The reviewer attack: the marker is masked, the DELETE after it is not.
    let attack = call(
        &mut agent,
        "query",
        json!({"sql": format!("SELECT '{ATTACK_SQL}' AS sql")}),
    )
    .await;
    let attack_text = attack["result"]["structuredContent"]["rows"][0][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        attack_text,
        "UPDATE orders SET status='shipped' WHERE id=7; -- [REDACTED:secret]\nDELETE FROM customers"
    );

    // Ids that look like cards come back as sent, over JSON and over SSE.
    let sql = json!({"name": "query", "arguments": {"sql": "SELECT 'ada@example.com' AS e"}});
    for id in [json!("4111111111111111"), json!(4111111111111111_u64)] {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": sql});
        let reply = agent.post(body.clone()).await;
        assert_eq!(reply.last()["id"], id, "{reply:?}");
        assert!(
            shown(reply.last()).contains("[REDACTED:email]"),
            "{reply:?}"
        );
        let streamed = agent
            .post_raw(
                body.to_string(),
                &[("accept", "application/json, text/event-stream")],
            )
            .await;
        assert!(
            streamed.sse,
            "the demo answers SSE when asked: {streamed:?}"
        );
        assert_eq!(streamed.last()["id"], id, "{streamed:?}");
        assert!(
            shown(streamed.last()).contains("[REDACTED:email]"),
            "{streamed:?}"
        );
    }

    // The stored log: every payload scanned by the detector above; ids as sent.
    let calls = 10; // forms, numbers, 3 files, the attack, 2 ids x (JSON, SSE)
    let mut records = Vec::new();
    let arrived = eventually(30, || {
        records = plane.export();
        records
            .iter()
            .filter(|r| r["direction"] == "server_to_client" && r["tool"] != "")
            .count()
            >= calls
    });
    assert!(
        arrived,
        "the answers never all reached the log: {records:#?}"
    );
    for record in &records {
        // The id is the envelope, kept as sent (checked below), not data.
        let mut data = record["payload"].clone();
        if let Some(message) = data.as_object_mut() {
            message.remove("id");
        }
        let payload = data.to_string();
        assert_eq!(
            leaks(&payload, &secrets),
            Vec::<String>::new(),
            "record {}: {payload}",
            record["seq"]
        );
        if let Some(id) = record["payload"].get("id") {
            assert_eq!(
                record["jsonrpc_id"].as_str(),
                Some(id.to_string().as_str()),
                "{record:#}"
            );
        }
    }
    for id in ["\"4111111111111111\"", "4111111111111111"] {
        let matching: Vec<&Value> = records.iter().filter(|r| r["jsonrpc_id"] == id).collect();
        assert_eq!(
            matching.len(),
            4,
            "request and answer, JSON and SSE, for id {id}: {records:#?}"
        );
        for record in matching {
            assert_eq!(record["payload"]["id"].to_string(), id, "{record:#}");
        }
    }
    let attack_request = records
        .iter()
        .find(|r| {
            r["direction"] == "client_to_server"
                && r["payload"].to_string().contains("status=''shipped''")
        })
        .expect("the attack's request is recorded");
    let stored = attack_request["payload"]["params"]["arguments"]["sql"]
        .as_str()
        .unwrap_or_default();
    assert!(
        stored.contains("-- [REDACTED:secret]' || char(10) || 'DELETE FROM customers"),
        "{stored}"
    );
}
