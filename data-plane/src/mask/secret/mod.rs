//! Secrets: the rule set in `rules.rs`, run behind a keyword prefilter (one
//! Aho-Corasick pass over the text finds which rules can match at all), and the
//! names of JSON fields and text keys that hold a secret.

mod keyed;
mod pem;
pub(crate) mod rules;

use super::{Family, Span};
use aho_corasick::{AhoCorasick, AhoCorasickKind};
use base64::Engine;
use regex::Regex;
use rules::{Check, Matcher, Rule, RULES};
use std::sync::LazyLock;

/// The rules compiled once: the prefilter, and each rule's regex.
struct Compiled {
    prefilter: AhoCorasick,
    /// For each prefilter pattern, the bit set of rules it enables.
    enables: Vec<u64>,
    regexes: Vec<Option<Regex>>,
}

static COMPILED: LazyLock<Result<Compiled, String>> = LazyLock::new(compile);

fn compile() -> Result<Compiled, String> {
    if RULES.len() > 64 {
        return Err(format!(
            "{} secret rules, at most 64 fit the rule set",
            RULES.len()
        ));
    }
    let mut keywords = Vec::new();
    let mut enables = Vec::new();
    for (i, rule) in RULES.iter().enumerate() {
        for keyword in rule.keywords {
            keywords.push(*keyword);
            enables.push(1u64 << i);
        }
    }
    let prefilter = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&keywords)
        .map_err(|e| format!("secret keywords: {e}"))?;
    let regexes = RULES
        .iter()
        .map(|rule| match rule.matcher {
            Matcher::Regex(pattern) => Regex::new(pattern)
                .map(Some)
                .map_err(|e| format!("secret rule {}: {e}", rule.id)),
            Matcher::PrivateKey | Matcher::KeyValue => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    Ok(Compiled {
        prefilter,
        enables,
        regexes,
    })
}

/// Compiles the rules now; the error names the rule that does not compile.
pub(super) fn warm_up() -> Result<(), String> {
    COMPILED.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// The rules the prefilter lets through for `text`, as a bit set.
fn candidates(compiled: &Compiled, text: &str) -> u64 {
    let mut hits = 0u64;
    for found in compiled.prefilter.find_overlapping_iter(text) {
        hits |= compiled.enables[found.pattern().as_usize()];
    }
    hits
}

/// Whether any secret rule could match `text` (the prefilter alone).
pub(super) fn may_match(text: &str) -> bool {
    match COMPILED.as_ref() {
        Ok(compiled) => compiled.prefilter.is_match(text),
        Err(_) => true,
    }
}

/// Whether `text` may hold a secret-named field (the `keyed_secret` keywords):
/// JSON holding one must be walked as a structure.
pub(super) fn may_name_a_field(text: &str) -> bool {
    let Ok(compiled) = COMPILED.as_ref() else {
        return true;
    };
    let keyed = RULES
        .iter()
        .position(|r| matches!(r.matcher, Matcher::KeyValue))
        .map_or(u64::MAX, |i| 1u64 << i);
    candidates(compiled, text) & keyed != 0
}

/// Finds secrets in `text`; `Err` when the rules could not be compiled (the caller
/// then hides the whole text: fail closed).
pub(super) fn find(text: &str, out: &mut Vec<Span>) -> Result<(), ()> {
    let compiled = COMPILED.as_ref().map_err(|_| ())?;
    let hits = candidates(compiled, text);
    if hits == 0 {
        return Ok(());
    }
    for (i, rule) in RULES.iter().enumerate() {
        if hits & (1 << i) == 0 {
            continue;
        }
        match (&rule.matcher, &compiled.regexes[i]) {
            (Matcher::Regex(_), Some(regex)) => find_regex(rule, regex, text, out),
            (Matcher::PrivateKey, _) => pem::find(text, rule.id, out),
            (Matcher::KeyValue, _) => keyed::find(text, rule.id, out),
            (Matcher::Regex(_), None) => {}
        }
    }
    Ok(())
}

fn find_regex(rule: &Rule, regex: &Regex, text: &str, out: &mut Vec<Span>) {
    if regex.captures_len() == 1 {
        for found in regex.find_iter(text) {
            if passes(rule.check, found.as_str()) {
                out.push(Span::new(
                    found.start(),
                    found.end(),
                    Family::Secret,
                    rule.id,
                ));
            }
        }
        return;
    }
    // The fast engine finds each match; the slower one that reports groups runs
    // only from where a match starts.
    for found in regex.find_iter(text) {
        let captures = regex.captures_at(text, found.start());
        if let Some(secret) = captures.as_ref().and_then(|c| c.get(1)) {
            if passes(rule.check, secret.as_str()) {
                out.push(Span::new(
                    secret.start(),
                    secret.end(),
                    Family::Secret,
                    rule.id,
                ));
            }
        }
    }
}

fn passes(check: Check, value: &str) -> bool {
    match check {
        Check::None => true,
        Check::Random { min_len, bits } => looks_random(value, min_len, bits),
        Check::BasicCredential => is_basic_credential(value),
        Check::NotPlaceholder => !is_placeholder(value),
    }
}

/// Shannon entropy of `value`'s bytes, bits per byte.
pub(super) fn entropy(value: &str) -> f32 {
    let mut counts = [0u32; 256];
    for b in value.bytes() {
        counts[usize::from(b)] += 1;
    }
    let len = value.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / len;
            -p * p.log2()
        })
        .sum()
}

/// A random-looking token: long enough, a digit and a letter, above the floor.
fn looks_random(value: &str, min_len: usize, bits: f32) -> bool {
    value.len() >= min_len
        && value.bytes().any(|b| b.is_ascii_digit())
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && entropy(value) >= bits
}

fn is_basic_credential(value: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .is_some_and(|text| {
            text.len() >= 3 && text.contains(':') && !text.contains(char::is_control)
        })
}

/// Values that stand for a secret without being one: references, templates,
/// masks, and words that say "nothing here".
pub(super) fn is_placeholder(value: &str) -> bool {
    const WORDS: &[&str] = &[
        "null",
        "none",
        "nil",
        "true",
        "false",
        "undefined",
        "empty",
        "required",
        "optional",
        "string",
        "redacted",
        "hidden",
        "masked",
        "unset",
        "n/a",
    ];
    let bytes = value.as_bytes();
    let env_reference = |s: &[u8]| {
        !s.is_empty()
            && s.iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    };
    value.is_empty()
        || WORDS.iter().any(|w| value.eq_ignore_ascii_case(w))
        || value.starts_with("${")
        || value.starts_with("$(")
        || value.starts_with("{{")
        || value.starts_with("[REDACTED")
        || (value.starts_with('%') && value.len() <= 3)
        || (value.starts_with('<') && value.ends_with('>'))
        || value
            .strip_prefix('$')
            .is_some_and(|rest| env_reference(rest.as_bytes()))
        || (env_reference(bytes)
            && value.contains('_')
            && !value.bytes().any(|b| b.is_ascii_digit()))
        || bytes.iter().all(|&b| b == bytes[0])
}

/// Key names (normalised) that hold protocol plumbing or counters, not secrets.
const NOT_SECRET_NAMES: &[&str] = &[
    "progresstoken",
    "pagetoken",
    "nextpagetoken",
    "prevpagetoken",
    "previouspagetoken",
    "nexttoken",
    "continuationtoken",
    "pwd",
    "oldpwd",
];

/// Endings of key names that hold a secret.
const SECRET_NAME_ENDINGS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "authkey",
    "accountkey",
    "sessionkey",
    "credential",
    "credentials",
    "authorization",
    "cookie",
];

/// Whether a JSON field or text key of this name holds a secret: the name,
/// lower-cased without `_`, `-` and `.`, *ends* with a secret word (`client_secret`,
/// `apiKey`, `X-Auth-Token`, `db.password`), so `max_tokens`, `token_count` and
/// `password_hint` stay readable; `progressToken` and page tokens are plumbing.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let mut buf = [0u8; 64];
    let mut n = 0;
    for b in name.bytes() {
        if matches!(b, b'_' | b'-' | b'.') {
            continue;
        }
        if n == buf.len() {
            return false;
        }
        buf[n] = b.to_ascii_lowercase();
        n += 1;
    }
    let normalized = &buf[..n];
    !NOT_SECRET_NAMES.iter().any(|w| normalized == w.as_bytes())
        && SECRET_NAME_ENDINGS
            .iter()
            .any(|w| normalized.ends_with(w.as_bytes()))
}

/// Whether the password-like part of the name is what it holds (no entropy floor
/// then: people pick words).
pub(super) fn is_password_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["password", "passwd", "passphrase", "pwd"]
        .iter()
        .any(|w| lower.ends_with(w))
}
