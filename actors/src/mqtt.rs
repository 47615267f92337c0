//! The embedded MQTT broker (MQTT 3.1.1): a TCP driver that only moves bytes
//! and the `Broker` actor that owns the sans-IO broker core from
//! `switchboard-mqtt`, authenticates devices against the store and routes
//! their messages to the device supervisor.
//!
//! Each connection has a reader task (bytes → packets, bounded by
//! `[mqtt] max_packet_bytes`) and a writer task fed by a bounded queue; a
//! client that cannot keep up is disconnected, never buffered without limit.
//! A malformed or oversized packet closes that connection only.
//!
//! A device in a call has its `audio/up` frames routed here, straight into the call's
//! bounded audio channel ([`BrokerMsg::AudioRoute`]): voice does not queue in the device
//! supervisor's and the session's mailboxes behind telemetry and commands (issue 13).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
use switchboard_mqtt::broker::{
    AuthDecision, Authorizer, Broker, BrokerEvent, CloseReason, ConnId, Limits, Principal,
};
use switchboard_mqtt::{
    principal_may_publish, principal_may_retain, principal_may_subscribe, DeviceId, Topic,
};
use switchboard_storage::{get_device, Store};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::broker_msg::{BrokerMsg, BrokerStatus, Credit};
use crate::devices::DeviceSupervisorMsg;

/// Packets queued toward one client before it counts as too slow.
const CLIENT_QUEUE: usize = 512;
/// Packets of one connection in flight inside the gateway (read but not yet
/// handled end to end). When they are used up the reader stops reading, and
/// TCP pushes back on the device: overload waits in socket buffers, not in
/// the gateway's memory.
const CREDITS: usize = 64;

/// Read buffer growth step of a connection.
const READ_CHUNK: usize = 512;
/// Time a client gets to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once, in all; more connections are closed
/// at accept.
const MAX_TLS_HANDSHAKES: usize = 256;
/// TLS handshakes in progress at once from one source (IPv6: one /64).
const MAX_TLS_HANDSHAKES_PER_SOURCE: usize = 8;

/// Wait until every writer in `written` has ended, or `deadline`; false when some did not.
pub async fn wait_written(written: Vec<oneshot::Receiver<()>>, deadline: Instant) -> bool {
    for w in written {
        // Ok or Err(RecvError): the writer ended either way.
        if tokio::time::timeout_at(deadline.into(), w).await.is_err() {
            return false;
        }
    }
    true
}

/// Start-up arguments of the broker actor.
pub struct BrokerArgs {
    /// Listener already bound.
    pub listener: Arc<TcpListener>,
    /// Limits of the core.
    pub limits: Limits,
    /// The store (device credentials).
    pub store: Arc<dyn Store>,
    /// Where device traffic goes.
    pub devices: ActorRef<DeviceSupervisorMsg>,
    /// Largest packet accepted.
    pub max_packet: usize,
    /// The MQTT-over-TLS listener and its acceptor, if configured.
    pub tls: Option<(Arc<TcpListener>, tokio_rustls::TlsAcceptor)>,
}

impl std::fmt::Debug for BrokerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerArgs").finish_non_exhaustive()
    }
}

/// Checks device credentials against the store and applies the topic rules.
pub struct StoreAuthorizer {
    store: Arc<dyn Store>,
}

impl Authorizer for StoreAuthorizer {
    fn authenticate(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> AuthDecision {
        let Some(id) = username.and_then(|u| DeviceId::parse(u).ok()) else {
            metrics::counter!("switchboard_mqtt_auth_failures_total", "reason" => "bad_username")
                .increment(1);
            return AuthDecision::Reject(ConnectReturnCode::BadUserNamePassword);
        };
        // A device's (and a claimant's) client id is its user name: no one
        // holds another device's client id.
        if client_id != id.as_str() {
            metrics::counter!("switchboard_mqtt_auth_failures_total", "reason" => "client_id")
                .increment(1);
            return AuthDecision::Reject(ConnectReturnCode::BadClientId);
        }
        let password = password.unwrap_or("");
        let record = get_device(self.store.as_ref(), id.as_str());
        if password.is_empty() {
            // Only a device never claimed may log in without a password, and
            // only to run the claim exchange for its own id.
            return match record {
                Ok(None) => AuthDecision::Accept(Principal::Claimant(id)),
                Ok(Some(_)) => {
                    metrics::counter!("switchboard_mqtt_auth_failures_total", "reason" => "already_claimed").increment(1);
                    AuthDecision::Reject(ConnectReturnCode::NotAuthorized)
                }
                Err(err) => {
                    tracing::error!(%err, "device lookup failed");
                    AuthDecision::Reject(ConnectReturnCode::ServiceUnavailable)
                }
            };
        }
        match record {
            Ok(Some(rec)) => {
                let stored = switchboard_mqtt::credential::StoredCredential {
                    salt: rec.credential.salt.clone(),
                    hash: rec.credential.hash.clone(),
                };
                if stored.verify(password) {
                    AuthDecision::Accept(Principal::Device(id))
                } else {
                    metrics::counter!("switchboard_mqtt_auth_failures_total", "reason" => "bad_credential").increment(1);
                    AuthDecision::Reject(ConnectReturnCode::BadUserNamePassword)
                }
            }
            Ok(None) => {
                metrics::counter!("switchboard_mqtt_auth_failures_total", "reason" => "unknown_device").increment(1);
                AuthDecision::Reject(ConnectReturnCode::BadUserNamePassword)
            }
            Err(err) => {
                tracing::error!(%err, "device lookup failed");
                AuthDecision::Reject(ConnectReturnCode::ServiceUnavailable)
            }
        }
    }

    fn may_publish(&self, who: &Principal, topic: &str) -> bool {
        principal_may_publish(who, topic)
    }

    fn may_subscribe(&self, who: &Principal, filter: &str) -> bool {
        principal_may_subscribe(who, filter)
    }

    fn may_retain(&self, who: &Principal, topic: &str) -> bool {
        principal_may_retain(who, topic)
    }
}

/// State of the broker actor.
pub struct BrokerState {
    core: Broker,
    auth: StoreAuthorizer,
    conns: HashMap<ConnId, mpsc::Sender<Bytes>>,
    /// Per open connection: resolves once its writer ended.
    writers: HashMap<ConnId, oneshot::Receiver<()>>,
    /// Writers of closed connections that may still be flushing.
    closing: Vec<oneshot::Receiver<()>>,
    devices: ActorRef<DeviceSupervisorMsg>,
    /// Devices in a call: where their uplink audio goes (at most one route per device).
    audio: HashMap<DeviceId, AudioRoute>,
    timer: watch::Sender<Option<Instant>>,
    listen: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Where a device's uplink audio goes while it is in a call.
struct AudioRoute {
    call: String,
    tx: mpsc::Sender<Bytes>,
}

/// The broker actor.
#[derive(Debug, Default)]
pub struct BrokerActor;

impl Actor for BrokerActor {
    type Msg = BrokerMsg;
    type State = BrokerState;
    type Arguments = BrokerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BrokerMsg>,
        args: BrokerArgs,
    ) -> Result<BrokerState, ActorProcessingErr> {
        let (timer, timer_rx) = watch::channel(None);
        let listen = args
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut tasks = vec![
            tokio::spawn(crate::timer::run(timer_rx, myself.clone(), || {
                BrokerMsg::Tick
            })),
            tokio::spawn(accept(
                Arc::clone(&args.listener),
                None,
                myself.clone(),
                args.max_packet,
            )),
        ];
        if let Some((listener, acceptor)) = &args.tls {
            tasks.push(tokio::spawn(accept(
                Arc::clone(listener),
                Some(acceptor.clone()),
                myself.clone(),
                args.max_packet,
            )));
        }
        Ok(BrokerState {
            core: Broker::new(args.limits),
            auth: StoreAuthorizer { store: args.store },
            conns: HashMap::new(),
            writers: HashMap::new(),
            closing: Vec::new(),
            devices: args.devices,
            audio: HashMap::new(),
            timer,
            listen,
            tasks,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<BrokerMsg>,
        state: &mut BrokerState,
    ) -> Result<(), ActorProcessingErr> {
        for t in &state.tasks {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<BrokerMsg>,
        msg: BrokerMsg,
        state: &mut BrokerState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        match msg {
            BrokerMsg::Accepted {
                conn,
                source,
                tx,
                written,
            } => {
                state.conns.insert(conn, tx);
                state.writers.insert(conn, written);
                state.core.accepted_from(now, conn, source);
            }
            BrokerMsg::Revoke(who) => state.core.revoke(now, &who),
            BrokerMsg::Packet {
                conn,
                packet,
                credit,
            } => {
                metrics::counter!("switchboard_mqtt_packets_in_total").increment(1);
                state.core.handle_packet(now, conn, packet, &mut state.auth);
                // What this packet published travels on with its credit.
                pump(state, Some(credit));
                return Ok(());
            }
            BrokerMsg::ProtocolError { conn } => {
                metrics::counter!("switchboard_mqtt_protocol_errors_total").increment(1);
                state.core.protocol_error(now, conn);
            }
            BrokerMsg::UnsupportedProtocol { conn } => state.core.unsupported_protocol(now, conn),
            BrokerMsg::Closed { conn } => {
                state.core.closed(now, conn);
                state.forget(conn);
            }
            BrokerMsg::Closing(reply) => {
                let _ = reply.send(std::mem::take(&mut state.closing));
            }
            BrokerMsg::Publish {
                topic,
                payload,
                qos,
                retain,
            } => state.core.publish(now, &topic, payload, qos, retain),
            BrokerMsg::AudioRoute { device, call, tx } => match tx {
                Some(tx) => {
                    // Routes of calls that ended without saying so go now.
                    state.audio.retain(|_, r| !r.tx.is_closed());
                    state.audio.insert(device, AudioRoute { call, tx });
                }
                None => {
                    if state.audio.get(&device).is_some_and(|r| r.call == call) {
                        state.audio.remove(&device);
                    }
                }
            },
            BrokerMsg::Tick => {
                state.core.handle_timeout(now);
                // The timer task waits for a new deadline after each tick.
                state.timer.send_replace(None);
            }
            BrokerMsg::Status(reply) => {
                let _ = reply.send(BrokerStatus {
                    clients: state.core.clients(),
                    retained: state.core.retained(),
                    listen: state.listen.clone(),
                    connected: true,
                });
            }
        }
        pump(state, None);
        Ok(())
    }
}

impl BrokerState {
    /// Drop a connection's sender (its writer ends once the queue is written) and keep its
    /// writer's end signal in `closing` (those already over are pruned).
    fn forget(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.closing
            .retain_mut(|w| matches!(w.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        if let Some(w) = self.writers.remove(&conn) {
            self.closing.push(w);
        }
    }
}

fn pump(state: &mut BrokerState, credit: Option<Credit>) {
    while let Some((conn, packet)) = state.core.poll_transmit() {
        let Some(tx) = state.conns.get(&conn) else {
            continue;
        };
        let mut out = BytesMut::new();
        if packet.write(&mut out, usize::MAX).is_err() {
            continue;
        }
        if tx.try_send(out.freeze()).is_err() {
            // Too slow (or gone): drop the connection rather than buffer without bound.
            metrics::counter!("switchboard_mqtt_slow_consumers_total").increment(1);
            state.forget(conn);
            state.core.closed(Instant::now(), conn);
        } else {
            metrics::counter!("switchboard_mqtt_packets_out_total").increment(1);
        }
    }
    while let Some(ev) = state.core.poll_event() {
        match ev {
            BrokerEvent::Close { conn, reason } => {
                tracing::debug!(conn, ?reason, "closing MQTT connection");
                // Dropping the sender ends the writer after it flushed the queue.
                state.forget(conn);
            }
            BrokerEvent::Connected {
                principal,
                client_id,
                session_present,
                filters,
                ..
            } => {
                metrics::gauge!("switchboard_mqtt_clients").set(state.core.clients() as f64);
                let _ = state.devices.send_message(DeviceSupervisorMsg::Connected {
                    principal: principal.clone(),
                    client_id,
                });
                if session_present && !filters.is_empty() {
                    // A resumed session: its subscriptions exist already, and
                    // the broker itself resends what was unacknowledged.
                    let _ = state.devices.send_message(DeviceSupervisorMsg::Subscribed {
                        principal,
                        filters,
                        resumed: true,
                    });
                }
            }
            BrokerEvent::Disconnected {
                principal, reason, ..
            } => {
                metrics::gauge!("switchboard_mqtt_clients").set(state.core.clients() as f64);
                let _ = state
                    .devices
                    .send_message(DeviceSupervisorMsg::Disconnected {
                        principal,
                        clean: reason == CloseReason::ClientDisconnect,
                    });
            }
            BrokerEvent::Subscribed {
                principal, filters, ..
            } => {
                let _ = state.devices.send_message(DeviceSupervisorMsg::Subscribed {
                    principal,
                    filters,
                    resumed: false,
                });
            }
            BrokerEvent::Published {
                from,
                topic,
                payload,
                ..
            } => {
                if let Some(from) = from {
                    if route_audio(&mut state.audio, &from, &topic, &payload) {
                        continue;
                    }
                    let _ = state.devices.send_message(DeviceSupervisorMsg::Published {
                        from,
                        topic,
                        payload,
                        credit: credit.clone(),
                    });
                }
            }
        }
    }
    metrics::gauge!("switchboard_mqtt_retained_messages").set(state.core.retained() as f64);
    metrics::gauge!("switchboard_mqtt_retained_bytes").set(state.core.retained_bytes() as f64);
    metrics::gauge!("switchboard_mqtt_claimants").set(state.core.claimants() as f64);
    let next = state.core.poll_timeout();
    if *state.timer.borrow() != next {
        let _ = state.timer.send(next);
    }
}

/// Hand a device's `audio/up` frame to its call's channel, if the call routed it here.
/// `true`: taken care of (queued, or dropped and counted on a full channel: drop-newest).
fn route_audio(
    routes: &mut HashMap<DeviceId, AudioRoute>,
    from: &Principal,
    topic: &str,
    payload: &Bytes,
) -> bool {
    let Principal::Device(id) = from else {
        return false;
    };
    if !topic.ends_with("/audio/up") {
        return false;
    }
    let Some(route) = routes.get(id) else {
        return false;
    };
    if !matches!(Topic::parse(topic), Ok(Topic::AudioUp(d)) if &d == id) {
        return false;
    }
    match route.tx.try_send(payload.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics::counter!("switchboard_device_voice_dropped_total", "dir" => "up").increment(1);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            routes.remove(id);
            false
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// TLS handshakes in progress on one listener, in all and per source: a
/// counter shared by the accept loop and the handshake tasks (driver
/// bookkeeping, not protocol state).
#[derive(Clone, Default)]
struct Handshakes(Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>);

/// One handshake's place; given back when dropped.
struct HandshakeSlot {
    table: Handshakes,
    source: std::net::IpAddr,
}

impl Handshakes {
    /// A place for a handshake from `ip`, unless the global or the
    /// per-source cap is reached.
    fn take(&self, ip: std::net::IpAddr) -> Option<HandshakeSlot> {
        let source = source_bucket(ip);
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = t.values().sum();
        let mine = t.get(&source).copied().unwrap_or(0);
        if total >= MAX_TLS_HANDSHAKES || mine >= MAX_TLS_HANDSHAKES_PER_SOURCE {
            return None;
        }
        *t.entry(source).or_default() += 1;
        Some(HandshakeSlot {
            table: self.clone(),
            source,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.remove(&self.source);
            }
        }
    }
}

/// The per-source bucket of an address: IPv4 as is, IPv6 by /64.
fn source_bucket(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Accept connections on one listener; with `tls`, each connection first
/// completes a TLS handshake (in its own task, with a deadline).
async fn accept(
    listener: Arc<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    broker: ActorRef<BrokerMsg>,
    max_packet: usize,
) {
    let handshakes = Handshakes::default();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
                let broker = broker.clone();
                match &tls {
                    None => {
                        let (rd, wr) = stream.into_split();
                        tokio::spawn(connection(rd, wr, addr, conn, broker, max_packet));
                    }
                    Some(acceptor) => {
                        let Some(slot) = handshakes.take(addr.ip()) else {
                            // Too many handshakes in progress: close at once
                            // rather than hold a descriptor for a stranger.
                            metrics::counter!("switchboard_mqtt_tls_handshakes_refused_total")
                                .increment(1);
                            tracing::debug!(%addr, "too many MQTT TLS handshakes; closing");
                            drop(stream);
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let handshake = acceptor.accept(stream);
                            let done = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await;
                            drop(slot);
                            match done {
                                Ok(Ok(tls)) => {
                                    let (rd, wr) = tokio::io::split(tls);
                                    connection(rd, wr, addr, conn, broker, max_packet).await;
                                }
                                Ok(Err(err)) => {
                                    metrics::counter!(
                                        "switchboard_mqtt_tls_handshake_failures_total"
                                    )
                                    .increment(1);
                                    tracing::debug!(%addr, %err, "MQTT TLS handshake failed");
                                }
                                Err(_) => {
                                    metrics::counter!(
                                        "switchboard_mqtt_tls_handshake_failures_total"
                                    )
                                    .increment(1);
                                    tracing::debug!(%addr, "MQTT TLS handshake timed out");
                                }
                            }
                        });
                    }
                }
            }
            Err(err) => {
                tracing::warn!(%err, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection<R, W>(
    mut rd: R,
    mut wr: W,
    addr: SocketAddr,
    conn: ConnId,
    broker: ActorRef<BrokerMsg>,
    max_packet: usize,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Encoded packets, not `Packet`s: the channel allocates its first block
    // of 32 slots up front, and a `Packet` slot is ~150 bytes (a `Bytes` 32).
    let (tx, mut rx) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
    let (written_tx, written) = oneshot::channel::<()>();
    if broker
        .send_message(BrokerMsg::Accepted {
            conn,
            source: addr.ip(),
            tx,
            written,
        })
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(first) = rx.recv().await {
            // Coalesce whatever else is queued into one write.
            let out = match rx.try_recv() {
                Err(_) => first,
                Ok(second) => {
                    buf.clear();
                    buf.extend_from_slice(&first);
                    buf.extend_from_slice(&second);
                    while buf.len() < 64 * 1024 {
                        let Ok(more) = rx.try_recv() else { break };
                        buf.extend_from_slice(&more);
                    }
                    buf.split().freeze()
                }
            };
            if wr.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
        drop(written_tx);
    });
    // Small to start with: an ESP32's telemetry is a few hundred bytes, and
    // the buffer lives as long as the connection.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let credits = Arc::new(tokio::sync::Semaphore::new(CREDITS));
    let outcome = loop {
        match Packet::read(&mut buf, max_packet) {
            Ok(packet) => {
                let Ok(permit) = Arc::clone(&credits).acquire_owned().await else {
                    break BrokerMsg::Closed { conn };
                };
                let credit = Arc::new(permit);
                if broker
                    .send_message(BrokerMsg::Packet {
                        conn,
                        packet,
                        credit,
                    })
                    .is_err()
                {
                    break BrokerMsg::Closed { conn };
                }
                continue;
            }
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(rumqttc::mqttbytes::Error::InvalidProtocolLevel(_)) => {
                break BrokerMsg::UnsupportedProtocol { conn }
            }
            Err(err) => {
                tracing::debug!(%addr, %err, "bad MQTT packet; closing");
                break BrokerMsg::ProtocolError { conn };
            }
        }
        if buf.is_empty() && buf.capacity() > 8 * READ_CHUNK {
            // A large packet came and went: give its memory back.
            buf = BytesMut::with_capacity(READ_CHUNK);
        } else if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK.min(max_packet + 8));
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break BrokerMsg::Closed { conn },
            Ok(_) => {}
        }
    };
    let _ = broker.send_message(outcome);
    // The writer ends when the broker drops our sender; don't wait for it here.
    drop(writer);
}
