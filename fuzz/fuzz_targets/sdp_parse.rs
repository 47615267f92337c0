//! Fuzz target for the SDP parser (RFC 4566): parsing, the audio view,
//! anchoring and answering must never panic, and what we write parses again to
//! the same description, before and after anchoring (the round-trip rule of
//! docs/decisions.md §15.1).

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use switchboard_sip::sdp::{answer, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut sdp) = SessionDescription::parse(text) {
        let again = SessionDescription::parse(&sdp.to_string()).expect("written SDP parses");
        assert_eq!(again, sdp, "re-parsed SDP differs");
        let _ = sdp.audio();
        let _ = sdp.image();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if let Ok(ans) = answer(&sdp, ip, 20000, 1) {
            let _ = SessionDescription::parse(&ans.to_string()).expect("our answer parses");
        }
        sdp.anchor(ip, &[20002, 20004]);
        let anchored = SessionDescription::parse(&sdp.to_string()).expect("anchored SDP parses");
        assert_eq!(anchored, sdp, "re-parsed anchored SDP differs");
    }
});
