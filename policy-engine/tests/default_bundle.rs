//! The default bundle (`policies/`): its Rego tests pass, and the RVM and the
//! interpreter decide every message the same way (the RVM is what the proxy runs;
//! the Rego tests run on the interpreter).

use airlock_policy::{
    testing, Backend, Bundle, CompiledPolicy, Direction, IdentityInput, MessageInput, PolicyInput,
    ServerInput, SessionInput, TimeInput, ToolInput, Verdict,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::OnceLock;

fn bundle() -> Bundle {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    Bundle::from_dir(&dir).unwrap()
}

fn policies() -> &'static (CompiledPolicy, CompiledPolicy) {
    static POLICIES: OnceLock<(CompiledPolicy, CompiledPolicy)> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let b = bundle();
        let mut vm = CompiledPolicy::compile_with(&b, Backend::Vm).unwrap();
        let mut interpreter = CompiledPolicy::compile_with(&b, Backend::Interpreter).unwrap();
        // These tests compare decisions, not speed: an unoptimized build on a loaded
        // machine must not turn into a `policy.timeout` deny.
        vm.set_eval_timeout(std::time::Duration::from_secs(30));
        interpreter.set_eval_timeout(std::time::Duration::from_secs(30));
        assert_eq!(
            vm.backend(),
            Backend::Vm,
            "the default bundle must run on the RVM"
        );
        (vm, interpreter)
    })
}

fn call(groups: &[&str], env: &str, tool: &str, args: Value, listing: bool) -> PolicyInput {
    PolicyInput {
        identity: IdentityInput {
            subject: "someone".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            kind: "agent".into(),
            claims: serde_json::Map::new(),
        },
        server: ServerInput {
            name: "demo".into(),
            labels: [("env".to_owned(), env.to_owned())].into(),
        },
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some("tools/call".into()),
            id: Some(json!(1)),
            params: json!({"name": tool, "arguments": args}),
        },
        tool: Some(ToolInput {
            name: tool.into(),
            arguments: args,
            pin: None,
        }),
        session: SessionInput::default(),
        time: TimeInput::default(),
        listing,
        limits: None,
        review: None,
    }
}

#[test]
fn the_rego_tests_of_the_default_bundle_pass() {
    let report = testing::run_tests(&bundle()).unwrap();
    let failures: Vec<_> = report
        .failures()
        .map(|f| format!("{} ({}:{}): {:?}", f.name, f.file, f.line, f.error))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(report.passed() >= 30, "only {} tests ran", report.passed());
    // Every decision the tests make was replayed on the RVM, and they agreed.
    assert!(report.engines.compared, "{:?}", report.engines);
    assert!(
        report.engines.decisions >= 60,
        "only {} decisions seen",
        report.engines.decisions
    );
    assert_eq!(report.engines.disagreements, 0);
}

#[test]
fn the_default_bundle_is_proved_for_the_rvm() {
    let bundle = bundle();
    let report = airlock_policy::proof::prove(&bundle, &Default::default()).unwrap();
    assert_eq!(report.disagreements, [], "{}", report.engine_line());
    let proof = report.proof.clone().expect("a proof");
    assert_eq!(proof.content, bundle.digest);
    assert!(proof.test_decisions >= 60);
    eprintln!("{} in {:?}", report.engine_line(), report.elapsed);
}

#[test]
fn the_contract_examples_decide_as_documented() {
    let (vm, _) = policies();
    let cases = [
        (
            call(&[], "dev", "query", json!({"sql": "select 1"}), false),
            Verdict::Allow,
            "tool.read",
        ),
        (
            call(
                &[],
                "prod",
                "execute",
                json!({"sql": "DROP TABLE users"}),
                false,
            ),
            Verdict::Deny,
            "sql.ddl",
        ),
        (
            call(
                &[],
                "prod",
                "execute",
                json!({"sql": "insert into t values (1)"}),
                false,
            ),
            Verdict::RequireApproval,
            "sql.write_on_prod",
        ),
        (
            call(
                &[],
                "dev",
                "http_request",
                json!({"url": "https://evil.com/"}),
                false,
            ),
            Verdict::Deny,
            "egress.host_not_allowed",
        ),
        (
            call(&["readonly"], "dev", "execute", json!({}), true),
            Verdict::Deny,
            "identity.read_only",
        ),
        (
            call(&[], "prod", "http_request", json!({}), true),
            Verdict::Allow,
            "tool.egress_allowed",
        ),
        (
            call(&[], "prod", "mystery", json!({}), false),
            Verdict::RequireApproval,
            "tool.unknown_on_prod",
        ),
    ];
    for (input, verdict, reason) in cases {
        let d = vm.decide(&input);
        assert_eq!(
            (d.verdict, d.reasons.as_slice()),
            (verdict, [reason.to_owned()].as_slice()),
            "{input:?}"
        );
        if verdict == Verdict::Deny {
            assert!(d.message.is_some_and(|m| m.len() > 20));
        }
    }
    let approval = vm.decide(&cases_prod_write()).approval.unwrap();
    assert_eq!(
        (
            approval.reviewers,
            approval.min_approvals,
            approval.timeout_s
        ),
        (vec!["dba".to_owned()], 1, 600)
    );
}

#[test]
fn edge_inputs_decide_the_same_on_both_backends() {
    let (vm, interpreter) = policies();
    let mut no_tool = call(&[], "prod", "x", json!({}), false);
    no_tool.tool = None;
    let mut not_a_call = call(
        &[],
        "prod",
        "execute",
        json!({"sql": "DROP TABLE x"}),
        false,
    );
    not_a_call.message.method = Some("tools/list".into());
    let mut from_server = not_a_call.clone();
    from_server.message.method = Some("sampling/createMessage".into());
    from_server.direction = Direction::ServerToClient;
    let expected = [
        (no_tool, Verdict::Deny, "mcp.tool_name_missing"),
        (not_a_call, Verdict::Allow, "mcp.not_a_tool_call"),
        (from_server, Verdict::Allow, "mcp.not_a_tool_call"),
    ];
    for (input, verdict, reason) in expected {
        let d = vm.decide(&input);
        assert_eq!(d, interpreter.decide(&input));
        assert_eq!((d.verdict, d.reasons), (verdict, vec![reason.to_owned()]));
    }
}

fn cases_prod_write() -> PolicyInput {
    call(
        &[],
        "prod",
        "execute",
        json!({"sql": "UPDATE t SET x = 1 WHERE id = 1"}),
        false,
    )
}

fn sql() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("select"),
        Just("DROP"),
        Just("drop"),
        Just("table"),
        Just("insert"),
        Just("truncate"),
        Just("ALTER"),
        Just("--"),
        Just("/*"),
        Just("*/"),
        Just(";"),
        Just("\n"),
        Just("#"),
        Just("'"),
        Just("users"),
        Just("/*!50000"),
        Just("("),
        Just(" "),
    ];
    prop::collection::vec(word, 0..10).prop_map(|w| w.join(" "))
}

fn url() -> impl Strategy<Value = Value> {
    let part = prop_oneof![
        Just("https://"),
        Just("http://"),
        Just("ftp://"),
        Just("api.github.com"),
        Just("evil.com"),
        Just("@"),
        Just(":443"),
        Just("/"),
        Just("\\"),
        Just("?"),
        Just("#"),
        Just("."),
        Just("PyPI.org"),
        Just("["),
        Just("]"),
        Just("::1"),
        Just("user:pw"),
    ];
    prop_oneof![
        4 => prop::collection::vec(part, 0..7).prop_map(|p| Value::from(p.concat())),
        1 => any::<i32>().prop_map(Value::from),
    ]
}

fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        sql().prop_map(|s| json!({"sql": s})),
        url().prop_map(|u| json!({"url": u, "method": "GET"})),
        prop_oneof![
            Just("/etc/passwd"),
            Just("docs/a.md"),
            Just("../x"),
            Just("a/.env")
        ]
        .prop_map(|p| json!({"path": p})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rvm_and_interpreter_agree(
        tool in prop_oneof![Just("query"), Just("execute"), Just("http_request"), Just("read_file"), Just("other")],
        env in prop_oneof![Just("prod"), Just("dev")],
        readonly in any::<bool>(),
        listing in any::<bool>(),
        args in arguments(),
    ) {
        let groups: &[&str] = if readonly { &["readonly"] } else { &["automation"] };
        let input = call(groups, env, tool, args, listing);
        let (vm, interpreter) = policies();
        let fast = vm.decide(&input);
        prop_assert_eq!(&fast, &interpreter.decide(&input));
        prop_assert!(!fast.reasons.iter().any(|r| r.starts_with("policy.")), "{:?}", fast);
    }
}

#[test]
fn the_proof_names_the_reviewer_groups_the_bundle_asks_for() {
    let report = airlock_policy::proof::prove(&bundle(), &Default::default()).unwrap();
    let groups: Vec<&str> = report.reviewer_groups.iter().map(String::as_str).collect();
    assert_eq!(groups, ["dba", "security"]);
}
