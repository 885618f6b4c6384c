//! Tests of compile, decide, the store and hot reload, over real bundles on disk.

use crate::*;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bundle_of(rego: &str) -> Bundle {
    Bundle::from_parts(
        vec![Module {
            path: "airlock.rego".to_owned(),
            source: rego.to_owned(),
        }],
        json!({}),
    )
}

fn both(rego: &str) -> [CompiledPolicy; 2] {
    let b = bundle_of(rego);
    [
        CompiledPolicy::compile_with(&b, Backend::Vm).unwrap(),
        CompiledPolicy::compile_with(&b, Backend::Interpreter).unwrap(),
    ]
}

fn first_reason(d: &Decision) -> &str {
    d.reasons.first().map(String::as_str).unwrap_or("")
}

fn sample_input() -> PolicyInput {
    PolicyInput {
        identity: IdentityInput::default(),
        server: ServerInput::default(),
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some("tools/call".into()),
            id: Some(json!(1)),
            params: json!({}),
        },
        tool: Some(ToolInput {
            name: "query".into(),
            arguments: json!({"sql": "select 1"}),
            pin: None,
        }),
        session: SessionInput::default(),
        time: TimeInput::default(),
        listing: false,
        limits: None,
        review: None,
    }
}

#[test]
fn both_backends_decide_the_same() {
    let rego = r#"package airlock
default decision := {"verdict": "deny", "reasons": ["x.default"], "message": "no"}
decision := {"verdict": "allow", "reasons": ["x.read"]} if input.tool.name == "query"
"#;
    for policy in both(rego) {
        let d = policy.decide(&sample_input());
        assert_eq!(d.verdict, Verdict::Allow, "{:?}", policy.backend());
        assert_eq!(d.reasons, ["x.read"]);
        let d = policy.decide_value(&json!({"tool": {"name": "other"}}));
        assert_eq!(first_reason(&d), "x.default");
    }
}

#[test]
fn undefined_and_malformed_decisions_deny() {
    let undefined = "package airlock\ndecision := {\"verdict\": \"allow\"} if input.never\n";
    for policy in both(undefined) {
        let d = policy.decide(&sample_input());
        assert_eq!(
            (d.verdict, first_reason(&d)),
            (Verdict::Deny, "policy.undefined")
        );
    }
    let malformed = "package airlock\ndecision := {\"verdict\": \"yes\"}\n";
    for policy in both(malformed) {
        let d = policy.decide(&sample_input());
        assert_eq!(first_reason(&d), "policy.malformed_decision");
        assert!(d
            .message
            .unwrap_or_default()
            .contains("unknown verdict `yes`"));
    }
    let not_object = "package airlock\ndecision := \"allow\"\n";
    for policy in both(not_object) {
        assert_eq!(
            first_reason(&policy.decide(&sample_input())),
            "policy.malformed_decision"
        );
    }
}

#[test]
fn evaluation_errors_deny() {
    // Conflicting values for a complete rule: the interpreter reports an error, the
    // RVM an undefined result; both are denies.
    let rego = "package airlock\ndecision := {\"verdict\": \"allow\"} if true\n\
                decision := {\"verdict\": \"deny\"} if input.tool.name == \"query\"\n";
    for policy in both(rego) {
        let d = policy.decide(&sample_input());
        assert_eq!(d.verdict, Verdict::Deny, "{:?}: {d:?}", policy.backend());
        let expected = match policy.backend() {
            Backend::Vm => "policy.undefined",
            Backend::Interpreter => "policy.error",
        };
        assert_eq!(first_reason(&d), expected, "{:?}", policy.backend());
    }
}

#[test]
fn a_runaway_policy_is_stopped_by_the_time_limit() {
    let rego = r#"package airlock
n := numbers.range(1, 2000)
decision := {"verdict": "allow", "reasons": [sprintf("%d", [count(x)])]} if {
    x := [1 | some a in n; some b in n; a * b == -1]
}
"#;
    for mut policy in both(rego) {
        policy.set_eval_timeout(Duration::from_millis(20));
        let started = Instant::now();
        let d = policy.decide(&sample_input());
        assert_eq!(d.verdict, Verdict::Deny, "{:?}", policy.backend());
        assert_eq!(
            first_reason(&d),
            "policy.timeout",
            "{:?}: {d:?}",
            policy.backend()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn compile_errors_name_the_file_and_line() {
    let b = bundle_of(
        "package airlock\n\ndecision := {\"verdict\": \"allow\"} if {\n  input.x ==\n}\n",
    );
    match CompiledPolicy::compile(&b).unwrap_err() {
        PolicyError::Compile {
            file,
            line,
            message,
        } => {
            assert_eq!(file, "airlock.rego", "{message}");
            assert!((3..=5).contains(&line), "line {line}: {message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = CompiledPolicy::compile(&bundle_of("package other\nx := 1\n")).unwrap_err();
    assert!(matches!(err, PolicyError::NoDecisionRule), "{err}");
}

#[test]
fn test_files_are_left_out_of_the_decision_program() {
    let mut b = bundle_of("package airlock\ndecision := {\"verdict\": \"allow\"}\n");
    b.modules.push(Module {
        path: "airlock_test.rego".into(),
        source: "package airlock_test\ntest_x if data.airlock.decision with input as {}\n".into(),
    });
    for backend in [Backend::Vm, Backend::Interpreter] {
        let policy = CompiledPolicy::compile_with(&b, backend).unwrap();
        assert_eq!(policy.decide(&sample_input()).verdict, Verdict::Allow);
    }
}

#[test]
fn the_store_denies_without_a_bundle_and_swaps_revisions() {
    let store = PolicyStore::new(Duration::from_millis(50));
    assert!(!store.is_ready());
    let e = store.decide(&sample_input());
    assert_eq!(
        (e.decision.verdict, first_reason(&e.decision)),
        (Verdict::Deny, NO_BUNDLE)
    );
    assert_eq!(e.revision, None);

    let allow = bundle_of("package airlock\ndecision := {\"verdict\": \"allow\"}\n");
    store.install(CompiledPolicy::compile(&allow).unwrap());
    let held = store.current().unwrap();
    assert_eq!(held.eval_timeout(), Duration::from_millis(50));
    let e = store.decide(&sample_input());
    assert_eq!(e.decision.verdict, Verdict::Allow);
    assert_eq!(e.revision.as_deref(), Some(allow.revision.as_str()));

    let deny =
        bundle_of("package airlock\ndecision := {\"verdict\": \"deny\", \"reasons\": [\"r\"]}\n");
    store.install(CompiledPolicy::compile(&deny).unwrap());
    assert_eq!(store.revision().as_deref(), Some(deny.revision.as_str()));
    assert_eq!(
        store.decide(&sample_input()).decision.verdict,
        Verdict::Deny
    );
    // A snapshot taken before the swap still decides with the old revision.
    assert_eq!(held.decide(&sample_input()).verdict, Verdict::Allow);
}

#[test]
fn the_store_is_safe_to_share_across_threads() {
    let store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
    let b = bundle_of(
        "package airlock\ndecision := {\"verdict\": \"allow\"} if input.tool.name == \"query\"\n",
    );
    store.install(CompiledPolicy::compile(&b).unwrap());
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..200).all(|_| store.decide(&sample_input()).decision.verdict == Verdict::Allow)
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().unwrap());
    }
}

fn wait_for(store: &PolicyStore, revision_is_not: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match store.revision() {
            Some(r) if r != revision_is_not => return Some(r),
            _ => std::thread::sleep(Duration::from_millis(25)),
        }
    }
    None
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn hot_reload_installs_good_changes_and_keeps_the_last_good_bundle() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "airlock.rego",
        "package airlock\ndecision := {\"verdict\": \"allow\"}\n",
    );
    let store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
    let watcher = watch_dir(store.clone(), dir.path()).unwrap();
    let first = store.revision().unwrap();
    assert_eq!(
        store.decide(&sample_input()).decision.verdict,
        Verdict::Allow
    );

    // A broken change: the store keeps deciding with the first revision.
    write(
        dir.path(),
        "airlock.rego",
        "package airlock\ndecision := {\n",
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(store.revision().as_deref(), Some(first.as_str()));
    assert_eq!(
        store.decide(&sample_input()).decision.verdict,
        Verdict::Allow
    );

    // A good change is picked up.
    write(
        dir.path(),
        "airlock.rego",
        "package airlock\ndecision := {\"verdict\": \"deny\", \"reasons\": [\"changed\"]}\n",
    );
    let second = wait_for(&store, &first).expect("the good change was not installed");
    assert_ne!(second, first);
    assert_eq!(
        first_reason(&store.decide(&sample_input()).decision),
        "changed"
    );

    // After drop, changes are ignored.
    drop(watcher);
    write(
        dir.path(),
        "airlock.rego",
        "package airlock\ndecision := {\"verdict\": \"allow\"}\n",
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(store.revision().as_deref(), Some(second.as_str()));
}

#[test]
fn watch_dir_reports_a_bad_first_load() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "airlock.rego",
        "package airlock\ndecision := {\n",
    );
    let store = Arc::new(PolicyStore::new(Duration::from_millis(100)));
    let err = watch_dir(store.clone(), dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("airlock.rego:"), "{err}");
    assert!(!store.is_ready());
}
