//! Fuzz target for RTP header validation and loss accounting (RFC 3550).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::rtp::{is_rtcp, RtpStats};

fuzz_target!(|data: &[u8]| {
    let mut stats = RtpStats::new();
    for packet in data.chunks(40) {
        let _ = is_rtcp(packet);
        let _ = stats.observe(packet);
    }
    assert!(stats.lost() <= stats.expected());
});
