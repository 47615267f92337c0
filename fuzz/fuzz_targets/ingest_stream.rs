//! Fuzz target for the ingest direction (a CPaaS streaming a call to us): Twilio and Exotel
//! provider messages through `IngestReader`, fresh and already started, one frame and as a
//! newline-separated session. Never a panic; what is accepted respects the limits; media we
//! would answer with (`IngestWriter`) is accepted by the gateway's own `StreamReader`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchboard_media::resample::SampleRate;
use switchboard_media::streams::ingest::{IngestEvent, IngestLimits, IngestReader, IngestWriter};
use switchboard_media::streams::{
    AppMessage, Dialect, Limits, MediaFormat, StartInfo, StreamReader, StreamWriter, Track,
};

const SID: &str = "MZ00000000000000000000000000000001";

fn started(dialect: Dialect, format: MediaFormat) -> IngestReader {
    let mut reader = IngestReader::new(dialect, IngestLimits::default());
    let info = StartInfo {
        account_sid: "AC1".into(),
        call_sid: "CA1".into(),
        from: None,
        to: None,
        tracks: vec![Track::Inbound, Track::Outbound],
        custom_parameters: Default::default(),
    };
    let start = StreamWriter::new(dialect, format, SID).start(&info);
    assert!(matches!(
        reader.read_text(&start),
        Ok(IngestEvent::Start(_))
    ));
    reader
}

fn check(reader: &mut IngestReader, frame: &str) {
    let limits = IngestLimits::default();
    match reader.read_text(frame) {
        Ok(IngestEvent::Start(start)) => {
            for id in [&start.stream_sid, &start.call_sid, &start.account_sid] {
                assert!(!id.is_empty() && id.len() <= limits.max_id_len);
                assert!(id.bytes().all(|b| b.is_ascii_graphic()));
            }
            assert!(start.custom_parameters.len() <= limits.max_parameters);
            assert!(!start.tracks.is_empty());
        }
        Ok(IngestEvent::Media { payload, .. }) => {
            let Some(start) = reader.started() else {
                panic!("media before start")
            };
            let format = start.format;
            let max = reader.max_payload_bytes().unwrap_or(0);
            assert!(!payload.is_empty() && payload.len() <= max);
            if let MediaFormat::Pcm16(_) = format {
                assert_eq!(payload.len() % 2, 0);
            }
            // Echoing it back must satisfy the gateway side of the same dialect.
            let dialect = reader.dialect();
            let fits = match (dialect, format) {
                (Dialect::Exotel, MediaFormat::Pcm16(_)) => payload.len() % 320 == 0,
                _ => true,
            };
            if fits {
                let mut writer = IngestWriter::new(dialect, format, start.stream_sid.clone());
                let mut gateway =
                    StreamReader::new(dialect, format, start.stream_sid.clone(), Limits::default());
                assert_eq!(
                    gateway.read_text(&writer.media(&payload)),
                    Ok(AppMessage::Media { payload })
                );
            }
        }
        Ok(IngestEvent::Mark { name }) => {
            assert!(!name.is_empty() && name.len() <= limits.max_mark_name);
        }
        Ok(IngestEvent::Dtmf { digit }) => {
            assert!(matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D'));
        }
        Ok(IngestEvent::Connected) | Ok(IngestEvent::Stop) => {}
        Err(e) => {
            let _ = (e.reason(), e.close_code(), e.to_string());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => {
            let reader = IngestReader::new(Dialect::Twilio, IngestLimits::default());
            assert_eq!(reader.read_binary(data).reason(), "binary_frame");
            String::from_utf8_lossy(data)
        }
    };
    for dialect in [Dialect::Twilio, Dialect::Exotel] {
        // One frame to a fresh reader, then the frames of a session through one reader.
        let mut fresh = IngestReader::new(dialect, IngestLimits::default());
        check(&mut fresh, &text);
        let mut session = IngestReader::new(dialect, IngestLimits::default());
        for line in text.split('\n') {
            check(&mut session, line);
        }
    }
    // The same to readers that have already accepted a `start`.
    static PRIMED: OnceLock<Vec<IngestReader>> = OnceLock::new();
    let primed = PRIMED.get_or_init(|| {
        vec![
            started(Dialect::Twilio, MediaFormat::Mulaw8k),
            started(Dialect::Exotel, MediaFormat::Mulaw8k),
            started(Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz8000)),
            started(Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz24000)),
        ]
    });
    for primed in primed {
        let mut reader = primed.clone();
        check(&mut reader, &text);
        let mut reader = primed.clone();
        for line in text.split('\n') {
            check(&mut reader, line);
        }
    }
});
