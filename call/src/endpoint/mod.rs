//! [`EndpointCore`]: a call the gateway ends itself (one SIP dialog, RFC 3261 §12–§15,
//! whose media stays in the gateway): inbound fax, app and device calls as UAS, outbound
//! fax, device and ingest calls as UAC. It is one [`UasLeg`] or one [`UacLeg`], the same
//! legs the B2BUA [`crate::CallCore`] joins, plus a local media endpoint: RFC 3264
//! offer/answer on our one port, and for fax the switch to T.38 by re-INVITE (RFC 3362,
//! T.38 Annex D) — the far end's, or ours after `switch_after`, with the far end's refusal
//! ending the call as `T.38 refused`.
//!
//! # Driving it
//! Like [`crate::CallCore`]: the owner reads its clock once per event, calls
//! [`EndpointCore::handle_sip`], [`EndpointCore::handle_timeout`] or
//! [`EndpointCore::handle_command`], drains [`EndpointCore::poll_output`] and arms one
//! timer at [`EndpointCore::poll_timeout`]. Route, admission and ports stay with the
//! owner: an outbound call waits for [`EndpointCommand::Dial`] (or `Fail`); an inbound
//! call asks for its port with [`EndpointEvent::AnswerNow`] (or, ringing, waits for the
//! owner's `Answer`/`Reject`). When [`EndpointCore::is_done`], [`EndpointCore::outcome`]
//! is the CDR's cause.

pub mod api;
mod media;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::Method;
use switchboard_sip::message::{make_response, new_branch, new_tag, MessageExt, SyntaxError};
use switchboard_sip::sdp::SessionDescription;
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

use crate::api::{MediaPolicy, Phase, Teardown};
use crate::build;
use crate::leg::{Leg, SipEvent, SipOutput, UacEvent, UacLeg, UasLeg};
use crate::outcome::{CallFailure, HangupCause, Outcome};
use crate::timer::{Timer, TimerTable};
pub use api::{
    EndpointCommand, EndpointConfig, EndpointDial, EndpointEvent, EndpointMode, EndpointOutput,
    FaxConfig, T38Answerer, T38Failure,
};

/// Where the T.38 switch is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum T38State {
    /// Audio (we offer T.38 at [`Timer::T38Switch`] unless the far end does).
    Audio,
    /// Our re-INVITE offering T.38 is out (its branch).
    Offered(String),
    /// UDPTL flows.
    Active,
}

/// The one leg.
#[derive(Debug)]
enum Role {
    /// The far end called us.
    Inbound(UasLeg),
    /// We call the far end (`None` until dialled).
    Outbound(Option<UacLeg>),
}

/// The one-leg call.
pub struct EndpointCore {
    config: EndpointConfig,
    policy: MediaPolicy,
    role: Role,
    phase: Phase,
    port: Option<u16>,
    /// An acceptable offer held while ringing.
    offer: Option<SessionDescription>,
    remote_media: Option<SocketAddr>,
    codec: Option<String>,
    held: bool,
    sdp_version: u64,
    t38: T38State,
    rtp_since: Instant,
    media_activity: Option<Instant>,
    answered_at: Option<Instant>,
    timers: TimerTable,
    outcome: Option<(Outcome, Option<u16>)>,
    out: VecDeque<EndpointOutput>,
}

impl std::fmt::Debug for EndpointCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCore")
            .field("phase", &self.phase)
            .field("t38", &self.t38)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl EndpointCore {
    fn with_role(now: Instant, role: Role, config: EndpointConfig, policy: MediaPolicy) -> Self {
        let sdp_version = config.sdp_session;
        Self {
            config,
            policy,
            role,
            phase: Phase::Trying,
            port: None,
            offer: None,
            remote_media: None,
            codec: None,
            held: false,
            sdp_version,
            t38: T38State::Audio,
            rtp_since: now,
            media_activity: None,
            answered_at: None,
            timers: TimerTable::default(),
            outcome: None,
            out: VecDeque::new(),
        }
    }

    /// An inbound call for `leg`'s INVITE: refused at once when the INVITE or its offer is
    /// unusable, else ringing (`ring_first`) or [`EndpointEvent::AnswerNow`].
    pub fn inbound(now: Instant, leg: UasLeg, config: EndpointConfig, policy: MediaPolicy) -> Self {
        let mut core = Self::with_role(now, Role::Inbound(leg), config, policy);
        core.offered(now);
        core.after(now);
        core
    }

    /// An outbound call, waiting for [`EndpointCommand::Dial`].
    pub fn outbound(now: Instant, config: EndpointConfig, policy: MediaPolicy) -> Self {
        Self::with_role(now, Role::Outbound(None), config, policy)
    }

    /// A new UAS leg for `invite` on server transaction `key` from `peer`, with a fresh tag.
    pub fn callee_leg(
        peer: Peer,
        via_host: String,
        contact: String,
        key: TransactionKey,
        invite: rsip::Request,
    ) -> UasLeg {
        UasLeg::new(peer, via_host, contact, key, invite, new_tag())
    }

    // ----- owner API -----

    /// A SIP event for the call's Call-ID.
    pub fn handle_sip(&mut self, now: Instant, ev: SipEvent) {
        match ev {
            SipEvent::Request { key, request, .. } => self.on_request(now, key, request),
            SipEvent::Cancelled { invite } => self.on_cancel(&invite),
            SipEvent::Response { response } => self.on_response(now, response),
            SipEvent::Timeout { branch } => self.on_timeout(now, &branch),
        }
        self.after(now);
    }

    /// A command from the owner.
    pub fn handle_command(&mut self, now: Instant, cmd: EndpointCommand) {
        match cmd {
            EndpointCommand::Dial(d) => self.dial(now, *d),
            EndpointCommand::Fail { failure, status } => {
                if self.phase != Phase::Ending {
                    self.finish(Outcome::Failed(failure), status);
                }
            }
            EndpointCommand::Answer { port } => self.answer(now, port),
            EndpointCommand::Reject(code) => self.reject(code),
            EndpointCommand::Hangup(cause) => self.hangup(cause),
            EndpointCommand::SwitchT38 => {
                if self.phase == Phase::Answered && self.t38 == T38State::Audio {
                    self.offer_t38();
                }
            }
            EndpointCommand::Reserved(Ok(secs)) => {
                if let (Phase::Answered, Some(at)) = (self.phase, self.answered_at) {
                    self.timers.set(Timer::CreditDeadline, at + secs);
                }
            }
            EndpointCommand::Reserved(Err(cause)) => self.hangup(cause),
        }
        self.after(now);
    }

    /// The last packet accepted from the far end (read by the owner before a timeout).
    pub fn note_media_activity(&mut self, last: Option<Instant>) {
        self.media_activity = last;
    }

    /// Fire the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.timers.expired(now) {
            if self.on_timer(now, t) {
                break;
            }
        }
        self.after(now);
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<EndpointOutput> {
        if let Some(o) = self.leg_mut().and_then(Leg::poll_transmit) {
            return Some(EndpointOutput::Sip(o));
        }
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Done: ending, no BYE awaiting its answer and our INVITE over.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Ending
            && match &self.role {
                Role::Inbound(uas) => uas.leg.is_idle(),
                Role::Outbound(uac) => uac.as_ref().is_none_or(UacLeg::is_idle),
            }
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

    /// An inbound call ringing that [`EndpointCommand::Answer`] would answer.
    pub fn can_answer(&self) -> bool {
        matches!(self.phase, Phase::Trying | Phase::Ringing)
            && self.offer.is_some()
            && matches!(&self.role, Role::Inbound(u) if !u.final_sent())
    }

    /// The dialog is formed (and not yet ended by our BYE).
    pub fn has_dialog(&self) -> bool {
        self.leg().is_some_and(|l| l.dialog.is_some())
    }

    /// T.38 is up.
    pub fn t38_active(&self) -> bool {
        self.t38 == T38State::Active
    }

    /// Where the far end's media goes.
    pub fn remote_media(&self) -> Option<SocketAddr> {
        self.remote_media
    }

    /// The negotiated audio codec (`t38` once T.38 is up).
    pub fn codec(&self) -> Option<&str> {
        if self.t38_active() {
            Some("t38")
        } else {
            self.codec.as_deref()
        }
    }

    /// Our media port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The signalling peer (once known).
    pub fn peer(&self) -> Option<Peer> {
        self.leg().map(|l| l.peer)
    }

    /// The call is inbound (we are the UAS).
    pub fn is_inbound(&self) -> bool {
        matches!(self.role, Role::Inbound(_))
    }

    /// What it takes to end the leg from outside (the UAS side is A, the UAC side B).
    pub fn teardown(&self) -> Teardown {
        let mut t = Teardown::default();
        match &self.role {
            Role::Inbound(u) => {
                t.a_peer = Some(u.leg.peer);
                t.a_key = Some(u.key().clone());
                t.a_invite = (!u.final_sent()).then(|| u.invite().clone());
                t.a_tag = u.tag().to_string();
                t.a_dialog = u.leg.dialog.clone();
                t.a_final_sent = u.final_sent();
                t.call_ids = vec![u.leg.call_id.clone()];
            }
            Role::Outbound(uac) => {
                t.a_final_sent = true;
                if let Some(u) = uac {
                    t.b_peer = Some(u.leg.peer);
                    t.b_invite = (!u.invite_done()).then(|| u.invite().clone());
                    t.b_dialog = u.leg.dialog.clone().filter(|_| u.invite_done());
                    t.b_provisional = u.has_provisional();
                    t.call_ids = vec![u.leg.call_id.clone()];
                }
            }
        }
        t
    }

    // ----- internals -----

    fn leg(&self) -> Option<&Leg> {
        match &self.role {
            Role::Inbound(u) => Some(&u.leg),
            Role::Outbound(u) => u.as_ref().map(|u| &u.leg),
        }
    }

    fn leg_mut(&mut self) -> Option<&mut Leg> {
        match &mut self.role {
            Role::Inbound(u) => Some(&mut u.leg),
            Role::Outbound(u) => u.as_mut().map(|u| &mut u.leg),
        }
    }

    fn uac(&mut self) -> Option<&mut UacLeg> {
        match &mut self.role {
            Role::Outbound(u) => u.as_mut(),
            Role::Inbound(_) => None,
        }
    }

    fn emit(&mut self, ev: EndpointEvent) {
        self.out.push_back(EndpointOutput::Event(ev));
    }

    fn fax(&self) -> bool {
        self.config.mode == EndpointMode::Fax
    }

    fn finish(&mut self, outcome: Outcome, code: Option<u16>) {
        if self.outcome.is_none() {
            self.outcome = Some((outcome, code));
        }
        self.phase = Phase::Ending;
    }

    /// Answer the INVITE (inbound; no-op after a final).
    fn respond(&mut self, code: u16, sdp: Option<Vec<u8>>) {
        if let Role::Inbound(uas) = &mut self.role {
            uas.respond(code, sdp, rsip::Headers::default());
        }
    }

    fn fail_inbound(&mut self, failure: CallFailure, code: u16) {
        self.respond(code, None);
        self.finish(Outcome::Failed(failure), Some(code));
    }

    /// BYE when the dialog is up (then forgotten, so later requests get 481), CANCEL
    /// before.
    fn bye(&mut self) {
        match &mut self.role {
            Role::Inbound(u) => {
                u.hangup();
                u.leg.dialog = None;
            }
            Role::Outbound(Some(u)) => {
                u.hangup();
                u.leg.dialog = None;
            }
            Role::Outbound(None) => {}
        }
    }

    fn cancel(&mut self) {
        if let Some(u) = self.uac() {
            u.cancel();
        }
    }

    fn hangup(&mut self, cause: HangupCause) {
        match self.phase {
            Phase::Ending => {}
            Phase::Answered => {
                self.bye();
                self.finish(Outcome::Ended(cause), None);
            }
            Phase::Trying | Phase::Ringing => {
                self.cancel();
                self.respond(480, None);
                self.finish(Outcome::Failed(CallFailure::Abandoned(cause)), None);
            }
        }
    }

    // ----- inbound -----

    /// Check the INVITE and its offer; ring or ask for the answer.
    fn offered(&mut self, now: Instant) {
        let Role::Inbound(uas) = &self.role else {
            return;
        };
        let invite = uas.invite().clone();
        if build::max_forwards(&invite) == 0 {
            return self.fail_inbound(CallFailure::TooManyHops, 483);
        }
        if !build::has_sdp(&invite, &invite.body) {
            return self.fail_inbound(CallFailure::NoSdpOffer, 488);
        }
        let Some(offer) = media::parse(&invite.body) else {
            return self.fail_inbound(CallFailure::BadSdpOffer, 488);
        };
        if !self.offer_acceptable(&offer) {
            return self.fail_inbound(CallFailure::MediaAddressRefused, 488);
        }
        if let EndpointMode::Audio { ring_first } = self.config.mode {
            if offer.audio().is_none() {
                return self.fail_inbound(CallFailure::NoAudioOffered, 488);
            }
            if ring_first {
                self.respond(180, None);
                self.phase = Phase::Ringing;
                self.timers
                    .set(Timer::NoAnswer, now + self.config.timing.no_answer);
                self.offer = Some(offer);
                return;
            }
        }
        self.offer = Some(offer);
        self.emit(EndpointEvent::AnswerNow);
    }

    fn answer(&mut self, now: Instant, port: Option<u16>) {
        if !self.can_answer() {
            return;
        }
        let Some(offer) = self.offer.take() else {
            return;
        };
        let Some(port) = port else {
            return self.fail_inbound(CallFailure::NoMediaPorts, 503);
        };
        self.port = Some(port);
        let fax = self.fax();
        let answer = if fax && offer.image().is_some() {
            self.answer_image(now, &offer)
        } else {
            if let Some(a) = offer.audio() {
                // Checked in `offered`.
                self.remote_media = self.media_target(a.addr, a.port).ok().flatten();
            }
            media::audio_answer(&offer, self.config.media_ip, port, self.config.sdp_session)
        };
        let Some(answer) = answer else {
            return self.fail_inbound(CallFailure::NoCommonMedia, 488);
        };
        let negotiated = (!fax)
            .then(|| media::parse(&answer).and_then(|sd| sd.audio()))
            .flatten();
        let Role::Inbound(uas) = &mut self.role else {
            return;
        };
        if let Err(f) = uas.answer(Some(answer), rsip::Headers::default()) {
            // Answered 400 by the leg.
            return self.finish(Outcome::Failed(f), Some(400));
        }
        self.answered(now);
        self.timers
            .set(Timer::AckWait, now + self.config.timing.t1 * 64);
        if let Some(info) = negotiated {
            let remote = self.remote_media;
            self.audio_up(now, info, remote);
        }
    }

    fn reject(&mut self, code: u16) {
        if !matches!(self.phase, Phase::Trying | Phase::Ringing) || !(300..700).contains(&code) {
            return;
        }
        self.fail_inbound(CallFailure::from_status(code), code);
    }

    fn on_cancel(&mut self, invite: &TransactionKey) {
        let Role::Inbound(uas) = &mut self.role else {
            return;
        };
        if uas.key() != invite || self.phase == Phase::Answered {
            return;
        }
        uas.on_cancel();
        self.finish(Outcome::Failed(CallFailure::Cancelled), Some(487));
    }

    fn answered(&mut self, now: Instant) {
        self.phase = Phase::Answered;
        self.answered_at = Some(now);
        self.timers.clear(Timer::NoAnswer);
        self.timers
            .set(Timer::MaxDuration, now + self.config.timing.max_call);
        self.rtp_since = self.rtp_since.max(now);
        if let Some(t) = self.config.timing.rtp_timeout {
            self.timers.set(Timer::RtpCheck, now + t);
        }
        if self.t38 == T38State::Audio {
            if let Some(fax) = &self.config.fax {
                let (switch, deadline) = (fax.switch_after, fax.deadline);
                self.timers.set(Timer::T38Switch, now + switch);
                self.timers.set(Timer::T38Deadline, now + deadline);
            }
        }
        self.emit(EndpointEvent::Answered);
    }

    // ----- outbound -----

    fn dial(&mut self, now: Instant, d: EndpointDial) {
        if self.phase == Phase::Ending || !matches!(self.role, Role::Outbound(None)) {
            return;
        }
        self.port = Some(d.port);
        let offer =
            switchboard_sip::sdp::offer(self.config.media_ip, d.port, self.config.sdp_session);
        let invite = build::outbound_invite(
            build::OutboundInvite {
                uri: &d.uri,
                src: &d.src,
                from_domain: &d.from_domain,
                from_tag: &new_tag(),
                call_id: &d.call_id,
                cseq: 1,
                branch: &new_branch(),
                via_host: &d.via_host,
                transport: d.peer.transport,
                contact: &d.contact,
                max_forwards: 70,
                user_agent: &d.user_agent,
                body: offer.to_string().into_bytes(),
            },
            None,
        );
        let invite = match invite {
            Ok(i) => i,
            // rsip's error quotes the Request-URI (the number): keep only its kind.
            Err(err) => {
                let _ = SyntaxError::from(err);
                return self.finish(Outcome::Failed(CallFailure::Internal), None);
            }
        };
        self.role = Role::Outbound(Some(UacLeg::new(
            d.peer,
            d.via_host,
            d.contact,
            invite,
            d.credentials,
            self.config.timing.max_auth_tries,
        )));
        self.timers
            .set(Timer::NoAnswer, now + self.config.timing.no_answer);
    }

    fn on_uac_event(&mut self, now: Instant, ev: UacEvent, first: bool) {
        match ev {
            UacEvent::None | UacEvent::AnsweredLate => {}
            UacEvent::Provisional(resp) => {
                if self.phase == Phase::Ending {
                    return self.cancel();
                }
                if resp.status_code.code() > 100 && first {
                    self.phase = Phase::Ringing;
                    self.emit(EndpointEvent::Ringing);
                }
            }
            UacEvent::Failed { failure, status } => {
                if self.phase == Phase::Ending {
                    return;
                }
                match (failure, status) {
                    (CallFailure::TrunkTimeout, None) => {
                        self.emit(EndpointEvent::TrunkUnreachable);
                        self.finish(Outcome::Failed(failure), Some(503));
                    }
                    (CallFailure::Timeout, None) => {
                        self.finish(Outcome::Failed(failure), Some(408));
                    }
                    _ => self.finish(Outcome::Failed(failure), status),
                }
            }
            UacEvent::BadAnswer(resp) => {
                let code = resp.status_code.code();
                self.finish(Outcome::Failed(CallFailure::BadAnswer), Some(code));
            }
            UacEvent::Answered(resp) => self.on_answer(now, resp),
        }
    }

    fn on_answer(&mut self, now: Instant, resp: rsip::Response) {
        if self.phase == Phase::Ending {
            return self.bye();
        }
        let code = resp.status_code.code();
        let body = media::parse(&resp.body);
        self.answered(now);
        let Some(sd) = body else { return };
        if !self.fax() {
            match sd.audio() {
                Some(a) => {
                    // A refused address in an answer is ignored: nothing is sent there.
                    let remote = self.media_target(a.addr, a.port).ok().flatten();
                    self.audio_up(now, a, remote);
                }
                None => {
                    self.bye();
                    self.finish(Outcome::Ended(HangupCause::NoAudioInAnswer), Some(code));
                }
            }
        } else if let Some((addr, port)) = sd.image() {
            match self.media_target(addr, port) {
                Ok(Some(remote)) => self.t38_up(now, remote, sd.image_attributes()),
                _ => self.t38_refused(Some(code)),
            }
        } else if let Some(a) = sd.audio() {
            self.remote_media = self.media_target(a.addr, a.port).ok().flatten();
        }
    }

    // ----- in-dialog -----

    fn on_request(&mut self, now: Instant, key: Option<TransactionKey>, req: rsip::Request) {
        if req.method == Method::Ack {
            if let Role::Inbound(u) = &mut self.role {
                u.on_ack();
            }
            self.timers.clear(Timer::AckWait);
            return;
        }
        let Some(key) = key else { return };
        if req.method == Method::Invite && req.to_tag().is_none() {
            return self.reply(key, &req, 482);
        }
        // Before our INVITE is answered there is no dialog for the far end's requests.
        let confirmed = match &self.role {
            Role::Inbound(_) => true,
            Role::Outbound(u) => u.as_ref().is_some_and(UacLeg::is_confirmed),
        };
        let Some(leg) = self.leg_mut().filter(|_| confirmed) else {
            return self.reply(key, &req, 481);
        };
        if leg.check_request(&key, &req).is_err() {
            return;
        }
        match req.method {
            Method::Bye => {
                leg.respond_code(key, &req, 200);
                if self.phase != Phase::Ending {
                    self.finish(Outcome::Ended(HangupCause::RemoteHangup), None);
                }
            }
            Method::Invite => {
                let resp = self.on_reinvite(now, &req);
                if let Some(leg) = self.leg_mut() {
                    leg.respond(key, resp);
                }
            }
            Method::Refer | Method::Subscribe => leg.respond_code(key, &req, 501),
            _ => leg.respond_code(key, &req, 200),
        }
    }

    /// Answer a request with no leg to answer it on.
    fn reply(&mut self, key: TransactionKey, req: &rsip::Request, code: u16) {
        let response = make_response(req, code, None);
        match self.leg_mut() {
            Some(leg) => leg.respond(key, response),
            None => self
                .out
                .push_back(EndpointOutput::Sip(SipOutput::Response { key, response })),
        }
    }

    fn on_response(&mut self, now: Instant, resp: rsip::Response) {
        let branch = resp.top_via_branch();
        if let (T38State::Offered(b), Some(branch)) = (&self.t38, &branch) {
            let ours = b == branch;
            let invite = resp.cseq().is_some_and(|(_, m)| m == Method::Invite);
            if ours && invite {
                return self.on_reinvite_response(now, resp);
            }
        }
        match &mut self.role {
            Role::Inbound(u) => {
                u.on_response(&resp);
            }
            Role::Outbound(Some(u)) => {
                let first = !u.has_provisional();
                let ev = u.on_response(&resp);
                self.on_uac_event(now, ev, first);
            }
            Role::Outbound(None) => {}
        }
    }

    fn on_timeout(&mut self, now: Instant, branch: &str) {
        if self.t38 == T38State::Offered(branch.to_string()) {
            self.t38 = T38State::Audio;
            self.emit(EndpointEvent::T38Failed(T38Failure::Timeout));
            self.bye();
            return self.finish(Outcome::Ended(HangupCause::T38ReinviteTimeout), Some(408));
        }
        match &mut self.role {
            Role::Inbound(u) => {
                u.on_timeout(branch);
            }
            Role::Outbound(Some(u)) => {
                let ev = u.on_timeout(branch);
                self.on_uac_event(now, ev, false);
            }
            Role::Outbound(None) => {}
        }
    }

    /// After every input: an ending call keeps only its BYE guard.
    fn after(&mut self, now: Instant) {
        if self.phase == Phase::Ending {
            let guard = self
                .timers
                .get(Timer::ByeGuard)
                .unwrap_or(now + self.config.timing.bye_guard);
            self.timers.clear_all();
            if !self.is_done() {
                self.timers.set(Timer::ByeGuard, guard);
            }
        }
    }
}

/// The glare back-off before offering T.38 again (RFC 3261 §14.1: 2.1–4 s).
fn glare_wait() -> Duration {
    Duration::from_millis(2100 + rand::random::<u64>() % 1900)
}
