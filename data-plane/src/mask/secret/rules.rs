//! The secret rules: vendor token formats from the vendors' own documentation, and
//! the generic rules (credentials after `Bearer`/`Basic`, URL passwords, values of
//! secret-named keys, private keys). Each rule names the keywords that must appear
//! (case-insensitively) before its pattern is run, and the check its match must pass.
//! Every rule has true-positive and known false-positive cases in `../cases.toml`
//! (a test fails when one has none).
//!
//! Patterns use `regex` syntax; `(?-u:\b)` is an ASCII word boundary. When a pattern
//! has a capture group, group 1 is the secret and only it is replaced (the key name
//! or the user name around it stays readable); otherwise the whole match is.

/// How a rule finds its matches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Matcher {
    /// A regular expression (see the module doc for capture groups).
    Regex(&'static str),
    /// PEM private key blocks (`pem.rs`): a block that parses as one whole, else
    /// the marker line and the full-length base64 lines after it.
    PrivateKey,
    /// The value of a secret-named key in YAML, `.env`, `key=value` or JSON text
    /// (`keyed.rs`).
    KeyValue,
}

/// What a match must also pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Nothing more: the format is specific enough.
    None,
    /// At least `min_len` characters, a digit and a letter, and at least `bits` of
    /// Shannon entropy per character (random tokens, not words).
    Random {
        /// Shortest accepted value.
        min_len: usize,
        /// Entropy floor, bits per character.
        bits: f32,
    },
    /// Base64 of `user:password` (an HTTP Basic credential).
    BasicCredential,
    /// Not a placeholder (`${VAR}`, `<password>`, `***`, …).
    NotPlaceholder,
}

/// One rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// The rule's id, in the case table and in logs.
    pub(crate) id: &'static str,
    /// Lower-case keywords; the rule runs only on text holding one of them.
    pub(crate) keywords: &'static [&'static str],
    /// How matches are found.
    pub(crate) matcher: Matcher,
    /// What a match must pass.
    pub(crate) check: Check,
}

const fn rule(
    id: &'static str,
    keywords: &'static [&'static str],
    matcher: Matcher,
    check: Check,
) -> Rule {
    Rule {
        id,
        keywords,
        matcher,
        check,
    }
}

use Check::{BasicCredential, NotPlaceholder, Random};
use Matcher::Regex;

/// Every secret rule, in no particular order (overlapping matches are merged).
pub(crate) const RULES: &[Rule] = &[
    // GitHub: classic, OAuth, user-to-server, server-to-server and refresh tokens.
    rule(
        "github_token",
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        Regex(r"(?-u:\b)(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}(?-u:\b)"),
        Check::None,
    ),
    rule(
        "github_fine_grained_token",
        &["github_pat_"],
        Regex(r"(?-u:\b)github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}(?-u:\b)"),
        Check::None,
    ),
    rule(
        "gitlab_token",
        &["glpat-"],
        Regex(r"(?-u:\b)glpat-[A-Za-z0-9_-]{20,}"),
        Check::None,
    ),
    // Slack: bot, user, app, refresh, configuration … tokens (`xoxb-`, `xoxp-`, …).
    rule(
        "slack_token",
        &["xox"],
        Regex(r"(?-u:\b)xox[abceoprs]-[0-9A-Za-z][0-9A-Za-z-]{8,}"),
        Check::None,
    ),
    rule(
        "slack_webhook",
        &["hooks.slack.com"],
        Regex(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{16,}"),
        Check::None,
    ),
    // AWS access key ids (long-term AKIA, temporary ASIA, and the rarer prefixes).
    rule(
        "aws_access_key_id",
        &["akia", "asia", "abia", "acca", "a3t"],
        Regex(r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)"),
        Check::None,
    ),
    // AWS secret access keys: 40 base64 characters right after their key name.
    rule(
        "aws_secret_access_key",
        &[
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
            "aws_secret",
            "awssecret",
        ],
        Regex(
            r#"(?i:aws_?secret_?access_?key|aws-secret-access-key|aws_?secret_?key|secret_?access_?key|secret-access-key)["']?[ \t]*(?:=>|[:=])[ \t]*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        ),
        Random {
            min_len: 40,
            bits: 3.5,
        },
    ),
    rule(
        "google_api_key",
        &["aiza"],
        Regex(r"(?-u:\b)(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)"),
        Check::None,
    ),
    // Stripe secret and restricted keys, live and test, and webhook signing secrets.
    rule(
        "stripe_key",
        &["sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_"],
        Regex(
            r"(?-u:\b)(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,247}|whsec_[0-9A-Za-z]{24,})(?-u:\b)",
        ),
        Check::None,
    ),
    // OpenAI (`sk-proj-…`, legacy `sk-…T3BlbkFJ…`) and Anthropic (`sk-ant-api03-…`) keys.
    rule(
        "llm_api_key",
        &["sk-proj-", "sk-ant-", "t3blbkfj"],
        Regex(
            r"(?-u:\b)sk-(?:ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}|proj-[A-Za-z0-9_-]{40,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
        ),
        Check::None,
    ),
    rule(
        "npm_token",
        &["npm_"],
        Regex(r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)"),
        Check::None,
    ),
    rule(
        "pypi_token",
        &["pypi-ageichlwas5vcmc"],
        Regex(r"(?-u:\b)pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
        Check::None,
    ),
    rule(
        "sendgrid_api_key",
        &["sg."],
        Regex(r"(?-u:\b)SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?-u:\b)"),
        Check::None,
    ),
    // JSON Web Tokens (and JWE/JWS compact forms), with or without `Bearer `.
    rule(
        "jwt",
        &["eyj"],
        Regex(r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){1,3}"),
        Check::None,
    ),
    rule(
        "bearer_credential",
        &["bearer"],
        Regex(r"(?i:(?-u:\b)bearer)[ \t]+([A-Za-z0-9._~+/-]{8,}=*)"),
        Random {
            min_len: 8,
            bits: 3.0,
        },
    ),
    rule(
        "basic_credential",
        &["basic"],
        Regex(r"(?i:(?-u:\b)basic)[ \t]+([A-Za-z0-9+/]{4,}={0,2})(?:[^A-Za-z0-9+/=]|$)"),
        BasicCredential,
    ),
    // `scheme://user:password@host`: the password only.
    rule(
        "url_password",
        &["://"],
        Regex(r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"'<>]*:([^\s/?#@"'<>]+)@"#),
        NotPlaceholder,
    ),
    rule(
        "private_key",
        &["private key"],
        Matcher::PrivateKey,
        Check::None,
    ),
    rule(
        "keyed_secret",
        &[
            "pass",
            "pwd",
            "secret",
            "token",
            "key",
            "credential",
            "cookie",
        ],
        Matcher::KeyValue,
        NotPlaceholder,
    ),
];
