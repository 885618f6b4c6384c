//! Cost of the parser-grade facts (`airlock_policy::facts`): `sql::parse` on a
//! one-statement call and on a 2 KiB statement, against `sqlparser`'s tokenizer alone on
//! the same text (the baseline: what reading the characters costs, before any grammar),
//! plus `sql::literal_spans`, `url::parse` and `path::normalize`. Criterion measures each;
//! then a plain pass times single calls and prints medians and the ratio to the baseline.
//!
//! Run: `cargo bench -p airlock-policy --bench facts`

use airlock_policy::facts::{path, sql, url};
use criterion::{criterion_group, criterion_main, Criterion};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::tokenizer::Tokenizer;
use std::hint::black_box;
use std::time::{Duration, Instant};

const ONE: &str = "SELECT id, name FROM customers WHERE id = 42";

/// A realistic long statement: joins, a subquery, and a WHERE of many clauses, 2 KiB.
fn two_kib() -> String {
    let mut sql = String::from(
        "SELECT c.id, c.name, c.email, o.amount_cents, o.status FROM customers c \
         JOIN orders o ON o.customer_id = c.id LEFT JOIN egress_log e ON e.host = c.email \
         WHERE c.country IN (SELECT country FROM customers WHERE city = 'Lyon') AND (",
    );
    let mut i = 0;
    while sql.len() < 2048 - 64 {
        sql.push_str(&format!(
            "(o.status = 'shipped-{i}' AND o.amount_cents > {i}) OR "
        ));
        i += 1;
    }
    sql.push_str("o.id = 7) ORDER BY o.created_at DESC LIMIT 50");
    sql
}

/// Texts at the 64 KiB bound that work the parser hardest (found by trying shapes:
/// long lists and chains; nesting stops at the recursion limit at once).
fn worst_cases() -> Vec<(&'static str, String)> {
    let n = 63 * 1024;
    vec![
        ("select list", format!("SELECT 1{}", ",a".repeat(n / 2))),
        ("IN list", format!("SELECT 1 IN (1{})", ",1".repeat(n / 2))),
        ("OR chain", format!("SELECT 1{}", " OR 1".repeat(n / 5))),
        ("7,000 statements", "SELECT 1;".repeat(n / 9)),
        ("nested parens", format!("SELECT {}", "(".repeat(n))),
    ]
}

fn tokenize(text: &str) -> usize {
    Tokenizer::new(&SQLiteDialect {}, text)
        .tokenize_with_location()
        .map_or(0, |tokens| tokens.len())
}

fn median(mut f: impl FnMut()) -> Duration {
    for _ in 0..300 {
        f();
    }
    let mut samples: Vec<Duration> = (0..3_000)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let long = two_kib();
    assert!((2000..=2100).contains(&long.len()), "{} bytes", long.len());
    for text in [ONE, long.as_str()] {
        assert_eq!(sql::parse(text, "sqlite")["ok"], true, "{text}");
    }
    let texts = [("one statement", ONE), ("2 KiB statement", long.as_str())];

    let mut group = c.benchmark_group("facts");
    for (name, text) in texts {
        group.bench_function(format!("sql::parse/{name}"), |b| {
            b.iter(|| sql::parse(black_box(text), "sqlite"))
        });
        group.bench_function(format!("tokenize/{name}"), |b| {
            b.iter(|| tokenize(black_box(text)))
        });
    }
    group.bench_function("url::parse", |b| {
        b.iter(|| url::parse(black_box("https://api.github.com/repos/x?page=2")))
    });
    group.bench_function("path::normalize", |b| {
        b.iter(|| path::normalize(black_box("/app/./config/../.env")))
    });
    group.finish();

    println!("\nmedian single-call latency (3000 calls each), SQLite dialect:");
    println!(
        "{:<18} {:>8} {:>16} {:>16} {:>20}",
        "text", "bytes", "sql::parse (µs)", "tokenize (µs)", "parse / tokenize"
    );
    for (name, text) in texts {
        let parse = median(|| {
            black_box(sql::parse(black_box(text), "sqlite"));
        });
        let base = median(|| {
            black_box(tokenize(black_box(text)));
        });
        let spans = median(|| {
            black_box(sql::literal_spans(black_box(text), "sqlite"));
        });
        println!(
            "{name:<18} {:>8} {:>16.1} {:>16.1} {:>19.1}x   (literal_spans {:.1} µs)",
            text.len(),
            us(parse),
            us(base),
            us(parse) / us(base),
            us(spans)
        );
    }
    let url = median(|| {
        black_box(url::parse(black_box(
            "https://api.github.com/repos/x?page=2",
        )));
    });
    let path = median(|| {
        black_box(path::normalize(black_box("/app/./config/../.env")));
    });
    println!(
        "url::parse {:.2} µs, path::normalize {:.2} µs",
        us(url),
        us(path)
    );

    println!(
        "\nworst cases at the {} KiB bound (median of 15 calls):",
        sql::MAX_SQL_BYTES / 1024
    );
    for (name, text) in worst_cases() {
        let mut samples: Vec<Duration> = (0..15)
            .map(|_| {
                let started = Instant::now();
                black_box(sql::parse(black_box(&text), "sqlite"));
                started.elapsed()
            })
            .collect();
        samples.sort_unstable();
        let ok = sql::parse(&text, "sqlite")["ok"] == true;
        println!(
            "{name:<18} {:>8} bytes {:>10.2} ms  ok={ok}",
            text.len(),
            samples[7].as_secs_f64() * 1e3
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
