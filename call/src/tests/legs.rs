//! The legs alone, as a one-leg call (fax, app, device) will drive them: scripted
//! responses in, SIP out, no core.

use super::*;
use crate::{CallFailure, LegError, UacEvent, UacLeg, UasLeg};
use switchboard_sip::message::make_response;

fn invite() -> rsip::Request {
    let body = sdp("192.0.2.1", PORT_B, "sendrecv");
    let text = format!(
        "INVITE sip:15551234567@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={}\r\n\
Max-Forwards: 70\r\n\
From: <sip:fax@192.0.2.1>;tag=ourtag\r\n\
To: <sip:15551234567@198.51.100.20>\r\n\
Call-ID: one-leg@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:gw@192.0.2.1>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n",
        new_branch(),
        body.len()
    );
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&body);
    match parse(&bytes) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad template: {other:?}"),
    }
}

fn uac(creds: Option<Credentials>) -> UacLeg {
    UacLeg::new(
        udp(TRUNK),
        "192.0.2.1:5060".into(),
        "sip:gw@192.0.2.1".into(),
        invite(),
        creds,
        2,
    )
}

fn sent(leg: &mut crate::Leg) -> Vec<String> {
    std::iter::from_fn(|| leg.poll_transmit())
        .map(|o| match o {
            SipOutput::Request { request, .. } => request.method.to_string(),
            SipOutput::Stateless { request, .. } => format!("{} (stateless)", request.method),
            SipOutput::Response { response, .. } => response.status_code.code().to_string(),
        })
        .collect()
}

fn reply(leg: &UacLeg, code: u16) -> rsip::Response {
    let mut r = make_response(leg.invite(), code, (code > 100).then_some("far"));
    if code < 300 && code > 100 {
        r.headers.push(Header::Contact(
            "<sip:far@198.51.100.20>".to_string().into(),
        ));
    }
    if code == 401 {
        r.headers.push(Header::WwwAuthenticate(
            challenge_header("trunk", "abc", Algorithm::Md5).into(),
        ));
    }
    r
}

#[test]
fn uac_cancel_waits_for_a_provisional() {
    let mut leg = uac(None);
    assert_eq!(sent(&mut leg.leg), vec!["INVITE"]);
    leg.cancel();
    assert!(
        sent(&mut leg.leg).is_empty(),
        "no CANCEL before a provisional"
    );
    assert_eq!(leg.on_response(&reply(&leg, 100)), UacEvent::None);
    assert_eq!(sent(&mut leg.leg), vec!["CANCEL"]);
    let ev = leg.on_response(&reply(&leg, 487));
    assert_eq!(
        ev,
        UacEvent::Failed {
            failure: CallFailure::Cancelled,
            status: Some(487)
        }
    );
    assert!(leg.is_idle());
}

#[test]
fn uac_answers_acks_reacks_and_byes() {
    let mut leg = uac(None);
    sent(&mut leg.leg);
    assert!(matches!(
        leg.on_response(&reply(&leg, 180)),
        UacEvent::Provisional(_)
    ));
    assert!(leg.leg.dialog.is_some(), "early dialog from the tagged 180");
    let ok = reply(&leg, 200);
    assert!(matches!(leg.on_response(&ok), UacEvent::Answered(_)));
    assert_eq!(sent(&mut leg.leg), vec!["ACK (stateless)"]);
    assert!(leg.is_confirmed());
    // A retransmitted 200 is ACKed again, and nothing else happens.
    assert_eq!(leg.on_response(&ok), UacEvent::None);
    assert_eq!(sent(&mut leg.leg), vec!["ACK (stateless)"]);
    leg.hangup();
    let out: Vec<SipOutput> = std::iter::from_fn(|| leg.leg.poll_transmit()).collect();
    let [SipOutput::Request { request: bye, .. }] = &out[..] else {
        panic!("expected one BYE: {out:?}");
    };
    assert_eq!(bye.method, Method::Bye);
    assert!(!leg.is_idle(), "BYE outstanding");
    let bye_ok = make_response(bye, 200, None);
    assert_eq!(leg.on_response(&bye_ok), UacEvent::None);
    assert!(leg.is_idle());
}

#[test]
fn uac_late_2xx_after_cancel_is_acked_and_byed() {
    let mut leg = uac(None);
    sent(&mut leg.leg);
    leg.on_response(&reply(&leg, 180));
    leg.cancel();
    assert_eq!(sent(&mut leg.leg), vec!["CANCEL"]);
    assert_eq!(leg.on_response(&reply(&leg, 200)), UacEvent::AnsweredLate);
    assert_eq!(sent(&mut leg.leg), vec!["ACK (stateless)", "BYE"]);
}

#[test]
fn uac_digest_retries_then_gives_up() {
    let creds = Credentials {
        user: "u".into(),
        password: "p".into(),
    };
    let mut leg = uac(Some(creds));
    sent(&mut leg.leg);
    for attempt in 1..=2u32 {
        assert_eq!(leg.on_response(&reply(&leg, 401)), UacEvent::None);
        assert_eq!(sent(&mut leg.leg), vec!["INVITE"], "retry {attempt}");
        let inv = leg.invite();
        assert!(inv.header_value("Authorization").is_some());
        assert_eq!(inv.cseq().map(|c| c.0), Some(1 + attempt));
    }
    assert_eq!(
        leg.on_response(&reply(&leg, 401)),
        UacEvent::Failed {
            failure: CallFailure::TrunkAuthFailed,
            status: Some(401)
        }
    );
    // Without credentials a challenge is a failure at once.
    let mut leg = uac(None);
    sent(&mut leg.leg);
    assert!(matches!(
        leg.on_response(&reply(&leg, 401)),
        UacEvent::Failed { .. }
    ));
}

#[test]
fn uac_timer_b_before_and_after_a_provisional() {
    let table = [
        (false, CallFailure::TrunkTimeout),
        (true, CallFailure::Timeout),
    ];
    for (rang, failure) in table {
        let mut leg = uac(None);
        sent(&mut leg.leg);
        if rang {
            leg.on_response(&reply(&leg, 180));
        }
        let branch = leg.invite().top_via_branch().unwrap_or_default();
        assert_eq!(
            leg.on_timeout(&branch),
            UacEvent::Failed {
                failure,
                status: None
            }
        );
        assert!(leg.is_idle());
        assert_eq!(leg.on_timeout(&branch), UacEvent::None, "reported once");
    }
}

#[test]
fn uas_answers_with_our_tag_and_refuses_without_a_dialog() {
    let inv = invite();
    let key = TransactionKey::server_of(&inv);
    let mut leg = UasLeg::new(
        udp(CALLER),
        "192.0.2.1:5060".into(),
        "sip:gw@192.0.2.1".into(),
        key.clone(),
        inv.clone(),
        "mytag".into(),
    );
    // An in-dialog request before the dialog exists: 481.
    let mut bye = inv.clone();
    bye.method = Method::Bye;
    assert_eq!(leg.leg.check_request(&key, &bye), Err(LegError::NoDialog));
    assert_eq!(sent(&mut leg.leg), vec!["481"]);
    leg.respond(180, None, rsip::Headers::default());
    assert!(leg.answer(None, rsip::Headers::default()).is_ok());
    let out: Vec<SipOutput> = std::iter::from_fn(|| leg.leg.poll_transmit()).collect();
    assert_eq!(out.len(), 2);
    for o in &out {
        let SipOutput::Response { response, .. } = o else {
            panic!("{o:?}")
        };
        assert_eq!(response.to_tag().as_deref(), Some("mytag"));
    }
    assert!(leg.ack_pending() && leg.final_sent());
    assert!(!leg.on_cancel(), "no 487 after the 200");
    leg.on_ack();
    assert!(!leg.ack_pending());
    assert!(leg.hangup(), "BYE in the dialog");
    assert_eq!(sent(&mut leg.leg), vec!["BYE"]);
}
