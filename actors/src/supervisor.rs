//! The call supervisor: spawns one `Call` actor per incoming INVITE
//! (`spawn_linked`), keeps the registry of live calls by `CallId`, and decides
//! what happens when a call actor dies. ractor has no restart strategy of its
//! own; for calls the policy is teardown, not restart: a crashed call gets a
//! BYE (or CANCEL/500) on both legs from its last published snapshot, its
//! media ports return to the pool with its state, and a CDR is written with
//! the cause `crash`.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use rsip::Method;
use switchboard_config::RouteTarget;
use switchboard_sip::message::MessageExt;
use switchboard_sip::message::{self, make_cancel, make_response};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::Disposition;

use crate::call::{Call, CallArgs, CallId, CallMsg, CallSnapshot, Phase, Routing};
use crate::context::CallContext;
use crate::endpoint::EndpointMsg;
use crate::ua::{Listener, UaArgs, UaCall, UaDirection, UaMode};
use switchboard_call::CallFailure;

/// Messages of the call supervisor.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// The shared context, sent once the other actors exist.
    SetContext(Arc<CallContext>),
    /// A new INVITE (the endpoint already sent 100 Trying).
    NewCall {
        /// The endpoint, for answering when no call can be started.
        endpoint: ActorRef<EndpointMsg>,
        /// The INVITE's server transaction.
        key: TransactionKey,
        /// The INVITE.
        request: rsip::Request,
        /// Where it came from.
        peer: Peer,
        /// The `[[sip_user]]` whose digest credentials the endpoint verified on this INVITE
        /// (`None` for trunk and trusted sources): who pays, never From (issue 11).
        user: Option<String>,
    },
    /// A call's latest snapshot.
    Update(Box<CallSnapshot>),
    /// All live calls.
    List(RpcReplyPort<Vec<CallSnapshot>>),
    /// One call.
    Get(CallId, RpcReplyPort<Option<CallSnapshot>>),
    /// Hang a call up; false when unknown.
    Hangup(CallId, RpcReplyPort<bool>),
    /// Pass a message to a call (answer, reject or end it for a local target).
    Tell(CallId, CallMsg),
    /// The shared call context, once set.
    Context(RpcReplyPort<Option<Arc<CallContext>>>),
    /// A reloaded configuration for calls started from now on; running calls keep theirs.
    Reload(Arc<switchboard_config::Config>),
    /// How many calls are live (started, ringing, answered or ending).
    Count(RpcReplyPort<usize>),
    /// Hang up every live call with this cause (the drain deadline: `shutdown`).
    EndAll(&'static str),
    /// Test hook: make a call actor panic; false when unknown.
    Crash(CallId, RpcReplyPort<bool>),
    /// Place a call of our own (a fax job's); false when none can start now.
    Originate {
        /// The call's id.
        id: CallId,
        /// Number to dial (routed by `[[route]]`).
        to: String,
        /// Our calling number.
        src: String,
        /// Who hears about the call.
        listener: Listener,
        /// Fax or audio.
        mode: UaMode,
        /// Whether the call started.
        reply: RpcReplyPort<bool>,
    },
}

struct Entry {
    actor: ActorRef<CallMsg>,
    snapshot: Option<CallSnapshot>,
}

/// State of the call supervisor.
#[derive(Default)]
pub struct SupervisorState {
    ctx: Option<Arc<CallContext>>,
    calls: HashMap<CallId, Entry>,
    by_actor: HashMap<ActorId, CallId>,
}

/// The call supervisor actor.
#[derive(Debug, Default)]
pub struct CallSupervisor;

impl Actor for CallSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        _: (),
    ) -> Result<SupervisorState, ActorProcessingErr> {
        metrics::gauge!("switchboard_calls_active").set(0.0);
        Ok(SupervisorState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::SetContext(ctx) => state.ctx = Some(ctx),
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
                let ok = match state.ctx.clone() {
                    Some(ctx) if ctx.drain.is_draining() => {
                        tracing::info!(call = %id, "origination refused: the gateway is draining");
                        metrics::counter!("switchboard_calls_rejected_total", "reason" => "draining")
                            .increment(1);
                        false
                    }
                    Some(ctx) if state.calls.len() < ctx.config.sip.max_calls => {
                        let args = UaArgs {
                            id: id.clone(),
                            ctx,
                            direction: UaDirection::Outbound { to, src },
                            listener,
                            mode,
                        };
                        let spawned =
                            Actor::spawn_linked(None, UaCall, args, myself.get_cell()).await;
                        state.register(id, spawned.map(|(a, _)| a)).is_ok()
                    }
                    _ => false,
                };
                let _ = reply.send(ok);
            }
            SupervisorMsg::Reload(config) => {
                if let Some(ctx) = &state.ctx {
                    state.ctx = Some(Arc::new(CallContext {
                        config,
                        ..(**ctx).clone()
                    }));
                }
            }
            SupervisorMsg::Context(reply) => {
                let _ = reply.send(state.ctx.clone());
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
                tracing::info!(calls = state.calls.len(), cause, "hanging up every call");
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
                    if let (Some(ctx), Some(snap)) = (&state.ctx, entry.snapshot) {
                        teardown(ctx, snap).await;
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
    let Some(ctx) = state.ctx.clone() else {
        return reject(&endpoint, key, &request, 503);
    };
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
            &ctx,
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
        let Some(faxes) = ctx.faxes.clone() else {
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
        let routing = trunk_routing(&ctx, route, number);
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

/// Where a call that is not for a local target goes: the route's trunk, if it is
/// configured and up. The one route decision for every call the gateway places (the
/// B2BUA's B leg here, fax, device and ingest calls in `ua`).
pub(crate) fn trunk_routing(
    ctx: &CallContext,
    route: Option<switchboard_config::RouteConfig>,
    number: Option<String>,
) -> Routing {
    let (Some(route), Some(number)) = (route, number) else {
        return Routing::Refused(CallFailure::NoRoute);
    };
    let RouteTarget::Trunk(name) = &route.to else {
        // A local target cannot be dialled through a trunk (the supervisor hands those
        // to a `UaCall` before asking).
        return Routing::Refused(CallFailure::NoRoute);
    };
    let (Some(trunk), Some(handle)) = (ctx.config.trunk(name), ctx.trunks.get(name)) else {
        return Routing::Refused(CallFailure::UnknownTrunk);
    };
    if handle.status.borrow().is_down() {
        return Routing::Refused(CallFailure::TrunkDown);
    }
    Routing::Trunk {
        trunk: Box::new(trunk.clone()),
        route: Box::new(route),
        number,
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
    let cdr = snap.cdr(disposition, "crash", None);
    metrics::counter!("switchboard_calls_total", "disposition" => cdr.disposition.as_str())
        .increment(1);
    ctx.cdrs.submit(cdr).await;
}
