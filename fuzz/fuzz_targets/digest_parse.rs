//! Fuzz target for digest challenges and credentials (RFC 7616): parsing and
//! answering must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::digest::{authorization, Authorization, Challenge};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ch) = Challenge::parse(text) {
        let _ = authorization(&ch, "user", "pass", "INVITE", "sip:1@example.com", 1, "abc");
    }
    if let Ok(auth) = Authorization::parse(text) {
        let _ = auth.verify("INVITE", "pass");
    }
});
