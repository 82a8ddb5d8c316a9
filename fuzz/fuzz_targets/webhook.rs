//! The signed call-status webhook (SPEC §2): `WebhookSecrets::verify` and
//! `parse_event` on fuzzed headers, clock and body. The input format and every
//! invariant are in fuzz/webhook_check.rs, which tests/fuzz_regressions.rs
//! replays on stable. Run it with scripts/fuzz.
#![no_main]

#[path = "../webhook_check.rs"]
mod webhook_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    webhook_check::check(data);
});
