//! Fuzz target for the SDP parser (RFC 4566): parsing, the audio view,
//! anchoring and answering must never panic, and what we write parses again.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use switchboard_sip::sdp::{answer, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(mut sdp) = SessionDescription::parse(text) {
        let _ = sdp.audio();
        let _ = sdp.image();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let _ = answer(&sdp, ip, 20000, 1);
        sdp.anchor(ip, &[20002, 20004]);
        assert!(SessionDescription::parse(&sdp.to_string()).is_ok());
    }
});
