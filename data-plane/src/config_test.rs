use super::*;

const VALID: &str = r#"
[server]
listen = "127.0.0.1:8080"
allowed_origins = ["http://localhost:6274"]
[policy]
dir = "policies"
[[api_keys]]
subject = "demo-agent"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
groups = ["agents"]
[[upstreams]]
name = "demo"
url = "http://127.0.0.1:9100/mcp"
labels = { env = "prod" }
headers = { X-Upstream-Token = "static" }
"#;

fn parse(text: &str) -> Result<ProxyConfig, ConfigError> {
    ProxyConfig::from_toml_str(text, Path::new("/etc/airlock/airlock.toml"))
}

#[test]
fn a_valid_config_becomes_typed_values_with_defaults() {
    let config = parse(VALID).unwrap();
    assert_eq!(config.listen.port(), 8080);
    assert_eq!(config.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(config.max_depth, 64);
    assert_eq!(config.request_timeout, Duration::from_secs(300));
    assert_eq!(
        config.policy_dir,
        Some(PathBuf::from("/etc/airlock/policies"))
    );
    assert_eq!(config.api_keys[0].kind, "agent");
    assert_eq!(config.upstreams[0].labels["env"], "prod");
    let TransportConfig::Http { headers, .. } = &config.upstreams[0].transport else {
        panic!("an upstream with a url is an HTTP upstream");
    };
    assert_eq!(headers[0].0.as_str(), "x-upstream-token");
    assert!(config.session_secret.is_none());
}

#[test]
fn a_misspelled_key_names_the_file_and_the_key() {
    let text = VALID
        .replace("max_depth", "x")
        .replace("listen =", "listn =");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("/etc/airlock/airlock.toml"), "{err}");
    assert!(err.contains("listn"), "{err}");
}

#[test]
fn invalid_values_are_refused_with_the_key_and_a_hint() {
    let cases = [
        (
            VALID.replace("127.0.0.1:8080", "localhost"),
            "server.listen",
        ),
        (VALID.replace("9f86d081884c", "zz"), "api_keys[0].sha256"),
        (
            VALID.replace("http://127.0.0.1:9100/mcp", "ftp://x/mcp"),
            "upstreams[0].url",
        ),
        (
            VALID.replace("name = \"demo\"", "name = \"de mo\""),
            "upstreams[0].name",
        ),
        (
            VALID.replace("groups = [\"agents\"]", "kind = \"robot\""),
            "api_keys[0].kind",
        ),
        (
            VALID.replace("\"http://localhost:6274\"", "\"localhost\""),
            "server.allowed_origins[0]",
        ),
    ];
    for (text, key) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
        assert!(err.contains("hint"), "expected a hint in: {err}");
    }
}

#[test]
fn environment_references_are_resolved_and_a_missing_one_is_named() {
    std::env::set_var("AIRLOCK_CONFIG_TEST_TOKEN", "s3cret");
    let text = VALID.replace("\"static\"", "\"Bearer ${AIRLOCK_CONFIG_TEST_TOKEN}\"");
    let config = parse(&text).unwrap();
    let TransportConfig::Http { headers, .. } = &config.upstreams[0].transport else {
        panic!("an HTTP upstream");
    };
    assert_eq!(headers[0].1, "Bearer s3cret");

    let text = VALID.replace("\"static\"", "\"${AIRLOCK_CONFIG_TEST_UNSET_VAR}\"");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("AIRLOCK_CONFIG_TEST_UNSET_VAR"), "{err}");
    assert!(
        err.contains("upstreams[0].headers.X-Upstream-Token"),
        "{err}"
    );
}

#[test]
fn a_short_session_secret_is_refused() {
    let text = VALID.replace("[policy]", "session_secret = \"short\"\n[policy]");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("server.session_secret"), "{err}");
}

#[test]
fn duplicate_upstream_names_are_refused() {
    let text =
        format!("{VALID}\n[[upstreams]]\nname = \"demo\"\nurl = \"http://127.0.0.1:1/mcp\"\n");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("upstreams[1].name"), "{err}");
}

/// VALID with `[policy] dir` replaced by a `[control_plane]` table trusting a fresh key.
fn with_control_plane(extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    airlock_bundle::write_keypair(&dir.path().join("bundle")).unwrap();
    let table = format!(
        "[control_plane]\nurl = \"http://127.0.0.1:7443\"\ntoken = \"node-token\"\nbundle_public_keys = [\"bundle.pub\"]\n{extra}\n"
    );
    let text = VALID.replace("[policy]\ndir = \"policies\"\n", &table);
    (dir, text)
}

fn parse_in(dir: &tempfile::TempDir, text: &str) -> Result<ProxyConfig, ConfigError> {
    ProxyConfig::from_toml_str(text, &dir.path().join("airlock.toml"))
}

#[test]
fn a_control_plane_table_replaces_the_policy_dir() {
    let (dir, text) = with_control_plane("node_id = \"proxy-a\"\nbundle_cache_dir = \"cache\"");
    let config = parse_in(&dir, &text).unwrap();
    assert!(config.policy_dir.is_none());
    let cp = config.control_plane.unwrap();
    assert_eq!(cp.node_id, "proxy-a");
    assert_eq!(cp.bundle_keys.len(), 1);
    assert_eq!(cp.bundle_cache_dir, Some(dir.path().join("cache")));
    assert_eq!(cp.heartbeat, Duration::from_secs(10));

    let (dir, text) = with_control_plane("");
    let generated = parse_in(&dir, &text)
        .unwrap()
        .control_plane
        .unwrap()
        .node_id;
    assert!(generated.len() > 9, "{generated}");
}

#[test]
fn control_plane_mistakes_are_refused_with_the_key() {
    let cases = [
        ("", "[policy]\ndir = \"p\"\n", "policy.dir"),
        ("node_id = \"a b\"", "", "control_plane.node_id"),
        ("heartbeat_s = 0", "", "control_plane.heartbeat_s"),
    ];
    for (extra, append, key) in cases {
        let (dir, text) = with_control_plane(extra);
        let err = parse_in(&dir, &format!("{text}{append}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
    }
    let (dir, text) = with_control_plane("");
    let broken = [
        (
            text.replace("http://127.0.0.1:7443", "127.0.0.1:7443"),
            "control_plane.url",
        ),
        (
            text.replace("[\"bundle.pub\"]", "[]"),
            "control_plane.bundle_public_keys",
        ),
        (
            text.replace("bundle.pub", "missing.pub"),
            "bundle_public_keys[0]",
        ),
        (
            VALID.replace("[policy]\ndir = \"policies\"\n", ""),
            "policy.dir",
        ),
    ];
    for (text, key) in broken {
        let err = parse_in(&dir, &text).unwrap_err().to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
    }
}

#[test]
fn the_approvals_section_is_validated() {
    let defaults = parse(VALID).unwrap().approvals;
    assert_eq!(defaults.keepalive, Duration::from_secs(10));
    assert_eq!(defaults.max_pending, 10_000);
    let config = parse(&format!(
        "{VALID}[approvals]\nkeepalive_s = 3\nmax_pending = 5\n"
    ))
    .unwrap();
    assert_eq!(config.approvals.keepalive, Duration::from_secs(3));
    assert_eq!(config.approvals.max_pending, 5);
    assert_eq!(
        config.approvals.max_pending_per_identity, 5,
        "capped by max_pending"
    );
    assert_eq!(defaults.max_pending_per_identity, 100);
    let cases = [
        ("[approvals]\nmax_pending = 0\n", "approvals.max_pending"),
        (
            "[approvals]\nmax_pending = 5\nmax_pending_per_identity = 6\n",
            "approvals.max_pending_per_identity",
        ),
        ("[approvals]\nkeepalive_s = 0\n", "approvals.keepalive_s"),
        ("[approvals]\nkeepalive = 3\n", "unknown field"),
    ];
    for (extra, expected) in cases {
        let err = parse(&format!("{VALID}{extra}")).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra} => {err}");
    }
}

#[test]
fn the_telemetry_section_is_validated() {
    let config = parse(&format!(
        "{VALID}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4317\"\nsample_ratio = 0.5\n"
    ))
    .unwrap();
    assert_eq!(
        config.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4317")
    );
    assert_eq!(config.telemetry.service_name, "airlock-proxy");
    assert_eq!(config.telemetry.sample_ratio, 0.5);
    let cases = [
        (
            "[telemetry]\notlp_endpoint = \"localhost:4317\"\n",
            "key `telemetry.otlp_endpoint`",
        ),
        (
            "[telemetry]\nsample_ratio = 2.0\n",
            "key `telemetry.sample_ratio`: 2 is not between 0.0 and 1.0; hint:",
        ),
        (
            "[telemetry]\notlp = \"http://c:4317\"\n",
            "unknown field `otlp`",
        ),
    ];
    for (extra, expected) in cases {
        let err = parse(&format!("{VALID}{extra}")).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra} => {err}");
        assert!(err.contains("invalid config file"), "{extra} => {err}");
    }
}

const JWT: &str = "[[jwt]]\nissuer = \"https://idp.example.com/\"\naudience = \"airlock\"\n";

#[test]
fn a_jwt_issuer_gets_safe_defaults_and_an_anchored_jwks_file() {
    let text = format!("{VALID}{JWT}jwks_file = \"jwks.json\"\n");
    let config = parse(&text).unwrap();
    let issuer = &config.jwt[0];
    assert_eq!(
        issuer.jwks,
        JwksSource::File(PathBuf::from("/etc/airlock/jwks.json"))
    );
    assert_eq!(
        (issuer.subject_claim.as_str(), issuer.groups_claim.as_str()),
        ("sub", "groups")
    );
    assert_eq!(issuer.kind, "agent");
    assert_eq!(issuer.leeway, Duration::from_secs(30));
    assert!(!issuer.algorithms.contains(&jsonwebtoken::Algorithm::HS256));
    assert!(issuer.algorithms.contains(&jsonwebtoken::Algorithm::EdDSA));
}

#[test]
fn unsafe_or_ambiguous_jwt_settings_are_refused_with_a_hint() {
    let url = "jwks_url = \"https://idp.example.com/jwks.json\"\n";
    let cases = [
        (format!("{VALID}{JWT}"), "jwt[0].jwks_url"),
        (
            format!("{VALID}{JWT}{url}jwks_file = \"k.json\"\n"),
            "jwt[0].jwks_url",
        ),
        (
            format!("{VALID}{JWT}jwks_url = \"ftp://idp/jwks\"\n"),
            "jwt[0].jwks_url",
        ),
        (
            format!("{VALID}{JWT}{url}algorithms = [\"HS256\"]\n"),
            "jwt[0].algorithms",
        ),
        (
            format!("{VALID}{JWT}{url}algorithms = [\"none\"]\n"),
            "jwt[0].algorithms",
        ),
        (
            format!("{VALID}{JWT}{url}leeway_s = 3600\n"),
            "jwt[0].leeway_s",
        ),
        (
            format!("{VALID}{JWT}{url}kind = \"robot\"\n"),
            "jwt[0].kind",
        ),
        (format!("{VALID}{JWT}{url}{JWT}{url}"), "jwt[1].issuer"),
    ];
    for (text, key) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
        assert!(err.contains("hint"), "expected a hint in: {err}");
    }
}

#[test]
fn outbound_ca_files_are_read_at_start_up_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
    let with = |file: &str| format!("{VALID}[outbound_tls]\nca_certs = [\"{file}\"]\n");
    let config = parse_in(&dir, &with("ca.pem")).unwrap();
    assert_eq!(config.outbound_ca_certs.len(), 1);
    for file in ["junk.pem", "missing.pem"] {
        let err = parse_in(&dir, &with(file)).unwrap_err().to_string();
        assert!(err.contains("outbound_tls.ca_certs[0]"), "{err}");
        assert!(err.contains("hint"), "{err}");
    }
}

#[test]
fn limits_default_to_timeouts_and_a_quarter_of_the_proxy_per_identity() {
    let config = parse(VALID).unwrap();
    assert_eq!(config.limits, LimitsConfig::defaults(1024));
    assert_eq!(config.limits.max_concurrent_per_identity, 256);
    assert_eq!(config.limits.body_idle_timeout, Duration::from_secs(5));
    assert!(config.limits.rate.is_none() && config.limits.tools.is_empty());
}

#[test]
fn a_limits_table_becomes_typed_rates() {
    let text = format!(
        "{VALID}\n[limits]\nbody_idle_timeout_s = 2\nbody_timeout_s = 9\nmax_concurrent_per_identity = 8\n\
         [limits.rate]\nper_minute = 600\nburst = 50\n[limits.tools.query]\nper_minute = 30\n"
    );
    let limits = parse(&text).unwrap().limits;
    assert_eq!(limits.body_idle_timeout, Duration::from_secs(2));
    assert_eq!(limits.body_timeout, Duration::from_secs(9));
    assert_eq!(limits.max_concurrent_per_identity, 8);
    let rate = limits.rate.unwrap();
    assert_eq!((rate.per_minute.get(), rate.burst.get()), (600, 50));
    let query = limits.tools["query"];
    assert_eq!((query.per_minute.get(), query.burst.get()), (30, 30));
}

#[test]
fn bad_limits_name_their_key() {
    let cases = [
        ("[limits]\nheader_timeout_s = 0", "limits.header_timeout_s"),
        (
            "[limits]\nbody_idle_timeout_s = 0",
            "limits.body_idle_timeout_s",
        ),
        (
            "[limits]\nbody_idle_timeout_s = 10\nbody_timeout_s = 5",
            "limits.body_timeout_s",
        ),
        (
            "[limits]\nmax_concurrent_per_identity = 2000",
            "limits.max_concurrent_per_identity",
        ),
        (
            "[limits]\nmax_concurrent_per_identity = 0",
            "limits.max_concurrent_per_identity",
        ),
        (
            "[limits]\nmax_unauthenticated_per_source = 0",
            "limits.max_unauthenticated_per_source",
        ),
        ("[limits.rate]\nper_minute = 0", "limits.rate.per_minute"),
        (
            "[limits.tools.query]\nper_minute = 5\nburst = 0",
            "limits.tools.query.burst",
        ),
        ("[limits.tools.\"\"]\nper_minute = 5", "limits.tools"),
    ];
    for (table, key) in cases {
        let err = parse(&format!("{VALID}\n{table}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("key `{key}`")),
            "expected `{key}` in: {err}"
        );
        assert!(err.contains("hint"), "expected a hint in: {err}");
    }
    // Unknown keys are refused by name too.
    for (table, key) in [
        ("[limits]\nbody_timeout = 5", "body_timeout"),
        ("[limits.rate]\nper_second = 5", "per_second"),
    ] {
        let err = parse(&format!("{VALID}\n{table}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
    }
}

const STDIO: &str = r#"
[[upstreams]]
name = "files"
command = ["/bin/cat", "-u"]
env = { TOKEN = "${AIRLOCK_CONFIG_TEST_STDIO}" }
cwd = "/tmp"
max_processes = 4
idle_timeout_s = 60
"#;

#[test]
fn a_stdio_upstream_becomes_its_command_env_and_limits() {
    std::env::set_var("AIRLOCK_CONFIG_TEST_STDIO", "t0k");
    let config = parse(&format!("{VALID}{STDIO}")).unwrap();
    let TransportConfig::Stdio(stdio) = &config.upstreams[1].transport else {
        panic!("an upstream with a command is a stdio upstream");
    };
    assert_eq!(stdio.command, ["/bin/cat", "-u"]);
    assert_eq!(stdio.env["TOKEN"], "t0k");
    assert_eq!(stdio.cwd.as_deref(), Some(Path::new("/tmp")));
    assert_eq!(stdio.max_processes, 4);
    assert_eq!(stdio.idle_timeout, Duration::from_secs(60));
    assert_eq!(stdio.startup_timeout, Duration::from_secs(30));
}

#[test]
fn stdio_mistakes_are_refused_with_the_key() {
    std::env::set_var("AIRLOCK_CONFIG_TEST_STDIO", "t0k");
    let cases = [
        (
            STDIO.replace("[\"/bin/cat\", \"-u\"]", "[]"),
            "upstreams[1].command",
        ),
        (
            STDIO.replace("/bin/cat", "no-such-program-airlock"),
            "upstreams[1].command",
        ),
        (
            STDIO.replace("cwd = \"/tmp\"", "cwd = \"/no/such/dir\""),
            "upstreams[1].cwd",
        ),
        (
            STDIO.replace("max_processes = 4", "max_processes = 0"),
            "upstreams[1].max_processes",
        ),
        (
            STDIO.replace("TOKEN =", "\"1BAD\" ="),
            "upstreams[1].env.1BAD",
        ),
        (
            STDIO.replace("cwd = \"/tmp\"", "url = \"http://127.0.0.1:1/mcp\""),
            "upstreams[1].command",
        ),
        (
            STDIO.replace("cwd = \"/tmp\"", "headers = { A = \"b\" }"),
            "upstreams[1].headers",
        ),
    ];
    for (stdio, key) in cases {
        let err = parse(&format!("{VALID}{stdio}")).unwrap_err().to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
    }
    let http_with_stdio_keys = VALID.replace("labels =", "idle_timeout_s = 5\nlabels =");
    let err = parse(&http_with_stdio_keys).unwrap_err().to_string();
    assert!(err.contains("upstreams[0].idle_timeout_s"), "{err}");
}

#[test]
fn federations_name_existing_upstreams_once() {
    std::env::set_var("AIRLOCK_CONFIG_TEST_STDIO", "t0k");
    let ok = format!(
        "{VALID}{STDIO}\n[[federations]]\nname = \"all\"\nupstreams = [\"demo\", \"files\"]\n"
    );
    let config = parse(&ok).unwrap();
    assert_eq!(config.federations[0].separator, "__");
    assert_eq!(config.federations[0].upstreams, ["demo", "files"]);
    for (bad, key) in [
        (
            ok.replace("\"demo\", \"files\"", "\"demo\", \"nope\""),
            "federations[0].upstreams[1]",
        ),
        (
            ok.replace("\"demo\", \"files\"", "\"demo\", \"demo\""),
            "federations[0].upstreams[1]",
        ),
        (
            ok.replace("name = \"all\"", "name = \"demo\""),
            "federations[0].name",
        ),
        (
            ok.replace("\"demo\", \"files\"", ""),
            "federations[0].upstreams",
        ),
    ] {
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains(key), "expected `{key}` in: {err}");
    }
}
