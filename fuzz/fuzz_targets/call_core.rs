//! Fuzz target for the B2BUA call core (`switchboard_call::CallCore`, RFC 3261 §6, §12-15,
//! RFC 4028), sans-IO on a virtual clock. The input is a program of steps played against one
//! call: the owner's commands (dial, fail, hang up, the ledger's reservation), the trunk's
//! responses to what the core sent it (any status, with or without SDP, tags or a digest
//! challenge, retransmitted 2xx, transaction timeouts), in-dialog requests from either side
//! (BYE, re-INVITE, UPDATE, INFO, ACK, REFER, with right or wrong tags and CSeqs), the
//! caller's CANCEL, RTP activity and time advancing by milliseconds to hours.
//!
//! Checked: no panic; every message the core sends is written by the wire writer, parses,
//! and writes back to the same bytes; one step causes a bounded number of outputs; every server transaction gets at most one final response;
//! and once the owner hangs up, advancing time past the BYE guard always ends the call
//! (`is_done`), whatever the peers did or did not answer.

#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_call::{
    CallConfig, CallCore, CallFailure, Command, Credentials, Dial, HangupCause, MediaRefused,
    Output, SipEvent, SipOutput,
};
use switchboard_fuzz::Program;
use switchboard_sip::dialog::Dialog;
use switchboard_sip::digest::{challenge_header, Algorithm};
use switchboard_sip::message::{make_response, parse, to_bytes};
use switchboard_sip::rsip::{self, Header, Method, SipMessage};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::{Peer, Transport};

const GW: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060);
const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5060);
const TRUNK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)), 5060);
const CODES: [u16; 16] = [
    100, 180, 183, 200, 202, 302, 401, 407, 404, 408, 481, 486, 487, 491, 503, 603,
];
const METHODS: [Method; 7] = [
    Method::Bye,
    Method::Invite,
    Method::Update,
    Method::Info,
    Method::Ack,
    Method::Refer,
    Method::Options,
];
/// Outputs one step may cause (a hang-up answers, BYEs and CANCELs both legs, plus events).
const MAX_OUTPUTS_PER_STEP: usize = 16;

fn udp(addr: SocketAddr) -> Peer {
    Peer {
        addr,
        transport: Transport::Udp,
    }
}

/// An SDP offer or answer; `kind` picks an ordinary address, a hold, or one the policy refuses.
fn sdp(kind: u8, port: u16) -> Vec<u8> {
    let (ip, dir) = match kind % 4 {
        0 => ("192.0.2.10", "sendrecv"),
        1 => ("0.0.0.0", "sendrecv"),
        2 => ("192.0.2.10", "sendonly"),
        _ => ("10.9.9.9", "sendrecv"),
    };
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={dir}\r\n"
    )
    .into_bytes()
}

fn with_body(headers: &mut rsip::Headers, body: &mut Vec<u8>, sdp: Vec<u8>) {
    headers.push(Header::ContentType("application/sdp".into()));
    *body = sdp;
}

fn caller_invite(input: &mut Program<'_>) -> rsip::Request {
    let b = input.byte();
    let body = if b & 1 == 0 {
        String::from_utf8(sdp(b >> 1, 4000)).unwrap_or_default()
    } else {
        String::new()
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let se = if b & 8 != 0 {
        "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n"
    } else {
        ""
    };
    let text = format!(
        "INVITE sip:+15550100@192.0.2.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcaller1\r\n\
         Max-Forwards: {}\r\n\
         From: <sip:+15550199@192.0.2.10>;tag=caller1\r\n\
         To: <sip:+15550100@192.0.2.1>\r\n\
         Call-ID: a-leg@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@192.0.2.10:5060>\r\n\
         {se}{ct}Content-Length: {}\r\n\r\n{body}",
        (b >> 4) % 3 * 35,
        body.len()
    );
    match parse(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad INVITE template: {other:?}"),
    }
}

struct Run {
    core: CallCore,
    now: Instant,
    invite: rsip::Request,
    /// Requests the core sent toward the trunk (its client transactions), in order.
    to_trunk: Vec<rsip::Request>,
    /// The last 2xx we gave to the core, to retransmit.
    last_2xx: Option<rsip::Response>,
    /// The caller's side of the A dialog, once the core answered 2xx.
    caller_dialog: Option<Dialog>,
    /// The trunk's side of the B dialog, once it answered with a tag.
    trunk_dialog: Option<Dialog>,
    /// Final responses per server transaction.
    finals: HashMap<TransactionKey, usize>,
    /// Steps played so far (gives in-dialog requests distinct branches).
    step: u32,
}

impl Run {
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(out) = self.core.poll_output() {
            n += 1;
            assert!(
                n <= MAX_OUTPUTS_PER_STEP,
                "one step caused more than {MAX_OUTPUTS_PER_STEP} outputs"
            );
            let Output::Sip(sip) = out else { continue };
            match sip {
                SipOutput::Request { peer, request } | SipOutput::Stateless { peer, request } => {
                    check_written(&SipMessage::Request(request.clone()));
                    if peer.addr == TRUNK && request.method != Method::Ack {
                        if self.to_trunk.len() < 64 {
                            self.to_trunk.push(request);
                        }
                    }
                }
                SipOutput::Response { key, response } => {
                    check_written(&SipMessage::Response(response.clone()));
                    let code = response.status_code.code();
                    if code >= 200 {
                        let finals = self.finals.entry(key.clone()).or_default();
                        *finals += 1;
                        assert!(*finals <= 1, "two final responses on one transaction");
                    }
                    if (200..300).contains(&code)
                        && key.method() == &Method::Invite
                        && self.caller_dialog.is_none()
                    {
                        self.caller_dialog = Dialog::uac(&self.invite, &response).ok();
                    }
                }
            }
        }
    }

    fn sip(&mut self, ev: SipEvent) {
        self.core.handle_sip(self.now, ev);
    }

    fn trunk_response(&mut self, input: &mut Program<'_>) {
        if self.to_trunk.is_empty() {
            return;
        }
        let req = input.pick(&self.to_trunk);
        let code = input.pick(&CODES);
        let b = input.byte();
        let tagged = b & 1 == 0 || code >= 200 && code < 300;
        let mut resp = make_response(&req, code, tagged.then_some("trunk1"));
        if (code == 401 || code == 407) && b & 2 == 0 {
            let name = if code == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            resp.headers.push(Header::Other(
                name.into(),
                challenge_header("trunk.example", &format!("n{}", b >> 2), Algorithm::Md5),
            ));
        }
        if code != 100 && b & 4 == 0 && req.method == Method::Invite {
            resp.headers.push(Header::Contact(
                "<sip:trunk@198.51.100.20:5060>".to_string().into(),
            ));
            with_body(&mut resp.headers, &mut resp.body, sdp(b >> 3, 5000));
        }
        if (200..300).contains(&code) && req.method == Method::Invite {
            self.last_2xx = Some(resp.clone());
            if self.trunk_dialog.is_none() {
                self.trunk_dialog = Dialog::uas(&req, "trunk1").ok();
            }
        }
        self.sip(SipEvent::Response { response: resp });
    }

    fn in_dialog(&mut self, from_caller: bool, input: &mut Program<'_>) {
        let method = input.pick(&METHODS);
        let b = input.byte();
        let (dialog, peer, host) = if from_caller {
            (self.caller_dialog.as_mut(), CALLER, "192.0.2.10:5060")
        } else {
            (self.trunk_dialog.as_mut(), TRUNK, "198.51.100.20:5060")
        };
        let Some(dialog) = dialog else { return };
        let branch = format!("z9hG4bKfz{}", self.step);
        let mut req = if method == Method::Ack {
            dialog.make_ack(1, host, Transport::Udp, &branch, "sip:peer@192.0.2.99")
        } else {
            dialog.make_request(
                method.clone(),
                host,
                Transport::Udp,
                &branch,
                "sip:peer@192.0.2.99",
            )
        };
        if matches!(method, Method::Invite | Method::Update) && b & 1 == 0 {
            let body = sdp(b >> 1, 4100);
            req.headers
                .push(Header::ContentType("application/sdp".into()));
            req.headers
                .retain(|h| !matches!(h, Header::ContentLength(_)));
            req.headers
                .push(Header::ContentLength((body.len() as u32).into()));
            req.body = body;
        }
        if b & 0x40 != 0 {
            // A stranger's tag: the core must answer 481 or ignore it, never act on it.
            req.headers.retain(|h| !matches!(h, Header::To(_)));
            req.headers.push(Header::To(
                "<sip:x@192.0.2.1>;tag=stranger".to_string().into(),
            ));
        }
        let key = (method != Method::Ack).then(|| TransactionKey::server_of(&req));
        self.sip(SipEvent::Request {
            key,
            request: req,
            peer: udp(peer),
        });
    }

    fn step(&mut self, input: &mut Program<'_>) {
        self.step += 1;
        match input.byte() % 12 {
            0 => {
                let b = input.byte();
                let dial = Dial {
                    peer: udp(TRUNK),
                    via_host: GW.to_string(),
                    contact: format!("sip:switchboard@{GW}"),
                    uri: "sip:+15550100@198.51.100.20:5060".into(),
                    from_domain: "192.0.2.1".into(),
                    call_id: "b-leg@192.0.2.1".into(),
                    user_agent: "switchboard-fuzz".into(),
                    credentials: (b & 1 == 0).then(|| Credentials {
                        user: "gw".into(),
                        password: "secret".into(),
                    }),
                    port_a: 30000,
                    port_b: 30002,
                };
                self.core
                    .handle_command(self.now, Command::Dial(Box::new(dial)));
            }
            1 => {
                let f = input.pick(&[
                    CallFailure::Busy,
                    CallFailure::NoRoute,
                    CallFailure::Congestion,
                    CallFailure::TrunkDown,
                ]);
                self.core.handle_command(self.now, Command::Fail(f));
            }
            2 => {
                let c = input.pick(&[
                    HangupCause::Operator,
                    HangupCause::Shutdown,
                    HangupCause::CreditExhausted,
                    HangupCause::AppGone,
                ]);
                self.core.handle_command(self.now, Command::Hangup(c));
            }
            3 => {
                let b = input.byte();
                let r = if b & 1 == 0 {
                    Ok(Duration::from_secs(u64::from(b)))
                } else {
                    Err(HangupCause::NoCredit)
                };
                self.core.handle_command(self.now, Command::Reserved(r));
            }
            4 | 5 => self.trunk_response(input),
            6 => {
                if let Some(resp) = self.last_2xx.clone() {
                    self.sip(SipEvent::Response { response: resp });
                }
            }
            7 => {
                if !self.to_trunk.is_empty() {
                    let req = input.pick(&self.to_trunk);
                    let branch = switchboard_sip::message::MessageExt::top_via_branch(&req)
                        .unwrap_or_default();
                    self.sip(SipEvent::Timeout { branch });
                }
            }
            8 => self.in_dialog(true, input),
            9 => self.in_dialog(false, input),
            10 => {
                let invite = TransactionKey::server_of(&self.invite);
                self.sip(SipEvent::Cancelled { invite });
            }
            _ => {
                let b = input.byte();
                let d = match b >> 6 {
                    0 => Duration::from_millis(u64::from(b & 63) * 10),
                    1 => Duration::from_secs(u64::from(b & 63)),
                    2 => Duration::from_secs(u64::from(b & 63) * 60),
                    _ => Duration::from_secs(u64::from(b & 63) * 3600),
                };
                if b & 0x20 == 0 {
                    self.core.note_media_activity(Some(self.now));
                }
                self.now += d;
                self.fire_timers();
            }
        }
        self.drain();
    }

    fn fire_timers(&mut self) {
        // At most a few rounds per step: a timer re-armed at `now` must not loop forever.
        for _ in 0..8 {
            match self.core.poll_timeout() {
                Some(at) if at <= self.now => {
                    self.core.handle_timeout(self.now);
                    self.drain();
                }
                _ => return,
            }
        }
    }
}

/// What the core sends can be written (by the writer the transaction layer uses), parses,
/// and writes back to the same bytes: the peer reads exactly what the core meant. (Compared
/// as bytes, not as values: the core builds some headers as `Other` that the parser types.)
fn check_written(msg: &SipMessage) {
    let bytes = to_bytes(msg)
        .unwrap_or_else(|e| panic!("the core made an unwritable message ({e}):\n{msg}"));
    let again = parse(&bytes).unwrap_or_else(|e| {
        panic!(
            "the core sent what does not parse ({e}):\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let rewritten = to_bytes(&again).expect("a parsed message is writable");
    assert!(
        rewritten == bytes,
        "re-parse differs:\n{}\n---\n{}",
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&rewritten)
    );
}

fuzz_target!(|data: &[u8]| {
    let mut input = Program::new(data);
    let now = Instant::now();
    let invite = caller_invite(&mut input);
    let key = TransactionKey::server_of(&invite);
    let leg = CallCore::caller_leg(
        udp(CALLER),
        GW.to_string(),
        format!("sip:switchboard@{GW}"),
        key,
        invite.clone(),
    );
    let config = CallConfig {
        rtp_timeout: Some(Duration::from_secs(30)),
        ..CallConfig::default()
    };
    let policy = Box::new(|ip: IpAddr, port: u16| {
        if ip.is_unspecified() || port == 0 {
            Ok(None)
        } else if matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10) {
            Err(MediaRefused)
        } else {
            Ok(Some(SocketAddr::new(ip, port)))
        }
    });
    let core = CallCore::new(now, leg, config, GW.ip(), policy);
    let mut run = Run {
        core,
        now,
        invite,
        to_trunk: Vec::new(),
        last_2xx: None,
        caller_dialog: None,
        trunk_dialog: None,
        finals: HashMap::new(),
        step: 0,
    };
    run.drain();
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        run.step(&mut input);
        steps += 1;
    }
    // Liveness: the owner hangs up; whatever the peers do not answer, the call ends by the
    // BYE guard (plus the timers that may fire on the way).
    run.core
        .handle_command(run.now, Command::Hangup(HangupCause::Operator));
    run.drain();
    for _ in 0..16 {
        if run.core.is_done() {
            break;
        }
        run.now += Duration::from_secs(10);
        run.fire_timers();
    }
    assert!(
        run.core.is_done(),
        "a hung-up call did not end within its BYE guard: {:?}",
        run.core
    );
});
