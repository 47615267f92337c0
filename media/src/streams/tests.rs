//! Golden and validation tests for [`super`]: outbound messages field by field against the
//! documented Twilio and Exotel shapes, inbound parsing and every rejection path.

use serde_json::{json, Value};

use super::*;

const SID: &str = "MZ00000000000000000000000000000001";

fn parsed(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

fn twilio_writer() -> StreamWriter {
    StreamWriter::new(Dialect::Twilio, MediaFormat::Mulaw8k, SID)
}

fn exotel_writer(rate: SampleRate) -> StreamWriter {
    StreamWriter::new(Dialect::Exotel, MediaFormat::Pcm16(rate), SID)
}

fn start_info() -> StartInfo {
    StartInfo {
        account_sid: "AC0001".into(),
        call_sid: "CA0001".into(),
        from: Some("+15550100".into()),
        to: Some("+15550199".into()),
        tracks: vec![Track::Inbound, Track::Outbound],
        custom_parameters: [("lang".to_string(), "en".to_string())].into(),
    }
}

#[test]
fn twilio_outbound_golden() {
    let mut w = twilio_writer();
    assert_eq!(
        parsed(&w.connected()),
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    assert_eq!(
        parsed(&w.start(&start_info())),
        json!({
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC0001",
                "streamSid": SID,
                "callSid": "CA0001",
                "tracks": ["inbound", "outbound"],
                "customParameters": {"lang": "en"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
            },
            "streamSid": SID
        })
    );
    assert_eq!(
        parsed(&w.media(Track::Inbound, 0, &[0xFF, 0x7F, 0x00])),
        json!({
            "event": "media",
            "sequenceNumber": "2",
            "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "/38A"},
            "streamSid": SID
        })
    );
    // Chunks count per track; the sequence number counts every message.
    let out = parsed(&w.media(Track::Outbound, 20, &[1]));
    assert_eq!(out["media"]["chunk"], "1");
    assert_eq!(out["sequenceNumber"], "3");
    let inb = parsed(&w.media(Track::Inbound, 20, &[1]));
    assert_eq!(inb["media"]["chunk"], "2");
    assert_eq!(inb["media"]["timestamp"], "20");
    assert_eq!(
        parsed(&w.dtmf('#', 120)),
        json!({
            "event": "dtmf",
            "streamSid": SID,
            "sequenceNumber": "5",
            "dtmf": {"track": "inbound_track", "digit": "#"}
        })
    );
    assert_eq!(
        parsed(&w.mark("greeting done")),
        json!({
            "event": "mark",
            "sequenceNumber": "6",
            "streamSid": SID,
            "mark": {"name": "greeting done"}
        })
    );
    assert_eq!(
        parsed(&w.stop("AC0001", "CA0001", "ignored")),
        json!({
            "event": "stop",
            "sequenceNumber": "7",
            "streamSid": SID,
            "stop": {"accountSid": "AC0001", "callSid": "CA0001"}
        })
    );
    assert_eq!(w.stream_sid(), SID);
}

#[test]
fn twilio_media_exact_text() {
    let mut w = twilio_writer();
    assert_eq!(
        w.media(Track::Inbound, 5, &[0xFF; 3]),
        format!(
            r#"{{"event":"media","sequenceNumber":"1","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"////"}},"streamSid":"{SID}"}}"#
        )
    );
}

#[test]
fn exotel_outbound_golden() {
    let mut w = exotel_writer(SampleRate::Hz16000);
    assert_eq!(parsed(&w.connected()), json!({"event": "connected"}));
    assert_eq!(
        parsed(&w.start(&start_info())),
        json!({
            "event": "start",
            "sequence_number": "1",
            "stream_sid": SID,
            "start": {
                "stream_sid": SID,
                "call_sid": "CA0001",
                "account_sid": "AC0001",
                "from": "+15550100",
                "to": "+15550199",
                "custom_parameters": {"lang": "en"},
                "media_format": {"encoding": "audio/x-raw", "sample_rate": "16000", "bit_rate": "16"}
            }
        })
    );
    let pcm = vec![0u8; 640];
    let media = parsed(&w.media(Track::Inbound, 100, &pcm));
    assert_eq!(
        media,
        json!({
            "event": "media",
            "sequence_number": "2",
            "stream_sid": SID,
            "media": {"chunk": "1", "timestamp": "100", "payload": STANDARD.encode(&pcm)}
        })
    );
    assert_eq!(
        parsed(&w.dtmf('5', 100)),
        json!({
            "event": "dtmf",
            "sequence_number": "3",
            "stream_sid": SID,
            "dtmf": {"digit": "5", "duration": "100"}
        })
    );
    assert_eq!(
        parsed(&w.mark("m1")),
        json!({"event": "mark", "sequence_number": "4", "stream_sid": SID, "mark": {"name": "m1"}})
    );
    assert_eq!(
        parsed(&w.stop("AC0001", "CA0001", "callended")),
        json!({
            "event": "stop",
            "sequence_number": "5",
            "stream_sid": SID,
            "stop": {"call_sid": "CA0001", "account_sid": "AC0001", "reason": "callended"}
        })
    );
    // Without from/to the keys are omitted; µ-law is announced as 8-bit.
    let mut w = StreamWriter::new(Dialect::Exotel, MediaFormat::Mulaw8k, SID);
    let start = parsed(&w.start(&StartInfo::default()));
    assert!(start["start"].get("from").is_none());
    assert_eq!(
        start["start"]["media_format"],
        json!({"encoding": "audio/x-mulaw", "sample_rate": "8000", "bit_rate": "8"})
    );
}

#[test]
fn wire_types_round_trip() {
    let mut w = twilio_writer();
    let msgs = [
        w.connected(),
        w.start(&start_info()),
        w.media(Track::Inbound, 0, &[1, 2, 3]),
        w.dtmf('1', 0),
        w.mark("x"),
        w.stop("a", "c", ""),
    ];
    for m in &msgs {
        let typed: twilio::ToApp = serde_json::from_str(m).unwrap();
        assert_eq!(parsed(&serde_json::to_string(&typed).unwrap()), parsed(m));
    }
    let mut w = exotel_writer(SampleRate::Hz8000);
    let msgs = [
        w.connected(),
        w.start(&start_info()),
        w.media(Track::Inbound, 0, &[0; 320]),
        w.dtmf('1', 40),
        w.mark("x"),
        w.stop("a", "c", "stopped"),
    ];
    for m in &msgs {
        let typed: exotel::ToApp = serde_json::from_str(m).unwrap();
        assert_eq!(parsed(&serde_json::to_string(&typed).unwrap()), parsed(m));
    }
    // App-side types produce what the reader accepts.
    let app = twilio::FromApp::Mark {
        stream_sid: SID.into(),
        mark: twilio::Mark { name: "n".into() },
    };
    assert_eq!(
        parsed(&serde_json::to_string(&app).unwrap()),
        json!({"event": "mark", "streamSid": SID, "mark": {"name": "n"}})
    );
    let app = exotel::FromApp::Clear {
        stream_sid: SID.into(),
        sequence_number: None,
    };
    assert_eq!(
        parsed(&serde_json::to_string(&app).unwrap()),
        json!({"event": "clear", "stream_sid": SID})
    );
}

fn twilio_reader() -> StreamReader {
    StreamReader::new(
        Dialect::Twilio,
        MediaFormat::Mulaw8k,
        SID,
        Limits::default(),
    )
}

fn exotel_reader() -> StreamReader {
    StreamReader::new(
        Dialect::Exotel,
        MediaFormat::Pcm16(SampleRate::Hz8000),
        SID,
        Limits::default(),
    )
}

fn text(v: Value) -> String {
    v.to_string()
}

#[test]
fn twilio_inbound_accepts_documented_messages() {
    let mut r = twilio_reader();
    let payload = STANDARD.encode([0xFFu8; 160]);
    assert_eq!(
        r.read_text(&text(
            json!({"event": "media", "streamSid": SID, "media": {"payload": payload}})
        )),
        Ok(AppMessage::Media {
            payload: vec![0xFF; 160]
        })
    );
    assert_eq!(
        r.read_text(&text(
            json!({"event": "mark", "streamSid": SID, "mark": {"name": "my label"}})
        )),
        Ok(AppMessage::Mark {
            name: "my label".into()
        })
    );
    assert_eq!(
        r.read_text(&text(json!({"event": "clear", "streamSid": SID}))),
        Ok(AppMessage::Clear)
    );
    // Padding is optional; unknown extra fields are ignored.
    assert_eq!(
        r.read_text(&text(json!({
            "event": "media", "streamSid": SID, "extra": [1, {"x": null}],
            "media": {"payload": "////AA", "track": "outbound"}
        }))),
        Ok(AppMessage::Media {
            payload: vec![0xFF, 0xFF, 0xFF, 0x00]
        })
    );
}

#[test]
fn exotel_inbound_and_variants() {
    let mut r = exotel_reader();
    let payload = STANDARD.encode([0u8; 3200]);
    let msg = |seq: Value| {
        text(json!({
            "event": "media", "stream_sid": SID, "sequence_number": seq,
            "media": {"chunk": "1", "timestamp": 100, "payload": payload}
        }))
    };
    assert!(
        matches!(r.read_text(&msg(json!("1"))), Ok(AppMessage::Media { payload }) if payload.len() == 3200)
    );
    assert!(r.read_text(&msg(json!(2))).is_ok());
    assert_eq!(
        r.read_text(&msg(json!("2"))),
        Err(StreamError::SequenceNotMonotonic {
            previous: 2,
            got: 2
        })
    );
    assert_eq!(
        r.read_text(&msg(json!(-3))),
        Err(StreamError::BadCounter {
            field: "sequence_number"
        })
    );
    assert_eq!(
        r.read_text(&msg(json!("0x10"))),
        Err(StreamError::BadCounter {
            field: "sequence_number"
        })
    );
    // A rejected message does not advance the sequence.
    let bad = text(
        json!({"event": "mark", "stream_sid": SID, "sequence_number": "9", "mark": {"name": ""}}),
    );
    assert_eq!(r.read_text(&bad), Err(StreamError::EmptyMarkName));
    assert!(r.read_text(&msg(json!("3"))).is_ok());
    // streamSid accepted for Exotel; no sequence number is fine.
    assert_eq!(
        r.read_text(&text(json!({"event": "clear", "streamSid": SID}))),
        Ok(AppMessage::Clear)
    );
    let bad_chunk = text(json!({
        "event": "media", "stream_sid": SID, "media": {"chunk": "one", "payload": payload}
    }));
    assert_eq!(
        r.read_text(&bad_chunk),
        Err(StreamError::BadCounter {
            field: "media.chunk"
        })
    );
}

#[test]
fn rejections_have_reasons_and_close_codes() {
    let b64 = |n: usize| STANDARD.encode(vec![0xFFu8; n]);
    let (r, ex) = (Dialect::Twilio, Dialect::Exotel);
    let cases: Vec<(Dialect, String, &str, u16)> = vec![
        (r, "not json".into(), "malformed_json", 1007),
        (r, "{\"event\":\"media\"".into(), "malformed_json", 1007),
        (r, "[1,2]".into(), "wrong_type", 1007),
        (r, format!(r#"["clear","{SID}"]"#), "wrong_type", 1007),
        (r, "\"media\"".into(), "wrong_type", 1007),
        (r, text(json!({"event": 5})), "wrong_type", 1007),
        (
            r,
            text(json!({"event": "clear", "streamSid": 7})),
            "wrong_type",
            1007,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": ["x"]})),
            "wrong_type",
            1007,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {"payload": 5}})),
            "wrong_type",
            1007,
        ),
        (
            r,
            text(json!({"event": "mark", "streamSid": SID, "mark": {"name": null}})),
            "wrong_type",
            1007,
        ),
        (r, "[".repeat(200), "malformed_json", 1007),
        (r, r#"{"event":"\ud800"}"#.into(), "malformed_json", 1007),
        (r, text(json!({"streamSid": SID})), "missing_field", 1008),
        (
            r,
            text(json!({"event": "play", "streamSid": SID})),
            "unknown_event",
            1003,
        ),
        (
            r,
            text(json!({"event": "Media", "streamSid": SID})),
            "unknown_event",
            1003,
        ),
        (
            r,
            text(json!({"event": "start", "streamSid": SID})),
            "unexpected_event",
            1008,
        ),
        (r, text(json!({"event": "clear"})), "missing_field", 1008),
        (
            r,
            text(json!({"event": "clear", "stream_sid": SID})),
            "missing_field",
            1008,
        ),
        (
            r,
            text(json!({"event": "clear", "streamSid": "MZother"})),
            "stream_sid_mismatch",
            1008,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID})),
            "missing_field",
            1008,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {}})),
            "missing_field",
            1008,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {"payload": "!!!!"}})),
            "bad_base64",
            1007,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {"payload": "A"}})),
            "bad_base64",
            1007,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {"payload": ""}})),
            "empty_payload",
            1008,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {"payload": b64(8001)}})),
            "payload_too_large",
            1009,
        ),
        (
            r,
            text(json!({"event": "media", "streamSid": SID, "media": {"payload": b64(30000)}})),
            "payload_too_large",
            1009,
        ),
        (
            r,
            text(json!({"event": "mark", "streamSid": SID})),
            "missing_field",
            1008,
        ),
        (
            r,
            text(json!({"event": "mark", "streamSid": SID, "mark": {}})),
            "missing_field",
            1008,
        ),
        (
            r,
            text(json!({"event": "mark", "streamSid": SID, "mark": {"name": "x".repeat(257)}})),
            "mark_name_too_long",
            1008,
        ),
        (
            r,
            format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)),
            "frame_too_large",
            1009,
        ),
        (
            ex,
            text(json!({"event": "media", "stream_sid": SID, "media": {"payload": b64(330)}})),
            "payload_misaligned",
            1008,
        ),
        (
            ex,
            text(json!({"event": "media", "stream_sid": SID, "media": {"payload": b64(16320)}})),
            "payload_too_large",
            1009,
        ),
    ];
    for (dialect, frame, reason, code) in cases {
        let mut reader = match dialect {
            Dialect::Twilio => twilio_reader(),
            Dialect::Exotel => exotel_reader(),
        };
        let err = reader.read_text(&frame).unwrap_err();
        assert_eq!(
            (err.reason(), err.close_code()),
            (reason, code),
            "{frame:.80}: {err}"
        );
    }
    let err = twilio_reader().read_binary(&[1, 2, 3]);
    assert_eq!(err, StreamError::BinaryFrame { len: 3 });
    assert_eq!((err.reason(), err.close_code()), ("binary_frame", 1003));
}

#[test]
fn limits_follow_format_and_config() {
    let r = twilio_reader();
    assert_eq!(r.max_payload_bytes(), 8000);
    let wide = StreamReader::new(
        Dialect::Exotel,
        MediaFormat::Pcm16(SampleRate::Hz24000),
        SID,
        Limits::default(),
    );
    assert_eq!(wide.max_payload_bytes(), 48000);
    // A full second at 24 kHz still fits the default frame limit.
    let mut wide = wide;
    let frame = text(
        json!({"event": "media", "stream_sid": SID, "media": {"payload": STANDARD.encode(vec![0u8; 48000])}}),
    );
    assert!(frame.len() <= Limits::default().max_frame_bytes);
    assert!(wide.read_text(&frame).is_ok());
    let mut tight = StreamReader::new(
        Dialect::Twilio,
        MediaFormat::Mulaw8k,
        SID,
        Limits {
            max_mark_name: 3,
            max_payload_ms: 20,
            ..Limits::default()
        },
    );
    let ok = text(
        json!({"event": "media", "streamSid": SID, "media": {"payload": STANDARD.encode([0u8; 160])}}),
    );
    assert!(tight.read_text(&ok).is_ok());
    let big = text(
        json!({"event": "media", "streamSid": SID, "media": {"payload": STANDARD.encode([0u8; 161])}}),
    );
    assert_eq!(
        tight.read_text(&big),
        Err(StreamError::PayloadTooLarge { len: 161, max: 160 })
    );
    let long = text(json!({"event": "mark", "streamSid": SID, "mark": {"name": "abcd"}}));
    assert_eq!(
        tight.read_text(&long),
        Err(StreamError::MarkNameTooLong { len: 4, max: 3 })
    );
}

#[test]
fn echoed_strings_are_truncated_on_char_boundaries() {
    let mut r = twilio_reader();
    let event = "é".repeat(100);
    match r.read_text(&text(json!({"event": event, "streamSid": SID}))) {
        Err(StreamError::UnknownEvent { event }) => assert!(event.len() <= MAX_ECHO),
        other => panic!("{other:?}"),
    }
    match r.read_text(&text(
        json!({"event": "clear", "streamSid": "ü".repeat(80)}),
    )) {
        Err(StreamError::StreamSidMismatch { got }) => assert!(got.len() <= MAX_ECHO),
        other => panic!("{other:?}"),
    }
}
