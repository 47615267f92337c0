//! Event handling of a `UaCall`: answering or dialing, the T.38 switch by
//! re-INVITE, in-dialog requests, BYE, timers and the end of the call.

use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;
use rsip::{Header, Method};
use switchboard_config::{RouteTarget, T38Policy};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::message::{self, make_cancel, make_response, MessageExt};
use switchboard_sip::sdp::{self as sdpcore, SessionDescription};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::{now_unix_ms, rfc3339, Disposition};

use super::{
    sdp, Role, T38Media, T38State, UaEvent, UaMode, UaOutcome, UaState, Uac, T38_DEADLINE,
};
use crate::audio::AudioMedia;
use crate::call::build;
use crate::call::flow::map_failure;
use crate::call::{CallMsg, CallSnapshot, LegView, Phase, Teardown};
use crate::context::mask_number;
use crate::endpoint::{EndpointMsg, SipEvent};
use crate::media::Side;
use crate::supervisor_msg::SupervisorMsg;
use crate::trunk::TrunkMsg;
use switchboard_media::g711::Law;
use switchboard_media::target::{Target, TargetError};
use switchboard_sip::sdp::AudioInfo;

/// A FAXERROR-like code for a failed SIP attempt.
fn error_for(code: u16) -> &'static str {
    switchboard_call::CallFailure::from_status(code).fax_code()
}

impl UaState {
    fn send(&self, msg: EndpointMsg) {
        let _ = self.ctx.endpoint.send_message(msg);
    }

    fn emit(&self, ev: UaEvent) {
        self.listener.emit(ev);
    }

    fn fax_config(&self) -> (u8, u32) {
        let f = &self.ctx.config.fax;
        (f.t38_version, f.max_rate)
    }

    /// Where the far end's SDP points a stream, judged by the media-address policy
    /// (`None`: hold).
    fn media_target(
        &self,
        addr: std::net::IpAddr,
        port: u16,
    ) -> Result<Option<std::net::SocketAddr>, TargetError> {
        let checked = crate::media::policy(&self.ctx)
            .check(addr, port)
            .map(Target::addr);
        if let Err(err) = &checked {
            metrics::counter!("switchboard_sdp_refused_total").increment(1);
            tracing::info!(call = %self.id, %err, "SDP media address refused");
        }
        checked
    }

    /// An offer's media addresses (audio and T.38) are all acceptable.
    fn offer_acceptable(&self, offer: &SessionDescription) -> bool {
        let audio = offer.audio().map(|a| (a.addr, a.port));
        [audio, offer.image()]
            .into_iter()
            .flatten()
            .all(|(addr, port)| self.media_target(addr, port).is_ok())
    }

    fn next_sdp_version(&mut self) -> u64 {
        self.sdp_version += 1;
        self.sdp_version
    }

    pub(super) fn finish(
        &mut self,
        cause: &'static str,
        code: Option<u16>,
        error: Option<&'static str>,
    ) {
        if self.outcome.is_none() {
            self.outcome = Some(UaOutcome {
                answered: self.answer_ms.is_some(),
                code,
                cause,
                error,
            });
        }
        self.phase = Phase::Ending;
    }

    // ----- inbound -----

    fn respond_uas(&mut self, code: u16, sdp: Option<Vec<u8>>) {
        let contact = self.ctx.contact(self.peer.transport);
        let Role::Uas(uas) = &mut self.role else {
            return;
        };
        if uas.final_sent {
            return;
        }
        uas.final_sent = code >= 200;
        let contact = (code < 300).then_some(contact.as_str());
        let resp = build::response_to(&uas.invite, code, Some(&uas.tag), contact, sdp);
        let key = uas.key.clone();
        self.send(EndpointMsg::SendResponse {
            key,
            response: resp,
        });
    }

    fn fail_uas(&mut self, code: u16, cause: &'static str) {
        self.respond_uas(code, None);
        self.finish(cause, Some(code), None);
    }

    /// An inbound call: fax answers at once (T.38 directly if offered, else
    /// audio and the T.38 switch later); audio answers at once or rings until
    /// [`CallMsg::Answer`](crate::call::CallMsg::Answer).
    pub(super) fn answer_inbound(&mut self) {
        let Role::Uas(uas) = &self.role else { return };
        let invite = uas.invite.clone();
        if build::max_forwards(&invite) == 0 {
            return self.fail_uas(483, "too many hops");
        }
        if !build::has_sdp(&invite, &invite.body) {
            return self.fail_uas(488, "no SDP offer");
        }
        let Some(offer) = std::str::from_utf8(&invite.body)
            .ok()
            .and_then(|t| SessionDescription::parse(t).ok())
        else {
            return self.fail_uas(488, "bad SDP offer");
        };
        if !self.offer_acceptable(&offer) {
            return self.fail_uas(488, "media address refused");
        }
        if let UaMode::Audio { ring_first } = self.mode {
            if offer.audio().is_none() {
                return self.fail_uas(488, "no audio offered");
            }
            if ring_first {
                self.respond_uas(180, None);
                self.phase = Phase::Ringing;
                let ring = u64::from(self.ctx.config.devices.ring_timeout_secs);
                self.no_answer_at = Some(Instant::now() + std::time::Duration::from_secs(ring));
                if let Role::Uas(uas) = &mut self.role {
                    uas.offer = Some(offer);
                }
                return;
            }
        }
        self.complete_answer(offer);
    }

    /// Answer a call that is ringing (audio mode, `ring_first`).
    pub(super) fn answer_now(&mut self) {
        if !matches!(self.phase, Phase::Trying | Phase::Ringing) {
            return;
        }
        let offer = match &mut self.role {
            Role::Uas(uas) if !uas.final_sent => uas.offer.take(),
            _ => None,
        };
        if let Some(offer) = offer {
            self.complete_answer(offer);
        }
    }

    /// Refuse a call that is ringing.
    pub(super) fn reject(&mut self, code: u16) {
        if !matches!(self.phase, Phase::Trying | Phase::Ringing) || !(300..700).contains(&code) {
            return;
        }
        let (_, _, cause) = map_failure(code);
        self.fail_uas(code, cause);
    }

    fn complete_answer(&mut self, offer: SessionDescription) {
        let Role::Uas(uas) = &self.role else { return };
        let invite = uas.invite.clone();
        let tag = uas.tag.clone();
        let Some(mut ports) = self.ctx.ports.allocate() else {
            return self.fail_uas(503, "no media ports");
        };
        let port = ports.port();
        self.socket = ports.take_rtp().map(Arc::new);
        self.ports = Some(ports);
        let fax = self.mode == UaMode::Fax;
        let answer = if fax && offer.image().is_some() {
            self.answer_image(&offer)
        } else {
            if let Some(a) = offer.audio() {
                // Checked in `answer_inbound`.
                self.remote_media = self.media_target(a.addr, a.port).ok().flatten();
            }
            sdpcore::answer(&offer, self.ctx.media_ip, port, self.sdp_session)
                .ok()
                .map(|sd| sd.to_string().into_bytes())
        };
        let Some(answer) = answer else {
            return self.fail_uas(488, "no common media");
        };
        let negotiated = (!fax)
            .then(|| {
                std::str::from_utf8(&answer)
                    .ok()
                    .and_then(|t| SessionDescription::parse(t).ok())
                    .and_then(|sd| sd.audio())
            })
            .flatten();
        match Dialog::uas(&invite, &tag) {
            Ok(d) => self.dialog = Some(d),
            Err(err) => {
                tracing::info!(call = %self.id, %err, "INVITE cannot form a dialog");
                return self.fail_uas(400, "bad dialog");
            }
        }
        self.respond_uas(200, Some(answer));
        self.answered();
        self.ack_wait_until = Some(Instant::now() + self.ctx.config.sip.t1 * 64);
        if let Some(info) = negotiated {
            self.audio_up(&info, self.remote_media);
        }
    }

    /// Audio is negotiated (`info` names the codec in use): tell the listener.
    fn audio_up(&mut self, info: &AudioInfo, remote: Option<std::net::SocketAddr>) {
        let law = match info.codecs.first().map(String::as_str) {
            Some("PCMU") => Law::Mu,
            Some("PCMA") => Law::A,
            _ => return,
        };
        self.codec = info.codecs.first().cloned();
        self.remote_media = remote;
        let held = remote.is_none() || info.direction != switchboard_sip::sdp::Direction::SendRecv;
        if held != std::mem::replace(&mut self.held, held) {
            // Hold or resume: the RTP timeout counts from now.
            self.rtp_since = Instant::now();
        }
        let (Some(socket), Some(ports)) = (self.socket.clone(), self.ports.as_ref()) else {
            return;
        };
        let peer_ip = Some(self.peer.addr.ip());
        self.emit(UaEvent::Audio(AudioMedia {
            remote,
            peer_ip,
            activity: Arc::clone(&self.activity),
            local_port: ports.port(),
            law,
            event_payload_type: info.telephone_event,
            socket,
        }));
    }

    /// Our answer to an offer with a T.38 stream; T.38 is then up.
    fn answer_image(&mut self, offer: &SessionDescription) -> Option<Vec<u8>> {
        let port = self.ports.as_ref()?.port();
        let (version, rate) = self.fax_config();
        let theirs = offer.image_attributes();
        let attrs = sdp::answer(&theirs, version, rate);
        let v = self.next_sdp_version();
        let sd = sdpcore::image_answer(offer, self.ctx.media_ip, port, self.sdp_session, v, &attrs)
            .ok()?;
        let (addr, rport) = offer.image()?;
        let remote = self.media_target(addr, rport).ok().flatten()?;
        self.t38_up(remote, theirs);
        Some(sd.to_string().into_bytes())
    }

    fn answered(&mut self) {
        self.phase = Phase::Answered;
        self.answer_ms = Some(now_unix_ms());
        self.no_answer_at = None;
        let now = Instant::now();
        self.max_end_at = Some(now + self.ctx.config.sip.max_call);
        self.rtp_since = self.rtp_since.max(now);
        self.rtp_check_at = self.ctx.config.media.rtp_timeout.map(|t| now + t);
        if self.mode == UaMode::Fax && self.t38 == T38State::Audio {
            self.t38_switch_at = Some(
                now + std::time::Duration::from_secs(u64::from(
                    self.ctx.config.fax.t38_switch_timeout_secs,
                )),
            );
            self.t38_deadline = Some(now + T38_DEADLINE);
        }
        self.reserve();
        self.journal =
            crate::call::charge::on_answer(&self.ctx, &self.snapshot(), self.charging.as_ref());
        self.emit(UaEvent::Answered);
    }

    fn t38_up(&mut self, remote: std::net::SocketAddr, attributes: Vec<(String, Option<String>)>) {
        let was_active = self.t38 == T38State::Active;
        if !was_active {
            // UDPTL starts now: the RTP timeout counts from here.
            self.rtp_since = Instant::now();
        }
        self.t38 = T38State::Active;
        self.t38_switch_at = None;
        self.t38_deadline = None;
        self.remote_media = Some(remote);
        let (Some(socket), Some(ports)) = (self.socket.clone(), self.ports.as_ref()) else {
            return;
        };
        if was_active {
            tracing::debug!(call = %self.id, %remote, "T.38 re-negotiated");
        } else {
            tracing::info!(call = %self.id, %remote, "T.38 up");
            metrics::counter!("switchboard_fax_t38_negotiated_total").increment(1);
        }
        let peer_ip = Some(self.peer.addr.ip());
        self.emit(UaEvent::T38(T38Media {
            remote,
            peer_ip,
            activity: Arc::clone(&self.activity),
            local_port: ports.port(),
            attributes,
            socket,
        }));
    }

    // ----- outbound -----

    /// Route the number and send the INVITE (audio offer) to the trunk.
    pub(super) fn dial(&mut self) {
        let ctx = Arc::clone(&self.ctx);
        let Some((route, number)) = ctx.config.dial(&self.dst) else {
            tracing::info!(call = %self.id, dst = %mask_number(&self.dst), "local call: no route");
            return self.finish("no route", None, Some("NO_ROUTE"));
        };
        let RouteTarget::Trunk(name) = &route.to else {
            return self.finish("no route", None, Some("NO_ROUTE"));
        };
        let (Some(trunk), Some(handle)) = (ctx.config.trunk(name), ctx.trunks.get(name)) else {
            return self.finish("unknown trunk", None, Some("NO_ROUTE"));
        };
        if self.mode == UaMode::Fax && trunk.t38 == T38Policy::Never {
            return self.finish("T.38 disabled on trunk", None, Some("T38_DISABLED"));
        }
        if handle.status.borrow().is_down() {
            return self.finish("trunk down", Some(503), Some("CONGESTION"));
        }
        // Rated like any call: admission first (issue 11); `on_charge` dials again.
        if !self.admitted(route, trunk) {
            return;
        }
        let Some(mut ports) = ctx.ports.allocate() else {
            return self.finish("no media ports", None, Some("CONGESTION"));
        };
        let port = ports.port();
        self.socket = ports.take_rtp().map(Arc::new);
        self.ports = Some(ports);
        self.peer = Peer {
            addr: trunk.address,
            transport: crate::context::sip_transport(trunk.transport),
        };
        let offer = sdpcore::offer(ctx.media_ip, port, self.sdp_session);
        let uri = format!("sip:{}@{}", number, trunk.address);
        let from_domain = trunk
            .from_domain
            .clone()
            .unwrap_or_else(|| ctx.sip_addr.ip().to_string());
        let contact = ctx.contact(self.peer.transport);
        let via = ctx.via_host(self.peer.transport);
        let invite = build::outbound_invite(
            build::OutboundInvite {
                uri: &uri,
                src: &self.src,
                from_domain: &from_domain,
                from_tag: &message::new_tag(),
                call_id: &self.call_id,
                cseq: 1,
                branch: &message::new_branch(),
                via_host: &via,
                transport: self.peer.transport,
                contact: &contact,
                max_forwards: 70,
                user_agent: &ctx.config.sip.user_agent,
                body: offer.to_string().into_bytes(),
            },
            None,
        );
        let invite = match invite {
            Ok(i) => i,
            Err(err) => {
                // rsip's text would quote the Request-URI (the number): log the kind only.
                let err = message::SyntaxError::from(err);
                tracing::warn!(call = %self.id, %err, "cannot build the INVITE");
                return self.finish("internal", None, Some("REJECTED"));
            }
        };
        tracing::debug!(call = %self.id, dst = %mask_number(&self.dst), trunk = %trunk.name, "local call: INVITE");
        self.send(EndpointMsg::SendRequest {
            peer: self.peer,
            request: invite.clone(),
        });
        self.no_answer_at = Some(Instant::now() + ctx.config.sip.no_answer_timeout);
        self.role = Role::Uac(Uac {
            invite,
            trunk: trunk.clone(),
            auth_tries: 0,
            provisional: false,
            invite_done: false,
            cancel_sent: false,
        });
    }

    fn uac(&mut self) -> Option<&mut Uac> {
        match &mut self.role {
            Role::Uac(u) => Some(u),
            _ => None,
        }
    }

    fn invite_branch(&self) -> Option<String> {
        match &self.role {
            Role::Uac(u) => u.invite.top_via_branch(),
            _ => None,
        }
    }

    fn on_invite_response(&mut self, resp: rsip::Response, code: u16, cseq: u32) {
        if code < 200 {
            let first = self.uac().is_some_and(|u| !u.provisional);
            if let Some(u) = self.uac() {
                u.provisional = true;
            }
            if self.phase == Phase::Ending {
                return self.cancel_invite();
            }
            if code > 100 && first {
                self.phase = Phase::Ringing;
                self.emit(UaEvent::Ringing);
            }
            return;
        }
        if let Some(u) = self.uac() {
            u.provisional = true;
            u.invite_done = true;
        }
        if code >= 300 {
            if (code == 401 || code == 407) && self.retry_with_auth(&resp) {
                return;
            }
            if self.phase == Phase::Ending {
                return;
            }
            let (_, _, cause) = map_failure(code);
            tracing::info!(call = %self.id, code, "local call rejected");
            return self.finish(cause, Some(code), Some(error_for(code)));
        }
        let Some(dialog) = self.uac().and_then(|u| Dialog::uac(&u.invite, &resp).ok()) else {
            tracing::warn!(call = %self.id, "unusable 2xx to the fax INVITE");
            return self.finish("bad answer", Some(code), Some("REJECTED"));
        };
        self.dialog = Some(dialog);
        self.ack_2xx(cseq);
        if self.phase == Phase::Ending {
            return self.bye();
        }
        let body = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|t| SessionDescription::parse(t).ok());
        self.answered();
        if let Some(sd) = body {
            if self.mode != UaMode::Fax {
                match sd.audio() {
                    Some(a) => {
                        // A refused address in an answer is ignored: nothing is sent there.
                        let remote = self.media_target(a.addr, a.port).ok().flatten();
                        self.audio_up(&a, remote)
                    }
                    None => {
                        self.bye();
                        self.finish("no audio in answer", Some(code), Some("REJECTED"));
                    }
                }
            } else if let Some((addr, port)) = sd.image() {
                match self.media_target(addr, port) {
                    Ok(Some(remote)) => self.t38_up(remote, sd.image_attributes()),
                    _ => self.t38_refused(Some(code)),
                }
            } else if let Some(a) = sd.audio() {
                self.remote_media = self.media_target(a.addr, a.port).ok().flatten();
            }
        }
    }

    fn retry_with_auth(&mut self, resp: &rsip::Response) -> bool {
        let via = self.ctx.via_host(self.peer.transport);
        let transport = self.peer.transport;
        let peer = self.peer;
        let Some(u) = self.uac() else { return false };
        let (Some(user), Some(pass)) = (u.trunk.username.clone(), u.trunk.password.clone()) else {
            return false;
        };
        if u.auth_tries >= 2 {
            return false;
        }
        let Some(invite) =
            build::with_credentials(&u.invite, resp, &user, pass.expose(), &via, transport)
        else {
            return false;
        };
        u.auth_tries += 1;
        u.invite = invite.clone();
        u.provisional = false;
        u.invite_done = false;
        self.send(EndpointMsg::SendRequest {
            peer,
            request: invite,
        });
        true
    }

    fn cancel_invite(&mut self) {
        let peer = self.peer;
        let Some(u) = self.uac() else { return };
        if u.invite_done || u.cancel_sent || !u.provisional {
            return;
        }
        u.cancel_sent = true;
        let cancel = make_cancel(&u.invite);
        self.send(EndpointMsg::SendRequest {
            peer,
            request: cancel,
        });
    }

    fn ack_2xx(&mut self, cseq: u32) {
        let ctx = Arc::clone(&self.ctx);
        let peer = self.peer;
        let Some(d) = self.dialog.as_ref() else {
            return;
        };
        let ack = d.make_ack(
            cseq,
            &ctx.via_host(peer.transport),
            peer.transport,
            &message::new_branch(),
            &ctx.contact(peer.transport),
        );
        self.send(EndpointMsg::SendStateless {
            peer,
            msg: ack.clone().into(),
        });
        self.acks.insert(cseq, ack);
    }

    // ----- the T.38 switch -----

    /// Offer T.38 by re-INVITE.
    fn offer_t38(&mut self) {
        let ctx = Arc::clone(&self.ctx);
        let peer = self.peer;
        let Some(port) = self.ports.as_ref().map(|p| p.port()) else {
            return;
        };
        let (version, rate) = self.fax_config();
        let v = self.next_sdp_version();
        let body = sdpcore::image_offer(
            ctx.media_ip,
            port,
            self.sdp_session,
            v,
            &sdp::offer(version, rate),
        )
        .to_string()
        .into_bytes();
        let branch = message::new_branch();
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        let mut req = d.make_request(
            Method::Invite,
            &ctx.via_host(peer.transport),
            peer.transport,
            &branch,
            &ctx.contact(peer.transport),
        );
        req.headers
            .push(Header::ContentType("application/sdp".into()));
        req.body = body;
        tracing::debug!(call = %self.id, "offering T.38 by re-INVITE");
        self.send(EndpointMsg::SendRequest { peer, request: req });
        self.t38 = T38State::Offered(branch);
    }

    fn on_reinvite_response(&mut self, resp: rsip::Response, code: u16, cseq: u32) {
        if code < 200 {
            return;
        }
        self.t38 = T38State::Audio;
        if code < 300 {
            self.ack_2xx(cseq);
            let sd = std::str::from_utf8(&resp.body)
                .ok()
                .and_then(|t| SessionDescription::parse(t).ok());
            match sd
                .as_ref()
                .and_then(|s| s.image().map(|i| (i, s.image_attributes())))
            {
                Some(((addr, port), attrs)) => match self.media_target(addr, port) {
                    Ok(Some(remote)) => self.t38_up(remote, attrs),
                    _ => self.t38_refused(Some(code)),
                },
                None => self.t38_refused(Some(code)),
            }
            return;
        }
        match code {
            491 => {
                // Glare (RFC 3261 §14.1): try again after a random 2.1–4 s.
                let wait = std::time::Duration::from_millis(2100 + rand::random::<u64>() % 1900);
                self.t38_switch_at = Some(Instant::now() + wait);
            }
            408 | 481 => {
                self.bye();
                self.finish("dialog gone", Some(code), Some("T38_REFUSED"));
            }
            _ => self.t38_refused(Some(code)),
        }
    }

    fn t38_refused(&mut self, code: Option<u16>) {
        tracing::info!(call = %self.id, ?code, "far end refused T.38");
        metrics::counter!("switchboard_fax_t38_failures_total", "reason" => "refused").increment(1);
        self.bye();
        self.finish("T.38 refused", code, Some("T38_REFUSED"));
    }

    // ----- requests -----

    pub(super) fn on_sip(&mut self, ev: SipEvent) {
        match ev {
            SipEvent::Request { key, request, .. } => self.on_request(key, request),
            SipEvent::Cancelled { invite } => {
                let ours = matches!(&self.role, Role::Uas(u) if u.key == invite);
                if ours && self.phase != Phase::Answered {
                    self.respond_uas(487, None);
                    self.finish("cancelled", Some(487), None);
                }
            }
            SipEvent::Response { response } => self.on_response(response),
            SipEvent::Timeout { branch } => self.on_timeout(&branch),
        }
    }

    fn on_request(&mut self, key: Option<TransactionKey>, req: rsip::Request) {
        if req.method == Method::Ack {
            self.ack_wait_until = None;
            return;
        }
        let Some(key) = key else { return };
        let respond = |this: &Self, resp: rsip::Response| {
            this.send(EndpointMsg::SendResponse {
                key: key.clone(),
                response: resp,
            });
        };
        if req.method == Method::Invite && req.to_tag().is_none() {
            return respond(self, make_response(&req, 482, None));
        }
        let accepted = match self.dialog.as_mut() {
            None => return respond(self, make_response(&req, 481, None)),
            Some(d) => d.accept_remote_request(&req),
        };
        if !accepted {
            return respond(self, make_response(&req, 500, None));
        }
        match req.method {
            Method::Bye => {
                respond(self, make_response(&req, 200, None));
                if self.phase != Phase::Ending {
                    self.finish("remote hangup", None, None);
                }
            }
            Method::Invite => {
                let resp = self.on_reinvite(&req);
                respond(self, resp);
            }
            Method::Refer | Method::Subscribe => respond(self, make_response(&req, 501, None)),
            _ => respond(self, make_response(&req, 200, None)),
        }
    }

    /// The far end's re-INVITE: T.38 offered → accept it; audio → answer audio.
    fn on_reinvite(&mut self, req: &rsip::Request) -> rsip::Response {
        if matches!(self.t38, T38State::Offered(_)) {
            // Both sides offered at once (glare): the other side retries.
            return make_response(req, 491, None);
        }
        let offer = std::str::from_utf8(&req.body)
            .ok()
            .and_then(|t| SessionDescription::parse(t).ok());
        let contact = self.ctx.contact(self.peer.transport);
        let Some(offer) = offer else {
            return make_response(req, 488, None);
        };
        if !self.offer_acceptable(&offer) {
            return make_response(req, 488, None);
        }
        let fax = self.mode == UaMode::Fax;
        let body = if offer.image().is_some() {
            if !fax {
                // Audio calls stay audio: no T.38 here.
                return make_response(req, 488, None);
            }
            self.answer_image(&offer)
        } else {
            let port = self.ports.as_ref().map(|p| p.port()).unwrap_or(0);
            // Checked above.
            let remote = offer
                .audio()
                .and_then(|a| self.media_target(a.addr, a.port).ok().flatten());
            self.remote_media = remote;
            let sd = sdpcore::answer(&offer, self.ctx.media_ip, port, self.sdp_session).ok();
            if !fax {
                if let Some(info) = sd.as_ref().and_then(|sd| sd.audio()) {
                    self.audio_up(&info, remote);
                }
            }
            sd.map(|sd| sd.to_string().into_bytes())
        };
        match body {
            Some(b) => build::response_to(req, 200, None, Some(&contact), Some(b)),
            None => make_response(req, 488, None),
        }
    }

    fn on_response(&mut self, resp: rsip::Response) {
        let (Some(branch), Some((cseq, method))) = (resp.top_via_branch(), resp.cseq()) else {
            return;
        };
        let code = resp.status_code.code();
        if let Some(pos) = self.byes.iter().position(|b| *b == branch) {
            if code >= 200 {
                self.byes.remove(pos);
            }
            return;
        }
        if method != Method::Invite {
            return;
        }
        if (200..300).contains(&code) {
            if let Some(ack) = self.acks.get(&cseq).cloned() {
                // A retransmitted 2xx: ACK again.
                return self.send(EndpointMsg::SendStateless {
                    peer: self.peer,
                    msg: ack.into(),
                });
            }
        }
        if self.invite_branch().as_deref() == Some(branch.as_str()) {
            return self.on_invite_response(resp, code, cseq);
        }
        if self.t38 == T38State::Offered(branch) {
            self.on_reinvite_response(resp, code, cseq);
        }
    }

    fn on_timeout(&mut self, branch: &str) {
        if let Some(pos) = self.byes.iter().position(|b| b == branch) {
            self.byes.remove(pos);
            return;
        }
        if self.t38 == T38State::Offered(branch.to_string()) {
            self.t38 = T38State::Audio;
            metrics::counter!("switchboard_fax_t38_failures_total", "reason" => "timeout")
                .increment(1);
            self.bye();
            return self.finish("T.38 re-INVITE timed out", Some(408), Some("T38_REFUSED"));
        }
        if self.invite_branch().as_deref() != Some(branch) {
            return;
        }
        let provisional = self.uac().is_some_and(|u| {
            u.invite_done = true;
            u.provisional
        });
        if self.phase == Phase::Ending {
            return;
        }
        if provisional {
            self.finish("timeout", Some(408), Some("NO_ANSWER"));
        } else {
            if let Some(h) = self
                .uac()
                .map(|u| u.trunk.name.clone())
                .and_then(|n| self.ctx.trunks.get(&n))
            {
                let _ = h.actor.send_message(TrunkMsg::Unreachable);
            }
            self.finish("trunk timeout", Some(503), Some("CONGESTION"));
        }
    }

    // ----- ending -----

    fn bye(&mut self) {
        let ctx = Arc::clone(&self.ctx);
        let peer = self.peer;
        let confirmed = match &self.role {
            Role::Uac(u) => u.invite_done && self.dialog.is_some(),
            _ => self.dialog.is_some(),
        };
        if !confirmed {
            return self.cancel_invite();
        }
        let branch = message::new_branch();
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        let bye = d.make_request(
            Method::Bye,
            &ctx.via_host(peer.transport),
            peer.transport,
            &branch,
            &ctx.contact(peer.transport),
        );
        self.dialog = None;
        self.send(EndpointMsg::SendRequest { peer, request: bye });
        self.byes.push(branch);
    }

    /// Hang up: BYE when answered, CANCEL or 480 before.
    pub fn hangup(&mut self, cause: &'static str, error: Option<&'static str>) {
        match self.phase {
            Phase::Ending => {}
            Phase::Answered => {
                self.bye();
                self.finish(cause, None, error);
            }
            _ => {
                self.cancel_invite();
                self.respond_uas(480, None);
                self.finish(cause, None, error.or(Some("NO_ANSWER")));
            }
        }
    }

    pub(super) fn on_timer(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.end_at) {
            self.byes.clear();
            if let Some(u) = self.uac() {
                u.invite_done = true;
            }
            return;
        }
        if due(self.no_answer_at) && matches!(self.phase, Phase::Trying | Phase::Ringing) {
            self.no_answer_at = None;
            self.cancel_invite();
            self.respond_uas(480, None);
            self.finish("no answer", Some(408), Some("NO_ANSWER"));
        }
        if due(self.ack_wait_until) && self.phase == Phase::Answered {
            self.ack_wait_until = None;
            self.bye();
            self.finish("no ACK", None, None);
        }
        if due(self.t38_switch_at) && self.phase == Phase::Answered {
            self.t38_switch_at = None;
            if self.t38 == T38State::Audio {
                self.offer_t38();
            }
        }
        if due(self.t38_deadline) && self.phase == Phase::Answered && self.t38 != T38State::Active {
            self.t38_deadline = None;
            metrics::counter!("switchboard_fax_t38_failures_total", "reason" => "timeout")
                .increment(1);
            self.bye();
            self.finish("no T.38", None, Some("T38_REFUSED"));
        }
        if due(self.max_end_at) && self.phase == Phase::Answered {
            self.bye();
            self.finish("max duration", None, Some("TIMEOUT"));
        }
        if due(self.credit_deadline()) {
            tracing::info!(call = %self.id, "credit exhausted; releasing the call");
            self.bye();
            self.finish("credit exhausted", None, None);
        }
        if due(self.rtp_check_at) && self.phase == Phase::Answered {
            self.check_rtp(now);
        }
    }

    /// `[media] rtp_timeout_secs`: hang up when the far end has sent nothing for that long
    /// (held calls, and fax calls before T.38, whose audio nobody reads, are exempt).
    fn check_rtp(&mut self, now: Instant) {
        let Some(timeout) = self.ctx.config.media.rtp_timeout else {
            self.rtp_check_at = None;
            return;
        };
        let fax_audio = self.mode == UaMode::Fax && self.t38 != T38State::Active;
        if self.held || fax_audio {
            self.rtp_check_at = Some(now + timeout);
            return;
        }
        let last = self
            .activity
            .last()
            .map_or(self.rtp_since, |t| t.max(self.rtp_since));
        if now.saturating_duration_since(last) < timeout {
            self.rtp_check_at = Some(last + timeout);
            return;
        }
        tracing::info!(call = %self.id, secs = timeout.as_secs(), "no media from the far end; hanging up");
        metrics::counter!("switchboard_rtp_timeouts_total").increment(1);
        self.rtp_check_at = None;
        self.bye();
        self.finish("rtp timeout", None, Some("TIMEOUT"));
    }

    fn ready_to_stop(&self) -> bool {
        let invite_done = match &self.role {
            Role::Uac(u) => u.invite_done,
            _ => true,
        };
        self.phase == Phase::Ending && self.byes.is_empty() && invite_done
    }

    /// After every event: publish, stop when done, re-arm the timer.
    pub(super) async fn after(&mut self, myself: &ActorRef<CallMsg>) {
        if self.phase == Phase::Ending && self.end_at.is_none() {
            self.end_at = Some(Instant::now() + std::time::Duration::from_secs(32));
        }
        self.publish();
        if self.ready_to_stop() {
            self.stop(myself).await;
            return;
        }
        let next = [
            self.no_answer_at,
            self.ack_wait_until,
            self.t38_switch_at,
            self.t38_deadline,
            self.max_end_at,
            self.rtp_check_at,
            self.end_at,
            self.credit_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        self.timer.arm(myself, next, CallMsg::Timer);
    }

    fn side(&self) -> Side {
        match self.role {
            Role::Uas(_) => Side::A,
            _ => Side::B,
        }
    }

    fn publish(&mut self) {
        let sig = (
            self.phase,
            self.dialog.is_some(),
            self.t38 == T38State::Active,
        );
        if self.published == Some(sig) {
            return;
        }
        self.published = Some(sig);
        let _ = self
            .ctx
            .supervisor
            .send_message(SupervisorMsg::Update(Box::new(self.snapshot())));
    }

    fn snapshot(&self) -> CallSnapshot {
        let side = self.side();
        let (uas, uac) = match &self.role {
            Role::Uas(u) => (Some(u), None),
            Role::Uac(u) => (None, Some(u)),
            Role::Pending => (None, None),
        };
        let codec = if self.t38 == T38State::Active {
            Some("t38".to_string())
        } else {
            self.codec.clone()
        };
        CallSnapshot {
            id: self.id.clone(),
            state: self.phase,
            src: self.src.clone(),
            dst: self.dst.clone(),
            start: rfc3339(self.start_ms),
            answer: self.answer_ms.map(rfc3339),
            trunk_in: None,
            trunk_out: uac.map(|u| u.trunk.name.clone()),
            codec,
            legs: vec![LegView {
                side,
                call_id: self.call_id.clone(),
                peer: self.peer.addr.to_string(),
                transport: self.peer.transport.as_str(),
                rtp_port: self.ports.as_ref().map(|p| p.port()),
                remote_media: self.remote_media.map(|m| m.to_string()),
            }],
            media: Default::default(),
            charge: self.charging.as_ref().map(|c| c.view()),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            stats: None,
            teardown: Teardown {
                a_peer: uas.map(|_| self.peer),
                a_key: uas.map(|u| u.key.clone()),
                a_invite: uas.filter(|u| !u.final_sent).map(|u| u.invite.clone()),
                a_tag: uas.map(|u| u.tag.clone()).unwrap_or_default(),
                a_dialog: uas.and(self.dialog.clone()),
                a_final_sent: uas.is_none_or(|u| u.final_sent),
                b_peer: uac.map(|_| self.peer),
                b_invite: uac.filter(|u| !u.invite_done).map(|u| u.invite.clone()),
                b_dialog: uac.filter(|u| u.invite_done).and(self.dialog.clone()),
                b_provisional: uac.is_some_and(|u| u.provisional),
                call_ids: vec![self.call_id.clone()],
            },
        }
    }

    async fn stop(&mut self, myself: &ActorRef<CallMsg>) {
        let outcome = self.outcome.clone().unwrap_or(UaOutcome {
            answered: self.answer_ms.is_some(),
            code: None,
            cause: "unknown",
            error: None,
        });
        let disposition = match (self.answer_ms.is_some(), outcome.error) {
            (true, _) => Disposition::Answered,
            (false, Some("BUSY")) => Disposition::Busy,
            (false, Some("NO_ANSWER")) => Disposition::NoAnswer,
            (false, Some("CONGESTION")) => Disposition::Congestion,
            _ => Disposition::Failed,
        };
        let mut cdr = self
            .snapshot()
            .cdr(disposition, outcome.cause, outcome.code);
        if let Some((account, cost)) = self.settle().await {
            cdr.account = Some(account);
            cdr.cost = Some(cost);
        }
        metrics::counter!("switchboard_calls_total", "disposition" => cdr.disposition.as_str())
            .increment(1);
        tracing::info!(call = %self.id, cause = outcome.cause, error = ?outcome.error, "local call ended");
        crate::journal::before_cdr(self.journal.take()).await;
        self.ctx.cdrs.submit(cdr).await;
        self.send(EndpointMsg::Unregister {
            call_id: self.call_id.clone(),
        });
        self.emit(UaEvent::Ended(outcome));
        self.socket = None;
        self.ports = None;
        myself.stop(None);
    }
}
