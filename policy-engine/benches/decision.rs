//! Decision latency of the default bundle (`policies/`), RVM vs interpreter.
//!
//! Three inputs: allow (a `query` read), deny (`DROP TABLE` via `execute`),
//! require_approval (an `INSERT` via `execute` on env=prod). Criterion measures each
//! (backend, input); then a plain pass times single calls and prints the medians of
//! both backends side by side with their ratio.
//!
//! Last, it times the engine agreement proof a publisher runs (`proof::prove`, what
//! `airlock bundle build` adds to the manifest) and says which engine the proven
//! bundle runs on.
//!
//! Run: `cargo bench -p airlock-policy --bench decision`

use airlock_policy::{
    Backend, Bundle, CompiledPolicy, Direction, IdentityInput, MessageInput, PolicyInput,
    ServerInput, SessionInput, TimeInput, ToolInput, Verdict,
};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn call(tool: &str, sql: &str, env: &str) -> PolicyInput {
    let arguments = json!({ "sql": sql });
    PolicyInput {
        identity: IdentityInput {
            subject: "ci-bot".into(),
            groups: vec!["automation".into()],
            kind: "agent".into(),
            claims: serde_json::Map::new(),
        },
        server: ServerInput {
            name: "demo".into(),
            labels: BTreeMap::from([("env".to_owned(), env.to_owned())]),
        },
        direction: Direction::ClientToServer,
        message: MessageInput {
            method: Some("tools/call".into()),
            id: Some(json!(7)),
            params: json!({ "name": tool, "arguments": arguments }),
        },
        tool: Some(ToolInput {
            name: tool.into(),
            arguments,
            pin: None,
        }),
        session: SessionInput {
            id: "7f9c".into(),
            calls: 12,
        },
        time: TimeInput {
            unix_ms: 1_764_000_000_000,
        },
        listing: false,
        limits: None,
        review: None,
    }
}

fn cases() -> [(&'static str, PolicyInput, Verdict); 3] {
    [
        (
            "allow",
            call(
                "query",
                "SELECT id, name FROM customers WHERE id = 42",
                "dev",
            ),
            Verdict::Allow,
        ),
        (
            "deny",
            call("execute", "DROP TABLE customers", "dev"),
            Verdict::Deny,
        ),
        (
            "require_approval",
            call("execute", "INSERT INTO orders VALUES (1, 42)", "prod"),
            Verdict::RequireApproval,
        ),
    ]
}

fn compile(backend: Backend) -> CompiledPolicy {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::from_dir(&dir).expect("the default bundle loads");
    let policy =
        CompiledPolicy::compile_with(&bundle, backend).expect("the default bundle compiles");
    assert_eq!(policy.backend(), backend, "backend fell back");
    policy
}

fn median_of(policy: &CompiledPolicy, input: &PolicyInput) -> Duration {
    for _ in 0..500 {
        black_box(policy.decide(input));
    }
    let mut samples: Vec<Duration> = (0..5_000)
        .map(|_| {
            let started = Instant::now();
            black_box(policy.decide(black_box(input)));
            started.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let vm = compile(Backend::Vm);
    let interpreter = compile(Backend::Interpreter);
    let cases = cases();
    for (name, input, expected) in &cases {
        for policy in [&vm, &interpreter] {
            assert_eq!(
                policy.decide(input).verdict,
                *expected,
                "{name} on {:?}",
                policy.backend()
            );
        }
    }

    let mut group = c.benchmark_group("decision");
    for (name, input, _) in &cases {
        for policy in [&vm, &interpreter] {
            let id = format!("{}/{name}", policy.backend().as_str());
            group.bench_function(id, |b| b.iter(|| policy.decide(black_box(input))));
        }
    }
    group.finish();

    // The fixed cost (input encoding, VM checkout, decision check) with a one-line policy.
    let trivial = CompiledPolicy::compile(&Bundle::from_parts(
        vec![airlock_policy::Module {
            path: "airlock.rego".into(),
            source: "package airlock\ndecision := {\"verdict\": \"allow\"}\n".into(),
        }],
        json!({}),
    ))
    .expect("the trivial policy compiles");
    let floor = median_of(&trivial, &cases[0].1);

    println!("\nmedian decision latency, default bundle (5000 single calls each):");
    println!(
        "{:<18} {:>10} {:>14} {:>16}",
        "input", "rvm (µs)", "interp. (µs)", "interp. / rvm"
    );
    for (name, input, _) in &cases {
        let fast = median_of(&vm, input);
        let slow = median_of(&interpreter, input);
        println!(
            "{name:<18} {:>10.1} {:>14.1} {:>15.1}x",
            us(fast),
            us(slow),
            us(slow) / us(fast)
        );
    }
    println!(
        "{:<18} {:>10.1}   (fixed cost: encode input, run, check decision)",
        "one-line policy",
        us(floor)
    );
    proof_cost();
}

/// What publishing costs: the agreement proof, three times, and the engine it earns.
fn proof_cost() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut bundle = Bundle::from_dir(&dir).expect("the default bundle loads");
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let started = Instant::now();
        let report =
            airlock_policy::proof::prove(&bundle, &Default::default()).expect("the proof runs");
        times.push(started.elapsed());
        last = Some(report);
    }
    times.sort_unstable();
    let report = last.expect("three runs");
    bundle.engine_proof = report
        .proof
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok());
    let chosen = airlock_policy::proof::choose(&bundle);
    println!(
        "
agreement proof of the default bundle (median of 3): {:.0} ms; engine: {} ({})",
        times[1].as_secs_f64() * 1000.0,
        chosen.backend.as_str(),
        chosen.reason
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
