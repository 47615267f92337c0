//! Event handling of the call actor: responses from the trunk, requests from
//! either leg, CANCEL, BYE, timers and the end of the call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;
use rsip::{Header, Method};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::message::{self, make_cancel, make_response, MessageExt};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::{now_unix_ms, rfc3339, Cdr, Disposition};

use super::{build, CallMsg, CallSnapshot, CallState, LegView, Outcome, Phase, Relayed, Teardown};
use crate::endpoint::{EndpointMsg, SipEvent};
use crate::media::Side;
use crate::supervisor::SupervisorMsg;
use crate::trunk::TrunkMsg;

/// Map a final failure from the callee to what the caller gets, the CDR
/// disposition and a cause (Asterisk-like).
pub(crate) fn map_failure(code: u16) -> (u16, Disposition, &'static str) {
    match code {
        486 | 600 => (486, Disposition::Busy, "busy"),
        603 => (603, Disposition::Busy, "declined"),
        404 | 604 | 484 => (404, Disposition::Failed, "unallocated number"),
        408 | 480 => (code, Disposition::NoAnswer, "no answer"),
        487 => (487, Disposition::NoAnswer, "cancelled"),
        500 | 502 | 503 | 504 => (503, Disposition::Congestion, "congestion"),
        401 | 407 => (503, Disposition::Failed, "trunk authentication failed"),
        c if (300..700).contains(&c) => (c, Disposition::Failed, "rejected"),
        _ => (500, Disposition::Failed, "bad response"),
    }
}

impl CallState {
    fn side_of(&self, call_id: Option<String>) -> Option<Side> {
        let call_id = call_id?;
        if call_id == self.a.call_id {
            Some(Side::A)
        } else if self.b.as_ref().is_some_and(|b| b.call_id == call_id) {
            Some(Side::B)
        } else {
            None
        }
    }

    fn peer(&self, side: Side) -> Option<Peer> {
        match side {
            Side::A => Some(self.a.peer),
            Side::B => self.b.as_ref().map(|b| b.peer),
        }
    }

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => self.a.dialog.as_mut(),
            Side::B => self.b.as_mut().and_then(|b| b.dialog.as_mut()),
        }
    }

    fn set_media(&mut self, side: Side, target: Option<std::net::SocketAddr>, held: bool) {
        let was = match side {
            Side::A => {
                self.a.remote_media = target;
                std::mem::replace(&mut self.a.held, held)
            }
            Side::B => match self.b.as_mut() {
                Some(b) => {
                    b.remote_media = target;
                    std::mem::replace(&mut b.held, held)
                }
                None => held,
            },
        };
        if was != held {
            // Hold or resume: the RTP timeout counts from now.
            self.rtp_since = Instant::now();
        }
        if let Some(r) = &self.relay {
            r.set_remote(side, target);
        }
    }

    /// Rewrite an SDP body that `from` sent so that it points at our port
    /// facing `to`; learn `from`'s media address. An offer (`offer`) whose media address
    /// the policy refuses is [`Anchoring::Refused`] and changes nothing; such an answer is
    /// anchored but its address ignored (no media is sent there).
    fn anchor_from(&mut self, from: Side, body: &[u8], offer: bool) -> Anchoring {
        let to = other(from);
        let Some(port) = self.relay.as_ref().map(|r| r.port(to)) else {
            return Anchoring::Unparsed;
        };
        match build::anchor(body, self.ctx.media_ip, port) {
            Ok(a) => {
                if let Some(audio) = &a.audio {
                    match crate::media::policy(&self.ctx).check(audio.addr, audio.port) {
                        Ok(target) => self.set_media(from, target.addr(), build::on_hold(audio)),
                        Err(err) => {
                            metrics::counter!("switchboard_sdp_refused_total").increment(1);
                            tracing::info!(call = %self.id, %err, ?from, "SDP media address refused");
                            if offer {
                                return Anchoring::Refused;
                            }
                            self.set_media(from, None, false);
                        }
                    }
                    if self.codec.is_none() {
                        self.codec = audio.codecs.first().cloned();
                    }
                }
                Anchoring::Anchored(a.body)
            }
            Err(err) => {
                tracing::info!(call = %self.id, %err, "unparseable SDP; passed without anchoring");
                Anchoring::Unparsed
            }
        }
    }

    pub(super) fn on_sip(&mut self, ev: SipEvent) {
        match ev {
            SipEvent::Request { key, request, .. } => self.on_request(key, request),
            SipEvent::Cancelled { invite } => {
                if invite == self.a.key {
                    self.on_cancel();
                }
            }
            SipEvent::Response { response } => self.on_response(response),
            SipEvent::Timeout { branch } => self.on_timeout(&branch),
        }
    }

    fn on_request(&mut self, key: Option<TransactionKey>, req: rsip::Request) {
        let Some(side) = self.side_of(req.call_id()) else {
            return;
        };
        if req.method == Method::Ack {
            if side == Side::A {
                self.ack_wait_until = None; // the caller confirmed our 200
            }
            return;
        }
        let Some(key) = key else { return };
        let respond = |this: &Self, code: u16| {
            let resp = make_response(&req, code, None);
            this.send(EndpointMsg::SendResponse {
                key: key.clone(),
                response: resp,
            });
        };
        if side == Side::A && req.method == Method::Invite && req.to_tag().is_none() {
            // Another INVITE with this Call-ID outside the dialog: a merged or
            // looped request (RFC 3261 §8.2.2.2).
            return respond(self, 482);
        }
        let accepted = match self.dialog_mut(side) {
            None => {
                // BYE from the callee in an early dialog ends the attempt.
                if side == Side::B && req.method == Method::Bye {
                    respond(self, 200);
                    self.cancel_b();
                    self.fail(480, Disposition::NoAnswer, "callee left early");
                } else {
                    respond(self, 481);
                }
                return;
            }
            Some(d) => d.accept_remote_request(&req),
        };
        if !accepted {
            return respond(self, 500);
        }
        match req.method {
            Method::Bye => {
                respond(self, 200);
                if self.phase == Phase::Ending {
                    return; // our own BYE crossed theirs
                }
                if self.phase != Phase::Answered {
                    // The callee left its early dialog.
                    self.cancel_b();
                    return self.fail(480, Disposition::NoAnswer, "callee left early");
                }
                tracing::debug!(call = %self.id, by = ?side, "hangup");
                self.bye_side(other(side));
                self.finish(
                    Disposition::Answered,
                    if side == Side::A {
                        "caller hangup"
                    } else {
                        "callee hangup"
                    },
                    None,
                );
            }
            Method::Refer | Method::Subscribe => respond(self, 501),
            _ => self.relay_request(side, key, req),
        }
    }

    /// Relay an in-dialog request (re-INVITE, UPDATE, INFO, ...) to the other leg.
    fn relay_request(&mut self, from: Side, key: TransactionKey, req: rsip::Request) {
        let to = other(from);
        let busy = self
            .relayed
            .values()
            .any(|r| r.from == from && r.request.method == req.method);
        if self.phase != Phase::Answered || busy || self.peer(to).is_none() {
            let code = if matches!(req.method, Method::Invite | Method::Update) {
                491
            } else {
                500
            };
            let resp = make_response(&req, code, None);
            return self.send(EndpointMsg::SendResponse {
                key,
                response: resp,
            });
        }
        let body = if build::has_sdp(&req, &req.body) {
            match self.anchor_from(from, &req.body, true) {
                Anchoring::Anchored(b) => b,
                Anchoring::Unparsed => req.body.clone(),
                Anchoring::Refused => {
                    let resp = make_response(&req, 488, None);
                    return self.send(EndpointMsg::SendResponse {
                        key,
                        response: resp,
                    });
                }
            }
        } else {
            req.body.clone()
        };
        let ctx = Arc::clone(&self.ctx);
        let Some(peer) = self.peer(to) else { return };
        let branch = message::new_branch();
        let via = ctx.via_host(peer.transport);
        let contact = ctx.contact(peer.transport);
        let Some(dialog) = self.dialog_mut(to) else {
            return;
        };
        let mut out = dialog.make_request(req.method, &via, peer.transport, &branch, &contact);
        build::copy_pass_through(&req, &mut out.headers);
        if !body.is_empty() {
            if let Some(ct) = req.content_type() {
                out.headers.push(Header::ContentType(ct.into()));
            }
        }
        out.body = body;
        if matches!(req.method, Method::Invite | Method::Update) {
            self.refresh_session(&req);
        }
        self.send(EndpointMsg::SendRequest { peer, request: out });
        self.relayed.insert(
            branch,
            Relayed {
                from,
                key,
                request: req,
            },
        );
    }

    fn refresh_session<M: MessageExt>(&mut self, msg: &M) {
        if let Some(se) = build::session_expires(msg) {
            self.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        if let Some(iv) = self.session_interval {
            self.session_at = Some(Instant::now() + iv);
        }
    }

    fn on_response(&mut self, resp: rsip::Response) {
        let Some(side) = self.side_of(resp.call_id()) else {
            return;
        };
        let Some(branch) = resp.top_via_branch() else {
            return;
        };
        let code = resp.status_code.code();
        let Some((cseq, method)) = resp.cseq() else {
            return;
        };
        if self.relayed.contains_key(&branch) {
            return self.relay_response(side, &branch, resp);
        }
        if let Some(pos) = self.byes.iter().position(|b| *b == branch) {
            if code >= 200 {
                self.byes.remove(pos);
            }
            return;
        }
        if method == Method::Invite && (200..300).contains(&code) {
            // A retransmitted 2xx we already ACKed: ACK again.
            if let Some(ack) = self.acks.get(&(side, cseq)).cloned() {
                if let Some(peer) = self.peer(side) {
                    self.send(EndpointMsg::SendStateless {
                        peer,
                        msg: ack.into(),
                    });
                }
                return;
            }
        }
        let is_b_invite = side == Side::B
            && method == Method::Invite
            && self
                .b
                .as_ref()
                .and_then(|b| b.invite.as_ref())
                .and_then(|i| i.top_via_branch())
                .as_deref()
                == Some(branch.as_str());
        if is_b_invite {
            self.on_b_invite_response(resp, code, cseq);
        }
    }

    fn relay_response(&mut self, side: Side, branch: &str, resp: rsip::Response) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some(r) = self.relayed.remove(branch) else {
            return;
        };
        if r.request.method == Method::Invite && code < 300 {
            if let Some((cseq, _)) = resp.cseq() {
                self.ack_2xx(side, cseq);
            }
        }
        let sdp = if build::has_sdp(&resp, &resp.body) {
            Some(
                self.anchor_from(side, &resp.body, false)
                    .body()
                    .unwrap_or_else(|| resp.body.clone()),
            )
        } else {
            None
        };
        let transport = self
            .peer(r.from)
            .map_or(switchboard_sip::transport::Transport::Udp, |p| p.transport);
        let contact = self.ctx.contact(transport);
        let mut out = build::response_to(
            &r.request,
            code,
            None,
            (code < 300).then_some(contact.as_str()),
            sdp,
        );
        build::copy_pass_through(&resp, &mut out.headers);
        if code < 300 && matches!(r.request.method, Method::Invite | Method::Update) {
            self.refresh_session(&resp);
        }
        self.send(EndpointMsg::SendResponse {
            key: r.key,
            response: out,
        });
    }

    /// ACK a 2xx to an INVITE we sent on `side`, and keep it for retransmissions.
    fn ack_2xx(&mut self, side: Side, cseq: u32) {
        let ctx = Arc::clone(&self.ctx);
        let Some(peer) = self.peer(side) else { return };
        let branch = message::new_branch();
        let contact = ctx.contact(peer.transport);
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        let ack = dialog.make_ack(
            cseq,
            &ctx.via_host(peer.transport),
            peer.transport,
            &branch,
            &contact,
        );
        self.send(EndpointMsg::SendStateless {
            peer,
            msg: ack.clone().into(),
        });
        self.acks.insert((side, cseq), ack);
    }

    fn on_b_invite_response(&mut self, resp: rsip::Response, code: u16, cseq: u32) {
        if code < 200 {
            return self.on_b_provisional(resp, code);
        }
        if let Some(b) = self.b.as_mut() {
            b.provisional = true;
            b.invite_done = true;
        }
        if code < 300 {
            return self.on_b_answer(resp, cseq);
        }
        if (code == 401 || code == 407) && self.retry_with_auth(&resp) {
            return;
        }
        if self.phase == Phase::Ending {
            return; // cancelled or hung up already; the caller has its answer
        }
        let (to_a, disposition, cause) = map_failure(code);
        tracing::debug!(call = %self.id, code, "callee rejected");
        self.fail(to_a, disposition, cause);
        if let Some(o) = self.outcome.as_mut() {
            o.code = Some(code);
        }
    }

    fn on_b_provisional(&mut self, resp: rsip::Response, code: u16) {
        let Some(b) = self.b.as_mut() else { return };
        b.provisional = true;
        if self.cancel_pending && !b.cancel_sent {
            self.cancel_b();
            return;
        }
        if code == 100 || self.phase == Phase::Ending {
            return;
        }
        if resp.to_tag().is_some() && b.dialog.is_none() {
            if let Some(inv) = &b.invite {
                b.dialog = Dialog::uac(inv, &resp).ok();
            }
        }
        self.phase = Phase::Ringing;
        let sdp = if build::has_sdp(&resp, &resp.body) {
            self.anchor_from(Side::B, &resp.body, false).body()
        } else {
            None
        };
        self.respond_a(code, sdp);
    }

    fn on_b_answer(&mut self, resp: rsip::Response, cseq: u32) {
        let Some(b) = self.b.as_mut() else { return };
        let Some(invite) = b.invite.as_ref() else {
            return;
        };
        match Dialog::uac(invite, &resp) {
            Ok(d) => b.dialog = Some(d),
            Err(err) => {
                tracing::warn!(call = %self.id, %err, "unusable 2xx from callee");
                return self.fail(502, Disposition::Failed, "bad answer");
            }
        }
        self.ack_2xx(Side::B, cseq);
        if self.phase == Phase::Ending || self.a.final_sent {
            // The caller went away meanwhile: hang up the callee.
            self.bye_side(Side::B);
            return;
        }
        let sdp = if build::has_sdp(&resp, &resp.body) {
            self.anchor_from(Side::B, &resp.body, false).body()
        } else {
            None
        };
        if let Some(se) = build::session_expires(&resp) {
            self.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        match Dialog::uas(&self.a.invite, &self.a.tag) {
            Ok(d) => self.a.dialog = Some(d),
            Err(err) => {
                tracing::warn!(call = %self.id, %err, "caller's INVITE cannot form a dialog");
                self.bye_side(Side::B);
                return self.fail(400, Disposition::Failed, "bad caller dialog");
            }
        }
        self.respond_a(200, sdp);
        self.ack_wait_until = Some(Instant::now() + self.ctx.config.sip.t1 * 64);
        self.phase = Phase::Answered;
        self.answer_ms = Some(now_unix_ms());
        self.no_answer_at = None;
        if let Some(iv) = self.session_interval {
            self.session_at = Some(Instant::now() + iv);
        }
        let now = Instant::now();
        self.max_end_at = Some(now + self.ctx.config.sip.max_call);
        self.rtp_since = now;
        self.rtp_check_at = self.ctx.config.media.rtp_timeout.map(|t| now + t);
        metrics::counter!("switchboard_calls_answered_total").increment(1);
        tracing::debug!(call = %self.id, "answered");
        self.reserve();
        self.journal =
            crate::journal::on_answer(&self.ctx, &self.snapshot(), self.charging.as_ref());
        self.start_fork();
    }

    /// Fork mode: stream a copy of both sides' audio to the route's app, never playing
    /// anything back; the call does not depend on the app.
    fn start_fork(&mut self) {
        let (Some((app, parameters)), Some(relay)) = (self.fork_app.take(), self.relay.as_ref())
        else {
            return;
        };
        let (leg, tap) = crate::audio::tap::tap_leg();
        relay.tap(tap);
        let args = crate::audio::app::AppStreamArgs {
            app: switchboard_config::AppConfig {
                bidirectional: false,
                on_failure: switchboard_config::AppFailure::Continue,
                ..app
            },
            parameters,
            call_id: self.id.to_string(),
            from: self.src.clone(),
            to: self.dst.clone(),
            kind: "fork",
            tracks: vec![
                switchboard_media::streams::Track::Inbound,
                switchboard_media::streams::Track::Outbound,
            ],
        };
        let on_gone = Box::new(|_| {});
        self.fork = Some(crate::audio::app::AppStream::spawn(
            args,
            leg,
            &self.ctx.streams,
            on_gone,
        ));
    }

    fn retry_with_auth(&mut self, resp: &rsip::Response) -> bool {
        let Some(trunk) = self.trunk.clone() else {
            return false;
        };
        let (Some(user), Some(pass)) = (trunk.username.as_deref(), trunk.password.as_ref()) else {
            return false;
        };
        let Some(b) = self.b.as_mut() else {
            return false;
        };
        let via = self.ctx.via_host(b.peer.transport);
        if b.auth_tries >= 2 || self.phase == Phase::Ending {
            return false;
        }
        let Some(invite) = b.invite.as_ref().and_then(|i| {
            build::with_credentials(i, resp, user, pass.expose(), &via, b.peer.transport)
        }) else {
            return false;
        };
        b.auth_tries += 1;
        b.invite = Some(invite.clone());
        b.provisional = false;
        b.invite_done = false;
        let peer = b.peer;
        self.send(EndpointMsg::SendRequest {
            peer,
            request: invite,
        });
        true
    }

    fn on_timeout(&mut self, branch: &str) {
        if let Some(pos) = self.byes.iter().position(|b| b == branch) {
            self.byes.remove(pos);
            return;
        }
        if let Some(r) = self.relayed.remove(branch) {
            let resp = make_response(&r.request, 408, None);
            return self.send(EndpointMsg::SendResponse {
                key: r.key,
                response: resp,
            });
        }
        let Some(b) = self.b.as_mut() else { return };
        let is_invite = b
            .invite
            .as_ref()
            .and_then(|i| i.top_via_branch())
            .as_deref()
            == Some(branch);
        if !is_invite {
            return;
        }
        b.invite_done = true;
        if self.phase == Phase::Ending {
            return;
        }
        if b.provisional {
            self.fail(408, Disposition::NoAnswer, "timeout");
        } else {
            tracing::warn!(call = %self.id, "trunk did not answer the INVITE (Timer B)");
            if let Some(h) = self
                .trunk
                .as_ref()
                .and_then(|t| self.ctx.trunks.get(&t.name))
            {
                let _ = h.actor.send_message(TrunkMsg::Unreachable);
            }
            self.fail(503, Disposition::Congestion, "trunk timeout");
        }
    }

    fn on_cancel(&mut self) {
        if self.phase == Phase::Answered || self.a.final_sent {
            return;
        }
        tracing::debug!(call = %self.id, "caller cancelled");
        self.respond_a(487, None);
        self.cancel_pending = true;
        self.cancel_b();
        self.finish(Disposition::NoAnswer, "cancelled", Some(487));
    }

    /// CANCEL the B leg's INVITE if a provisional came back; otherwise it is
    /// sent when one does (RFC 3261 §9.1).
    fn cancel_b(&mut self) {
        self.cancel_pending = true;
        let Some(b) = self.b.as_mut() else { return };
        if b.invite_done || b.cancel_sent || !b.provisional {
            return;
        }
        let Some(invite) = b.invite.as_ref() else {
            return;
        };
        b.cancel_sent = true;
        let cancel = make_cancel(invite);
        let peer = b.peer;
        self.send(EndpointMsg::SendRequest {
            peer,
            request: cancel,
        });
    }

    /// BYE one leg if it has a confirmed dialog.
    fn bye_side(&mut self, side: Side) {
        let ctx = Arc::clone(&self.ctx);
        let Some(peer) = self.peer(side) else { return };
        let confirmed = match side {
            Side::A => self.a.dialog.is_some(),
            Side::B => self
                .b
                .as_ref()
                .is_some_and(|b| b.invite_done && b.dialog.is_some()),
        };
        if !confirmed {
            if side == Side::B {
                self.cancel_b();
            }
            return;
        }
        let branch = message::new_branch();
        let contact = ctx.contact(peer.transport);
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        let bye = dialog.make_request(
            Method::Bye,
            &ctx.via_host(peer.transport),
            peer.transport,
            &branch,
            &contact,
        );
        self.send(EndpointMsg::SendRequest { peer, request: bye });
        self.byes.push(branch);
    }

    fn bye_all(&mut self) {
        self.bye_side(Side::A);
        self.bye_side(Side::B);
    }

    /// Operator or policy hangup.
    pub(super) fn hangup(&mut self, cause: &'static str, code: u16) {
        if self.phase == Phase::Answered {
            self.bye_all();
            self.finish(Disposition::Answered, cause, None);
        } else if self.phase != Phase::Ending {
            self.cancel_b();
            self.fail(code, Disposition::NoAnswer, cause);
        }
    }

    pub(super) fn on_timer(&mut self, now: Instant) {
        if self.end_at.is_some_and(|t| t <= now) {
            self.byes.clear();
            if let Some(b) = self.b.as_mut() {
                b.invite_done = true;
            }
            return;
        }
        if self.no_answer_at.is_some_and(|t| t <= now)
            && matches!(self.phase, Phase::Trying | Phase::Ringing)
        {
            self.no_answer_at = None;
            self.cancel_b();
            self.fail(408, Disposition::NoAnswer, "no answer");
        }
        if self.ack_wait_until.is_some_and(|t| t <= now) && self.phase == Phase::Answered {
            tracing::info!(call = %self.id, "caller never ACKed our 200 (Timer L); hanging up");
            self.ack_wait_until = None;
            self.bye_all();
            self.finish(Disposition::Answered, "no ACK", None);
        }
        if self.credit_deadline().is_some_and(|t| t <= now) {
            tracing::info!(call = %self.id, "credit exhausted; releasing the call");
            self.bye_all();
            self.finish(Disposition::Answered, "credit exhausted", None);
        }
        if self.session_at.is_some_and(|t| t <= now) && self.phase == Phase::Answered {
            tracing::info!(call = %self.id, "session timer expired without refresh");
            self.bye_all();
            self.finish(Disposition::Answered, "session expired", None);
        }
        if self.max_end_at.is_some_and(|t| t <= now) && self.phase == Phase::Answered {
            tracing::info!(call = %self.id, "maximum call length reached; hanging up");
            self.max_end_at = None;
            self.bye_all();
            self.finish(Disposition::Answered, "max duration", None);
        }
        if self.rtp_check_at.is_some_and(|t| t <= now) && self.phase == Phase::Answered {
            self.check_rtp(now);
        }
    }

    /// `[media] rtp_timeout_secs`: hang up when neither side has sent a packet for that long
    /// (held calls are exempt), else look again when it could next expire.
    fn check_rtp(&mut self, now: Instant) {
        let Some(timeout) = self.ctx.config.media.rtp_timeout else {
            self.rtp_check_at = None;
            return;
        };
        if self.a.held || self.b.as_ref().is_some_and(|b| b.held) {
            self.rtp_check_at = Some(now + timeout);
            return;
        }
        let last = self
            .relay
            .as_ref()
            .and_then(|r| r.stats().last_activity())
            .map_or(self.rtp_since, |t| t.max(self.rtp_since));
        if now.saturating_duration_since(last) < timeout {
            self.rtp_check_at = Some(last + timeout);
            return;
        }
        tracing::info!(call = %self.id, secs = timeout.as_secs(), "no RTP from either side; hanging up");
        metrics::counter!("switchboard_rtp_timeouts_total").increment(1);
        self.rtp_check_at = None;
        self.bye_all();
        self.finish(Disposition::Answered, "rtp timeout", None);
    }

    /// Done when both legs are finished: no BYE awaiting its answer and the
    /// B leg's INVITE transaction over (final response, or Timer B).
    fn ready_to_stop(&self) -> bool {
        self.phase == Phase::Ending
            && self.byes.is_empty()
            && self.b.as_ref().is_none_or(|b| b.invite_done)
    }

    /// After every event: publish, stop when done, re-arm the one timer.
    pub(super) async fn after(&mut self, myself: &ActorRef<CallMsg>) {
        if self.phase == Phase::Ending && self.end_at.is_none() {
            self.end_at = Some(Instant::now() + super::BYE_GUARD);
        }
        self.publish();
        if self.phase == Phase::Ending && self.ready_to_stop() {
            self.stop(myself).await;
            return;
        }
        let next = [
            self.no_answer_at,
            self.ack_wait_until,
            self.session_at,
            self.end_at,
            self.credit_deadline(),
            self.max_end_at,
            self.rtp_check_at,
        ]
        .into_iter()
        .flatten()
        .min();
        self.timer.arm(myself, next, CallMsg::Timer);
    }

    fn signature(&self) -> (Phase, bool, bool, bool, usize) {
        (
            self.phase,
            self.a.dialog.is_some(),
            self.b.as_ref().is_some_and(|b| b.dialog.is_some()),
            self.a.final_sent,
            self.relayed.len(),
        )
    }

    fn publish(&mut self) {
        let sig = self.signature();
        if self.published == Some(sig) {
            return;
        }
        self.published = Some(sig);
        let _ = self
            .ctx
            .supervisor
            .send_message(SupervisorMsg::Update(Box::new(self.snapshot())));
    }

    pub(super) fn snapshot(&self) -> CallSnapshot {
        let leg =
            |side: Side, call_id: &str, peer: Peer, media: Option<std::net::SocketAddr>| LegView {
                side,
                call_id: call_id.to_string(),
                peer: peer.addr.to_string(),
                transport: peer.transport.as_str(),
                rtp_port: self.relay.as_ref().map(|r| r.port(side)),
                remote_media: media.map(|m| m.to_string()),
            };
        let mut legs = vec![leg(
            Side::A,
            &self.a.call_id,
            self.a.peer,
            self.a.remote_media,
        )];
        if let Some(b) = &self.b {
            legs.push(leg(Side::B, &b.call_id, b.peer, b.remote_media));
        }
        let mut call_ids = vec![self.a.call_id.clone()];
        call_ids.extend(self.b.as_ref().map(|b| b.call_id.clone()));
        CallSnapshot {
            id: self.id.clone(),
            state: self.phase,
            src: self.src.clone(),
            dst: self.dst.clone(),
            start: rfc3339(self.start_ms),
            answer: self.answer_ms.map(rfc3339),
            trunk_in: self.trunk_in.clone(),
            trunk_out: self.trunk.as_ref().map(|t| t.name.clone()),
            codec: self.codec.clone(),
            legs,
            media: Default::default(),
            charge: self.charging.as_ref().map(|c| c.view()),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            stats: self.relay.as_ref().map(|r| r.stats()),
            teardown: Teardown {
                a_peer: Some(self.a.peer),
                a_key: Some(self.a.key.clone()),
                a_invite: (!self.a.final_sent).then(|| self.a.invite.clone()),
                a_tag: self.a.tag.clone(),
                a_dialog: self.a.dialog.clone(),
                a_final_sent: self.a.final_sent,
                b_peer: self.b.as_ref().map(|b| b.peer),
                b_invite: self
                    .b
                    .as_ref()
                    .filter(|b| !b.invite_done)
                    .and_then(|b| b.invite.clone()),
                b_dialog: self
                    .b
                    .as_ref()
                    .filter(|b| b.invite_done)
                    .and_then(|b| b.dialog.clone()),
                b_provisional: self.b.as_ref().is_some_and(|b| b.provisional),
                call_ids,
            },
        }
    }

    async fn stop(&mut self, myself: &ActorRef<CallMsg>) {
        let charged = self.settle().await;
        let mut cdr = self.cdr();
        if let Some((account, cost)) = charged {
            cdr.account = Some(account);
            cdr.cost = Some(cost);
        }
        metrics::counter!("switchboard_calls_total", "disposition" => cdr.disposition.as_str())
            .increment(1);
        tracing::info!(call = %self.id, disposition = cdr.disposition.as_str(), cause = %cdr.hangup_cause, billsec = cdr.billsec, "call ended");
        crate::journal::before_cdr(self.journal.take()).await;
        self.ctx.cdrs.submit(cdr).await;
        self.send(EndpointMsg::Unregister {
            call_id: self.a.call_id.clone(),
        });
        if let Some(b) = &self.b {
            self.send(EndpointMsg::Unregister {
                call_id: b.call_id.clone(),
            });
        }
        if let Some(fork) = self.fork.take() {
            fork.stop("call ended");
        }
        self.relay = None; // ports back to the pool
        myself.stop(None);
    }

    fn cdr(&mut self) -> Cdr {
        let outcome = self.outcome.take().unwrap_or(Outcome {
            disposition: Disposition::Failed,
            cause: "unknown",
            code: None,
        });
        let disposition = if self.answer_ms.is_some() {
            Disposition::Answered
        } else {
            outcome.disposition
        };
        self.snapshot()
            .cdr(disposition, outcome.cause, outcome.code)
    }
}

/// What became of an SDP body from one leg.
enum Anchoring {
    /// Rewritten to point at our port.
    Anchored(Vec<u8>),
    /// Not parseable: passed as it is.
    Unparsed,
    /// An offer whose media address the policy refuses (answer 488).
    Refused,
}

impl Anchoring {
    /// The rewritten body, if any.
    fn body(self) -> Option<Vec<u8>> {
        match self {
            Anchoring::Anchored(b) => Some(b),
            Anchoring::Unparsed | Anchoring::Refused => None,
        }
    }
}

/// The other leg.
pub(crate) fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}
