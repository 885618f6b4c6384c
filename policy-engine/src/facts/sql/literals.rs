//! Where a SQL text's literal values are, for masking that must not touch its structure.

use super::{dialect_named, MAX_SQL_BYTES, RECURSION_LIMIT};
use sqlparser::ast::{ValueWithSpan, Visit, Visitor};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use std::collections::HashSet;
use std::ops::{ControlFlow, Range};

/// The byte ranges of the values of string and numeric literals in `text`, read by
/// `sqlparser`'s tokenizer in `dialect` (names as for [`super::parse`]), in order.
///
/// A redaction that stays inside one range changes a value and nothing else: it cannot
/// remove or add a keyword, a comment, a statement separator or a quote. So:
///
/// - a numeric literal's range is the whole token (`42`, `1.5e3`, `0x1F`);
/// - a string literal's ranges are its content *between* the delimiters, split at every
///   quote, backslash and `$` inside it: `'it''s'` gives the ranges of `it` and `s`,
///   never of a quote, so a redaction cannot leave a lone quote that would end the
///   string in the rendered text. A prefix (`X'..'`, `N'..'`, `E'..'`) is outside the
///   ranges, and so are the tags of a dollar-quoted string (`$t$..$t$`).
/// - Only values count, as the parsed statement has them: identifiers, even quoted ones
///   (`"x"`, `[x]`, `` `x` ``), and quoted strings SQLite reads as names (`DELETE FROM
///   'customers'`, the alias in `SELECT 1 'x'`) are not literals.
///
/// A text that does not parse (an unterminated string, say), an unknown dialect, a text
/// over [`MAX_SQL_BYTES`] or holding a NUL (where SQLite stops reading) has no ranges: the masking stage must then treat every
/// match as crossing the structure.
pub fn literal_spans(text: &str, dialect: &str) -> Vec<Range<usize>> {
    let Some((_, dialect)) = dialect_named(dialect) else {
        return Vec::new();
    };
    if text.len() > MAX_SQL_BYTES || text.contains('\0') {
        return Vec::new();
    }
    let Ok(tokens) = Tokenizer::new(dialect, text).tokenize_with_location() else {
        return Vec::new();
    };
    let Some(values) = value_starts(text, dialect) else {
        return Vec::new();
    };
    // A literal token is a value only where the grammar says so: SQLite also takes
    // `'customers'` as a table name and `SELECT 1 'x'` as an alias.
    let literals: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| {
            literal(&t.token).is_some()
                && values.contains(&(t.span.start.line, t.span.start.column))
        })
        .collect();
    let mut offsets = Offsets::new(text);
    let mut spans = Vec::new();
    for token in literals {
        let (Some(start), Some(end)) = (
            offsets.byte_at(token.span.start),
            offsets.byte_at(token.span.end),
        ) else {
            // Locations come from the same text, in order; a miss means the tokenizer
            // counted differently, and no range is better than a wrong one.
            return Vec::new();
        };
        match literal(&token.token) {
            Some(Literal::Number) => spans.push(start..end),
            Some(Literal::Quoted) => spans.extend(quoted_content(text, start..end)),
            Some(Literal::Dollar) => spans.extend(dollar_content(text, start..end)),
            None => {}
        }
    }
    spans
}

/// Where the parsed statements' literal values start, or `None` when the text does not
/// parse (then nothing is known to be a value).
fn value_starts(text: &str, dialect: &dyn Dialect) -> Option<HashSet<(u64, u64)>> {
    let statements = Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements())
        .ok()?;
    let mut values = ValueStarts(HashSet::new());
    for statement in &statements {
        // The walk never breaks.
        let _ = statement.visit(&mut values);
    }
    Some(values.0)
}

struct ValueStarts(HashSet<(u64, u64)>);

impl Visitor for ValueStarts {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        self.0
            .insert((value.span.start.line, value.span.start.column));
        ControlFlow::Continue(())
    }
}

enum Literal {
    Number,
    /// Delimited by quotes: content after the first quote, up to the closing one.
    Quoted,
    /// `$tag$ ... $tag$`.
    Dollar,
}

fn literal(token: &Token) -> Option<Literal> {
    match token {
        Token::Number(..) => Some(Literal::Number),
        Token::DollarQuotedString(_) => Some(Literal::Dollar),
        Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => Some(Literal::Quoted),
        // Oracle's q'[...]' strings choose their own delimiters: no range is safe to give.
        _ => None,
    }
}

/// The runs of a quoted literal's source after its first quote, without quotes,
/// backslashes or `$`.
fn quoted_content(text: &str, token: Range<usize>) -> Vec<Range<usize>> {
    let Some(source) = text.get(token.clone()) else {
        return Vec::new();
    };
    let Some(open) = source.find(['\'', '"']) else {
        return Vec::new();
    };
    runs_without(
        source,
        token.start,
        open + 1,
        source.len(),
        &['\'', '"', '\\', '$'],
    )
}

/// The runs of a dollar-quoted literal's content between its opening and closing tags.
fn dollar_content(text: &str, token: Range<usize>) -> Vec<Range<usize>> {
    let Some(source) = text.get(token.clone()) else {
        return Vec::new();
    };
    // `$tag$`: the opening tag ends at the second `$`; the closing tag is the same text.
    let Some(second) = source.get(1..).and_then(|rest| rest.find('$')) else {
        return Vec::new();
    };
    let tag_len = second + 2;
    if source.len() < 2 * tag_len {
        return Vec::new();
    }
    runs_without(source, token.start, tag_len, source.len() - tag_len, &['$'])
}

/// Maximal runs of `source[from..to]` free of `stops`, as ranges of the whole text.
fn runs_without(
    source: &str,
    base: usize,
    from: usize,
    to: usize,
    stops: &[char],
) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut run_start = None;
    for (at, c) in source.char_indices() {
        let inside = at >= from && at < to && !stops.contains(&c);
        match (inside, run_start) {
            (true, None) => run_start = Some(at),
            (false, Some(start)) => {
                runs.push(base + start..base + at);
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        runs.push(base + start..base + to.min(source.len()));
    }
    runs
}

/// Turns the tokenizer's (line, column) locations, counted in chars with `\n` as the
/// only line break, into byte offsets, walking the text once for locations in order.
struct Offsets<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    len: usize,
    line: u64,
    column: u64,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Offsets {
            chars: text.char_indices().peekable(),
            len: text.len(),
            line: 1,
            column: 1,
        }
    }

    /// The byte offset of `location`; it must not be before the last one asked for.
    fn byte_at(&mut self, location: Location) -> Option<usize> {
        loop {
            if (self.line, self.column) == (location.line, location.column) {
                return Some(self.chars.peek().map_or(self.len, |(at, _)| *at));
            }
            if (self.line, self.column) > (location.line, location.column) {
                return None;
            }
            let (_, c) = self.chars.next()?;
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
    }
}
