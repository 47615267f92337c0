//! Fuzz target for digest challenges and credentials (RFC 7616): parsing and
//! answering must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::digest::{authorization, uri_matches, Authorization, Challenge};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ch) = Challenge::parse(text) {
        let _ = authorization(&ch, "user", "pass", "INVITE", "sip:1@example.com", 1, "abc");
    }
    if let Ok(auth) = Authorization::parse(text) {
        let _ = auth.verify("INVITE", "pass");
        let _ = auth.has_qop_auth();
        let _ = uri_matches(&auth.uri, "sip:1@example.com");
    }
    // The digest-uri and the Request-URI are both the peer's text.
    if let Some((a, b)) = text.split_at_checked(text.len() / 2) {
        let _ = uri_matches(a, b);
    }
});
