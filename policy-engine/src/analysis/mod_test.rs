use super::*;
use serde_json::json;

fn bundle(source: &str) -> Bundle {
    Bundle::from_parts(
        vec![Module {
            path: "a.rego".to_owned(),
            source: source.to_owned(),
        }],
        json!({}),
    )
}

fn risks(source: &str) -> Vec<String> {
    let parsed = parse_bundle(&bundle(source), false).unwrap();
    conflict_risks(&parsed)
        .into_iter()
        .map(|r| r.rule)
        .collect()
}

#[test]
fn finds_package_preamble_and_definitions() {
    let parsed = parse_bundle(
        &bundle("package airlock.x\n\nimport rego.v1\n\ndefault d := 1\n\nd := 2 if input.a\n\ns contains 1 if true\n\nf(x) := x\n"),
        false,
    )
    .unwrap();
    let m = &parsed[0];
    assert_eq!(m.package, "airlock.x");
    assert_eq!(m.preamble, "package airlock.x\nimport rego.v1\n");
    let kinds: Vec<_> = m
        .rules
        .iter()
        .map(|d| (d.name.as_str(), d.kind, d.line))
        .collect();
    assert_eq!(
        kinds,
        [
            ("d", HeadKind::Default, 5),
            ("d", HeadKind::Complete, 7),
            ("s", HeadKind::Set, 9),
            ("f", HeadKind::Function, 11)
        ]
    );
    assert_eq!(m.rules[1].text, "d := 2 if input.a");
}

#[test]
fn rules_that_can_clash_are_found() {
    // Two definitions with different values: OPA's conflict, the RVM's undefined.
    assert_eq!(
        risks("package t\nimport rego.v1\nr := 3 if input.a\nr := 2 if input.b\n"),
        ["t.r"]
    );
    // One definition whose body iterates.
    assert_eq!(
        risks("package t\nimport rego.v1\nr := x if { some x in input.xs }\n"),
        ["t.r"]
    );
    assert_eq!(
        risks("package t\nimport rego.v1\nr := x if { x := input.xs[_] }\n"),
        ["t.r"]
    );
    assert_eq!(
        risks("package t\nimport rego.v1\nr := x if { x := input.xs[i] }\n"),
        ["t.r"]
    );
    assert_eq!(
        risks("package t\nimport rego.v1\nr[k] := 1 if { k := input.k }\n"),
        ["t.r"]
    );
    // Functions with clashing definitions too.
    assert_eq!(
        risks("package t\nimport rego.v1\nf(x) := 1 if x > 0\nf(x) := 2 if x > 1\n"),
        ["t.f"]
    );
}

#[test]
fn rules_that_cannot_clash_are_not() {
    for source in [
        // Booleans defined twice, sets, defaults, else chains, bound indexes.
        "package t\nimport rego.v1\nr if input.a\nr if input.b\n",
        "package t\nimport rego.v1\ns contains x if { some x in input.xs }\n",
        "package t\nimport rego.v1\ndefault r := 1\nr := 2 if input.a\n",
        "package t\nimport rego.v1\nr := 1 if input.a else := 2\n",
        "package t\nimport rego.v1\nr := c if { c := data.classes[input.name] }\n",
        "package t\nimport rego.v1\nr := x if { i := 1; x := input.xs[i] }\n",
        "package t\nimport rego.v1\nr if { some x in input.xs; x > 1 }\n",
        "package t\nimport rego.v1\nr := {x | some x in input.xs}\n",
        "package t\nimport rego.v1\nr := \"a\" if { every x in input.xs { x > 1 } }\n",
        "package t\nimport rego.v1\nf(x) := y if { y := data.m[x] }\n",
    ] {
        assert_eq!(risks(source), Vec::<String>::new(), "{source}");
    }
}

#[test]
fn renames_heads_only() {
    let source = "package airlock\nimport rego.v1\n# decision is documented here\ndefault decision := {\"v\": \"decision\"}\ndecision := d if { d := 1 }\nx := decision\n";
    let parsed = parse_bundle(&bundle(source), false).unwrap();
    let renamed = rename_rule(source, &parsed[0], "decision", "__ref");
    assert_eq!(
        renamed,
        "package airlock\nimport rego.v1\n# decision is documented here\ndefault __ref := {\"v\": \"decision\"}\n__ref := d if { d := 1 }\nx := decision\n"
    );
}

#[test]
fn the_default_bundle_has_no_clashing_rules() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let b = Bundle::from_dir(&dir).unwrap();
    let parsed = parse_bundle(&b, false).unwrap();
    assert_eq!(conflict_risks(&parsed), Vec::new());
}

fn recursion_error(source: &str) -> Option<String> {
    match parse_bundle(&bundle(source), false) {
        Err(PolicyError::Compile { message, line, .. }) => Some(format!("{line}: {message}")),
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => None,
    }
}

#[test]
fn rules_that_depend_on_themselves_are_refused_naming_the_cycle() {
    let direct =
        recursion_error("package t\nimport rego.v1\ns contains 1 if count(s) > 0\n").unwrap();
    assert!(direct.contains("recursion: t.s -> t.s"), "{direct}");
    let mutual = recursion_error(
        "package t\nimport rego.v1\na if b\nb if f(1)\nf(x) := y if { a; y := x }\n",
    )
    .unwrap();
    assert!(mutual.contains("t.a -> t.b -> t.f -> t.a"), "{mutual}");
    let by_path = recursion_error(
        "package t\nimport rego.v1\nimport data.t as me\nx := data.t.y.z\ny := {\"z\": me.x}\n",
    )
    .unwrap();
    assert!(by_path.contains("t.x -> t.y -> t.x"), "{by_path}");
}

#[test]
fn locals_named_like_rules_are_not_recursion() {
    for source in [
        "package t\nimport rego.v1\nclass := c if { c := 1 }\nc := 2\n",
        "package t\nimport rego.v1\ns contains x if { some x in [1] }\nx := 3\n",
        "package t\nimport rego.v1\nf(v) := v\nv := f(2)\n",
        "package t\nimport rego.v1\nr := {d | some d in [1]}\nd := 5\n",
    ] {
        assert_eq!(recursion_error(source), None, "{source}");
    }
}
