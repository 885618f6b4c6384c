//! Masking: sensitive data replaced before it leaves the proxy, for storage (every
//! audit payload, all detectors) or for the agent (what `decision.mask` lists).
//!
//! A [`MaskSet`] says what to hide: built-in detectors (`credit_card`, `email`,
//! `secret`) and JSON pointers. [`MaskSet::apply`] walks a `serde_json::Value` and
//! rewrites string values in place, so the result stays valid JSON: a match becomes
//! `[REDACTED:credit_card]` (or `[REDACTED:credit_card:1111]` with `last_four`), a
//! field named like a secret becomes `"[REDACTED:secret]"` whatever its type, and a
//! pointer's target becomes `"[REDACTED]"`. Detectors are hand-written byte scanners
//! (no regex): each string is scanned once per detector only if it holds the byte
//! the detector needs (a digit, `@`, ...). See docs/audit.md for the false-positive
//! policy of each detector.

mod card;
mod email;
mod secret;

#[cfg(test)]
#[path = "cases_test.rs"]
mod cases_test;
#[cfg(test)]
#[path = "proptest_test.rs"]
mod proptest_test;

use serde_json::Value;

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A payment card number.
    CreditCard,
    /// An email address.
    Email,
    /// A credential (AWS key, private key, bearer token, secret-named field).
    Secret,
}

impl Kind {
    /// The detector's name in `decision.mask` and in replacements.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CreditCard => "credit_card",
            Kind::Email => "email",
            Kind::Secret => "secret",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        match name {
            "credit_card" | "card" | "pan" => Some(Kind::CreditCard),
            "email" => Some(Kind::Email),
            "secret" | "secrets" => Some(Kind::Secret),
            _ => None,
        }
    }
}

/// A byte range of a string to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
    /// The card's last four digits (empty for other kinds).
    last_four: String,
}

/// What to mask: detectors and JSON pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskSet {
    cards: bool,
    emails: bool,
    secrets: bool,
    pointers: Vec<String>,
    last_four: bool,
}

impl MaskSet {
    /// Every built-in detector: what the audit log stores.
    pub fn all(last_four: bool) -> MaskSet {
        MaskSet {
            cards: true,
            emails: true,
            secrets: true,
            pointers: Vec::new(),
            last_four,
        }
    }

    /// The set a decision asks for (`decision.mask`): detector names and JSON
    /// pointers (`/result/content/0/text`). An unknown name is a policy mistake that
    /// must not leak data, so it turns on every detector (fail closed); it is
    /// returned so the caller can log it.
    pub fn from_names(names: &[String], last_four: bool) -> (MaskSet, Vec<String>) {
        let mut set = MaskSet {
            last_four,
            ..MaskSet::default()
        };
        let mut unknown = Vec::new();
        for name in names {
            if name.starts_with('/') {
                set.pointers.push(name.clone());
                continue;
            }
            match Kind::parse(name) {
                Some(Kind::CreditCard) => set.cards = true,
                Some(Kind::Email) => set.emails = true,
                Some(Kind::Secret) => set.secrets = true,
                None => unknown.push(name.clone()),
            }
        }
        if !unknown.is_empty() {
            set.cards = true;
            set.emails = true;
            set.secrets = true;
        }
        (set, unknown)
    }

    /// Whether this set masks nothing.
    pub fn is_empty(&self) -> bool {
        !self.cards && !self.emails && !self.secrets && self.pointers.is_empty()
    }

    /// Masks `value` in place; returns how many replacements were made.
    pub fn apply(&self, value: &mut Value) -> usize {
        let mut count = 0;
        for pointer in &self.pointers {
            if let Some(target) = value.pointer_mut(pointer) {
                *target = Value::String("[REDACTED]".to_owned());
                count += 1;
            }
        }
        count + self.walk(value, 0)
    }

    /// Masks one string; `None` when nothing matched (no allocation then).
    pub fn mask_str(&self, text: &str) -> Option<String> {
        self.mask_text(text, 0)
    }

    fn walk(&self, value: &mut Value, depth: usize) -> usize {
        match value {
            Value::String(text) => match self.mask_text(text, depth) {
                Some(masked) => {
                    *text = masked;
                    1
                }
                None => 0,
            },
            Value::Array(items) => items.iter_mut().map(|v| self.walk(v, depth + 1)).sum(),
            Value::Object(map) => map
                .iter_mut()
                .map(|(key, v)| {
                    if self.secrets && secret::is_secret_field(key) && !is_redacted(v) {
                        *v = Value::String(replacement(Kind::Secret, "", false));
                        1
                    } else {
                        self.walk(v, depth + 1)
                    }
                })
                .sum(),
            _ => 0,
        }
    }

    /// Masks one string: JSON embedded in it (MCP text content holding rows) is
    /// masked as JSON, so secret-named fields inside are caught too; any other text
    /// is scanned by the detectors.
    fn mask_text(&self, text: &str, depth: usize) -> Option<String> {
        if let Some(masked) = self.mask_embedded_json(text, depth) {
            return Some(masked);
        }
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        if self.cards && bytes.iter().any(u8::is_ascii_digit) {
            card::find(text, &mut spans);
        }
        if self.emails && bytes.contains(&b'@') {
            email::find(text, &mut spans);
        }
        if self.secrets {
            secret::find(text, &mut spans);
        }
        if spans.is_empty() {
            return None;
        }
        Some(self.rewrite(text, spans))
    }

    fn mask_embedded_json(&self, text: &str, depth: usize) -> Option<String> {
        // Bounded recursion: a string of JSON of a string of JSON... stops here.
        const MAX_EMBEDDED_DEPTH: usize = 64;
        // Cards, emails and inline secrets are found in the raw text just as well
        // (a replacement holds no quote or backslash, so the JSON stays valid);
        // parsing pays off only for secret-named fields, so only then.
        let first = text.trim_start().as_bytes().first().copied();
        if depth > MAX_EMBEDDED_DEPTH
            || !self.secrets
            || !matches!(first, Some(b'{') | Some(b'['))
            || !mentions_secret_field(text)
        {
            return None;
        }
        let mut inner: Value = serde_json::from_str(text).ok()?;
        if self.walk(&mut inner, depth + 1) == 0 {
            return None;
        }
        serde_json::to_string(&inner).ok()
    }

    fn rewrite(&self, text: &str, mut spans: Vec<Span>) -> String {
        spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for span in spans {
            if span.start < at {
                continue; // overlaps a span already replaced
            }
            out.push_str(&text[at..span.start]);
            out.push_str(&replacement(span.kind, &span.last_four, self.last_four));
            at = span.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

fn replacement(kind: Kind, last_four: &str, keep_last_four: bool) -> String {
    if keep_last_four && !last_four.is_empty() {
        format!("[REDACTED:{}:{last_four}]", kind.as_str())
    } else {
        format!("[REDACTED:{}]", kind.as_str())
    }
}

/// Whether a text may hold a secret-named field (cheap pre-check before parsing).
fn mentions_secret_field(text: &str) -> bool {
    const STEMS: &[&[u8]] = &[b"pass", b"secret", b"token", b"key", b"auth", b"credential"];
    text.as_bytes()
        .windows(3)
        .enumerate()
        .filter(|(_, w)| STEMS.iter().any(|s| s[..3].eq_ignore_ascii_case(w)))
        .any(|(i, _)| {
            STEMS.iter().any(|s| {
                text.as_bytes()
                    .get(i..i + s.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(s))
            })
        })
}

fn is_redacted(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.starts_with("[REDACTED"))
}
