//! Fuzz target for the bounded SIP parser (RFC 3261 §7, RFC 4475): `parse` must never panic,
//! neither must `bad_request`, the accessors, nor re-parsing what `to_bytes` writes.
//!
//! Run with `cargo fuzz run sip_parse` from the `fuzz/` directory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::message::{bad_request, parse, to_bytes, MessageExt};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(msg) => {
            let _ = msg.call_id();
            let _ = msg.from_tag();
            let _ = msg.to_tag();
            let _ = msg.cseq();
            let _ = msg.top_via_branch();
            let _ = msg.header_value("x");
            let _ = msg.content_type();
            // What we parse we can write (no control characters in headers), and what we
            // write must parse again.
            let bytes = to_bytes(&msg).expect("a parsed message is writable");
            assert!(parse(&bytes).is_ok(), "re-parse of serialized message failed");
        }
        Err(e) => {
            let _ = bad_request(data, &e);
        }
    }
});
