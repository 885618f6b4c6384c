//! Masking cost per answer, with every detector and with each family alone, against
//! two baselines measured in the same run: cloning the message (what any masking
//! pays, since the record stage masks a copy) and a walk with no detector (clone +
//! visiting every value, parsing nothing).
//!
//! Three ~2 KiB `tools/call` answers:
//! - `query`: the demo's `query` shape, rows in `structuredContent` (a card held as
//!   a number among them) and the same JSON again as text content, with names,
//!   emails, phones, cards, IBANs, dates;
//! - `file`: a `read_file` answer, a config and a log with secrets among plain lines;
//! - `clean`: rows with no sensitive data (what most answers are: prefilters only).
//!
//! Each row is the median over 31 samples of the mean of 2,000 masked copies, in µs
//! per answer and per 2 KiB. Target: every detector under 25 µs per 2 KiB.
//!
//! Run: `cargo bench -p airlock-data-plane --bench mask`

use airlock_data_plane::mask::{warm_up, Family, MaskSet};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Instant;

const SAMPLES: usize = 31;
const ITERATIONS: u32 = 2_000;

fn answer(structured: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": structured.to_string()}],
        "structuredContent": structured,
        "isError": false
    }})
}

fn query_answer() -> Value {
    let rows: Vec<Value> = (0..6)
        .map(|i| {
            json!([
                i + 1,
                format!("Customer Number{i}"),
                format!("customer.number{i}@example.com"),
                format!("+1 415 555 26{:02}", 70 + i),
                if i % 2 == 0 {
                    json!("4111 1111 1111 1111")
                } else {
                    json!(5555555555554444_u64)
                },
                "GB82 WEST 1234 5698 7654 32",
                format!("2024-03-{:02} 10:2{}:00", 10 + i, i % 10)
            ])
        })
        .collect();
    answer(json!({
        "columns": ["id", "name", "email", "phone", "card_number", "iban", "created_at"],
        "rows": rows, "row_count": 6, "truncated": false
    }))
}

fn file_answer() -> Value {
    let mut text = String::from(
        "# billing-api configuration (production)\nservice:\n  name: billing-api\n  port: 8080\n  log_level: info\n\
database:\n  host: db-primary.internal.example.com\n  port: 5432\n  user: billing_app\n  password: \"Tr0ub4dor-and-3-horses\"\n\
aws:\n  region: eu-west-1\n  access_key_id: AKIAIOSFODNN7EXAMPLE\n  secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
DATABASE_URL=postgres://billing_app:Tr0ub4dor-and-3-horses@db-primary.internal.example.com:5432/billing\n\
GITHUB_TOKEN=ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d\n",
    );
    for i in 0..22 {
        text.push_str(&format!(
            "2025-11-24T09:12:{:02}Z INFO  invoice {} sent, order {} shipped in {} ms\n",
            i % 60,
            10_231 + i,
            17 + i,
            40 + i
        ));
    }
    json!({"jsonrpc": "2.0", "id": 8, "result": {
        "content": [{"type": "text", "text": text}], "isError": false
    }})
}

fn clean_answer() -> Value {
    let rows: Vec<Value> = (0..9)
        .map(|i| {
            json!([
                i + 1,
                format!("widget-{i}"),
                "shipped",
                499 + i * 7,
                format!("2024-03-{:02}", 10 + i)
            ])
        })
        .collect();
    answer(
        json!({"columns": ["id", "sku", "status", "amount_cents", "created_at"],
        "rows": rows, "row_count": 9, "truncated": false}),
    )
}

/// Median µs per masked copy of `value`.
fn median_us(value: &Value, set: Option<&MaskSet>) -> f64 {
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                let mut copy = value.clone();
                if let Some(set) = set {
                    black_box(set.apply(&mut copy));
                }
                black_box(copy);
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(ITERATIONS)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[SAMPLES / 2]
}

fn report(name: &str, value: &Value) {
    let bytes = serde_json::to_vec(value).map_or(0, |v| v.len());
    let per_2k = |us: f64| us * 2048.0 / bytes as f64;
    let all = MaskSet::all(false);
    median_us(value, Some(&all)); // warm caches and the allocator
    let clone = median_us(value, None);
    let walk = median_us(value, Some(&MaskSet::only(&[], false)));
    println!("\n{name}: {bytes} bytes");
    println!(
        "  {:<28} {:>8.2} µs  {:>8.2} µs/2KiB",
        "baseline: clone",
        clone,
        per_2k(clone)
    );
    println!(
        "  {:<28} {:>8.2} µs  {:>8.2} µs/2KiB",
        "baseline: walk, no detector",
        walk,
        per_2k(walk)
    );
    for family in Family::ALL {
        let us = median_us(value, Some(&MaskSet::only(&[family], false)));
        println!(
            "  {:<28} {:>8.2} µs  {:>8.2} µs/2KiB  (+{:.2} µs over the walk)",
            format!("only {}", family.as_str()),
            us,
            per_2k(us),
            us - walk
        );
    }
    let us = median_us(value, Some(&all));
    println!(
        "  {:<28} {:>8.2} µs  {:>8.2} µs/2KiB  ({:.1}x the clone; target < 25 µs/2KiB: {})",
        "all detectors",
        us,
        per_2k(us),
        us / clone,
        if per_2k(us) < 25.0 { "met" } else { "MISSED" }
    );
}

fn main() {
    if let Err(e) = warm_up() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    println!("median of {SAMPLES} samples x {ITERATIONS} masked copies each");
    report(
        "query answer (rows in structuredContent and text)",
        &query_answer(),
    );
    report(
        "read_file answer (config and log with secrets)",
        &file_answer(),
    );
    report("clean answer (no sensitive data)", &clean_answer());
}
