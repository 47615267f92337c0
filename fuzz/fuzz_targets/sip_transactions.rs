//! Fuzz target for the SIP transaction layer (RFC 3261 §17, RFC 6026),
//! sans-IO on a virtual clock. The input is a program of steps: incoming
//! requests and responses (method, branch, Call-ID, CSeq, status, peer and
//! transport from a few bytes each, built as text and parsed like the
//! transport does), TU commands (send a request, answer a server
//! transaction, report a transport error) and time advancing.
//!
//! Checked: no panic; every message the layer sends parses; one inbound
//! message causes at most two transmits (the layer never answers more than
//! it received); timer-driven retransmissions of one message stay within
//! RFC 3261's limits (at most 10 per message sent by the TU: Timer A/E/G and
//! the 2xx retransmission, doubling from T1 up to T2, stop at 64*T1); and
//! once the TU has answered every server transaction and cancelled every
//! INVITE it sent, advancing time past 64*T1 (plus T4) leaves no
//! transaction alive.

#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::Program;
use switchboard_sip::message::{make_cancel, make_response, parse};
use switchboard_sip::rsip::{Request, SipMessage};
use switchboard_sip::transaction::{Timers, TransactionEvent, TransactionKey, TransactionLayer};
use switchboard_sip::transport::{Peer, Transport};

const METHODS: [&str; 8] = [
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "PRACK",
];
const CODES: [u16; 14] = [
    100, 180, 183, 200, 202, 302, 401, 404, 481, 486, 487, 500, 603, 699,
];
/// Steps a program may take.
const MAX_STEPS: usize = 300;
/// Timer-driven retransmissions allowed per message the TU handed over.
const MAX_RETRANSMITS: usize = 10;

/// The pieces a message is built from.
#[derive(Clone, Copy)]
struct Shape {
    method: &'static str,
    branch: u8,
    call: u8,
    cseq: u8,
    peer: u8,
    tcp: bool,
    to_tag: bool,
}

impl Shape {
    fn read(input: &mut Program<'_>) -> Self {
        let method = input.pick(&METHODS);
        let b = input.byte();
        Self {
            method,
            branch: b & 3,
            call: (b >> 2) & 1,
            cseq: 1 + ((b >> 3) & 1),
            peer: (b >> 4) & 1,
            tcp: b & 0x20 != 0,
            to_tag: b & 0x40 != 0,
        }
    }
    fn transport(&self) -> Transport {
        if self.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }
    fn peer(&self) -> Peer {
        Peer {
            addr: SocketAddr::from(([192, 0, 2, 1 + self.peer], 5060)),
            transport: self.transport(),
        }
    }
    fn headers(&self, method: &str) -> String {
        let t = if self.tcp { "TCP" } else { "UDP" };
        let to_tag = if self.to_tag { ";tag=bt1" } else { "" };
        format!(
            "Via: SIP/2.0/{t} 192.0.2.{}:5060;branch=z9hG4bKfz{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@atlanta.example>;tag=at1\r\n\
             To: <sip:bob@biloxi.example>{to_tag}\r\n\
             Call-ID: call{}@atlanta.example\r\n\
             CSeq: {} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            1 + self.peer,
            self.branch,
            self.call,
            self.cseq
        )
    }
    fn request(&self) -> Request {
        let text = format!(
            "{} sip:bob@biloxi.example SIP/2.0\r\n{}",
            self.method,
            self.headers(self.method)
        );
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("bad request template: {other:?}"),
        }
    }
    fn response(&self, code: u16) -> SipMessage {
        let text = format!("SIP/2.0 {code} Whatever\r\n{}", self.headers(self.method));
        parse(text.as_bytes()).expect("response template")
    }
}

struct Run {
    layer: TransactionLayer,
    now: Instant,
    /// Server transactions the TU heard of, with their request.
    servers: Vec<(TransactionKey, Request)>,
    /// INVITEs the TU sent (to cancel at the end).
    invites: Vec<(Peer, Request)>,
    /// Messages the TU handed over, by bytes.
    issued: HashMap<Bytes, usize>,
    /// Timer-driven sends, by bytes.
    retransmits: HashMap<Bytes, usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Cause {
    Inbound,
    Tu,
    Timer,
}

impl Run {
    fn drain(&mut self, cause: Cause) {
        let mut sent = 0;
        while let Some(t) = self.layer.poll_transmit() {
            sent += 1;
            parse(&t.data).expect("the layer sent a message that does not parse");
            match cause {
                Cause::Tu => *self.issued.entry(t.data).or_default() += 1,
                Cause::Timer => {
                    let n = self.retransmits.entry(t.data.clone()).or_default();
                    *n += 1;
                    let issued = self.issued.get(&t.data).copied().unwrap_or(0);
                    assert!(
                        *n <= MAX_RETRANSMITS * issued.max(1),
                        "{n} timer retransmissions of a message the TU sent {issued} times"
                    );
                }
                Cause::Inbound => {}
            }
        }
        if cause == Cause::Inbound {
            assert!(sent <= 2, "{sent} messages sent for one received");
        }
        while let Some(ev) = self.layer.poll_event() {
            if let TransactionEvent::Request {
                key: Some(key),
                request,
                ..
            } = ev
            {
                // Every one is kept (at most one per step, and a program has at most
                // MAX_STEPS): a server transaction the TU never heard of would wait for
                // its answer forever and fail the end check falsely.
                self.servers.push((key, request));
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.layer.poll_timeout().is_some_and(|t| t <= self.now) {
            self.layer.handle_timeout(self.now);
        }
        self.drain(Cause::Timer);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Program::new(data);
    let timers = Timers::default();
    let mut run = Run {
        layer: TransactionLayer::new(timers),
        now: Instant::now(),
        servers: Vec::new(),
        invites: Vec::new(),
        issued: HashMap::new(),
        retransmits: HashMap::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        match input.byte() % 7 {
            0 | 1 => {
                let shape = Shape::read(&mut input);
                let req = shape.request();
                run.layer
                    .handle_message(run.now, shape.peer(), SipMessage::Request(req));
                run.drain(Cause::Inbound);
            }
            2 => {
                let shape = Shape::read(&mut input);
                let code = input.pick(&CODES);
                run.layer
                    .handle_message(run.now, shape.peer(), shape.response(code));
                run.drain(Cause::Inbound);
            }
            3 => {
                let shape = Shape::read(&mut input);
                let req = shape.request();
                // Every INVITE is kept for the final CANCEL (at most MAX_STEPS): one that
                // saw a provisional waits for its TU indefinitely (RFC 3261 §17.1.1.2), so
                // an uncancelled one would fail the end check falsely (a cap of 64 did).
                if shape.method == "INVITE" {
                    run.invites.push((shape.peer(), req.clone()));
                }
                run.layer.send_request(run.now, shape.peer(), req);
                run.drain(Cause::Tu);
            }
            4 => {
                if !run.servers.is_empty() {
                    let i = usize::from(input.byte()) % run.servers.len();
                    let code = input.pick(&CODES);
                    let (key, req) = &run.servers[i];
                    let resp = make_response(req, code, Some("tu1"));
                    let _ = run.layer.send_response(run.now, key, resp);
                    run.drain(Cause::Tu);
                }
            }
            5 => {
                if !run.servers.is_empty() && input.byte() & 7 == 0 {
                    let i = usize::from(input.byte()) % run.servers.len();
                    let key = run.servers[i].0.clone();
                    run.layer.transport_error(&key);
                    run.drain(Cause::Tu);
                }
            }
            _ => {
                let ms = u64::from(input.byte()) * 50;
                run.advance(Duration::from_millis(ms));
            }
        }
    }
    // The TU answers every server transaction and cancels every INVITE it
    // sent; then every transaction ends within 64*T1 (+T4).
    for (key, req) in std::mem::take(&mut run.servers) {
        let resp = make_response(&req, 500, Some("tu1"));
        let _ = run.layer.send_response(run.now, &key, resp);
        run.drain(Cause::Tu);
    }
    for (peer, invite) in std::mem::take(&mut run.invites) {
        run.layer.send_request(run.now, peer, make_cancel(&invite));
        run.drain(Cause::Tu);
    }
    let end = timers.t1x64() * 2 + timers.t4 + Duration::from_secs(1);
    let mut waited = Duration::ZERO;
    while waited < end {
        run.advance(Duration::from_millis(250));
        waited += Duration::from_millis(250);
    }
    assert!(
        run.layer.is_empty(),
        "{} transactions alive after 2*64*T1",
        run.layer.len()
    );
});
