//! Fuzz target for the media parsers: Twilio and Exotel WebSocket messages from apps (bounded
//! and strictly validated, never a panic; what is accepted respects the limits), RFC 4733
//! telephone-event payloads (what parses re-encodes to the same block) and RTP depacketizing
//! of PCMU/PCMA (RFC 3550: payloads stay within the datagram).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::dtmf::TelephoneEvent;
use switchboard_media::g711::Law;
use switchboard_media::resample::SampleRate;
use switchboard_media::rtp_audio::{self, AudioDepacketizer, Depacketized};
use switchboard_media::streams::{AppMessage, Dialect, Limits, MediaFormat, StreamReader};

const SID: &str = "MZ00000000000000000000000000000001";

fuzz_target!(|data: &[u8]| {
    // The input as one WebSocket text frame, to every dialect and format.
    let text = String::from_utf8_lossy(data);
    let formats = [
        (Dialect::Twilio, MediaFormat::Mulaw8k),
        (Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz8000)),
        (Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz24000)),
    ];
    for (dialect, format) in formats {
        let limits = Limits::default();
        let mut reader = StreamReader::new(dialect, format, SID, limits);
        match reader.read_text(&text) {
            Ok(AppMessage::Media { payload }) => {
                assert!(!payload.is_empty() && payload.len() <= reader.max_payload_bytes());
                if let MediaFormat::Pcm16(_) = format {
                    assert_eq!(payload.len() % 320, 0);
                }
            }
            Ok(AppMessage::Mark { name }) => {
                assert!(!name.is_empty() && name.len() <= limits.max_mark_name);
            }
            Ok(AppMessage::Clear) => {}
            Err(e) => {
                let _ = (e.reason(), e.close_code(), e.to_string());
            }
        }
        // The same bytes as a stream of newline-separated frames through one reader.
        for line in text.split('\n') {
            let _ = reader.read_text(line);
        }
    }

    // The input as a telephone-event payload.
    if let Ok(event) = TelephoneEvent::parse(data) {
        let bytes = event.to_bytes();
        assert_eq!(data.first(), Some(&bytes[0]));
        assert_eq!(TelephoneEvent::parse(&bytes), Ok(event));
    }

    // The input as an RTP datagram.
    if let Ok(packet) = rtp_audio::parse(data) {
        assert!(packet.payload.len() + rtp_audio::HEADER_LEN <= data.len());
    }
    for law in [Law::Mu, Law::A] {
        if let Ok(Depacketized::Audio(frame)) =
            AudioDepacketizer::new(law, Some(101)).depacketize(data)
        {
            assert!(!frame.samples.is_empty());
            assert!(frame.samples.len() <= rtp_audio::MAX_AUDIO_PAYLOAD);
        }
    }
});
