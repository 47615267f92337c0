//! The SIP endpoint actor: owns the RFC 3261 transaction layer (sans-IO core
//! from `switchboard-sip`) and the UDP, TCP and TLS transports (RFC 3261 §18,
//! §26.3.1).
//!
//! Drivers only move bytes: a UDP receive task and one task per TCP or TLS
//! connection parse inbound messages and hand them to this actor. Stream
//! connections are keyed by [`Peer`] (address and transport), so a TLS and a
//! TCP connection from one address never mix, and a response goes back on the
//! connection its request came in on. The actor feeds its
//! [`TransactionLayer`], sends what the layer wants sent and dispatches the
//! layer's events to the owner of the Call-ID (a call or a trunk). A new INVITE
//! with an unknown Call-ID goes to the call supervisor; a request for an unknown
//! dialog gets 481. Strangers are screened before the layer (see `challenge`): an
//! unauthenticated INVITE or REGISTER gets one stateless 401, never a transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rsip::{Method, SipMessage};
use switchboard_sip::message::{self, make_response, MessageExt};
use switchboard_sip::transaction::{
    Timers, TransactionEvent, TransactionKey, TransactionLayer, Transmit,
};
use switchboard_sip::transport::{Peer, Transport};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

pub use stream::{TlsClient, TlsClients, TLS_HANDSHAKE_TIMEOUT};

use crate::call_msg::CallMsg;
pub use crate::endpoint_msg::{EndpointMsg, EndpointStatus, Owner};
pub use crate::sip_event::SipEvent;
use crate::sip_guard::{Admit, SipGuard};
use crate::supervisor_msg::SupervisorMsg;
use crate::trunk_handle::TrunkMsg;
use challenge::Screen;

mod challenge;
mod stream;

/// Requests for a new call buffered while its actor starts.
const PENDING_LIMIT: usize = 32;

/// Everything the endpoint needs at start.
pub struct EndpointArgs {
    /// The bound UDP socket.
    pub udp: Arc<UdpSocket>,
    /// The bound TCP listener (same address).
    pub tcp: Option<Arc<TcpListener>>,
    /// The SIP over TLS listener and its certificate (`[sip] tls_listen`).
    pub tls: Option<(Arc<TcpListener>, TlsAcceptor)>,
    /// How to open TLS connections (trunks' CAs and server names).
    pub tls_clients: Arc<TlsClients>,
    /// RFC 3261 timer values.
    pub timers: Timers,
    /// Where new calls go.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Value for the Server and User-Agent headers.
    pub user_agent: String,
    /// The configuration (trunks, trusted sources, SIP users, limits).
    pub config: Arc<switchboard_config::Config>,
    /// Bans and rate limits, shared with the admin API.
    pub guard: Arc<crate::sip_guard::SipGuard>,
}

impl std::fmt::Debug for EndpointArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointArgs").finish_non_exhaustive()
    }
}

enum Route {
    Owner(Owner),
    /// The call actor is being spawned; events wait here.
    Pending(Vec<SipEvent>),
}

/// State of the endpoint actor.
pub struct EndpointState {
    myself: ActorRef<EndpointMsg>,
    layer: TransactionLayer,
    udp: Arc<UdpSocket>,
    /// Open TCP and TLS connections (and ones being opened), by peer.
    streams: HashMap<Peer, mpsc::Sender<Bytes>>,
    tls_clients: Arc<TlsClients>,
    routes: HashMap<String, Route>,
    /// Client transactions in flight: Call-ID, branch and peer, to route timeouts and fail
    /// them when their connection cannot be opened.
    client: HashMap<TransactionKey, (String, String, Peer)>,
    supervisor: ActorRef<SupervisorMsg>,
    user_agent: String,
    config: Arc<switchboard_config::Config>,
    guard: Arc<crate::sip_guard::SipGuard>,
    /// The server transaction of the request being handled and the `[[sip_user]]` that
    /// authenticated it (set by the screening, taken when the request is dispatched).
    authenticated: Option<(TransactionKey, String)>,
    timer: tokio::sync::watch::Sender<Option<Instant>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The SIP endpoint actor.
#[derive(Debug, Default)]
pub struct Endpoint;

impl Actor for Endpoint {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = EndpointArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EndpointMsg>,
        args: EndpointArgs,
    ) -> Result<EndpointState, ActorProcessingErr> {
        let (timer, timer_rx) = tokio::sync::watch::channel(None);
        let mut tasks = vec![tokio::spawn(crate::timer::run(
            timer_rx,
            myself.clone(),
            || EndpointMsg::Tick,
        ))];
        // Several receivers on the one socket parse datagrams in parallel;
        // SIP over UDP already tolerates the reordering this may cause.
        let receivers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        for _ in 0..receivers {
            tasks.push(tokio::spawn(udp_receive(
                Arc::clone(&args.udp),
                myself.clone(),
            )));
        }
        // Inbound TCP and TLS connections share one cap, in total and per source
        // (`[sip] max_tcp_connections`, `max_tcp_per_source`).
        let limits = crate::conn_limit::ConnLimiter::new(
            args.config.sip.max_tcp_connections,
            args.config.sip.max_tcp_per_source,
        );
        let timeouts = stream::StreamTimeouts::of(&args.config);
        if let Some(listener) = args.tcp {
            tasks.push(tokio::spawn(stream::accept(
                listener,
                None,
                Arc::clone(&limits),
                timeouts,
                myself.clone(),
            )));
        }
        if let Some((listener, acceptor)) = args.tls {
            tasks.push(tokio::spawn(stream::accept(
                listener,
                Some(acceptor),
                limits,
                timeouts,
                myself.clone(),
            )));
        }
        Ok(EndpointState {
            myself: myself.clone(),
            layer: TransactionLayer::new(args.timers),
            udp: args.udp,
            streams: HashMap::new(),
            tls_clients: args.tls_clients,
            routes: HashMap::new(),
            client: HashMap::new(),
            supervisor: args.supervisor,
            user_agent: args.user_agent,
            config: args.config,
            guard: args.guard,
            authenticated: None,
            timer,
            tasks,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<EndpointMsg>,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        for t in &state.tasks {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<EndpointMsg>,
        msg: EndpointMsg,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        match msg {
            EndpointMsg::Inbound { peer, msg } => {
                count_inbound(&msg);
                let mut answered = false;
                if let SipMessage::Request(req) = &msg {
                    match state.guard.admit(&state.config, peer.addr.ip(), now) {
                        Admit::Yes => {}
                        Admit::Banned => {
                            metrics::counter!("switchboard_sip_dropped_total", "reason" => "banned")
                                .increment(1);
                            return Ok(());
                        }
                        Admit::RateLimited => {
                            metrics::counter!("switchboard_sip_dropped_total", "reason" => "rate_limited")
                                .increment(1);
                            return Ok(());
                        }
                    }
                    match challenge::screen(state, peer, req, now) {
                        Screen::Answered => answered = true,
                        Screen::Pass { user } => {
                            state.authenticated = user.map(|u| (TransactionKey::server_of(req), u));
                        }
                    }
                }
                if !answered {
                    state.layer.handle_message(now, peer, msg);
                }
            }
            EndpointMsg::SendRequest { peer, request } => {
                metrics::counter!("switchboard_sip_requests_total", "method" => request.method.to_string(), "direction" => "out").increment(1);
                if peer.transport.is_reliable() && !state.streams.contains_key(&peer) {
                    connect_stream(&myself, state, peer);
                }
                let ids = (request.call_id(), request.top_via_branch());
                let key = state.layer.send_request(now, peer, request);
                if let (Some(call_id), Some(branch)) = ids {
                    state.client.insert(key, (call_id, branch, peer));
                }
            }
            EndpointMsg::SendResponse { key, mut response } => {
                metrics::counter!("switchboard_sip_responses_total", "code" => u16::from(response.status_code.clone()).to_string(), "direction" => "out").increment(1);
                add_server_header(&mut response, &state.user_agent);
                if let Err(err) = state.layer.send_response(now, &key, response) {
                    tracing::debug!(%err, "response for a finished transaction dropped");
                }
            }
            EndpointMsg::SendStateless { peer, msg } => state.layer.send_stateless(peer, msg),
            EndpointMsg::Register { call_id, owner } => {
                if let Some(Route::Pending(events)) =
                    state.routes.insert(call_id, Route::Owner(owner.clone()))
                {
                    for ev in events {
                        deliver(&owner, ev);
                    }
                }
            }
            EndpointMsg::Unregister { call_id } => {
                state.routes.remove(&call_id);
            }
            EndpointMsg::StreamUp { peer, tx } => {
                if state.streams.len() >= state.config.sip.max_tcp_connections {
                    tracing::warn!(addr = %peer.addr, transport = %peer.transport, "stream connection limit reached; refusing");
                } else {
                    state.streams.insert(peer, tx);
                }
            }
            EndpointMsg::StreamDown { peer } => {
                state.streams.remove(&peer);
            }
            EndpointMsg::StreamFailed { peer } => {
                state.streams.remove(&peer);
                let failed: Vec<TransactionKey> = state
                    .client
                    .iter()
                    .filter(|(_, (_, _, p))| *p == peer)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &failed {
                    state.layer.transport_error(key);
                }
            }
            EndpointMsg::Tick => {
                state.layer.handle_timeout(now);
                // The timer task waits for a new deadline after each tick.
                state.timer.send_replace(None);
            }
            EndpointMsg::Reload(config) => state.config = config,
            EndpointMsg::Status(reply) => {
                let _ = reply.send(EndpointStatus {
                    transactions: state.layer.len(),
                    dialogs: state.routes.len(),
                    tcp_connections: state
                        .streams
                        .keys()
                        .filter(|p| p.transport == Transport::Tcp)
                        .count(),
                    tls_connections: state
                        .streams
                        .keys()
                        .filter(|p| p.transport == Transport::Tls)
                        .count(),
                });
            }
        }
        pump(&myself, state).await;
        Ok(())
    }
}

fn count_inbound(msg: &SipMessage) {
    match msg {
        SipMessage::Request(r) => {
            metrics::counter!("switchboard_sip_requests_total", "method" => r.method.to_string(), "direction" => "in").increment(1);
        }
        SipMessage::Response(r) => {
            metrics::counter!("switchboard_sip_responses_total", "code" => u16::from(r.status_code.clone()).to_string(), "direction" => "in").increment(1);
        }
    }
}

fn add_server_header(response: &mut rsip::Response, ua: &str) {
    response.headers.push(rsip::Header::Server(ua.into()));
}

/// Drain the layer: transmit, dispatch events, re-arm the timer.
async fn pump(myself: &ActorRef<EndpointMsg>, state: &mut EndpointState) {
    while let Some(t) = state.layer.poll_transmit() {
        transmit(myself, state, t).await;
    }
    while let Some(ev) = state.layer.poll_event() {
        dispatch(state, ev);
        // Dispatch may have produced immediate answers (481, 405, OPTIONS 200).
        while let Some(t) = state.layer.poll_transmit() {
            transmit(myself, state, t).await;
        }
    }
    // Whatever was authenticated has been dispatched by now.
    state.authenticated = None;
    let next = state.layer.poll_timeout();
    if *state.timer.borrow() != next {
        let _ = state.timer.send(next);
    }
}

async fn transmit(myself: &ActorRef<EndpointMsg>, state: &mut EndpointState, t: Transmit) {
    match t.peer.transport {
        Transport::Udp => {
            if let Err(err) = state.udp.send_to(&t.data, t.peer.addr).await {
                tracing::debug!(%err, to = %t.peer.addr, "UDP send failed");
            }
        }
        Transport::Tcp | Transport::Tls => {
            if !state.streams.contains_key(&t.peer) {
                connect_stream(myself, state, t.peer);
            }
            if let Some(tx) = state.streams.get(&t.peer) {
                if tx.try_send(t.data).is_err() {
                    metrics::counter!("switchboard_sip_tcp_dropped_total", "transport" => stream::label(t.peer.transport)).increment(1);
                }
            }
        }
    }
}

fn dispatch(state: &mut EndpointState, ev: TransactionEvent) {
    match ev {
        TransactionEvent::Request { key, request, peer } => {
            let Some(call_id) = request.call_id() else {
                return;
            };
            let ev = SipEvent::Request {
                key: key.clone(),
                request,
                peer,
            };
            if let Some(ev) = route(state, &call_id, ev) {
                unrouted(state, key, ev, call_id);
            }
        }
        TransactionEvent::Cancelled { invite, cancel } => {
            if let Some(call_id) = cancel.call_id() {
                let _ = route(state, &call_id, SipEvent::Cancelled { invite });
            }
        }
        TransactionEvent::Response { key, response } => {
            if response.status_code.code() >= 200 {
                state.client.remove(&key);
            }
            if let Some(call_id) = response.call_id() {
                let _ = route(state, &call_id, SipEvent::Response { response });
            }
        }
        TransactionEvent::StrayResponse { response, .. } => {
            if let Some(call_id) = response.call_id() {
                let _ = route(state, &call_id, SipEvent::Response { response });
            }
        }
        TransactionEvent::Timeout { key } => {
            if let Some((call_id, branch, _)) = state.client.remove(&key) {
                let _ = route(state, &call_id, SipEvent::Timeout { branch });
            }
        }
        // Calls watch for the caller's ACK themselves.
        TransactionEvent::AckTimeout { .. } => {}
    }
}

/// Deliver to the owner of `call_id`, or queue while its call starts.
/// Returns the event back when nobody owns the Call-ID.
fn route(state: &mut EndpointState, call_id: &str, ev: SipEvent) -> Option<SipEvent> {
    match state.routes.get_mut(call_id) {
        Some(Route::Owner(o)) => deliver(o, ev),
        Some(Route::Pending(q)) if q.len() < PENDING_LIMIT => q.push(ev),
        Some(Route::Pending(_)) => {}
        None => return Some(ev),
    }
    None
}

fn deliver(owner: &Owner, ev: SipEvent) {
    match owner {
        Owner::Call(a) => {
            let _ = a.send_message(CallMsg::Sip(ev));
        }
        Owner::Trunk(a) => {
            let _ = a.send_message(TrunkMsg::Sip(ev));
        }
    }
}

/// A request whose Call-ID nobody owns.
fn unrouted(state: &mut EndpointState, key: Option<TransactionKey>, ev: SipEvent, call_id: String) {
    let SipEvent::Request { request, peer, .. } = ev else {
        return;
    };
    let Some(key) = key else { return }; // a stray ACK: drop
    let in_dialog = request.to_tag().is_some();
    let now = Instant::now();
    let auth_user = state
        .authenticated
        .take()
        .filter(|(k, _)| *k == key)
        .map(|(_, user)| user);
    let untrusted = !SipGuard::trusted(&state.config, peer.addr.ip());
    if !in_dialog && untrusted && matches!(request.method, Method::Invite | Method::Register) {
        // The screening challenged every unauthenticated one statelessly; only
        // authenticated requests reach the layer (this refusal is a safety net).
        let Some(user) = &auth_user else {
            tracing::warn!(from = %peer.addr, "unauthenticated request from an untrusted source reached dispatch; refused");
            let mut resp = make_response(&request, 403, Some(&message::new_tag()));
            add_server_header(&mut resp, &state.user_agent);
            let _ = state.layer.send_response(now, &key, resp);
            return;
        };
        tracing::debug!(from = %peer.addr, %user, method = %request.method, "digest authenticated");
        if request.method == Method::Register {
            // Authenticated: accept the registration (bindings are not used for routing yet).
            let mut resp = make_response(&request, 200, Some(&message::new_tag()));
            if let Some(c) = request.header_value("Contact") {
                resp.headers.push(rsip::Header::Other("Contact".into(), c));
            }
            resp.headers
                .push(rsip::Header::Other("Expires".into(), "300".into()));
            add_server_header(&mut resp, &state.user_agent);
            let _ = state.layer.send_response(now, &key, resp);
            return;
        }
    }
    // RFC 3261 §8.2.2.3: an extension we do not implement is refused before anything
    // else happens (before, `Require: 100rel` was rung, and relayed to the trunk).
    let unsupported = message::unsupported_required(&request, message::SUPPORTED);
    if !in_dialog && !unsupported.is_empty() {
        let mut resp = make_response(&request, 420, Some(&message::new_tag()));
        resp.headers.push(rsip::Header::Other(
            "Unsupported".into(),
            unsupported.join(", "),
        ));
        add_server_header(&mut resp, &state.user_agent);
        let _ = state.layer.send_response(now, &key, resp);
        return;
    }
    let code = match request.method {
        Method::Invite if !in_dialog => {
            state.routes.insert(call_id, Route::Pending(Vec::new()));
            let _ = state.supervisor.send_message(SupervisorMsg::NewCall {
                key,
                request,
                peer,
                endpoint: state.myself.clone(),
                user: auth_user,
            });
            return;
        }
        Method::Options if !in_dialog => 200,
        Method::Register | Method::Subscribe | Method::Publish | Method::Message if !in_dialog => {
            405
        }
        _ => 481,
    };
    let mut resp = make_response(&request, code, Some(&message::new_tag()));
    if code == 200 || code == 405 {
        resp.headers
            .push(rsip::Header::Allow(message::ALLOW.into()));
    }
    add_server_header(&mut resp, &state.user_agent);
    if let Err(err) = state.layer.send_response(now, &key, resp) {
        tracing::debug!(%err, "answer to unrouted request dropped");
    }
}

async fn udp_receive(sock: Arc<UdpSocket>, endpoint: ActorRef<EndpointMsg>) {
    let mut buf = vec![0u8; message::MAX_MESSAGE_SIZE + 1];
    let local = sock.local_addr().ok();
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(%err, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        if data.iter().all(|b| *b == b'\r' || *b == b'\n' || *b == 0) {
            continue; // keep-alive
        }
        if Some(from) == local {
            continue;
        }
        let peer = Peer {
            addr: from,
            transport: Transport::Udp,
        };
        match message::parse(data) {
            Ok(msg) => {
                if endpoint
                    .send_message(EndpointMsg::Inbound { peer, msg })
                    .is_err()
                {
                    return;
                }
            }
            Err(err) => {
                metrics::counter!("switchboard_sip_parse_errors_total", "transport" => "udp")
                    .increment(1);
                tracing::debug!(%from, %err, "malformed SIP datagram");
                if let Some(reply) = message::bad_request(data, &err) {
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        }
    }
}

/// Open a TCP or TLS connection to `peer`. Messages queue in the channel registered now;
/// the connection task drains it once the connection is up, or reports `StreamFailed`.
fn connect_stream(myself: &ActorRef<EndpointMsg>, state: &mut EndpointState, peer: Peer) {
    if state.streams.len() >= state.config.sip.max_tcp_connections {
        return;
    }
    let (tx, rx) = mpsc::channel(stream::QUEUE);
    let replies = tx.clone();
    state.streams.insert(peer, tx);
    let tls = (peer.transport == Transport::Tls).then(|| state.tls_clients.get(peer.addr));
    let timeouts = stream::StreamTimeouts::of(&state.config);
    tokio::spawn(stream::connect(
        peer,
        tls,
        myself.clone(),
        (replies, rx),
        timeouts,
    ));
}
