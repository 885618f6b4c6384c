use super::*;

#[test]
fn a_plain_url_is_canonical() {
    let u = parse("https://api.github.com/repos/x?page=2");
    assert_eq!(u["ok"], true);
    assert_eq!(u["scheme"], "https");
    assert_eq!(u["host"], "api.github.com");
    assert_eq!(u["host_kind"], "domain");
    assert_eq!(u["port"], 443);
    assert_eq!(u["port_explicit"], false);
    assert_eq!(u["userinfo"], false);
    assert_eq!(u["path"], "/repos/x");
    assert_eq!(u["query"], true);
    assert_eq!(u["fragment"], false);
    assert_eq!(u["canonical"], true);
    assert_eq!(u["ambiguous"], false);
}

#[test]
fn the_backslash_attack_is_flagged() {
    let u = parse("https://api.github.com\\@evil.com/x");
    assert_eq!(u["ok"], true, "{u}");
    // WHATWG: the backslash is a slash, so the host is api.github.com and the path
    // /@evil.com/x; Python's urlsplit says evil.com. Either way: not canonical.
    assert_eq!(u["host"], "api.github.com");
    assert_eq!(u["canonical"], false);
    assert_eq!(u["ambiguous"], true);
    assert_eq!(u["ambiguities"], serde_json::json!(["backslash"]));
}

#[test]
fn hosts_are_normalised() {
    let cases = [
        ("http://EXAMPLE.com/", "example.com", "domain", false),
        ("http://bücher.de/", "xn--bcher-kva.de", "domain", false),
        ("http://0x7f.1/", "127.0.0.1", "ipv4", false),
        ("http://2130706433/", "127.0.0.1", "ipv4", false),
        ("http://0177.0.0.1/", "127.0.0.1", "ipv4", false),
        ("http://127.0.0.1/", "127.0.0.1", "ipv4", true),
        ("http://[0:0::1]/", "[::1]", "ipv6", false),
        ("http://[::1]/", "[::1]", "ipv6", true),
        ("http://ex%61mple.com/", "example.com", "domain", false),
        ("foo://Opaque.Host/x", "Opaque.Host", "opaque", true),
        ("mailto:a@b.c", "", "none", true),
    ];
    for (text, host, kind, canonical) in cases {
        let u = parse(text);
        assert_eq!(
            (&u["host"], &u["host_kind"]),
            (&host.into(), &kind.into()),
            "{text}: {u}"
        );
        assert_eq!(u["canonical"], canonical, "{text}: {u}");
    }
}

#[test]
fn ports_userinfo_and_odd_shapes() {
    let u = parse("http://a.com:8080/");
    assert_eq!(
        (&u["port"], &u["port_explicit"]),
        (&8080.into(), &true.into())
    );
    assert_eq!(
        parse("http://a.com:80/")["canonical"],
        false,
        "default port is dropped"
    );
    assert_eq!(parse("file:///etc/passwd")["port"], serde_json::Value::Null);
    let u = parse("https://api.github.com@evil.com/");
    assert_eq!(
        (&u["host"], &u["userinfo"], &u["canonical"]),
        (&"evil.com".into(), &true.into(), &false.into())
    );
    let u = parse("https://a@b@evil.com/");
    assert_eq!(u["host"], "evil.com");
    assert!(
        u["ambiguities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "multiple_at"),
        "{u}"
    );
    for text in [
        "https://a.com/\tx",
        "https://a.com/x\n",
        " https://a.com/",
        "HTTPS://a.com/",
    ] {
        let u = parse(text);
        assert_eq!(u["ok"], true, "{text:?}");
        assert_eq!(u["canonical"], false, "{text:?}");
    }
}

#[test]
fn refusals() {
    for text in [
        "/relative",
        "",
        "https://",
        "http://[::1/",
        "http://a.com:99999/",
        "http://a b.com/",
    ] {
        let u = parse(text);
        assert_eq!(u["ok"], false, "{text}: {u}");
        assert_eq!((&u["host"], &u["canonical"]), (&"".into(), &false.into()));
    }
    let long = format!("https://a.com/{}", "x".repeat(MAX_URL_BYTES));
    assert!(parse(&long)["error"].as_str().unwrap().contains("limit"));
}
