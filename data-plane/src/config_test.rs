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
    assert_eq!(config.policy_dir, PathBuf::from("/etc/airlock/policies"));
    assert_eq!(config.api_keys[0].kind, "agent");
    assert_eq!(config.upstreams[0].labels["env"], "prod");
    assert_eq!(
        config.upstreams[0].headers[0].0.as_str(),
        "x-upstream-token"
    );
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
            VALID.replace("http://127.0.0.1:9100/mcp", "https://x/mcp"),
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
    assert_eq!(config.upstreams[0].headers[0].1, "Bearer s3cret");

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

#[test]
fn control_plane_and_approvals_sections_are_validated() {
    assert!(parse(VALID).unwrap().control_plane.is_none(), "optional");
    std::env::set_var("AIRLOCK_TEST_CFG_NODE_TOKEN", "node-secret");
    let text = format!(
        "{VALID}[control_plane]\nurl = \"http://127.0.0.1:7443\"\ntoken = \"${{AIRLOCK_TEST_CFG_NODE_TOKEN}}\"\nnode_id = \"n1\"\n[approvals]\nkeepalive_s = 3\nmax_pending = 5\n"
    );
    let config = parse(&text).unwrap();
    let cp = config.control_plane.unwrap();
    assert_eq!(cp.token, "node-secret");
    assert_eq!(cp.node_id, "n1");
    assert_eq!(config.approvals.keepalive, Duration::from_secs(3));
    assert_eq!(config.approvals.max_pending, 5);
    let cases = [
        (
            "[control_plane]\nurl = \"ftp://x\"\ntoken = \"t\"\n",
            "control_plane.url",
        ),
        (
            "[control_plane]\nurl = \"http://x\"\ntoken = \" \"\n",
            "control_plane.token",
        ),
        ("[approvals]\nmax_pending = 0\n", "approvals.max_pending"),
        ("[approvals]\nkeepalive = 3\n", "unknown field"),
    ];
    for (extra, expected) in cases {
        let err = parse(&format!("{VALID}{extra}")).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra} => {err}");
    }
}
