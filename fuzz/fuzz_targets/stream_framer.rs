//! Fuzz target for SIP-over-TCP framing (RFC 3261 §18.3): arbitrary chunks
//! must never panic, and framed messages stay within the bounds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::transport::StreamFramer;

fuzz_target!(|data: &[u8]| {
    let mut framer = StreamFramer::new();
    for chunk in data.chunks(97) {
        if framer.push(chunk).is_err() {
            return;
        }
        loop {
            match framer.next_message() {
                Ok(Some(m)) => assert!(m.len() <= 96 * 1024),
                Ok(None) | Err(_) => break,
            }
        }
        let _ = framer.take_pong();
    }
});
