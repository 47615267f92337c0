//! Scenario tests of [`CallCore`] in the style of quinn-proto's `Pair`: the core behind a
//! real transaction layer (the gateway), two scripted peer UAs (the caller on leg A, the
//! trunk on leg B) with their own transaction layers, all on one virtual clock, joined by a
//! seeded network that loses, delays and reorders datagrams. No sockets, no sleeps.

mod endpoint;
mod legs;
mod scenarios;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rsip::{Header, Method, SipMessage};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::digest::{challenge_header, Algorithm};
use switchboard_sip::message::{make_cancel, new_branch, parse, MessageExt};
use switchboard_sip::transaction::{Timers, TransactionEvent, TransactionKey, TransactionLayer};
use switchboard_sip::transport::{Peer, Transport};

use crate::{
    build, CallConfig, CallCore, Command, Credentials, Dial, Event, MediaCtl, MediaRefused, Output,
    SipEvent, SipOutput,
};

pub(crate) const MS: Duration = Duration::from_millis(1);
pub(crate) const SEC: Duration = Duration::from_secs(1);

pub(crate) const GW: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060);
pub(crate) const CALLER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5060);
pub(crate) const TRUNK: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)), 5060);
pub(crate) const MEDIA_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub(crate) const PORT_A: u16 = 30000;
pub(crate) const PORT_B: u16 = 30002;

fn udp(addr: SocketAddr) -> Peer {
    Peer {
        addr,
        transport: Transport::Udp,
    }
}

pub(crate) fn sdp(ip: &str, port: u16, direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
    .into_bytes()
}

pub(crate) fn t38_sdp(ip: &str, port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 2 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=image {port} udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\n"
    )
    .into_bytes()
}

/// A seeded network: each datagram is lost with probability `loss`, else delivered after
/// `latency` plus up to `jitter` (so datagrams overtake each other).
pub(crate) struct Net {
    rng: StdRng,
    loss: f64,
    latency: Duration,
    jitter: Duration,
    queue: Vec<(Instant, u64, SocketAddr, SocketAddr, bytes::Bytes)>,
    seq: u64,
}

impl Net {
    fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: bytes::Bytes) {
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(self.rng.gen::<f64>())
        };
        self.seq += 1;
        self.queue
            .push((now + self.latency + jitter, self.seq, from, to, data));
    }

    fn next_at(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.0).min()
    }

    fn take_due(&mut self, now: Instant) -> Vec<(SocketAddr, SocketAddr, bytes::Bytes)> {
        let mut due: Vec<_> = self.queue.iter().filter(|q| q.0 <= now).cloned().collect();
        self.queue.retain(|q| q.0 > now);
        due.sort_by_key(|q| (q.0, q.1));
        due.into_iter().map(|q| (q.2, q.3, q.4)).collect()
    }
}

/// Something a scripted UA does at a given time.
#[derive(Debug, Clone)]
pub(crate) enum Act {
    /// Answer the (latest) initial INVITE with this status, SDP or not.
    Respond(u16, bool),
    /// Caller: CANCEL the INVITE.
    Cancel,
    /// BYE in the dialog.
    Bye,
    /// re-INVITE in the dialog with an SDP of this direction.
    ReInvite(&'static str),
    /// INFO in the dialog.
    Info,
    /// A request outside any dialog we know (a BYE with a made-up To tag).
    StrayBye,
    /// Caller: the same INVITE again on a new branch (a merged request).
    MergedInvite,
    /// re-INVITE in the dialog offering T.38 (`m=image`).
    ReInviteT38,
}

/// A scripted peer UA.
pub(crate) struct Ua {
    pub addr: SocketAddr,
    pub tl: TransactionLayer,
    /// What it received, as "INVITE", "180 INVITE", ...
    pub got: Vec<(Duration, String)>,
    /// Scheduled acts, relative to the start (caller) or to the INVITE (callee's responses).
    pub acts: Vec<(Instant, Act)>,
    /// Callee: the responses to each initial INVITE, relative to its arrival.
    pub script: Vec<(Duration, Act)>,
    /// Callee: challenge this many INVITEs with 401 first.
    pub challenges: u8,
    /// Callee: INVITEs received (with their Authorization header, if any).
    pub invites: Vec<rsip::Request>,
    /// Caller: 2xx responses to INVITE received (the answer and re-INVITE answers).
    pub invite_oks: Vec<rsip::Response>,
    /// Answer re-INVITEs with this status.
    pub reinvite_status: u16,
    /// Answer a re-INVITE offering T.38 with a T.38 stream (else audio).
    pub accept_t38: bool,
    /// ACK 2xx responses (false: never, to test Timer L).
    pub ack_2xx: bool,
    /// Drop everything (an unreachable trunk).
    pub mute: bool,
    /// Drop every datagram that arrives before this.
    pub deaf_until: Option<Instant>,
    pub dialog: Option<Dialog>,
    invite_key: Option<(TransactionKey, rsip::Request)>,
    final_sent: bool,
    my_invite: Option<rsip::Request>,
    tag: String,
    bye_sent: bool,
    reinvite_out: Option<String>,
    base: Instant,
}

impl Ua {
    fn new(addr: SocketAddr, base: Instant, tag: &str) -> Self {
        Self {
            addr,
            tl: TransactionLayer::new(Timers::default()),
            got: Vec::new(),
            acts: Vec::new(),
            script: Vec::new(),
            challenges: 0,
            invites: Vec::new(),
            invite_oks: Vec::new(),
            reinvite_status: 200,
            accept_t38: false,
            ack_2xx: true,
            mute: false,
            deaf_until: None,
            dialog: None,
            invite_key: None,
            final_sent: false,
            my_invite: None,
            tag: tag.to_string(),
            bye_sent: false,
            reinvite_out: None,
            base,
        }
    }

    fn ip(&self) -> &'static str {
        if self.addr == CALLER {
            "192.0.2.10"
        } else {
            "198.51.100.20"
        }
    }

    /// Received this (e.g. "CANCEL", "487 INVITE").
    pub fn saw(&self, what: &str) -> bool {
        self.got.iter().any(|(_, g)| g == what)
    }

    /// When it first received this.
    pub fn first(&self, what: &str) -> Option<Duration> {
        self.got.iter().find(|(_, g)| g == what).map(|(t, _)| *t)
    }

    /// Final statuses received for INVITE.
    pub fn invite_finals(&self) -> Vec<u16> {
        self.got
            .iter()
            .filter_map(|(_, g)| {
                let (code, m) = g.split_once(' ')?;
                let code: u16 = code.parse().ok()?;
                (m == "INVITE" && code >= 200).then_some(code)
            })
            .collect()
    }

    fn log(&mut self, now: Instant, what: String) {
        self.got.push((now - self.base, what));
    }

    /// The caller's INVITE.
    fn invite(&mut self, now: Instant, session_expires: Option<u32>) {
        let body = sdp("192.0.2.10", 4000, "sendrecv");
        let se = session_expires
            .map(|s| format!("Session-Expires: {s}\r\nSupported: timer\r\n"))
            .unwrap_or_default();
        let text = format!(
            "INVITE sip:15551234567@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@192.0.2.10>;tag=caller1\r\n\
To: <sip:15551234567@192.0.2.1>\r\n\
Call-ID: a-leg@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
{se}Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n",
            new_branch(),
            body.len()
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        let Ok(SipMessage::Request(req)) = parse(&bytes) else {
            panic!("bad INVITE template");
        };
        self.my_invite = Some(req.clone());
        self.tl.send_request(now, udp(GW), req);
    }

    fn act(&mut self, now: Instant, act: Act) {
        match act {
            Act::Respond(code, with_sdp) => self.respond_invite(now, code, with_sdp),
            Act::Cancel => {
                if let Some(inv) = &self.my_invite {
                    let cancel = make_cancel(inv);
                    self.tl.send_request(now, udp(GW), cancel);
                }
            }
            Act::Bye => {
                self.bye_sent = true;
                self.in_dialog(now, Method::Bye, None);
            }
            Act::ReInvite(dir) => {
                let ip = if self.addr == CALLER {
                    "192.0.2.10"
                } else {
                    "198.51.100.20"
                };
                let body = sdp(ip, 4000, dir);
                self.reinvite_out = self.in_dialog(now, Method::Invite, Some(body));
            }
            Act::ReInviteT38 => {
                let body = t38_sdp(self.ip(), 4100);
                self.reinvite_out = self.in_dialog(now, Method::Invite, Some(body));
            }
            Act::Info => {
                self.in_dialog(now, Method::Info, None);
            }
            Act::StrayBye => {
                if let Some(inv) = self.my_invite.clone() {
                    let mut d = Dialog::uas(&inv, "nosuchtag").expect("dialog");
                    // As the caller: From = us, To = the gateway with a tag it never gave.
                    std::mem::swap(&mut d.local_uri, &mut d.remote_uri);
                    d.local_tag = "caller1".into();
                    d.remote_tag = "nosuchtag".into();
                    let req = d.make_request(
                        Method::Bye,
                        "192.0.2.10:5060",
                        Transport::Udp,
                        &new_branch(),
                        "sip:alice@192.0.2.10",
                    );
                    self.tl.send_request(now, udp(GW), req);
                }
            }
            Act::MergedInvite => {
                if let Some(mut inv) = self.my_invite.clone() {
                    inv.headers.retain(|h| !matches!(h, Header::Via(_)));
                    inv.headers.push(Header::Via(
                        format!("SIP/2.0/UDP 192.0.2.10:5060;branch={}", new_branch()).into(),
                    ));
                    self.tl.send_request(now, udp(GW), inv);
                }
            }
        }
    }

    fn in_dialog(&mut self, now: Instant, method: Method, body: Option<Vec<u8>>) -> Option<String> {
        let branch = new_branch();
        let host = format!("{}", self.addr);
        let contact = format!("sip:ua@{}", self.addr);
        let d = self.dialog.as_mut()?;
        let mut req = d.make_request(method, &host, Transport::Udp, &branch, &contact);
        if let Some(b) = body {
            req.headers
                .push(Header::ContentType("application/sdp".into()));
            req.body = b;
        }
        self.tl.send_request(now, udp(GW), req);
        Some(branch)
    }

    fn respond_invite(&mut self, now: Instant, code: u16, with_sdp: bool) {
        let Some((key, inv)) = self.invite_key.clone() else {
            return;
        };
        if self.final_sent {
            return;
        }
        let body = with_sdp.then(|| sdp("198.51.100.20", 5000, "sendrecv"));
        let contact = format!("sip:trunk@{}", self.addr);
        let resp = build::response_to(&inv, code, Some(&self.tag), Some(&contact), body);
        if code >= 200 {
            self.final_sent = true;
        }
        if code < 300 && self.dialog.is_none() {
            self.dialog = Dialog::uas(&inv, &self.tag).ok();
        }
        let _ = self.tl.send_response(now, &key, resp);
    }

    fn on_event(&mut self, now: Instant, ev: TransactionEvent) {
        match ev {
            TransactionEvent::Request { key, request, .. } => {
                let m = request.method.to_string();
                self.log(now, m);
                let Some(key) = key else { return };
                self.on_request(now, key, request);
            }
            TransactionEvent::Cancelled { .. } => {
                self.log(now, "CANCEL".into());
                if !self.final_sent {
                    self.respond_invite(now, 487, false);
                }
            }
            TransactionEvent::Response { response, .. }
            | TransactionEvent::StrayResponse { response, .. } => {
                let code = response.status_code.code();
                let Some((cseq, method)) = response.cseq() else {
                    return;
                };
                self.log(now, format!("{code} {method}"));
                if method == Method::Invite && (200..300).contains(&code) {
                    self.invite_oks.push(response.clone());
                    if self.dialog.is_none() {
                        if let Some(inv) = &self.my_invite {
                            self.dialog = Dialog::uac(inv, &response).ok();
                        }
                    }
                    if self.ack_2xx {
                        if let Some(d) = &self.dialog {
                            let host = format!("{}", self.addr);
                            let ack =
                                d.make_ack(cseq, &host, Transport::Udp, &new_branch(), "sip:ua@x");
                            self.tl.send_stateless(udp(GW), ack.into());
                        }
                    }
                }
                if method == Method::Invite
                    && code >= 200
                    && response.top_via_branch() == self.reinvite_out
                {
                    self.reinvite_out = None;
                }
            }
            TransactionEvent::Timeout { .. } => self.log(now, "timeout".into()),
            TransactionEvent::AckTimeout { .. } => {}
        }
    }

    fn on_request(&mut self, now: Instant, key: TransactionKey, req: rsip::Request) {
        let reply = |ua: &mut Self, code: u16, body: Option<Vec<u8>>| {
            let resp = build::response_to(&req, code, None, Some("sip:ua@x"), body);
            let _ = ua.tl.send_response(now, &key, resp);
        };
        match req.method {
            Method::Invite if req.to_tag().is_none() => {
                self.invites.push(req.clone());
                if self.invites.len() <= usize::from(self.challenges) {
                    let mut resp = build::response_to(&req, 401, Some(&self.tag), None, None);
                    resp.headers.push(Header::WwwAuthenticate(
                        challenge_header(
                            "trunk",
                            &format!("n{}", self.invites.len()),
                            Algorithm::Md5,
                        )
                        .into(),
                    ));
                    let _ = self.tl.send_response(now, &key, resp);
                    return;
                }
                self.invite_key = Some((key, req));
                self.final_sent = false;
                let script = self.script.clone();
                for (after, act) in script {
                    self.acts.push((now + after, act));
                }
            }
            Method::Invite => {
                if self.reinvite_out.is_some() {
                    return reply(self, 491, None); // glare (RFC 3261 §14.2)
                }
                let code = self.reinvite_status;
                let ip = if self.addr == CALLER {
                    "192.0.2.10"
                } else {
                    "198.51.100.20"
                };
                let t38 = self.accept_t38 && String::from_utf8_lossy(&req.body).contains("m=image");
                let body = (code < 300).then(|| {
                    if t38 {
                        t38_sdp(ip, 4100)
                    } else {
                        sdp(ip, 4000, "sendrecv")
                    }
                });
                reply(self, code, body);
            }
            Method::Bye => {
                if self.dialog.is_none() {
                    return reply(self, 481, None);
                }
                self.dialog = None;
                reply(self, 200, None);
            }
            _ => reply(self, 200, None),
        }
    }
}

/// The gateway: a transaction layer and the core (until it is done).
pub(crate) struct Gw {
    pub tl: TransactionLayer,
    pub core: Option<CallCore>,
    pub config: CallConfig,
    pub auto_dial: bool,
    pub credentials: Option<Credentials>,
    pub events: Vec<(Duration, Event)>,
    pub media: Vec<MediaCtl>,
    pub outcome: Option<(crate::Outcome, Option<u16>)>,
    pub done_at: Option<Duration>,
    pub media_activity: Option<Instant>,
    pub commands: Vec<(Instant, Command)>,
    base: Instant,
}

impl Gw {
    fn on_event(&mut self, now: Instant, ev: TransactionEvent) {
        let sip = match ev {
            TransactionEvent::Request { key, request, peer } => {
                if self.core.is_none() {
                    if self.outcome.is_none() && request.method == Method::Invite {
                        let Some(key) = key else { return };
                        let leg = CallCore::caller_leg(
                            peer,
                            "192.0.2.1:5060".into(),
                            "sip:gw@192.0.2.1".into(),
                            key,
                            request,
                        );
                        let policy = Box::new(|ip: IpAddr, port: u16| {
                            if ip == IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66)) {
                                Err(MediaRefused)
                            } else if port == 0 || ip.is_unspecified() {
                                Ok(None)
                            } else {
                                Ok(Some(SocketAddr::new(ip, port)))
                            }
                        });
                        let mut core = CallCore::new(now, leg, self.config, MEDIA_IP, policy);
                        if self.auto_dial {
                            core.handle_command(now, Command::Dial(Box::new(self.dial())));
                        }
                        self.core = Some(core);
                    } else if let Some(key) = key {
                        // The endpoint answers requests for calls it no longer knows.
                        let resp = build::response_to(&request, 481, None, None, None);
                        let _ = self.tl.send_response(now, &key, resp);
                    }
                    return;
                }
                SipEvent::Request { key, request, peer }
            }
            TransactionEvent::Cancelled { invite, .. } => SipEvent::Cancelled { invite },
            TransactionEvent::Response { response, .. }
            | TransactionEvent::StrayResponse { response, .. } => SipEvent::Response { response },
            TransactionEvent::Timeout { key } => SipEvent::Timeout {
                branch: key.branch().to_string(),
            },
            TransactionEvent::AckTimeout { .. } => return,
        };
        if let Some(core) = self.core.as_mut() {
            core.handle_sip(now, sip);
        }
    }

    pub(crate) fn dial(&self) -> Dial {
        Dial {
            peer: udp(TRUNK),
            via_host: "192.0.2.1:5060".into(),
            contact: "sip:gw@192.0.2.1".into(),
            uri: "sip:15551234567@198.51.100.20".into(),
            from_domain: "192.0.2.1".into(),
            call_id: "b-leg@192.0.2.1".into(),
            user_agent: "switchboard-test".into(),
            credentials: self.credentials.clone(),
            port_a: PORT_A,
            port_b: PORT_B,
        }
    }

    fn drain(&mut self, now: Instant) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        while let Some(o) = core.poll_output() {
            match o {
                Output::Sip(SipOutput::Request { peer, request }) => {
                    self.tl.send_request(now, peer, request);
                }
                Output::Sip(SipOutput::Response { key, response }) => {
                    let _ = self.tl.send_response(now, &key, response);
                }
                Output::Sip(SipOutput::Stateless { peer, request }) => {
                    self.tl.send_stateless(peer, request.into());
                }
                Output::Media(m) => self.media.push(m),
                Output::Event(e) => self.events.push((now - self.base, e)),
            }
        }
        if core.is_done() {
            self.outcome = core.outcome();
            self.done_at = Some(now - self.base);
            self.core = None;
        }
    }

    /// Saw this event.
    pub fn saw(&self, ev: &Event) -> bool {
        self.events.iter().any(|(_, e)| e == ev)
    }
}

/// The gateway, the caller and the trunk on one clock and one network.
pub(crate) struct World {
    pub now: Instant,
    pub base: Instant,
    pub net: Net,
    pub gw: Gw,
    pub caller: Ua,
    pub callee: Ua,
}

impl World {
    /// A world on network seed `seed` with loss `loss` and jitter `jitter`.
    pub fn new(seed: u64, loss: f64, jitter: Duration) -> Self {
        let base = Instant::now();
        Self {
            now: base,
            base,
            net: Net {
                rng: StdRng::seed_from_u64(seed),
                loss,
                latency: MS,
                jitter,
                queue: Vec::new(),
                seq: 0,
            },
            gw: Gw {
                tl: TransactionLayer::new(Timers::default()),
                core: None,
                config: CallConfig::default(),
                auto_dial: true,
                credentials: None,
                events: Vec::new(),
                media: Vec::new(),
                outcome: None,
                done_at: None,
                media_activity: None,
                commands: Vec::new(),
                base,
            },
            caller: Ua::new(CALLER, base, "caller1"),
            callee: Ua::new(TRUNK, base, "callee1"),
        }
    }

    /// A clean network (1 ms latency, no loss, no reordering).
    pub fn clean() -> Self {
        Self::new(1, 0.0, Duration::ZERO)
    }

    /// Schedule a caller act at `at` after the start.
    pub fn caller_at(&mut self, at: Duration, act: Act) {
        self.caller.acts.push((self.base + at, act));
    }

    /// Schedule a callee act at `at` after the start.
    pub fn callee_at(&mut self, at: Duration, act: Act) {
        self.callee.acts.push((self.base + at, act));
    }

    /// Schedule a command to the core at `at` after the start.
    pub fn command_at(&mut self, at: Duration, cmd: Command) {
        self.gw.commands.push((self.base + at, cmd));
    }

    /// The caller sends its INVITE now, then everything runs until `limit` after the start
    /// (or nothing is left to do).
    pub fn run(&mut self, session_expires: Option<u32>, limit: Duration) {
        self.caller.invite(self.now, session_expires);
        self.run_until(limit);
    }

    fn pump(&mut self) {
        let now = self.now;
        for _ in 0..64 {
            let mut busy = false;
            for ua in [&mut self.caller, &mut self.callee] {
                while let Some(ev) = ua.tl.poll_event() {
                    busy = true;
                    if !ua.mute {
                        ua.on_event(now, ev);
                    }
                }
            }
            while let Some(ev) = self.gw.tl.poll_event() {
                busy = true;
                self.gw.on_event(now, ev);
            }
            self.gw.drain(now);
            for (from, tl) in [
                (GW, &mut self.gw.tl),
                (CALLER, &mut self.caller.tl),
                (TRUNK, &mut self.callee.tl),
            ] {
                while let Some(t) = tl.poll_transmit() {
                    busy = true;
                    self.net.send(now, from, t.peer.addr, t.data);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("no quiescence at one instant");
    }

    fn step(&mut self) {
        let now = self.now;
        for (from, to, data) in self.net.take_due(now) {
            let Ok(msg) = parse(&data) else {
                panic!("unparseable datagram {from} -> {to}");
            };
            let peer = udp(from);
            if to == GW {
                self.gw.tl.handle_message(now, peer, msg);
            } else if to == CALLER {
                self.caller.tl.handle_message(now, peer, msg);
            } else if to == TRUNK
                && !self.callee.mute
                && self.callee.deaf_until.is_none_or(|t| now >= t)
            {
                self.callee.tl.handle_message(now, peer, msg);
            }
        }
        self.pump();
        for tl in [&mut self.gw.tl, &mut self.caller.tl, &mut self.callee.tl] {
            tl.handle_timeout(now);
        }
        for ua in [&mut self.caller, &mut self.callee] {
            let due: Vec<Act> = ua
                .acts
                .iter()
                .filter(|(t, _)| *t <= now)
                .map(|(_, a)| a.clone())
                .collect();
            ua.acts.retain(|(t, _)| *t > now);
            for a in due {
                ua.act(now, a);
            }
        }
        let cmds: Vec<Command> = self
            .gw
            .commands
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, c)| c.clone())
            .collect();
        self.gw.commands.retain(|(t, _)| *t > now);
        if let Some(core) = self.gw.core.as_mut() {
            for c in cmds {
                core.handle_command(now, c);
            }
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.note_media_activity(self.gw.media_activity);
                core.handle_timeout(now);
            }
        }
        self.pump();
    }

    fn next_at(&self) -> Option<Instant> {
        [
            self.net.next_at(),
            self.gw.tl.poll_timeout(),
            self.caller.tl.poll_timeout(),
            self.callee.tl.poll_timeout(),
            self.gw.core.as_ref().and_then(CallCore::poll_timeout),
            self.caller.acts.iter().map(|a| a.0).min(),
            self.callee.acts.iter().map(|a| a.0).min(),
            self.gw.commands.iter().map(|a| a.0).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run until `limit` after the start or until nothing is scheduled.
    pub fn run_until(&mut self, limit: Duration) {
        let end = self.base + limit;
        let mut steps = 0;
        loop {
            self.step();
            steps += 1;
            assert!(steps < 200_000, "runaway scenario");
            match self.next_at() {
                Some(t) if t <= end => self.now = t.max(self.now),
                _ => break,
            }
        }
    }

    /// The CDR cause the call ended with.
    pub fn cause(&self) -> &'static str {
        self.gw
            .outcome
            .map(|(o, _)| o.as_str())
            .unwrap_or("(still running)")
    }
}
