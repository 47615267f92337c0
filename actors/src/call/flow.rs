//! The call actor's side of the core: setting the call up from the supervisor's route,
//! carrying the core's outputs to the endpoint, the relay and the ledger, publishing, and
//! the end of the call (settlement, journal, CDR).

use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;
use switchboard_call::{CallFailure, Command, Credentials, Dial, Event, MediaCtl, Output};
use switchboard_storage::{rfc3339, Cdr, Disposition};

use super::{build, CallMsg, CallSnapshot, CallState, LegView, Phase, Routing};
use crate::context::mask_number;
use crate::endpoint::{EndpointMsg, Owner};
use crate::media::{Relay, Side};
use crate::supervisor_msg::SupervisorMsg;
use crate::trunk::TrunkMsg;

/// The relay's name for a core leg.
fn side(s: switchboard_call::Side) -> Side {
    match s {
        switchboard_call::Side::A => Side::A,
        switchboard_call::Side::B => Side::B,
    }
}

/// The actors' name for a core phase.
pub(crate) fn phase(p: switchboard_call::Phase) -> Phase {
    match p {
        switchboard_call::Phase::Trying => Phase::Trying,
        switchboard_call::Phase::Ringing => Phase::Ringing,
        switchboard_call::Phase::Answered => Phase::Answered,
        switchboard_call::Phase::Ending => Phase::Ending,
    }
}

impl CallState {
    fn send(&self, msg: EndpointMsg) {
        let _ = self.ctx.endpoint.send_message(msg);
    }

    /// Give the core a command (and carry out what follows).
    pub(super) fn command(&mut self, now: Instant, cmd: Command) {
        self.core.handle_command(now, cmd);
    }

    /// Fail the call before it was dialled.
    pub(super) fn fail(&mut self, now: Instant, failure: CallFailure) {
        self.command(now, Command::Fail(failure));
    }

    /// Set the call up on the route the supervisor decided: rate it, then dial.
    pub(super) fn setup(&mut self, now: Instant) {
        let Some(routing) = self.routing.take() else {
            return;
        };
        if self.core.phase() == switchboard_call::Phase::Ending {
            return; // refused already (483)
        }
        let (route, trunk, number) = match routing {
            Routing::Refused(f) => {
                tracing::info!(call = %self.id, dst = %mask_number(&self.dst), cause = %f, "call refused before dialling");
                return self.fail(now, f);
            }
            Routing::Trunk {
                route,
                trunk,
                number,
            } => (route, trunk, number),
        };
        let ctx = Arc::clone(&self.ctx);
        self.trunk = Some((*trunk).clone());
        self.fork_app = route.fork.as_deref().and_then(|name| {
            ctx.config
                .app(name)
                .map(|app| (app.clone(), app.parameters_with(&route.parameters)))
        });
        let origin = match (
            self.trunk_in.as_deref().and_then(|n| ctx.config.trunk(n)),
            self.user
                .as_deref()
                .and_then(|u| ctx.config.sip.users.iter().find(|x| x.username == u)),
        ) {
            (Some(t), _) => crate::billing::Origin::Trunk(t),
            (None, Some(u)) => crate::billing::Origin::User(u),
            (None, None) => crate::billing::Origin::Unproven,
        };
        match crate::billing::rate_call(&ctx.config, &route, &trunk, origin, &self.src) {
            crate::billing::Charge::Free => self.dial(now, number),
            crate::billing::Charge::Rated(rating) => self.ask_admission(now, rating, number),
            crate::billing::Charge::NoAccount => {
                tracing::warn!(call = %self.id, route = %mask_number(&route.pattern.to_string()), "rated route without a payer: set a fixed account on the route, the inbound trunk, the sip_user or [billing] (caller names a payer only for calls from a trunk)");
                let status = ctx.config.billing.reject_status;
                self.fail(now, CallFailure::NoAccount { status })
            }
        }
    }

    /// Allocate the relay and hand the core the trunk to dial.
    pub(super) fn dial(&mut self, now: Instant, number: String) {
        let ctx = Arc::clone(&self.ctx);
        if self.core.phase() == switchboard_call::Phase::Ending {
            return;
        }
        let Some(trunk) = self.trunk.clone() else {
            return self.fail(now, CallFailure::Internal);
        };
        let offer = self.core.a().invite();
        if !build::has_sdp(offer, &offer.body) {
            // Late offer is not supported: refused before any port is taken.
            return self.fail(now, CallFailure::NoSdpOffer);
        }
        let (Some(pa), Some(pb)) = (ctx.ports.allocate(), ctx.ports.allocate()) else {
            return self.fail(now, CallFailure::NoMediaPorts);
        };
        let relay = Relay::start(
            pa,
            pb,
            Some(self.core.a().leg.peer.addr.ip()),
            Some(trunk.address.ip()),
        );
        let (port_a, port_b) = (relay.port(Side::A), relay.port(Side::B));
        self.relay = Some(relay);
        let peer = switchboard_sip::transport::Peer {
            addr: trunk.address,
            transport: crate::context::sip_transport(trunk.transport),
        };
        let call_id = format!("{}@{}", self.id, ctx.sip_addr.ip());
        let credentials = match (trunk.username.as_deref(), trunk.password.as_ref()) {
            (Some(user), Some(pass)) => Some(Credentials {
                user: user.to_string(),
                password: pass.expose().to_string(),
            }),
            _ => None,
        };
        tracing::debug!(call = %self.id, src = %mask_number(&self.src), dst = %mask_number(&self.dst), trunk = %trunk.name, "outbound INVITE");
        let dial = Dial {
            peer,
            via_host: ctx.via_host(peer.transport),
            contact: ctx.contact(peer.transport),
            uri: format!("sip:{}@{}", number, trunk.address),
            from_domain: trunk
                .from_domain
                .clone()
                .unwrap_or_else(|| ctx.sip_addr.ip().to_string()),
            call_id,
            user_agent: ctx.config.sip.user_agent.clone(),
            credentials,
            port_a,
            port_b,
        };
        self.command(now, Command::Dial(Box::new(dial)));
        // Registered only once the B leg exists (an offer the core refused starts none); the
        // INVITE itself goes out after this, when the outputs are drained.
        if let Some(b) = self.core.b() {
            let call_id = b.leg.call_id.clone();
            self.send(EndpointMsg::Register {
                call_id,
                owner: Owner::Call(self.myself.clone()),
            });
        }
    }

    /// Carry out everything the core asked for.
    fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Sip(out) => self.send(out.into()),
                Output::Media(MediaCtl::Remote { side: s, addr }) => {
                    if let Some(r) = &self.relay {
                        r.set_remote(side(s), addr);
                    }
                }
                Output::Event(ev) => self.on_event(ev),
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Answered => self.on_answer(),
            Event::TrunkUnreachable => {
                tracing::warn!(call = %self.id, "trunk did not answer the INVITE (Timer B)");
                if let Some(h) = self
                    .trunk
                    .as_ref()
                    .and_then(|t| self.ctx.trunks.get(&t.name))
                {
                    let _ = h.actor.send_message(TrunkMsg::Unreachable);
                }
            }
            Event::RtpTimeout => {
                tracing::info!(call = %self.id, "no RTP from either side; hanging up");
                metrics::counter!("switchboard_rtp_timeouts_total").increment(1);
            }
            Event::MediaRefused(_) | Event::Phase(_) => {}
        }
    }

    fn on_answer(&mut self) {
        self.answer_ms = Some(self.ctx.clock.unix_ms());
        metrics::counter!("switchboard_calls_answered_total").increment(1);
        tracing::debug!(call = %self.id, "answered");
        if let Some(at) = self.core.answered_at() {
            self.reserve(at);
        }
        self.journal =
            crate::call::charge::on_answer(&self.ctx, &self.snapshot(), self.charging.as_ref());
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

    /// After every message: carry out the core's outputs, publish, stop when done, re-arm
    /// the one timer at the core's next deadline.
    pub(super) async fn after(&mut self, myself: &ActorRef<CallMsg>) {
        // Outputs can lead to commands (a refused reservation): drain until quiet.
        self.drain();
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

    fn signature(&self) -> (Phase, bool, bool, bool, usize) {
        (
            phase(self.core.phase()),
            self.core.a().leg.dialog.is_some(),
            self.core.b().is_some_and(|b| b.leg.dialog.is_some()),
            self.core.a().final_sent(),
            self.core.relayed_len(),
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
        use switchboard_call::Side as S;
        let leg = |s: S, call_id: &str, peer: switchboard_sip::transport::Peer| LegView {
            side: side(s),
            call_id: call_id.to_string(),
            peer: peer.addr.to_string(),
            transport: peer.transport.as_str(),
            rtp_port: self.relay.as_ref().map(|r| r.port(side(s))),
            remote_media: self.core.remote_media(s).map(|m| m.to_string()),
        };
        let a = &self.core.a().leg;
        let mut legs = vec![leg(S::A, &a.call_id, a.peer)];
        if let Some(b) = self.core.b() {
            legs.push(leg(S::B, &b.leg.call_id, b.leg.peer));
        }
        let t = self.core.teardown();
        CallSnapshot {
            id: self.id.clone(),
            state: phase(self.core.phase()),
            src: self.src.clone(),
            dst: self.dst.clone(),
            start: rfc3339(self.start_ms),
            answer: self.answer_ms.map(rfc3339),
            trunk_in: self.trunk_in.clone(),
            trunk_out: self.trunk.as_ref().map(|t| t.name.clone()),
            codec: self.core.codec().map(str::to_string),
            legs,
            media: Default::default(),
            charge: self.charging.as_ref().map(|c| c.view()),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            stats: self.relay.as_ref().map(|r| r.stats()),
            teardown: t,
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
        for call_id in self.core.teardown().call_ids {
            self.send(EndpointMsg::Unregister { call_id });
        }
        if let Some(fork) = self.fork.take() {
            fork.stop("call ended");
        }
        self.relay = None; // ports back to the pool
        myself.stop(None);
    }

    fn cdr(&mut self) -> Cdr {
        let (disposition, cause, code) = match self.core.outcome() {
            Some((o, code)) => (crate::cdr::disposition(o.disposition()), o.as_str(), code),
            None => (Disposition::Failed, "unknown", None),
        };
        let disposition = if self.answer_ms.is_some() {
            Disposition::Answered
        } else {
            disposition
        };
        self.snapshot()
            .cdr_at(self.ctx.clock.unix_ms(), disposition, cause, code)
    }
}
