//! The JSON side of the device voice protocol (see the parent module): call events and dial
//! requests a device sends, bounded and checked here, and the control messages it is sent.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use switchboard_call::HangupCause;

use super::{VoiceCall, VoiceEvent, MAX_CONTROL_BYTES};

/// A call-control message from a device.
#[derive(Debug, Deserialize)]
struct DeviceCallEvent {
    event: String,
    call: String,
    #[serde(default)]
    reason: Option<String>,
}

/// What a device's `call/event` message means for call `current`.
pub(crate) fn parse_call_event(payload: &[u8], current: &str) -> Option<VoiceEvent> {
    if payload.len() > MAX_CONTROL_BYTES {
        return None;
    }
    let ev: DeviceCallEvent = serde_json::from_slice(payload).ok()?;
    if ev.call != current {
        return None;
    }
    match ev.event.as_str() {
        "answer" => Some(VoiceEvent::Answered),
        "reject" => Some(VoiceEvent::Rejected(match ev.reason.as_deref() {
            Some("busy") => "busy",
            _ => "decline",
        })),
        "hangup" => Some(VoiceEvent::Hangup(HangupCause::DeviceHangup)),
        _ => None,
    }
}

/// A device's dial request.
#[derive(Debug, Deserialize)]
pub(crate) struct DialRequest {
    pub to: String,
    #[serde(default)]
    pub from: Option<String>,
}

/// Parse a dial request: a dial string of 1..=32 digits, `+`, `*`, `#`.
pub(crate) fn parse_dial(payload: &[u8]) -> Option<DialRequest> {
    if payload.len() > MAX_CONTROL_BYTES {
        return None;
    }
    let d: DialRequest = serde_json::from_slice(payload).ok()?;
    let dial = |s: &str| {
        !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
    };
    (dial(&d.to) && d.from.as_deref().is_none_or(dial)).then_some(d)
}

/// The control message announcing a call to a device.
pub(crate) fn ring_message(call: &VoiceCall) -> Bytes {
    let event = if call.outbound { "dialing" } else { "ring" };
    Bytes::from(
        json!({
            "event": event,
            "call": call.call_id,
            "from": call.from,
            "to": call.to,
            "rate": call.rate,
            "format": "pcm16le",
            "frame_ms": 20,
        })
        .to_string(),
    )
}

/// A control message about call `call`.
pub(crate) fn control(event: &str, call: &str, reason: Option<&str>) -> Bytes {
    let mut v = json!({"event": event, "call": call});
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    Bytes::from(v.to_string())
}

/// SIP status for a device's refusal.
pub(super) fn reject_code(reason: &str) -> u16 {
    match reason {
        "busy" => 486,
        "offline" => 480,
        "unknown" => 404,
        _ => 603,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_events_are_bounded_and_tied_to_the_current_call() {
        assert!(matches!(
            parse_call_event(br#"{"event":"answer","call":"c1"}"#, "c1"),
            Some(VoiceEvent::Answered)
        ));
        assert!(parse_call_event(br#"{"event":"answer","call":"c2"}"#, "c1").is_none());
        assert!(matches!(
            parse_call_event(br#"{"event":"reject","call":"c1","reason":"busy"}"#, "c1"),
            Some(VoiceEvent::Rejected("busy"))
        ));
        assert!(matches!(
            parse_call_event(br#"{"event":"reject","call":"c1"}"#, "c1"),
            Some(VoiceEvent::Rejected("decline"))
        ));
        assert!(matches!(
            parse_call_event(br#"{"event":"hangup","call":"c1"}"#, "c1"),
            Some(VoiceEvent::Hangup(_))
        ));
        for bad in [&b"{"[..], b"[]", b"{\"event\":1}", b"\xff\xfe", b""] {
            assert!(parse_call_event(bad, "c1").is_none());
        }
        let big = format!(
            r#"{{"event":"answer","call":"c1","pad":"{}"}}"#,
            "x".repeat(2000)
        );
        assert!(parse_call_event(big.as_bytes(), "c1").is_none());
    }

    #[test]
    fn dial_requests_need_a_dial_string() {
        assert_eq!(parse_dial(br#"{"to":"+4930123"}"#).unwrap().to, "+4930123");
        assert!(parse_dial(br#"{"to":"sip:evil@x"}"#).is_none());
        assert!(parse_dial(br#"{"to":""}"#).is_none());
        assert!(parse_dial(br#"{"to":"1","from":"a b"}"#).is_none());
        assert!(parse_dial(&[b'{'; 5000]).is_none());
    }
}
