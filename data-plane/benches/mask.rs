//! Masking a typical 2 KiB MCP response (a `tools/call` result whose text content
//! holds JSON rows with names, emails, phones, card numbers and dates) with every
//! detector, against the baseline of cloning the same `Value` (what any walk costs).
//! Prints µs per response, MB/s, and the ratio. Target: under 20 µs per 2 KiB.
//!
//! Run: `cargo bench -p airlock-data-plane --bench mask`

use airlock_data_plane::mask::MaskSet;
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ITERATIONS: u32 = 20_000;

fn response() -> Value {
    let rows: Vec<Value> = (0..12)
        .map(|i| {
            json!([
                i + 1,
                format!("Customer Number{i}"),
                format!("customer.number{i}@example.com"),
                format!("+44 20 555-01{i:02}"),
                "4111111111111111",
                format!("{} Baker Street", 10 + i),
                "London",
                format!("2024-03-{:02} 10:2{}:00", 10 + i, i % 10)
            ])
        })
        .collect();
    let text = json!({
        "columns": ["id", "name", "email", "phone", "card_number", "address", "city", "created_at"],
        "rows": rows, "row_count": 12, "truncated": false
    })
    .to_string();
    json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": text}],
        "isError": false
    }})
}

fn time(value: &Value, f: impl Fn(&mut Value)) -> Duration {
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        let mut copy = value.clone();
        f(&mut copy);
        black_box(copy);
    }
    started.elapsed() / ITERATIONS
}

fn main() {
    let value = response();
    let bytes = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
    let set = MaskSet::all(true);
    // Warm up caches and the allocator.
    time(&value, |v| {
        set.apply(v);
    });
    let baseline = time(&value, |_| {});
    let masked = time(&value, |v| {
        set.apply(v);
    });
    let mb_s = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!("response: {bytes} bytes, {ITERATIONS} iterations");
    println!(
        "baseline (clone the Value):   {:>8.2} µs/response  {:>8.1} MB/s",
        baseline.as_secs_f64() * 1e6,
        mb_s(baseline)
    );
    println!(
        "mask (clone + all detectors): {:>8.2} µs/response  {:>8.1} MB/s",
        masked.as_secs_f64() * 1e6,
        mb_s(masked)
    );
    println!(
        "ratio: {:.2}x the baseline; per 2 KiB: {:.2} µs (target < 20 µs)",
        masked.as_secs_f64() / baseline.as_secs_f64(),
        masked.as_secs_f64() * 1e6 * 2048.0 / bytes as f64
    );
}
