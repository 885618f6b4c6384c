//! Fuzzes the decode stage: no input may panic it, and whatever it accepts must read
//! the same under serde_json (the strict decoder is narrower, never different).
#![no_main]

use airlock_data_plane::decode::{decode, parse_strict, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = Limits::default();
    if let Ok(payload) = decode(body, &limits) {
        // Every accessor must be total on an accepted payload.
        for message in payload.messages() {
            let _ = (message.method(), message.id(), message.params());
            let _ = message.target_name();
        }
    }
    if let Ok(strict) = parse_strict(body, &limits) {
        let lax: serde_json::Value =
            serde_json::from_slice(body).expect("strict parse accepted what serde_json refuses");
        assert_eq!(strict, lax, "strict and serde_json read different values");
    }
});
