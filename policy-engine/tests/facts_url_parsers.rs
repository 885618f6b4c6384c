//! `facts::url::parse` against the parsers a server might use: `http::Uri` (hyper),
//! Python's `urllib.parse.urlsplit` (a small script run once for all cases) and the demo
//! server's own (`airlock_demo::target_of`). On generated URLs full of the shapes parsers
//! disagree on, whenever another parser finds a host and it is not ours, our facts must
//! say `canonical: false` (or refuse the URL): that is what the default policy denies.
//!
//! Cases: `AIRLOCK_DIFF_CASES` (default 3000).

use airlock_policy::facts::url;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::io::Write;
use std::process::{Command, Stdio};

fn cases() -> usize {
    std::env::var("AIRLOCK_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// URLs built from the pieces parsers read differently.
fn generated_url() -> impl Strategy<Value = String> {
    // Plain pieces come often enough that a good share of URLs is canonical: the
    // property bites hardest there.
    let scheme = select(
        &[
            "http", "https", "https", "https", "HTTP", "HtTpS", "ws", "foo",
        ][..],
    );
    let slashes = prop_oneof![8 => Just("://"), 1 => select(&[":/", ":\\\\", ":///", "://\\", ":", ":\\/"][..])];
    let userinfo = prop_oneof![
        8 => Just(""),
        1 => select(&["user@", "user:pw@", "api.github.com@", "a@b@", "%40@", "u:p%40x@", ":@", "@"][..]),
    ];
    let host = select(
        &[
            "api.github.com",
            "api.github.com",
            "API.GitHub.com",
            "evil.com",
            "bücher.de",
            "xn--bcher-kva.de",
            "127.0.0.1",
            "0x7f.1",
            "2130706433",
            "0177.0.0.1",
            "127.1",
            "[::1]",
            "[0:0::1]",
            "[::ffff:127.0.0.1]",
            "ex%61mple.com",
            "a.com.",
            "a_b.com",
            "a.com;b.com",
            "api.github.com\\@evil.com",
            "api.github.com%2f@evil.com",
            "api.github.com#@evil.com",
            "api.github.com?@evil.com",
            "api.github.com%00.evil.com",
            "api.github.com:443@evil.com",
            "[::1]@evil.com",
            "",
            "1.2.3.4.5",
            "0x100000000",
        ][..],
    );
    let port = prop_oneof![4 => Just(""), 1 => select(&[":443", ":80", ":8080", ":", ":0443", ":65536", ":a"][..])];
    let path = prop_oneof![
        4 => select(&["/", "/x", "/a/b"][..]),
        1 => select(&["", "/a/../b", "/%2e%2e/", "\\x", "/@evil.com", "/x y", "/é"][..]),
    ];
    let query = select(&["", "", "", "?q=1", "?@evil.com", "?\\@evil.com", "?a=%zz"][..]);
    let fragment = select(&["", "", "", "#f", "#@evil.com"][..]);
    let noise = prop_oneof![
        8 => Just(""),
        1 => select(&["\t", "\n", " ", "\r", "\u{0}", "\u{b}", "\u{a0}", "\\"][..]),
    ];
    (
        scheme,
        slashes,
        userinfo,
        host,
        port,
        path,
        query,
        fragment,
        noise,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(s, sl, u, h, p, pa, q, f, noise, at)| {
            let mut url = format!("{s}{sl}{u}{h}{p}{pa}{q}{f}");
            let boundaries: Vec<usize> = url
                .char_indices()
                .map(|(i, _)| i)
                .chain([url.len()])
                .collect();
            url.insert_str(boundaries[at.index(boundaries.len())], noise);
            url
        })
}

/// The issue's URL and other hand-picked disagreements, always in the set.
const FIXED: &[&str] = &[
    "https://api.github.com\\@evil.com/x",
    "https://api.github.com@evil.com/x",
    "http://0x7f.1/",
    "https://api.github.com/x",
    "http://[::1]:8080/",
];

/// `urllib.parse.urlsplit(u).hostname` for each URL (None where Python raises), in one
/// run of the interpreter.
fn python_hosts(urls: &[String]) -> Vec<Option<String>> {
    const SCRIPT: &str = r#"
import json, sys
from urllib.parse import urlsplit
out = []
for u in json.load(sys.stdin):
    try:
        out.append(urlsplit(u).hostname)
    except Exception:
        out.append(None)
json.dump(out, sys.stdout)
"#;
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/venv/bin/python");
    let python = ["python3", venv]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("python3 is needed for the urllib.parse comparison (install python3)");
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let input = serde_json::to_vec(urls).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the urllib.parse script failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn hyper_host(url: &str) -> Option<String> {
    url.parse::<http::Uri>().ok()?.host().map(str::to_owned)
}

fn demo_host(url: &str) -> Option<String> {
    airlock_demo::target_of(url).ok().map(|t| t.host)
}

/// Hosts compared without case and IPv6 brackets, which parsers write differently.
fn comparable(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_lowercase()
}

#[test]
fn other_parsers_never_find_a_host_our_facts_would_let_through() {
    let mut runner = TestRunner::deterministic();
    let strategy = generated_url();
    let mut urls: Vec<String> = FIXED.iter().map(|u| (*u).to_owned()).collect();
    urls.extend((0..cases()).map(|_| strategy.new_tree(&mut runner).unwrap().current()));
    let python = python_hosts(&urls);

    let (mut disagreements, mut canonical) = (0, 0);
    let mut failures = Vec::new();
    for (url, python) in urls.iter().zip(python) {
        let facts = url::parse(url);
        if facts["ok"] != true {
            continue;
        }
        let ours = comparable(facts["host"].as_str().unwrap());
        if facts["canonical"] == true {
            canonical += 1;
        }
        let others = [
            ("http::Uri", hyper_host(url)),
            ("urllib.parse", python),
            ("demo", demo_host(url)),
        ];
        for (parser, host) in others {
            let Some(host) = host else { continue };
            if comparable(&host) == ours {
                continue;
            }
            disagreements += 1;
            if facts["canonical"] != false {
                failures.push(format!(
                    "{url:?}: {parser} says {host:?}, ours {ours:?}, and facts {facts}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements let through:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} URLs: {disagreements} host disagreements, all flagged; {canonical} canonical",
        urls.len()
    );
    // The comparison means something only with both kinds of case in the set.
    assert!(
        disagreements * 20 >= urls.len(),
        "only {disagreements} disagreements"
    );
    assert!(
        canonical * 20 >= urls.len(),
        "only {canonical} canonical URLs"
    );
}

#[test]
fn the_issue_url_is_flagged_and_each_parser_says_where_it_goes() {
    let url = "https://api.github.com\\@evil.com/x";
    let facts = url::parse(url);
    assert_eq!(facts["canonical"], false, "{facts}");
    assert_eq!(facts["ambiguous"], true, "{facts}");
    assert_eq!(facts["host"], "api.github.com");
    assert_eq!(
        python_hosts(&[url.to_owned()]),
        [Some("evil.com".to_owned())]
    );
    assert_eq!(demo_host(url).as_deref(), Some("api.github.com"));
}
