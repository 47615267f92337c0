//! [`CallCore`]: the B2BUA call (RFC 3261 §6 "back-to-back user agent") as a sans-IO
//! machine: a [`UasLeg`] toward the caller (A) joined to a [`UacLeg`] toward the callee (B).
//!
//! Provisional and final responses from B are relayed to A with the SDP anchored on our
//! media ports (RFC 3264); CANCEL and BYE cross from either side (a CANCEL toward B waits
//! for a provisional, RFC 3261 §9.1); in-dialog re-INVITE, UPDATE and INFO are relayed to
//! the other leg, with 491 when an INVITE or UPDATE is already in progress on the dialog
//! (§14.2) and 482 on a merged INVITE (§8.2.2.2); RFC 4028 session timers are passed
//! through and watched; the call timers ([`Timer`]) end it on no answer, a missing ACK,
//! credit exhaustion, session expiry, the maximum length and RTP silence.
//!
//! # Driving it
//! The owner (the call actor) reads the clock once per event and calls
//! [`CallCore::handle_sip`], [`CallCore::handle_timeout`] or
//! [`CallCore::handle_command`], then drains [`CallCore::poll_output`] and arms one timer
//! at [`CallCore::poll_timeout`]. Route, admission and port allocation stay with the owner:
//! it answers with [`Command::Dial`] (the trunk and our relay ports) or
//! [`Command::Fail`]. The media-address policy is a pure function handed in at
//! construction; the relay's last packet time comes in through
//! [`CallCore::note_media_activity`] before a timeout is handled. When
//! [`CallCore::is_done`] is true, [`CallCore::outcome`] is the CDR's cause.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rsip::{Header, Method};
use switchboard_sip::message::{new_branch, new_tag, MessageExt, SyntaxError};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

pub use crate::api::{
    CallConfig, Command, Dial, Event, MediaCtl, MediaPolicy, MediaRefused, Output, Phase, Side,
    Teardown,
};
use crate::build;
use crate::leg::{Leg, SipEvent, UacEvent, UacLeg, UasLeg};
use crate::outcome::{CallFailure, HangupCause, Outcome};
use crate::timer::{rtp_next_check, Timer, TimerTable};

/// Most requests relayed at once between the legs.
const MAX_RELAYED: usize = 8;

/// A request relayed from one leg, waiting for the other leg's answer.
#[derive(Debug)]
struct Relayed {
    from: Side,
    key: TransactionKey,
    request: rsip::Request,
}

/// Per-leg media state.
#[derive(Debug, Default, Clone, Copy)]
struct LegMedia {
    remote: Option<SocketAddr>,
    held: bool,
}

/// What became of an SDP body from one leg.
enum Anchoring {
    Anchored(Vec<u8>),
    Unparsed,
    Refused,
}

/// The B2BUA call.
pub struct CallCore {
    config: CallConfig,
    media_ip: IpAddr,
    policy: MediaPolicy,
    phase: Phase,
    a: UasLeg,
    b: Option<UacLeg>,
    ports: Option<(u16, u16)>,
    media: [LegMedia; 2],
    codec: Option<String>,
    relayed: HashMap<String, Relayed>,
    session_interval: Option<Duration>,
    answered_at: Option<Instant>,
    rtp_since: Instant,
    media_activity: Option<Instant>,
    timers: TimerTable,
    outcome: Option<(Outcome, Option<u16>)>,
    out: VecDeque<Output>,
}

impl std::fmt::Debug for CallCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCore")
            .field("phase", &self.phase)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl CallCore {
    /// A call for the caller's INVITE (leg A, not answered yet). A request with
    /// Max-Forwards 0 is refused at once (483).
    pub fn new(
        now: Instant,
        a: UasLeg,
        config: CallConfig,
        media_ip: IpAddr,
        policy: MediaPolicy,
    ) -> Self {
        let mut core = Self {
            config,
            media_ip,
            policy,
            phase: Phase::Trying,
            a,
            b: None,
            ports: None,
            media: [LegMedia::default(); 2],
            codec: None,
            relayed: HashMap::new(),
            session_interval: None,
            answered_at: None,
            rtp_since: now,
            media_activity: None,
            timers: TimerTable::default(),
            outcome: None,
            out: VecDeque::new(),
        };
        if build::max_forwards(core.a.invite()) == 0 {
            core.fail(CallFailure::TooManyHops);
        }
        core.after(now);
        core
    }

    /// A new A leg for `invite` on server transaction `key` from `peer`, with a fresh tag.
    pub fn caller_leg(
        peer: Peer,
        via_host: String,
        contact: String,
        key: TransactionKey,
        invite: rsip::Request,
    ) -> UasLeg {
        UasLeg::new(peer, via_host, contact, key, invite, new_tag())
    }

    // ----- owner API -----

    /// A SIP event for one of the call's Call-IDs.
    pub fn handle_sip(&mut self, now: Instant, ev: SipEvent) {
        match ev {
            SipEvent::Request { key, request, .. } => self.on_request(now, key, request),
            SipEvent::Cancelled { invite } => {
                if &invite == self.a.key() {
                    self.on_cancel();
                }
            }
            SipEvent::Response { response } => self.on_response(now, response),
            SipEvent::Timeout { branch } => self.on_timeout(now, &branch),
        }
        self.after(now);
    }

    /// A command from the owner.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Dial(d) => self.dial(now, *d),
            Command::Fail(f) => {
                if self.phase != Phase::Ending {
                    self.b_cancel();
                    self.fail(f);
                }
            }
            Command::Hangup(cause) => self.hangup(cause),
            Command::Reserved(Ok(secs)) => {
                if let (Phase::Answered, Some(at)) = (self.phase, self.answered_at) {
                    self.timers.set(Timer::CreditDeadline, at + secs);
                }
            }
            Command::Reserved(Err(cause)) => self.hangup(cause),
        }
        self.after(now);
    }

    /// The relay's last packet from either side (read by the owner before a timeout).
    pub fn note_media_activity(&mut self, last: Option<Instant>) {
        self.media_activity = last;
    }

    /// Fire the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.timers.expired(now) {
            self.on_timer(now, t);
        }
        self.after(now);
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.a.leg.poll_transmit() {
            return Some(Output::Sip(o));
        }
        if let Some(o) = self.b.as_mut().and_then(|b| b.leg.poll_transmit()) {
            return Some(Output::Sip(o));
        }
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Done: ending, no BYE awaiting its answer and the B leg's INVITE over.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Ending
            && self.a.leg.is_idle()
            && self.b.as_ref().is_none_or(UacLeg::is_idle)
    }

    // ----- views -----

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How the call ended (and the SIP status for the CDR), once it is ending.
    pub fn outcome(&self) -> Option<(Outcome, Option<u16>)> {
        self.outcome
    }

    /// When it was answered.
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }

    /// The caller's leg.
    pub fn a(&self) -> &UasLeg {
        &self.a
    }

    /// The callee's leg, once dialled.
    pub fn b(&self) -> Option<&UacLeg> {
        self.b.as_ref()
    }

    /// Where `side`'s media goes.
    pub fn remote_media(&self, side: Side) -> Option<SocketAddr> {
        self.media[idx(side)].remote
    }

    /// `side`'s latest SDP puts it on hold.
    pub fn held(&self, side: Side) -> bool {
        self.media[idx(side)].held
    }

    /// The first codec of the first SDP seen.
    pub fn codec(&self) -> Option<&str> {
        self.codec.as_deref()
    }

    /// Requests relayed and unanswered.
    pub fn relayed_len(&self) -> usize {
        self.relayed.len()
    }

    /// The RFC 4028 session interval in force.
    pub fn session_interval(&self) -> Option<Duration> {
        self.session_interval
    }

    /// What it takes to end both legs from outside.
    pub fn teardown(&self) -> Teardown {
        let mut call_ids = vec![self.a.leg.call_id.clone()];
        call_ids.extend(self.b.as_ref().map(|b| b.leg.call_id.clone()));
        Teardown {
            a_peer: Some(self.a.leg.peer),
            a_key: Some(self.a.key().clone()),
            a_invite: (!self.a.final_sent()).then(|| self.a.invite().clone()),
            a_tag: self.a.tag().to_string(),
            a_dialog: self.a.leg.dialog.clone(),
            a_final_sent: self.a.final_sent(),
            b_peer: self.b.as_ref().map(|b| b.leg.peer),
            b_invite: self
                .b
                .as_ref()
                .filter(|b| !b.invite_done())
                .map(|b| b.invite().clone()),
            b_dialog: self
                .b
                .as_ref()
                .filter(|b| b.invite_done())
                .and_then(|b| b.leg.dialog.clone()),
            b_provisional: self.b.as_ref().is_some_and(UacLeg::has_provisional),
            call_ids,
        }
    }

    // ----- internals -----

    fn emit(&mut self, ev: Event) {
        self.out.push_back(Output::Event(ev));
    }

    fn set_phase(&mut self, phase: Phase) {
        if self.phase != phase {
            self.phase = phase;
            self.emit(Event::Phase(phase));
        }
    }

    fn leg_mut(&mut self, side: Side) -> Option<&mut Leg> {
        match side {
            Side::A => Some(&mut self.a.leg),
            Side::B => self.b.as_mut().map(|b| &mut b.leg),
        }
    }

    fn side_of(&self, call_id: Option<String>) -> Option<Side> {
        let call_id = call_id?;
        if call_id == self.a.leg.call_id {
            Some(Side::A)
        } else if self.b.as_ref().is_some_and(|b| b.leg.call_id == call_id) {
            Some(Side::B)
        } else {
            None
        }
    }

    fn finish(&mut self, outcome: Outcome, code: Option<u16>) {
        if self.outcome.is_none() {
            self.outcome = Some((outcome, code));
        }
        self.set_phase(Phase::Ending);
    }

    fn fail(&mut self, failure: CallFailure) {
        let status = failure.status();
        self.a.respond(status, None, rsip::Headers::default());
        self.finish(Outcome::Failed(failure), Some(status));
    }

    fn b_cancel(&mut self) {
        if let Some(b) = self.b.as_mut() {
            b.cancel();
        }
    }

    fn bye_all(&mut self) {
        self.a.hangup();
        if let Some(b) = self.b.as_mut() {
            b.hangup();
        }
    }

    fn hangup(&mut self, cause: HangupCause) {
        match self.phase {
            Phase::Answered => {
                self.bye_all();
                self.finish(Outcome::Ended(cause), None);
            }
            Phase::Ending => {}
            Phase::Trying | Phase::Ringing => {
                self.b_cancel();
                self.fail(CallFailure::Abandoned(cause));
            }
        }
    }

    fn set_media(&mut self, now: Instant, side: Side, addr: Option<SocketAddr>, held: bool) {
        let m = &mut self.media[idx(side)];
        m.remote = addr;
        if std::mem::replace(&mut m.held, held) != held {
            // Hold or resume: the RTP timeout counts from now.
            self.rtp_since = now;
        }
        self.out
            .push_back(Output::Media(MediaCtl::Remote { side, addr }));
    }

    /// Rewrite an SDP body `from` sent to point at our port facing the other leg, and learn
    /// `from`'s media address. An offer whose address the policy refuses changes nothing;
    /// such an answer is anchored but its address ignored.
    fn anchor_from(&mut self, now: Instant, from: Side, body: &[u8], offer: bool) -> Anchoring {
        let Some((port_a, port_b)) = self.ports else {
            return Anchoring::Unparsed;
        };
        let port = match from.other() {
            Side::A => port_a,
            Side::B => port_b,
        };
        let Ok(a) = build::anchor(body, self.media_ip, port) else {
            return Anchoring::Unparsed;
        };
        if let Some(audio) = &a.audio {
            match (self.policy)(audio.addr, audio.port) {
                Ok(target) => self.set_media(now, from, target, build::on_hold(audio)),
                Err(MediaRefused) => {
                    self.emit(Event::MediaRefused(from));
                    if offer {
                        return Anchoring::Refused;
                    }
                    self.set_media(now, from, None, false);
                }
            }
            if self.codec.is_none() {
                self.codec = audio.codecs.first().cloned();
            }
        }
        Anchoring::Anchored(a.body)
    }

    fn dial(&mut self, now: Instant, d: Dial) {
        if self.phase == Phase::Ending || self.b.is_some() {
            return;
        }
        let offer = self.a.invite().clone();
        if !build::has_sdp(&offer, &offer.body) {
            // Late offer is not supported: refuse clearly.
            return self.fail(CallFailure::NoSdpOffer);
        }
        let Ok(anchored) = build::anchor(&offer.body, self.media_ip, d.port_b) else {
            return self.fail(CallFailure::BadSdpOffer);
        };
        if let Some(audio) = &anchored.audio {
            match (self.policy)(audio.addr, audio.port) {
                Ok(target) => {
                    self.set_media(now, Side::A, target, build::on_hold(audio));
                    self.codec = audio.codecs.first().cloned();
                }
                Err(MediaRefused) => {
                    self.emit(Event::MediaRefused(Side::A));
                    return self.fail(CallFailure::MediaAddressRefused);
                }
            }
        }
        self.ports = Some((d.port_a, d.port_b));
        if let Some(se) = build::session_expires(&offer) {
            self.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        let from_tag = new_tag();
        let branch = new_branch();
        let src = build::calling(&offer);
        let invite = build::outbound_invite(
            build::OutboundInvite {
                uri: &d.uri,
                src: &src,
                from_domain: &d.from_domain,
                from_tag: &from_tag,
                call_id: &d.call_id,
                cseq: 1,
                branch: &branch,
                via_host: &d.via_host,
                transport: d.peer.transport,
                contact: &d.contact,
                max_forwards: build::max_forwards(&offer).saturating_sub(1).min(70),
                user_agent: &d.user_agent,
                body: anchored.body,
            },
            Some(&offer),
        );
        let invite = match invite {
            Ok(i) => i,
            // rsip's error quotes its input (the dialled number): keep only its kind.
            Err(err) => {
                let _ = SyntaxError::from(err);
                return self.fail(CallFailure::Internal);
            }
        };
        self.b = Some(UacLeg::new(
            d.peer,
            d.via_host,
            d.contact,
            invite,
            d.credentials,
            self.config.max_auth_tries,
        ));
        self.timers
            .set(Timer::NoAnswer, now + self.config.no_answer);
    }

    fn on_request(&mut self, now: Instant, key: Option<TransactionKey>, req: rsip::Request) {
        let Some(side) = self.side_of(req.call_id()) else {
            return;
        };
        if req.method == Method::Ack {
            if side == Side::A {
                self.a.on_ack();
                self.timers.clear(Timer::AckWait);
            }
            return;
        }
        let Some(key) = key else { return };
        if side == Side::A && req.method == Method::Invite && req.to_tag().is_none() {
            // Another INVITE with this Call-ID outside the dialog: merged or looped
            // (RFC 3261 §8.2.2.2).
            return self.a.leg.respond_code(key, &req, 482);
        }
        if side == Side::B && req.method == Method::Bye && self.phase != Phase::Answered {
            // The callee left its early dialog (or sent BYE before any dialog).
            if let Some(b) = self.b.as_mut() {
                b.leg.respond_code(key, &req, 200);
            }
            if self.phase != Phase::Ending {
                self.b_cancel();
                self.fail(CallFailure::CalleeLeftEarly);
            }
            return;
        }
        let Some(leg) = self.leg_mut(side) else {
            return;
        };
        if leg.check_request(&key, &req).is_err() {
            return;
        }
        match req.method {
            Method::Bye => {
                leg.respond_code(key, &req, 200);
                if self.phase != Phase::Answered {
                    return; // our own BYE crossed theirs, or the caller's early BYE
                }
                let cause = match side {
                    Side::A => HangupCause::CallerHangup,
                    Side::B => HangupCause::CalleeHangup,
                };
                match side.other() {
                    Side::A => {
                        self.a.hangup();
                    }
                    Side::B => {
                        if let Some(b) = self.b.as_mut() {
                            b.hangup();
                        }
                    }
                }
                self.finish(Outcome::Ended(cause), None);
            }
            Method::Refer | Method::Subscribe => leg.respond_code(key, &req, 501),
            _ => self.relay_request(now, side, key, req),
        }
    }

    /// Relay an in-dialog request (re-INVITE, UPDATE, INFO, ...) to the other leg.
    fn relay_request(&mut self, now: Instant, from: Side, key: TransactionKey, req: rsip::Request) {
        let to = from.other();
        let offer_like = matches!(req.method, Method::Invite | Method::Update);
        // RFC 3261 §14.2: an INVITE (or UPDATE, RFC 3311 §5.2) while one is in progress on
        // the dialog, in either direction, gets 491.
        let overlap = self
            .relayed
            .values()
            .any(|r| r.request.method == req.method && (offer_like || r.from == from));
        let other_up = match to {
            Side::A => true,
            Side::B => self.b.as_ref().is_some_and(|b| b.leg.dialog.is_some()),
        };
        if self.phase != Phase::Answered
            || overlap
            || !other_up
            || self.relayed.len() >= MAX_RELAYED
        {
            let code = if offer_like { 491 } else { 500 };
            if let Some(leg) = self.leg_mut(from) {
                leg.respond_code(key, &req, code);
            }
            return;
        }
        let body = if build::has_sdp(&req, &req.body) {
            match self.anchor_from(now, from, &req.body, true) {
                Anchoring::Anchored(b) => b,
                Anchoring::Unparsed => req.body.clone(),
                Anchoring::Refused => {
                    if let Some(leg) = self.leg_mut(from) {
                        leg.respond_code(key, &req, 488);
                    }
                    return;
                }
            }
        } else {
            req.body.clone()
        };
        let mut extra = rsip::Headers::default();
        build::copy_pass_through(&req, &mut extra);
        if offer_like {
            self.refresh_session(now, &req);
        }
        let ct = req.content_type();
        let Some(leg) = self.leg_mut(to) else { return };
        let Some(branch) = leg.request(req.method, extra, body, ct) else {
            return;
        };
        self.relayed.insert(
            branch,
            Relayed {
                from,
                key,
                request: req,
            },
        );
    }

    fn refresh_session<M: MessageExt>(&mut self, now: Instant, msg: &M) {
        if let Some(se) = build::session_expires(msg) {
            self.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        if let (Some(iv), Phase::Answered) = (self.session_interval, self.phase) {
            self.timers.set(Timer::SessionExpiry, now + iv);
        }
    }

    fn on_response(&mut self, now: Instant, resp: rsip::Response) {
        let Some(side) = self.side_of(resp.call_id()) else {
            return;
        };
        let Some(branch) = resp.top_via_branch() else {
            return;
        };
        if self.relayed.contains_key(&branch) {
            return self.relay_response(now, side, &branch, resp);
        }
        match side {
            Side::A => {
                self.a.on_response(&resp);
            }
            Side::B => {
                let Some(b) = self.b.as_mut() else { return };
                let ev = b.on_response(&resp);
                self.on_b_event(now, ev);
            }
        }
    }

    fn relay_response(&mut self, now: Instant, side: Side, branch: &str, resp: rsip::Response) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some(r) = self.relayed.remove(branch) else {
            return;
        };
        if r.request.method == Method::Invite && code < 300 {
            if let (Some((cseq, _)), Some(leg)) = (resp.cseq(), self.leg_mut(side)) {
                leg.ack_2xx(cseq);
            }
        }
        let sdp = if build::has_sdp(&resp, &resp.body) {
            match self.anchor_from(now, side, &resp.body, false) {
                Anchoring::Anchored(b) => Some(b),
                Anchoring::Unparsed | Anchoring::Refused => Some(resp.body.clone()),
            }
        } else {
            None
        };
        if code < 300 && matches!(r.request.method, Method::Invite | Method::Update) {
            self.refresh_session(now, &resp);
        }
        let Some(leg) = self.leg_mut(r.from) else {
            return;
        };
        let contact = (code < 300).then(|| leg.contact.clone());
        let mut out = build::response_to(&r.request, code, None, contact.as_deref(), sdp);
        build::copy_pass_through(&resp, &mut out.headers);
        leg.respond(r.key, out);
    }

    fn on_b_event(&mut self, now: Instant, ev: UacEvent) {
        match ev {
            UacEvent::None | UacEvent::AnsweredLate => {}
            UacEvent::Provisional(resp) => {
                if self.phase == Phase::Ending {
                    return;
                }
                self.set_phase(Phase::Ringing);
                let sdp = if build::has_sdp(&resp, &resp.body) {
                    match self.anchor_from(now, Side::B, &resp.body, false) {
                        Anchoring::Anchored(b) => Some(b),
                        Anchoring::Unparsed | Anchoring::Refused => None,
                    }
                } else {
                    None
                };
                self.a
                    .respond(resp.status_code.code(), sdp, rsip::Headers::default());
            }
            UacEvent::Answered(resp) => self.on_b_answer(now, resp),
            UacEvent::BadAnswer(_) => {
                if self.phase != Phase::Ending {
                    self.fail(CallFailure::BadAnswer);
                }
            }
            UacEvent::Failed { failure, status } => {
                if self.phase == Phase::Ending {
                    return; // cancelled or hung up already; the caller has its answer
                }
                if failure == CallFailure::TrunkTimeout {
                    self.emit(Event::TrunkUnreachable);
                }
                self.fail(failure);
                if let (Some(s), Some(o)) = (status, self.outcome.as_mut()) {
                    o.1 = Some(s);
                }
            }
        }
    }

    fn on_b_answer(&mut self, now: Instant, resp: rsip::Response) {
        if self.phase == Phase::Ending || self.a.final_sent() {
            // The caller went away meanwhile: hang up the callee.
            if let Some(b) = self.b.as_mut() {
                b.hangup();
            }
            return;
        }
        let sdp = if build::has_sdp(&resp, &resp.body) {
            match self.anchor_from(now, Side::B, &resp.body, false) {
                Anchoring::Anchored(b) => Some(b),
                Anchoring::Unparsed | Anchoring::Refused => None,
            }
        } else {
            None
        };
        if let Some(se) = build::session_expires(&resp) {
            self.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        let mut extra = rsip::Headers::default();
        if let Some(se) = self.session_interval {
            extra.push(Header::Other(
                "Session-Expires".into(),
                format!("{};refresher=uac", se.as_secs()),
            ));
            extra.push(Header::Require("timer".into()));
        }
        if let Err(f) = self.a.answer(sdp, extra) {
            if let Some(b) = self.b.as_mut() {
                b.hangup();
            }
            return self.fail(f);
        }
        self.timers.set(Timer::AckWait, now + self.config.t1 * 64);
        self.set_phase(Phase::Answered);
        self.answered_at = Some(now);
        self.timers.clear(Timer::NoAnswer);
        if let Some(iv) = self.session_interval {
            self.timers.set(Timer::SessionExpiry, now + iv);
        }
        self.timers
            .set(Timer::MaxDuration, now + self.config.max_call);
        self.rtp_since = now;
        if let Some(t) = self.config.rtp_timeout {
            self.timers.set(Timer::RtpCheck, now + t);
        }
        self.emit(Event::Answered);
    }

    fn on_timeout(&mut self, now: Instant, branch: &str) {
        if let Some(r) = self.relayed.remove(branch) {
            if let Some(leg) = self.leg_mut(r.from) {
                leg.respond_code(r.key, &r.request, 408);
            }
            return;
        }
        if self.a.on_timeout(branch) {
            return;
        }
        let Some(b) = self.b.as_mut() else { return };
        let ev = b.on_timeout(branch);
        self.on_b_event(now, ev);
    }

    fn on_cancel(&mut self) {
        if self.phase == Phase::Answered || self.a.final_sent() {
            return;
        }
        self.a.on_cancel();
        self.b_cancel();
        self.finish(Outcome::Failed(CallFailure::Cancelled), Some(487));
    }

    fn on_timer(&mut self, now: Instant, t: Timer) {
        let answered = self.phase == Phase::Answered;
        match t {
            Timer::ByeGuard => {
                self.a.leg.abandon();
                if let Some(b) = self.b.as_mut() {
                    b.abandon();
                }
            }
            Timer::NoAnswer => {
                if matches!(self.phase, Phase::Trying | Phase::Ringing) {
                    self.b_cancel();
                    self.fail(CallFailure::NoAnswer { status: 408 });
                }
            }
            Timer::AckWait if answered => {
                self.bye_all();
                self.finish(Outcome::Ended(HangupCause::NoAck), None);
            }
            Timer::CreditDeadline if answered => {
                self.bye_all();
                self.finish(Outcome::Ended(HangupCause::CreditExhausted), None);
            }
            Timer::SessionExpiry if answered => {
                self.bye_all();
                self.finish(Outcome::Ended(HangupCause::SessionExpired), None);
            }
            Timer::MaxDuration if answered => {
                self.bye_all();
                self.finish(Outcome::Ended(HangupCause::MaxDuration), None);
            }
            Timer::RtpCheck if answered => self.check_rtp(now),
            _ => {}
        }
    }

    /// `[media] rtp_timeout_secs`: hang up when neither side has sent a packet for that
    /// long (held calls are exempt), else look again when it could next expire.
    fn check_rtp(&mut self, now: Instant) {
        let Some(timeout) = self.config.rtp_timeout else {
            return;
        };
        let held = self.media.iter().any(|m| m.held);
        let next = rtp_next_check(now, timeout, held, self.rtp_since, self.media_activity);
        if let Some(at) = next {
            return self.timers.set(Timer::RtpCheck, at);
        }
        self.emit(Event::RtpTimeout);
        self.bye_all();
        self.finish(Outcome::Ended(HangupCause::RtpTimeout), None);
    }

    /// After every input: an ending call keeps only its BYE guard.
    fn after(&mut self, now: Instant) {
        if self.phase == Phase::Ending {
            let guard = self
                .timers
                .get(Timer::ByeGuard)
                .unwrap_or(now + self.config.bye_guard);
            self.timers.clear_all();
            if !self.is_done() {
                self.timers.set(Timer::ByeGuard, guard);
            }
        }
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}
