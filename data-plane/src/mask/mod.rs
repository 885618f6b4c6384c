//! Masking: sensitive data replaced before it leaves the proxy, for storage (every
//! audit payload, every detector) or for the agent (what `decision.mask` lists).
//!
//! A [`MaskSet`] says what to hide: detector families (`credit_card`, `iban`, `ssn`,
//! `email`, `phone`, `secret`, or `all`) and JSON pointers. [`MaskSet::apply`] walks
//! a JSON-RPC message (`walk.rs`) and rewrites it in place, so the result stays
//! valid JSON: every string, every number (a card number becomes a string), object
//! keys that carry data, JSON held in text (MCP text content with rows) and
//! embedded resources' text and blobs. The JSON-RPC envelope (`jsonrpc`, `id`,
//! `method`, and `progressToken`) is never touched: the client matches answers by it.
//!
//! In text (`text.rs`) a match becomes `[REDACTED:<family>]` (a card
//! `[REDACTED:credit_card:1111]` with `last_four`), and a redaction covers exactly
//! the bytes its detector matched, never more. A field named like a secret becomes
//! `"[REDACTED:secret]"` whatever its type, and a pointer's target `"[REDACTED]"`.
//! Detectors: `card.rs`, `iban.rs`, `ssn.rs`, `email.rs`, `phone.rs`, and the rule
//! set of `secret/` behind a keyword prefilter. docs/audit.md gives the
//! false-positive policy of each; `cases.toml` is their case table.

mod card;
mod email;
mod iban;
mod json_text;
mod phone;
mod secret;
mod ssn;
mod text;
mod walk;

#[cfg(test)]
#[path = "cases_test.rs"]
mod cases_test;
#[cfg(test)]
#[path = "proptest_test.rs"]
mod proptest_test;

use serde_json::Value;

/// A family of detectors: the names `decision.mask` may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Payment card numbers (Luhn, issuer prefixes), in text and as JSON numbers.
    CreditCard,
    /// IBANs (country format, mod-97).
    Iban,
    /// US Social Security numbers (`AAA-GG-SSSS`, SSA area/group/serial rules).
    Ssn,
    /// Email addresses.
    Email,
    /// Phone numbers valid by libphonenumber's metadata.
    Phone,
    /// Credentials: vendor tokens, JWTs, private keys, URL passwords, secret-named keys.
    Secret,
}

impl Family {
    /// Every family, in the order the bench reports them.
    pub const ALL: [Family; 6] = [
        Family::CreditCard,
        Family::Iban,
        Family::Ssn,
        Family::Email,
        Family::Phone,
        Family::Secret,
    ];

    /// The family's name in `decision.mask` and in replacements.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::CreditCard => "credit_card",
            Family::Iban => "iban",
            Family::Ssn => "ssn",
            Family::Email => "email",
            Family::Phone => "phone",
            Family::Secret => "secret",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The families a `decision.mask` name stands for (`all` is every family).
    fn parse(name: &str) -> Option<u8> {
        let family = match name {
            "all" => return Some(ALL_FAMILIES),
            "credit_card" | "card" | "pan" => Family::CreditCard,
            "iban" => Family::Iban,
            "ssn" | "us_ssn" => Family::Ssn,
            "email" => Family::Email,
            "phone" | "phone_number" => Family::Phone,
            "secret" | "secrets" => Family::Secret,
            _ => return None,
        };
        Some(family.bit())
    }

    fn replacement(self) -> &'static str {
        match self {
            Family::CreditCard => "[REDACTED:credit_card]",
            Family::Iban => "[REDACTED:iban]",
            Family::Ssn => "[REDACTED:ssn]",
            Family::Email => "[REDACTED:email]",
            Family::Phone => "[REDACTED:phone]",
            Family::Secret => "[REDACTED:secret]",
        }
    }
}

const ALL_FAMILIES: u8 = (1 << Family::ALL.len()) - 1;

/// A byte range of a string to replace, and what found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    family: Family,
    /// The detector or secret rule that matched (`credit_card`, `github_token`, …).
    rule: &'static str,
    /// A card's last four digits.
    last_four: Option<[u8; 4]>,
}

impl Span {
    fn new(start: usize, end: usize, family: Family, rule: &'static str) -> Span {
        Span {
            start,
            end,
            family,
            rule,
            last_four: None,
        }
    }
}

/// The detectors could not be set up (a secret rule that does not compile).
#[derive(Debug, thiserror::Error)]
#[error("the masking rules could not be compiled: {0}; this is a bug in this build of airlock, report it")]
pub struct MaskError(String);

/// Compiles the secret rules and loads the phone metadata now, so the first request
/// does not pay for it (~100 ms); called at start-up. Masking without it still
/// works (it compiles on first use), and if the rules cannot compile, every string
/// is replaced whole (fail closed).
pub fn warm_up() -> Result<(), MaskError> {
    secret::warm_up().map_err(MaskError)?;
    if !phone::warm_up() {
        return Err(MaskError(
            "libphonenumber metadata has no common calling codes".into(),
        ));
    }
    Ok(())
}

/// What to mask: detector families and JSON pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskSet {
    families: u8,
    pointers: Vec<String>,
    last_four: bool,
}

impl MaskSet {
    /// Every detector family: what the audit log stores.
    pub fn all(last_four: bool) -> MaskSet {
        MaskSet {
            families: ALL_FAMILIES,
            pointers: Vec::new(),
            last_four,
        }
    }

    /// Only `families` (the bench measures each family alone).
    pub fn only(families: &[Family], last_four: bool) -> MaskSet {
        MaskSet {
            families: families.iter().fold(0, |acc, f| acc | f.bit()),
            pointers: Vec::new(),
            last_four,
        }
    }

    /// The set a decision asks for (`decision.mask`): family names (`all` for every
    /// family) and JSON pointers (`/result/content/0/text`). An unknown name is a
    /// policy mistake that must not leak data, so it turns on every family (fail
    /// closed); it is returned so the caller can log it.
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
            match Family::parse(name) {
                Some(bits) => set.families |= bits,
                None => unknown.push(name.clone()),
            }
        }
        if !unknown.is_empty() {
            set.families = ALL_FAMILIES;
        }
        (set, unknown)
    }

    /// Whether this set masks nothing.
    pub fn is_empty(&self) -> bool {
        self.families == 0 && self.pointers.is_empty()
    }

    fn has(&self, family: Family) -> bool {
        self.families & family.bit() != 0
    }

    /// Masks a JSON-RPC message (or a batch, or the canonical `{method, params}`
    /// of an approval) in place; returns how many replacements were made. The
    /// envelope is left alone (see the module doc), pointers at it included.
    pub fn apply(&self, message: &mut Value) -> usize {
        let mut count = 0;
        for pointer in &self.pointers {
            if walk::is_envelope_pointer(pointer) {
                continue;
            }
            if let Some(target) = message.pointer_mut(pointer) {
                *target = Value::String("[REDACTED]".to_owned());
                count += 1;
            }
        }
        count + walk::message(self, message)
    }

    /// Masks one string; `None` when nothing matched (no allocation then).
    pub fn mask_str(&self, text: &str) -> Option<String> {
        text::mask(self, text, 0)
    }

    /// The byte ranges the detectors match in `text`, with the family of each
    /// (sorted by start; ranges may overlap): for callers that mask only parts of a
    /// text (the SQL literals a reviewer sees masked, `review.rs`).
    pub fn match_ranges(&self, text: &str) -> Vec<(std::ops::Range<usize>, Family)> {
        let mut ranges: Vec<_> = text::spans(self, text)
            .into_iter()
            .map(|s| (s.start..s.end, s.family))
            .collect();
        ranges.sort_by_key(|(r, _)| (r.start, r.end));
        ranges
    }

    /// The matches in `text`, as (rule, matched text), for tests and tools that
    /// explain a masking.
    pub fn matches<'t>(&self, text: &'t str) -> Vec<(&'static str, &'t str)> {
        text::spans(self, text)
            .into_iter()
            .map(|s| (s.rule, &text[s.start..s.end]))
            .collect()
    }
}
