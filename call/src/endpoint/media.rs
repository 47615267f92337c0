//! The local media endpoint of an [`EndpointCore`]: RFC 3264 offer/answer on our one port,
//! the media-address policy, and the T.38 switch by re-INVITE (RFC 3362, T.38 Annex D):
//! our offer, the far end's answer or refusal, and the far end's own re-INVITE.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rsip::Method;
use switchboard_sip::message::{make_response, MessageExt};
use switchboard_sip::sdp::{self as sdpcore, AudioInfo, Direction, SessionDescription};

use super::{glare_wait, EndpointCore, EndpointEvent, EndpointMode, T38Failure, T38State};
use crate::build;
use crate::outcome::{HangupCause, Outcome};
use crate::timer::Timer;

/// An SDP body, if it parses.
pub(super) fn parse(body: &[u8]) -> Option<SessionDescription> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|t| SessionDescription::parse(t).ok())
}

/// Our audio answer to `offer` at `ip`:`port`.
pub(super) fn audio_answer(
    offer: &SessionDescription,
    ip: IpAddr,
    port: u16,
    session: u64,
) -> Option<Vec<u8>> {
    sdpcore::answer(offer, ip, port, session)
        .ok()
        .map(|sd| sd.to_string().into_bytes())
}

impl EndpointCore {
    /// Where the far end's SDP points a stream, judged by the media-address policy
    /// (`None`: hold).
    pub(super) fn media_target(
        &mut self,
        addr: IpAddr,
        port: u16,
    ) -> Result<Option<SocketAddr>, crate::api::MediaRefused> {
        let checked = (self.policy)(addr, port);
        if checked.is_err() {
            self.emit(EndpointEvent::MediaRefused);
        }
        checked
    }

    /// An offer's media addresses (audio and T.38) are all acceptable.
    pub(super) fn offer_acceptable(&mut self, offer: &SessionDescription) -> bool {
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

    /// Audio is negotiated (`info` names the codec in use): tell the owner.
    pub(super) fn audio_up(&mut self, now: Instant, info: AudioInfo, remote: Option<SocketAddr>) {
        if !matches!(
            info.codecs.first().map(String::as_str),
            Some("PCMU" | "PCMA")
        ) {
            return;
        }
        self.codec = info.codecs.first().cloned();
        self.remote_media = remote;
        let held = remote.is_none() || info.direction != Direction::SendRecv;
        if held != std::mem::replace(&mut self.held, held) {
            // Hold or resume: the RTP timeout counts from now.
            self.rtp_since = now;
        }
        self.emit(EndpointEvent::Audio { remote, info });
    }

    /// Our answer to an offer with a T.38 stream; T.38 is then up.
    pub(super) fn answer_image(
        &mut self,
        now: Instant,
        offer: &SessionDescription,
    ) -> Option<Vec<u8>> {
        let port = self.port?;
        let theirs = offer.image_attributes();
        let attrs = (self.config.fax.as_ref()?.answer)(&theirs);
        let v = self.next_sdp_version();
        let sd = sdpcore::image_answer(
            offer,
            self.config.media_ip,
            port,
            self.config.sdp_session,
            v,
            &attrs,
        )
        .ok()?;
        let (addr, rport) = offer.image()?;
        let remote = self.media_target(addr, rport).ok().flatten()?;
        self.t38_up(now, remote, theirs);
        Some(sd.to_string().into_bytes())
    }

    pub(super) fn t38_up(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        attributes: Vec<(String, Option<String>)>,
    ) {
        let renegotiated = self.t38 == T38State::Active;
        if !renegotiated {
            // UDPTL starts now: the RTP timeout counts from here.
            self.rtp_since = now;
        }
        self.t38 = T38State::Active;
        self.timers.clear(Timer::T38Switch);
        self.timers.clear(Timer::T38Deadline);
        self.remote_media = Some(remote);
        self.emit(EndpointEvent::T38 {
            remote,
            attributes,
            renegotiated,
        });
    }

    /// Offer T.38 by re-INVITE.
    pub(super) fn offer_t38(&mut self) {
        let (Some(port), Some(fax)) = (self.port, self.config.fax.as_ref()) else {
            return;
        };
        let attrs = fax.offer.clone();
        let v = self.next_sdp_version();
        let body = sdpcore::image_offer(
            self.config.media_ip,
            port,
            self.config.sdp_session,
            v,
            &attrs,
        )
        .to_string()
        .into_bytes();
        let Some(leg) = self.leg_mut() else { return };
        let Some(branch) = leg.request(
            Method::Invite,
            rsip::Headers::default(),
            body,
            Some("application/sdp".into()),
        ) else {
            return;
        };
        self.emit(EndpointEvent::OfferingT38);
        self.t38 = T38State::Offered(branch);
    }

    /// The answer to our T.38 re-INVITE.
    pub(super) fn on_reinvite_response(&mut self, now: Instant, resp: rsip::Response) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        self.t38 = T38State::Audio;
        if code < 300 {
            if let (Some((cseq, _)), Some(leg)) = (resp.cseq(), self.leg_mut()) {
                leg.ack_2xx(cseq);
            }
            let sd = parse(&resp.body);
            match sd
                .as_ref()
                .and_then(|s| s.image().map(|i| (i, s.image_attributes())))
            {
                Some(((addr, port), attrs)) => match self.media_target(addr, port) {
                    Ok(Some(remote)) => self.t38_up(now, remote, attrs),
                    _ => self.t38_refused(Some(code)),
                },
                None => self.t38_refused(Some(code)),
            }
            return;
        }
        match code {
            // Glare (RFC 3261 §14.1): try again after a random 2.1–4 s.
            491 => self.timers.set(Timer::T38Switch, now + glare_wait()),
            408 | 481 => {
                self.bye();
                self.finish(Outcome::Ended(HangupCause::T38DialogGone), Some(code));
            }
            _ => self.t38_refused(Some(code)),
        }
    }

    pub(super) fn t38_refused(&mut self, code: Option<u16>) {
        self.emit(EndpointEvent::T38Failed(T38Failure::Refused));
        self.bye();
        self.finish(Outcome::Ended(HangupCause::T38Refused), code);
    }

    /// The far end's re-INVITE: T.38 offered → accept it (fax) or 488 (audio); audio →
    /// answer audio.
    pub(super) fn on_reinvite(&mut self, now: Instant, req: &rsip::Request) -> rsip::Response {
        if matches!(self.t38, T38State::Offered(_)) {
            // Both sides offered at once (glare): the other side retries.
            return make_response(req, 491, None);
        }
        let Some(offer) = parse(&req.body) else {
            return make_response(req, 488, None);
        };
        if !self.offer_acceptable(&offer) {
            return make_response(req, 488, None);
        }
        let fax = self.config.mode == EndpointMode::Fax;
        let body = if offer.image().is_some() {
            if !fax {
                // Audio calls stay audio: no T.38 here.
                return make_response(req, 488, None);
            }
            self.answer_image(now, &offer)
        } else {
            let port = self.port.unwrap_or(0);
            // Checked above.
            let remote = match offer.audio() {
                Some(a) => self.media_target(a.addr, a.port).ok().flatten(),
                None => None,
            };
            self.remote_media = remote;
            let sd =
                sdpcore::answer(&offer, self.config.media_ip, port, self.config.sdp_session).ok();
            if !fax {
                if let Some(info) = sd.as_ref().and_then(|sd| sd.audio()) {
                    self.audio_up(now, info, remote);
                }
            }
            sd.map(|sd| sd.to_string().into_bytes())
        };
        let contact = self.leg().map(|l| l.contact.clone()).unwrap_or_default();
        match body {
            Some(b) => build::response_to(req, 200, None, Some(&contact), Some(b)),
            None => make_response(req, 488, None),
        }
    }
}
