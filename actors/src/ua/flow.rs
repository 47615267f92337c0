//! The `UaCall` actor's side of the one-leg core ([`switchboard_call::EndpointCore`]):
//! routing and dialling an outbound call (the supervisor's route decision, then the fax
//! T.38 policy), giving an inbound call its port, carrying the core's outputs to the
//! endpoint and the listener, publishing, and the end of the call (settlement, journal,
//! CDR).

use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;
use switchboard_call::{
    CallFailure, Credentials, EndpointCommand, EndpointDial, EndpointEvent, EndpointOutput,
    FaxCode, Outcome, T38Failure,
};
use switchboard_config::T38Policy;
use switchboard_sip::transport::Peer;
use switchboard_storage::{rfc3339, Disposition};

use super::{T38Media, UaEvent, UaMode, UaOutcome, UaState};
use crate::audio::AudioMedia;
use crate::call::flow::phase;
use crate::call::{CallMsg, CallSnapshot, LegView, Routing};
use crate::context::mask_number;
use crate::endpoint::EndpointMsg;
use crate::media::Side;
use crate::supervisor_msg::SupervisorMsg;
use crate::trunk::TrunkMsg;
use switchboard_media::g711::Law;

impl UaState {
    fn send(&self, msg: EndpointMsg) {
        let _ = self.ctx.endpoint.send_message(msg);
    }

    fn emit(&self, ev: UaEvent) {
        self.listener.emit(ev);
    }

    /// Give the core a command.
    pub(super) fn command(&mut self, now: Instant, cmd: EndpointCommand) {
        self.core.handle_command(now, cmd);
    }

    /// The call cannot be placed.
    pub(super) fn fail(&mut self, now: Instant, failure: CallFailure, status: Option<u16>) {
        self.command(now, EndpointCommand::Fail { failure, status });
    }

    /// Answer a ringing inbound call (`ring_first`) on a fresh port.
    pub(super) fn answer(&mut self, now: Instant) {
        if self.core.can_answer() {
            let port = self.allocate();
            self.command(now, EndpointCommand::Answer { port });
        }
    }

    /// Lease a media port pair; its RTP socket becomes the call's.
    fn allocate(&mut self) -> Option<u16> {
        let mut ports = self.ctx.ports.allocate()?;
        let port = ports.port();
        self.socket = ports.take_rtp().map(Arc::new);
        self.ports = Some(ports);
        Some(port)
    }

    // ----- outbound -----

    /// Route the number (the supervisor's decision), apply the fax T.38 policy, admit the
    /// call, then dial.
    pub(super) fn dial(&mut self, now: Instant) {
        let ctx = Arc::clone(&self.ctx);
        let (route, number) = ctx.config.dial(&self.dst).unzip();
        let routing = crate::routing::trunk_routing(&ctx, route.cloned(), number);
        let (route, trunk, number) = match routing {
            Routing::Refused(f) => {
                tracing::info!(call = %self.id, dst = %mask_number(&self.dst), cause = %f, "local call: not routed");
                let status = (f == CallFailure::TrunkDown).then_some(503);
                return self.fail(now, f, status);
            }
            Routing::Trunk {
                route,
                trunk,
                number,
            } => (route, trunk, number),
        };
        if self.mode == UaMode::Fax && trunk.t38 == T38Policy::Never {
            return self.fail(now, CallFailure::T38Disabled, None);
        }
        // Rated like any call: admission first (issue 11); `on_charge` dials again.
        if !self.admitted(now, &route, &trunk) {
            return;
        }
        let Some(port) = self.allocate() else {
            return self.fail(now, CallFailure::NoMediaPorts, None);
        };
        let peer = Peer {
            addr: trunk.address,
            transport: crate::context::sip_transport(trunk.transport),
        };
        let credentials = match (&trunk.username, &trunk.password) {
            (Some(user), Some(pass)) => Some(Credentials {
                user: user.clone(),
                password: pass.expose().to_string(),
            }),
            _ => None,
        };
        tracing::debug!(call = %self.id, dst = %mask_number(&self.dst), trunk = %trunk.name, "local call: INVITE");
        self.trunk = Some(trunk.name.clone());
        let dial = EndpointDial {
            peer,
            via_host: ctx.via_host(peer.transport),
            contact: ctx.contact(peer.transport),
            uri: format!("sip:{}@{}", number, trunk.address),
            src: self.src.clone(),
            from_domain: trunk
                .from_domain
                .clone()
                .unwrap_or_else(|| ctx.sip_addr.ip().to_string()),
            call_id: self.call_id.clone(),
            user_agent: ctx.config.sip.user_agent.clone(),
            credentials,
            port,
        };
        self.command(now, EndpointCommand::Dial(Box::new(dial)));
    }

    // ----- the core's outputs -----

    /// Carry out what the core asks for.
    pub(super) fn drain(&mut self, now: Instant) {
        while let Some(o) = self.core.poll_output() {
            match o {
                EndpointOutput::Sip(out) => self.send(out.into()),
                EndpointOutput::Event(ev) => self.on_event(now, ev),
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: EndpointEvent) {
        match ev {
            EndpointEvent::AnswerNow => {
                let port = self.allocate();
                self.command(now, EndpointCommand::Answer { port });
            }
            EndpointEvent::Ringing => self.emit(UaEvent::Ringing),
            EndpointEvent::Answered => {
                self.answer_ms = Some(self.ctx.clock.unix_ms());
                self.reserve(now);
                self.journal = crate::call::charge::on_answer(
                    &self.ctx,
                    &self.snapshot(),
                    self.charging.as_ref(),
                );
                self.emit(UaEvent::Answered);
            }
            EndpointEvent::Audio { remote, info } => {
                let law = match info.codecs.first().map(String::as_str) {
                    Some("PCMU") => Law::Mu,
                    Some("PCMA") => Law::A,
                    _ => return,
                };
                let (Some(socket), Some(ports)) = (self.socket.clone(), self.ports.as_ref()) else {
                    return;
                };
                self.emit(UaEvent::Audio(AudioMedia {
                    remote,
                    peer_ip: self.core.peer().map(|p| p.addr.ip()),
                    activity: Arc::clone(&self.activity),
                    local_port: ports.port(),
                    law,
                    event_payload_type: info.telephone_event,
                    socket,
                }));
            }
            EndpointEvent::T38 {
                remote,
                attributes,
                renegotiated,
            } => {
                let (Some(socket), Some(ports)) = (self.socket.clone(), self.ports.as_ref()) else {
                    return;
                };
                if renegotiated {
                    tracing::debug!(call = %self.id, %remote, "T.38 re-negotiated");
                } else {
                    tracing::info!(call = %self.id, %remote, "T.38 up");
                    metrics::counter!("switchboard_fax_t38_negotiated_total").increment(1);
                }
                self.emit(UaEvent::T38(T38Media {
                    remote,
                    peer_ip: self.core.peer().map(|p| p.addr.ip()),
                    activity: Arc::clone(&self.activity),
                    local_port: ports.port(),
                    attributes,
                    socket,
                }));
            }
            EndpointEvent::OfferingT38 => {
                tracing::debug!(call = %self.id, "offering T.38 by re-INVITE");
            }
            EndpointEvent::T38Failed(T38Failure::Refused) => {
                tracing::info!(call = %self.id, "far end refused T.38");
                metrics::counter!("switchboard_fax_t38_failures_total", "reason" => "refused")
                    .increment(1);
            }
            EndpointEvent::T38Failed(T38Failure::Timeout) => {
                metrics::counter!("switchboard_fax_t38_failures_total", "reason" => "timeout")
                    .increment(1);
            }
            // Counted and logged by the policy itself.
            EndpointEvent::MediaRefused => {}
            EndpointEvent::TrunkUnreachable => {
                if let Some(h) = self.trunk.as_deref().and_then(|n| self.ctx.trunks.get(n)) {
                    let _ = h.actor.send_message(TrunkMsg::Unreachable);
                }
            }
            EndpointEvent::RtpTimeout => {
                let secs = self
                    .ctx
                    .config
                    .media
                    .rtp_timeout
                    .unwrap_or_default()
                    .as_secs();
                tracing::info!(call = %self.id, secs, "no media from the far end; hanging up");
                metrics::counter!("switchboard_rtp_timeouts_total").increment(1);
            }
            EndpointEvent::CreditExhausted => {
                tracing::info!(call = %self.id, "credit exhausted; releasing the call");
            }
        }
    }

    // ----- publishing and the end -----

    /// After every event: publish, stop when done, re-arm the timer.
    pub(super) async fn after(&mut self, myself: &ActorRef<CallMsg>) {
        self.publish();
        if self.core.is_done() {
            self.stop(myself).await;
            return;
        }
        self.timer.arm_from(
            myself,
            self.ctx.clock.now(),
            self.core.poll_timeout(),
            CallMsg::Timer,
        );
    }

    fn publish(&mut self) {
        let sig = (
            phase(self.core.phase()),
            self.core.has_dialog(),
            self.core.t38_active(),
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
        let inbound = self.core.is_inbound();
        let side = if inbound { Side::A } else { Side::B };
        let peer = self.core.peer().unwrap_or(self.placeholder);
        let mut teardown = self.core.teardown();
        teardown.call_ids = vec![self.call_id.clone()];
        CallSnapshot {
            id: self.id.clone(),
            state: phase(self.core.phase()),
            src: self.src.clone(),
            dst: self.dst.clone(),
            start: rfc3339(self.start_ms),
            answer: self.answer_ms.map(rfc3339),
            trunk_in: None,
            trunk_out: self.trunk.clone(),
            codec: self.core.codec().map(str::to_string),
            legs: vec![LegView {
                side,
                call_id: self.call_id.clone(),
                peer: peer.addr.to_string(),
                transport: peer.transport.as_str(),
                rtp_port: self.ports.as_ref().map(|p| p.port()),
                remote_media: self.core.remote_media().map(|m| m.to_string()),
            }],
            media: Default::default(),
            charge: self.charging.as_ref().map(|c| c.view()),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            stats: None,
            teardown,
        }
    }

    /// The outcome for the listener (a core that ends always has one).
    fn outcome(&self) -> UaOutcome {
        let (outcome, code) = self
            .core
            .outcome()
            .unwrap_or((Outcome::Failed(CallFailure::Internal), None));
        UaOutcome {
            answered: self.answer_ms.is_some(),
            code,
            outcome,
            inbound: self.core.is_inbound(),
        }
    }

    async fn stop(&mut self, myself: &ActorRef<CallMsg>) {
        let outcome = self.outcome();
        // The disposition follows the fax result code, as it always has for these calls.
        let disposition = match (outcome.answered, outcome.error()) {
            (true, _) => Disposition::Answered,
            (false, Some(FaxCode::Busy)) => Disposition::Busy,
            (false, Some(FaxCode::NoAnswer)) => Disposition::NoAnswer,
            (false, Some(FaxCode::Congestion)) => Disposition::Congestion,
            _ => Disposition::Failed,
        };
        let end = self.ctx.clock.unix_ms();
        let mut cdr = self
            .snapshot()
            .cdr_at(end, disposition, outcome.cause(), outcome.code);
        if let Some((account, cost)) = self.settle().await {
            cdr.account = Some(account);
            cdr.cost = Some(cost);
        }
        metrics::counter!("switchboard_calls_total", "disposition" => cdr.disposition.as_str())
            .increment(1);
        tracing::info!(call = %self.id, cause = outcome.cause(), error = ?outcome.error(), "local call ended");
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
