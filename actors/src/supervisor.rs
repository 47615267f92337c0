//! The call supervisor: spawns one `Call` actor per incoming INVITE
//! (`spawn_linked`), keeps the registry of live calls by `CallId`, and decides
//! what happens when a call actor dies. ractor has no restart strategy of its
//! own; for calls the policy is teardown, not restart: a crashed call gets a
//! BYE (or CANCEL/500) on both legs from its last published snapshot, its
//! media ports return to the pool with its state, and a CDR is written with
//! the cause `crash`.
//!
//! Wiring comes in two phases (issue 13): [`CallSupervisor::start`] gives the supervisor's
//! address before it runs, so the endpoint, the fax and device supervisors can be built with
//! it; [`PendingStart::wire`] then hands it the [`CallWiring`] (the [`CallContext`] and the
//! handles only the supervisor uses). Until then it handles nothing: ractor keeps every
//! message in the mailbox while `pre_start` waits, so no message ever finds the wiring missing.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use rsip::Method;
use switchboard_config::RouteTarget;
use switchboard_sip::message::MessageExt;
use switchboard_sip::message::{self, make_cancel, make_response};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::Disposition;

use crate::call::{Call, CallArgs, CallId, CallMsg, CallSnapshot, Phase};
use crate::context::CallContext;
use crate::endpoint::EndpointMsg;
pub use crate::supervisor_msg::SupervisorMsg;
use crate::ua::{UaArgs, UaCall, UaDirection};
use crate::ua_event::{Listener, UaMode};

struct Entry {
    actor: ActorRef<CallMsg>,
    snapshot: Option<CallSnapshot>,
}

/// What the call supervisor is built with, once the actors that need its address exist.
#[derive(Debug)]
pub struct CallWiring {
    /// What every call shares (its `supervisor` is this supervisor).
    pub ctx: Arc<CallContext>,
    /// The fax supervisor, for calls routed to `fax` (None: answered 503).
    pub faxes: Option<ActorRef<crate::fax::FaxMsg>>,
    /// The device supervisor, for calls routed to `device:ID` (None when MQTT is off).
    pub devices: Option<ActorRef<crate::devices::DeviceSupervisorMsg>>,
}

/// Errors finishing the call supervisor's start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The supervisor's start task failed or panicked.
    #[error("the call supervisor did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// The start task itself was lost.
    #[error("the call supervisor's start task was lost: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The wiring was dropped before it was sent (the gateway's start failed first).
    #[error("the call supervisor was never wired")]
    NotWired,
}

/// The second phase of the call supervisor's start: see [`CallSupervisor::start`].
#[derive(Debug)]
pub struct PendingStart {
    wire: tokio::sync::oneshot::Sender<CallWiring>,
    started: tokio::task::JoinHandle<Result<tokio::task::JoinHandle<()>, ractor::SpawnErr>>,
}

impl PendingStart {
    /// Hand the supervisor its wiring and wait until it runs. Dropping a `PendingStart`
    /// instead stops the supervisor before it handles anything.
    pub async fn wire(self, wiring: CallWiring) -> Result<(), StartError> {
        let _ = self.wire.send(wiring);
        self.started.await??;
        Ok(())
    }
}

/// State of the call supervisor.
pub struct SupervisorState {
    ctx: Arc<CallContext>,
    faxes: Option<ActorRef<crate::fax::FaxMsg>>,
    devices: Option<ActorRef<crate::devices::DeviceSupervisorMsg>>,
    calls: HashMap<CallId, Entry>,
    by_actor: HashMap<ActorId, CallId>,
}

/// The call supervisor actor.
#[derive(Debug, Default)]
pub struct CallSupervisor;

impl CallSupervisor {
    /// Phase one: the supervisor's address, at once. It handles no message until
    /// [`PendingStart::wire`] gives it its [`CallWiring`]; what is sent before waits in its
    /// mailbox.
    pub fn start() -> Result<(ActorRef<SupervisorMsg>, PendingStart), ractor::SpawnErr> {
        let (wire, wiring) = tokio::sync::oneshot::channel();
        let (actor, started) = ractor::ActorRuntime::spawn_instant(None, CallSupervisor, wiring)?;
        Ok((actor, PendingStart { wire, started }))
    }
}

impl Actor for CallSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = tokio::sync::oneshot::Receiver<CallWiring>;

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        wiring: tokio::sync::oneshot::Receiver<CallWiring>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let wiring = wiring.await.map_err(|_| StartError::NotWired)?;
        metrics::gauge!("switchboard_calls_active").set(0.0);
        Ok(SupervisorState {
            ctx: wiring.ctx,
            faxes: wiring.faxes,
            devices: wiring.devices,
            calls: HashMap::new(),
            by_actor: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::NewCall {
                endpoint,
                key,
                request,
                peer,
                user,
            } => new_call(&myself, state, endpoint, key, request, peer, user).await,
            SupervisorMsg::Update(snap) => {
                if let Some(e) = state.calls.get_mut(&snap.id) {
                    e.snapshot = Some(*snap);
                }
            }
            SupervisorMsg::List(reply) => {
                let mut list: Vec<CallSnapshot> = state
                    .calls
                    .values()
                    .filter_map(|e| e.snapshot.as_ref().map(live))
                    .collect();
                list.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then_with(|| a.id.cmp(&b.id)));
                let _ = reply.send(list);
            }
            SupervisorMsg::Get(id, reply) => {
                let _ = reply.send(
                    state
                        .calls
                        .get(&id)
                        .and_then(|e| e.snapshot.as_ref().map(live)),
                );
            }
            SupervisorMsg::Hangup(id, reply) => {
                let found = state
                    .calls
                    .get(&id)
                    .map(|e| e.actor.send_message(CallMsg::Hangup).is_ok());
                let _ = reply.send(found.unwrap_or(false));
            }
            SupervisorMsg::Originate {
                id,
                to,
                src,
                listener,
                mode,
                reply,
            } => {
                let ctx = Arc::clone(&state.ctx);
                let ok = if ctx.drain.is_draining() {
                    tracing::info!(call = %id, "origination refused: the gateway is draining");
                    metrics::counter!("switchboard_calls_rejected_total", "reason" => "draining")
                        .increment(1);
                    false
                } else if state.calls.len() < ctx.config.sip.max_calls {
                    let args = UaArgs {
                        id: id.clone(),
                        ctx,
                        direction: UaDirection::Outbound { to, src },
                        listener,
                        mode,
                    };
                    let spawned = Actor::spawn_linked(None, UaCall, args, myself.get_cell()).await;
                    state.register(id, spawned.map(|(a, _)| a)).is_ok()
                } else {
                    false
                };
                let _ = reply.send(ok);
            }
            SupervisorMsg::Reload(config) => {
                state.ctx = Arc::new(CallContext {
                    config,
                    ..(*state.ctx).clone()
                });
            }
            SupervisorMsg::Tell(id, msg) => {
                if let Some(e) = state.calls.get(&id) {
                    let _ = e.actor.send_message(msg);
                }
            }
            SupervisorMsg::Count(reply) => {
                let _ = reply.send(state.calls.len());
            }
            SupervisorMsg::EndAll(cause) => {
                tracing::info!(
                    calls = state.calls.len(),
                    cause = cause.as_str(),
                    "hanging up every call"
                );
                for e in state.calls.values() {
                    let _ = e.actor.send_message(CallMsg::End(cause));
                }
            }
            SupervisorMsg::Crash(id, reply) => {
                let found = state
                    .calls
                    .get(&id)
                    .map(|e| e.actor.send_message(CallMsg::Crash).is_ok());
                let _ = reply.send(found.unwrap_or(false));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                remove(state, cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some((id, entry)) = remove(state, cell.get_id()) {
                    metrics::counter!("switchboard_call_actor_crashes_total").increment(1);
                    tracing::error!(call = %id, %err, "call actor crashed; tearing the call down");
                    if let Some(snap) = entry.snapshot {
                        teardown(&state.ctx, snap).await;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn live(s: &CallSnapshot) -> CallSnapshot {
    let mut s = s.clone();
    if let Some(stats) = &s.stats {
        s.media = stats.snapshot();
    }
    s
}

fn remove(state: &mut SupervisorState, actor: ActorId) -> Option<(CallId, Entry)> {
    let id = state.by_actor.remove(&actor)?;
    let entry = state.calls.remove(&id)?;
    metrics::gauge!("switchboard_calls_active").set(state.calls.len() as f64);
    Some((id, entry))
}

async fn new_call(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    endpoint: ActorRef<EndpointMsg>,
    key: TransactionKey,
    request: rsip::Request,
    peer: Peer,
    user: Option<String>,
) {
    let ctx = Arc::clone(&state.ctx);
    if ctx.drain.is_draining() {
        // A dispatcher or trunk fails over on 503 and keeps away for Retry-After.
        metrics::counter!("switchboard_calls_rejected_total", "reason" => "draining").increment(1);
        let mut resp = make_response(&request, 503, Some(&message::new_tag()));
        resp.headers.push(rsip::Header::RetryAfter(
            <rsip::headers::RetryAfter as rsip::headers::UntypedHeader>::new(
                ctx.drain.retry_after().to_string(),
            ),
        ));
        return respond(&endpoint, key, &request, resp);
    }
    if state.calls.len() >= ctx.config.sip.max_calls {
        metrics::counter!("switchboard_calls_rejected_total", "reason" => "max_calls").increment(1);
        return reject(&endpoint, key, &request, 503);
    }
    let id = CallId::new();
    let dst = crate::call::dialed(&request).unwrap_or_default();
    // The route is decided here, once: local targets get a `UaCall`, trunk routes a `Call`.
    let (route, number) = match ctx.config.dial(&dst) {
        Some((r, n)) => (Some(r.clone()), Some(n)),
        None => (None, None),
    };
    let local = |listener: Listener, mode: UaMode| UaArgs {
        id: id.clone(),
        ctx: Arc::clone(&ctx),
        direction: UaDirection::Inbound {
            key: key.clone(),
            invite: request.clone(),
            peer,
        },
        listener,
        mode,
    };
    let spawned = if let Some(RouteTarget::App(name)) = route.as_ref().map(|r| &r.to) {
        let Some(app) = ctx.config.app(name) else {
            return reject(&endpoint, key, &request, 404);
        };
        let params = route
            .as_ref()
            .map(|r| app.parameters_with(&r.parameters))
            .unwrap_or_default();
        let listener = crate::local::app_listener(
            &ctx,
            app.clone(),
            params,
            id.clone(),
            crate::call::calling(&request),
            dst.clone(),
        );
        let args = local(listener, UaMode::Audio { ring_first: false });
        Actor::spawn_linked(None, UaCall, args, myself.get_cell())
            .await
            .map(|(a, _)| a)
    } else if let Some(RouteTarget::Device(device)) = route.as_ref().map(|r| &r.to) {
        let listener = crate::devices::voice::ring_listener(
            myself,
            state.devices.as_ref(),
            ctx.config.devices.audio_rate,
            device.clone(),
            id.clone(),
            crate::call::calling(&request),
            dst.clone(),
        );
        let args = local(listener, UaMode::Audio { ring_first: true });
        Actor::spawn_linked(None, UaCall, args, myself.get_cell())
            .await
            .map(|(a, _)| a)
    } else if route.as_ref().is_some_and(|r| r.to == RouteTarget::Fax) {
        // Calls to `fax` are ours to answer.
        let Some(faxes) = state.faxes.clone() else {
            return reject(&endpoint, key, &request, 503);
        };
        let (from, sip_call_id) = (
            crate::call::calling(&request),
            request.call_id().unwrap_or_default(),
        );
        let call = id.clone();
        let listener = Listener::new(move |event| {
            let _ = faxes.send_message(crate::fax::FaxMsg::Inbound {
                call: call.clone(),
                from: from.clone(),
                to: dst.clone(),
                sip_call_id: sip_call_id.clone(),
                event,
            });
        });
        let args = local(listener, UaMode::Fax);
        Actor::spawn_linked(None, UaCall, args, myself.get_cell())
            .await
            .map(|(a, _)| a)
    } else {
        let routing = crate::routing::trunk_routing(&ctx, route, number);
        let args = CallArgs {
            id: id.clone(),
            key: key.clone(),
            invite: request.clone(),
            peer,
            ctx,
            user,
            routing,
        };
        Actor::spawn_linked(None, Call, args, myself.get_cell())
            .await
            .map(|(a, _)| a)
    };
    if state.register(id, spawned).is_err() {
        reject(&endpoint, key, &request, 500);
    }
}

impl SupervisorState {
    /// Keep a started call in the registry.
    fn register(
        &mut self,
        id: CallId,
        spawned: Result<ActorRef<CallMsg>, ractor::SpawnErr>,
    ) -> Result<(), ()> {
        match spawned {
            Ok(actor) => {
                self.by_actor.insert(actor.get_id(), id.clone());
                self.calls.insert(
                    id,
                    Entry {
                        actor,
                        snapshot: None,
                    },
                );
                metrics::gauge!("switchboard_calls_active").set(self.calls.len() as f64);
                Ok(())
            }
            Err(err) => {
                tracing::error!(%err, "cannot start call actor");
                Err(())
            }
        }
    }
}

/// Answer an INVITE no call was started for, and release its Call-ID.
fn reject(
    endpoint: &ActorRef<EndpointMsg>,
    key: TransactionKey,
    request: &rsip::Request,
    code: u16,
) {
    let resp = make_response(request, code, Some(&message::new_tag()));
    respond(endpoint, key, request, resp);
}

/// Send the final answer of an INVITE no call was started for, and release its Call-ID.
fn respond(
    endpoint: &ActorRef<EndpointMsg>,
    key: TransactionKey,
    request: &rsip::Request,
    resp: rsip::Response,
) {
    let _ = endpoint.send_message(EndpointMsg::SendResponse {
        key,
        response: resp,
    });
    if let Some(call_id) = switchboard_sip::message::MessageExt::call_id(request) {
        let _ = endpoint.send_message(EndpointMsg::Unregister { call_id });
    }
}

/// End both legs of a crashed call from its snapshot and write its CDR.
async fn teardown(ctx: &Arc<CallContext>, snap: CallSnapshot) {
    let t = snap.teardown.clone();
    let send = |m: EndpointMsg| {
        let _ = ctx.endpoint.send_message(m);
    };
    let bye = |mut d: switchboard_sip::dialog::Dialog, peer: Peer| {
        let request = d.make_request(
            Method::Bye,
            &ctx.via_host(peer.transport),
            peer.transport,
            &message::new_branch(),
            &ctx.contact(peer.transport),
        );
        send(EndpointMsg::SendRequest { peer, request });
    };
    // A leg.
    if let (Some(d), Some(peer)) = (t.a_dialog.clone(), t.a_peer) {
        bye(d, peer);
    } else if let (false, Some(key), Some(inv)) =
        (t.a_final_sent, t.a_key.clone(), t.a_invite.as_ref())
    {
        send(EndpointMsg::SendResponse {
            key,
            response: make_response(inv, 500, Some(&t.a_tag)),
        });
    }
    // B leg.
    if let (Some(d), Some(peer)) = (t.b_dialog.clone(), t.b_peer) {
        bye(d, peer);
    } else if let (true, Some(inv), Some(peer)) = (t.b_provisional, t.b_invite.as_ref(), t.b_peer) {
        send(EndpointMsg::SendRequest {
            peer,
            request: make_cancel(inv),
        });
    }
    for call_id in t.call_ids {
        send(EndpointMsg::Unregister { call_id });
    }
    let answered = snap.answer_ms.is_some() && snap.state != Phase::Trying;
    let disposition = if answered {
        Disposition::Answered
    } else {
        Disposition::Failed
    };
    let cdr = snap.cdr_at(ctx.clock.unix_ms(), disposition, "crash", None);
    metrics::counter!("switchboard_calls_total", "disposition" => cdr.disposition.as_str())
        .increment(1);
    ctx.cdrs.submit(cdr).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the SIP endpoint: these tests send no SIP.
    struct NoEndpoint;

    impl Actor for NoEndpoint {
        type Msg = EndpointMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<EndpointMsg>,
            _: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// A call context on a temporary store, for `supervisor`.
    async fn context(supervisor: &ActorRef<SupervisorMsg>) -> Arc<CallContext> {
        let config = Arc::new(switchboard_config::load_from_str("", &[]).expect("config"));
        let store: Arc<dyn switchboard_storage::Store> =
            Arc::new(switchboard_storage::SledStore::temporary().expect("store"));
        let (endpoint, _) = Actor::spawn(None, NoEndpoint, ()).await.expect("endpoint");
        let (cdrs, _cdr_writer) = crate::cdr::start(Arc::clone(&store)).expect("cdrs");
        let (journal, _journal_writer) =
            crate::journal::start(store, config.sip.journal_checkpoint).expect("journal");
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        Arc::new(CallContext {
            endpoint,
            supervisor: supervisor.clone(),
            ports: crate::media::PortPool::new(ip, config.media.rtp_ports.clone()),
            cdrs,
            journal,
            trunks: HashMap::new(),
            sip_addr: std::net::SocketAddr::new(ip, 5060),
            sip_tls_addr: None,
            media_ip: ip,
            streams: Arc::default(),
            ledger: None,
            drain: Arc::new(crate::drain::Drain::new(config.sip.drain)),
            clock: crate::clock::system(),
            config,
        })
    }

    /// Phase two: what was sent before the wiring waited in the mailbox and is handled,
    /// in order, once the supervisor is wired; nothing is answered from a half-built state.
    #[tokio::test]
    async fn messages_sent_before_the_wiring_are_handled_after_it() {
        let (supervisor, pending) = CallSupervisor::start().expect("spawn");
        let early = {
            let s = supervisor.clone();
            tokio::spawn(async move { ractor::call_t!(s, SupervisorMsg::Count, 5_000) })
        };
        let ctx = context(&supervisor).await;
        assert!(!early.is_finished(), "answered before it was wired");
        pending
            .wire(CallWiring {
                ctx,
                faxes: None,
                devices: None,
            })
            .await
            .expect("wired");
        let answer = early.await.expect("the asking task");
        assert_eq!(answer.expect("an answer once wired"), 0);
    }

    /// Phase one alone: the address exists, nothing is handled, and a start abandoned before
    /// `wire` stops the supervisor instead of leaving it half built.
    #[tokio::test]
    async fn an_unwired_supervisor_handles_nothing_and_stops_when_abandoned() {
        let (supervisor, pending) = CallSupervisor::start().expect("spawn");
        let asked = ractor::call_t!(supervisor, SupervisorMsg::Count, 100);
        assert!(asked.is_err(), "answered before it was wired: {asked:?}");
        drop(pending);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while supervisor.get_status() != ractor::ActorStatus::Stopped {
            assert!(
                std::time::Instant::now() < deadline,
                "still {:?}",
                supervisor.get_status()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
