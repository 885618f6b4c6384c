//! `facts::path::normalize` against a real file system: generated paths (names, `.`,
//! `..`, empty segments, percent-escapes) are resolved by the kernel under a temporary
//! root holding every directory they can name (no symlinks), and the lexical answer
//! must be where the kernel lands, or say `escapes_root` when the kernel climbed out.
//!
//! Cases: `AIRLOCK_DIFF_CASES` (default 3000).

use airlock_policy::facts::path;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const NAMES: &[&str] = &["a", "b"];
const DEPTH: usize = 5;

fn cases() -> u32 {
    std::env::var("AIRLOCK_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// `root/{a,b}/{a,b}/...` to `DEPTH` levels.
fn tree(root: &Path, depth: usize) {
    if depth == 0 {
        return;
    }
    for name in NAMES {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        tree(&dir, depth - 1);
    }
}

/// A segment as written (maybe percent-encoded) and as the server decodes it.
fn segment() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(
        &[
            ("a", "a"),
            ("b", "b"),
            ("a", "a"),
            ("b", "b"),
            (".", "."),
            ("..", ".."),
            ("", ""),
            ("%2e", "."),
            ("%2e%2e", ".."),
            (".%2E", ".."),
            ("%61", "a"),
            ("a%2fb", "a/b"),
            ("%2F..", "/.."),
        ][..],
    )
}

fn generated_path() -> impl Strategy<Value = (String, String)> {
    (
        any::<bool>(),
        prop::collection::vec(segment(), 0..10),
        any::<bool>(),
    )
        .prop_map(|(absolute, segments, trailing)| {
            let lead = if absolute { "/" } else { "" };
            let tail = if trailing { "/" } else { "" };
            let raw: Vec<&str> = segments.iter().map(|(raw, _)| *raw).collect();
            let decoded: Vec<&str> = segments.iter().map(|(_, decoded)| *decoded).collect();
            let raw = format!("{lead}{}{tail}", raw.join("/"));
            let decoded = format!("{lead}{}{tail}", decoded.join("/"));
            (raw, decoded)
        })
}

/// Where the kernel lands for `decoded` under `root`, and whether any step of the walk
/// was outside `root`; `None` when a step does not exist.
fn walk(root: &Path, decoded: &str) -> Option<(PathBuf, bool)> {
    let mut prefix = PathBuf::new();
    let mut left_root = false;
    let mut here = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        prefix.push(segment);
        here = root.join(&prefix).canonicalize().ok()?;
        left_root |= !here.starts_with(root);
    }
    Some((here, left_root))
}

#[test]
fn normalize_lands_where_the_file_system_does() {
    let scratch = tempfile::tempdir().unwrap();
    // Above the root, two plain directories, so a climb out lands somewhere real.
    let root = scratch.path().join("up1").join("up2").join("root");
    std::fs::create_dir_all(&root).unwrap();
    tree(&root, DEPTH);
    let root = root.canonicalize().unwrap();
    static COMPARED: AtomicUsize = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&generated_path(), |(raw, decoded)| {
            let facts = path::normalize(&raw);
            if raw.is_empty() {
                prop_assert_eq!(&facts["ok"], &serde_json::Value::Bool(false));
                return Ok(());
            }
            prop_assert_eq!(&facts["ok"], &serde_json::Value::Bool(true), "{}", facts);
            // The server resolves the decoded path from the root (absolute) or from the
            // root as its working directory (relative): the same place here. The kernel
            // walks it one segment at a time; we look at each step.
            let Some((real, left_root)) = walk(&root, &decoded) else {
                // Deeper than the tree: the kernel fails where lexical normalisation
                // cannot know, nothing to compare.
                return Ok(());
            };
            COMPARED.fetch_add(1, Ordering::Relaxed);
            let normalized = facts["normalized"].as_str().unwrap();
            prop_assert_eq!(
                &facts["escapes_root"],
                &serde_json::Value::Bool(left_root),
                "{:?}: {}",
                raw,
                facts
            );
            if !left_root {
                let inside = real.strip_prefix(&root).unwrap();
                let lexical: PathBuf = normalized
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .collect();
                prop_assert_eq!(inside, lexical.as_path(), "{:?} → {}", raw, facts);
            }
            prop_assert_eq!(facts["was_normal"] == true, raw == normalized);
            Ok(())
        })
        .unwrap();
    let compared = COMPARED.load(Ordering::Relaxed);
    assert!(
        compared * 3 >= cases() as usize,
        "only {compared} paths resolved on disk"
    );
}
