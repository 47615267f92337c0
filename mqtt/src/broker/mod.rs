//! The embedded MQTT broker core (MQTT Version 3.1.1, OASIS Standard, 29
//! October 2014), sans-IO in the style of quinn-proto: the transport driver
//! decodes packets with `rumqttc`'s codec and feeds them in with the time;
//! the broker answers with packets to transmit ([`Broker::poll_transmit`]),
//! events for the gateway ([`Broker::poll_event`]) and the next instant it
//! wants to be woken ([`Broker::poll_timeout`]). It never reads the clock,
//! does IO or spawns.
//!
//! Scope: CONNECT/CONNACK with an [`Authorizer`] (§3.1, §3.2), takeover of a
//! client id (§3.1.4), persistent sessions in memory (§3.1.2.4), PUBLISH at
//! QoS 0/1/2 inbound (§4.3) and QoS 0/1 outbound (granted QoS is capped at 1),
//! per-topic ACL on PUBLISH and SUBSCRIBE, retained messages (§3.3.1.3), Last
//! Will (§3.1.2.5), keep-alive (§3.1.2.10) and a CONNECT deadline. MQTT 3.1.1
//! has no negative acknowledgement for PUBLISH, so a refused publish closes
//! the connection (§3.3.5 allows this). Every map and queue is bounded by
//! [`Limits`].

mod connect;
#[cfg(any(test, feature = "fuzzing"))]
mod invariants;
mod retained;
mod router;
mod session;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_abuse;
#[cfg(test)]
mod tests_session;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, LastWill, Packet, PubAck, PubComp, PubRec, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use rumqttc::mqttbytes::QoS;

#[cfg(any(test, feature = "fuzzing"))]
pub use invariants::{RetainedEntry, SessionView};
use retained::RetainedStore;
use router::{valid_topic_filter, valid_topic_name, Router, SessionKey};
use session::{Delivery, Message, Session};

/// The transport driver's id for one connection.
pub type ConnId = u64;

/// Bounds on everything the broker keeps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest packet the driver decodes (it passes this to `Packet::read`).
    pub max_packet: usize,
    /// Connected clients at once; more get CONNACK "server unavailable".
    /// Connections still waiting for CONNECT are capped at the same number.
    pub max_clients: usize,
    /// Subscriptions per client; more get the SUBACK failure code 0x80.
    pub max_subscriptions: usize,
    /// Outgoing QoS 1 messages sent and not acknowledged, per client. Also
    /// caps incoming QoS 2 messages waiting for PUBREL.
    pub max_inflight: u16,
    /// Messages waiting per client (offline persistent session, or inflight
    /// window full). Offline: the oldest is dropped; online: the client is
    /// closed as a slow consumer.
    pub max_queued: usize,
    /// Retained messages kept; beyond this, new retained topics are not kept.
    pub max_retained: usize,
    /// Longest client id accepted.
    pub max_client_id: usize,
    /// CONNECT must arrive within this after the transport connection.
    pub connect_timeout: Duration,
    /// Sessions kept, connected or not (persistent sessions outlive their
    /// connection). When full, the session offline longest is dropped.
    pub max_sessions: usize,
    /// Levels (`/`-separated) in a topic name or filter.
    pub max_topic_levels: usize,
    /// Claimant (not yet claimed, password-less) connections at once. They
    /// count toward `max_clients` too, so devices and services always keep
    /// `max_clients - max_claimants` connections that claimants cannot take.
    pub max_claimants: usize,
    /// Claimant connections from one source at once.
    pub max_claimants_per_source: usize,
    /// Connections from one source still waiting for CONNECT.
    pub max_awaiting_per_source: usize,
    /// How long a claimant connection may live, whatever its keep-alive
    /// (a claim is a few round trips).
    pub claimant_lifetime: Duration,
    /// How long a claimant revoked with [`Broker::revoke`] (its claim is
    /// done) keeps its connection, so the answer it was just sent gets out
    /// before the close.
    pub claimant_grace: Duration,
    /// Bytes (topic + payload) of all retained messages together.
    pub max_retained_bytes: usize,
    /// Bytes (topic + payload) of the retained messages one client owns
    /// (published or left as its will).
    pub max_retained_bytes_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet: 64 * 1024,
            max_clients: 20_000,
            max_subscriptions: 32,
            max_inflight: 32,
            max_queued: 1000,
            max_retained: 100_000,
            max_client_id: 128,
            connect_timeout: Duration::from_secs(10),
            max_sessions: 40_000,
            max_topic_levels: 32,
            max_claimants: 2_000,
            max_claimants_per_source: 8,
            max_awaiting_per_source: 64,
            claimant_lifetime: Duration::from_secs(30),
            claimant_grace: Duration::from_secs(2),
            max_retained_bytes: 16 * 1024 * 1024,
            max_retained_bytes_per_client: 1024,
        }
    }
}

/// Who a connection is, decided by the [`Authorizer`] at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A claimed device with its credential.
    Device(crate::DeviceId),
    /// A device that is not claimed yet: may only use `claim/{id}/request`
    /// and `claim/{id}/response`.
    Claimant(crate::DeviceId),
    /// An operator/service account: every topic.
    Service(String),
}

/// The [`Authorizer`]'s answer to a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Accept the connection as this principal.
    Accept(Principal),
    /// Refuse with this CONNACK return code (§3.2.2.3), e.g.
    /// `BadUserNamePassword` or `NotAuthorized`.
    Reject(ConnectReturnCode),
}

/// Implemented by the gateway (credential lookup in its store, topic rules
/// from [`crate::may_publish`] / [`crate::may_subscribe`]).
pub trait Authorizer {
    /// Decide who the client is. `username`/`password` are `None` when absent
    /// (or empty) in the CONNECT. `client_id` is as sent (may be empty).
    fn authenticate(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> AuthDecision;
    /// Whether `who` may publish on `topic` (also asked for the Last Will).
    fn may_publish(&self, who: &Principal, topic: &str) -> bool;
    /// Whether `who` may subscribe to `filter`.
    fn may_subscribe(&self, who: &Principal, filter: &str) -> bool;
    /// Whether a message `who` publishes with RETAIN=1 on `topic` (already
    /// allowed by [`Authorizer::may_publish`]) is kept. When not, it is
    /// delivered like any other message and not stored.
    fn may_retain(&self, _who: &Principal, _topic: &str) -> bool {
        true
    }
}

/// Why a connection or session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// A malformed or unexpected packet, an invalid topic, or an unsupported
    /// protocol level.
    ProtocolError,
    /// Refused by the [`Authorizer`] at CONNECT or by the topic ACL.
    NotAuthorized,
    /// Nothing received for 1.5 × keep-alive (§3.1.2.10).
    KeepAliveTimeout,
    /// Another connection with the same client id took over (§3.1.4).
    TakenOver,
    /// Inflight window and queue are full.
    SlowConsumer,
    /// No CONNECT within [`Limits::connect_timeout`].
    ConnectTimeout,
    /// The client sent DISCONNECT.
    ClientDisconnect,
    /// [`Limits::max_clients`] (or [`Limits::max_sessions`]) reached.
    TooManyClients,
    /// The transport closed or failed without a DISCONNECT
    /// ([`Broker::closed`]). Added to the agreed API: none of the others
    /// describes a lost connection.
    ConnectionLost,
    /// A claimant outlived [`Limits::claimant_lifetime`].
    ClaimantExpired,
    /// The gateway revoked the principal ([`Broker::revoke`]): its
    /// credential was reset or its claim completed.
    Revoked,
}

/// What the broker tells the gateway.
#[derive(Debug, Clone)]
pub enum BrokerEvent {
    /// A client completed CONNECT.
    Connected {
        /// Its connection.
        conn: ConnId,
        /// Its client id (a generated `auto-…` id if it sent an empty one).
        client_id: String,
        /// Who it is.
        principal: Principal,
        /// A persistent session was resumed (CONNACK session present).
        session_present: bool,
        /// The subscription filters the session already has (resumed).
        filters: Vec<String>,
    },
    /// A client's connection ended (clean DISCONNECT, transport close,
    /// error). `will_sent` says whether its Last Will was published.
    Disconnected {
        /// Its connection.
        conn: ConnId,
        /// Its client id.
        client_id: String,
        /// Who it was.
        principal: Principal,
        /// Why.
        reason: CloseReason,
        /// Whether its Last Will was published.
        will_sent: bool,
    },
    /// A client was granted these subscription filters (after the ACL):
    /// the gateway uses it to know when a device can receive its commands.
    Subscribed {
        /// Its connection.
        conn: ConnId,
        /// Who it is.
        principal: Principal,
        /// The filters granted by this SUBSCRIBE.
        filters: Vec<String>,
    },
    /// Every publish accepted from a client (after ACL), including
    /// published wills: the gateway's in-process view. Publishes made with
    /// [`Broker::publish`] are not reported back.
    Published {
        /// The publishing client's principal (also for its will). `None` is
        /// not produced today.
        from: Option<Principal>,
        /// Topic name.
        topic: String,
        /// Payload.
        payload: Bytes,
        /// QoS it was published with.
        qos: QoS,
        /// RETAIN flag it was published with.
        retain: bool,
    },
    /// The driver must close this transport connection after flushing what
    /// it already got from [`Broker::poll_transmit`] (drain transmits before
    /// acting on this event: a refusing CONNACK precedes it).
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
}

enum ConnState {
    AwaitingConnect,
    Connected {
        session: SessionKey,
        keep_alive: u16,
        last_rx: Instant,
        will: Option<LastWill>,
        /// Claimants only: the end of their lifetime.
        expires: Option<Instant>,
    },
}

/// Where a connection comes from, as the driver says (IPv6 is bucketed by
/// /64 here: one host usually holds a whole /64).
pub type Source = std::net::IpAddr;

fn source_key(ip: Source) -> Source {
    match ip {
        Source::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Source::V4(v4),
            None => {
                let s = v6.segments();
                Source::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

struct Conn {
    state: ConnState,
    accepted_at: Instant,
    /// The source key, if the driver gave one.
    source: Option<Source>,
    /// Counted in `claimants` / `claimants_by_source`.
    claimant: bool,
    /// The key of this connection's entry in `Broker::timers`, if any.
    timer: Option<Instant>,
}

/// The broker core. See the module docs.
pub struct Broker {
    limits: Limits,
    conns: HashMap<ConnId, Conn>,
    sessions: HashMap<SessionKey, Session>,
    by_client: HashMap<String, SessionKey>,
    next_session: SessionKey,
    next_auto_id: u64,
    router: Router,
    retained: RetainedStore,
    /// (deadline, conn), at most one per connection; a deadline may be
    /// earlier than the real one (keep-alive is extended lazily).
    timers: BTreeSet<(Instant, ConnId)>,
    transmits: VecDeque<(ConnId, Packet)>,
    events: VecDeque<BrokerEvent>,
    /// Connections the broker decided to close while routing (slow consumers).
    pending_closes: Vec<(ConnId, CloseReason)>,
    connected: usize,
    awaiting: usize,
    claimants: usize,
    /// Connections waiting for CONNECT, per source (no zero entries).
    awaiting_by_source: HashMap<Source, usize>,
    /// Claimant connections per source (no zero entries).
    claimants_by_source: HashMap<Source, usize>,
    dropped: u64,
    /// Retained messages not kept (not allowed there, or over a budget).
    dropped_retains: u64,
}

impl Broker {
    /// A broker with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            retained: RetainedStore::new(
                limits.max_retained,
                limits.max_retained_bytes,
                limits.max_retained_bytes_per_client,
            ),
            limits,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            by_client: HashMap::new(),
            next_session: 1,
            next_auto_id: 1,
            router: Router::default(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pending_closes: Vec::new(),
            connected: 0,
            awaiting: 0,
            claimants: 0,
            awaiting_by_source: HashMap::new(),
            claimants_by_source: HashMap::new(),
            dropped: 0,
            dropped_retains: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A transport connection was accepted, source unknown (no per-source
    /// caps apply). See [`Broker::accepted_from`].
    pub fn accepted(&mut self, now: Instant, conn: ConnId) {
        self.accept(now, conn, None);
    }

    /// A transport connection from `source` was accepted. If too many
    /// connections (in all, or from this source) are already waiting for
    /// CONNECT, it is closed at once (`TooManyClients`).
    pub fn accepted_from(&mut self, now: Instant, conn: ConnId, source: Source) {
        self.accept(now, conn, Some(source_key(source)));
    }

    fn accept(&mut self, now: Instant, conn: ConnId, source: Option<Source>) {
        if self.conns.contains_key(&conn) {
            return;
        }
        let from_source = source.map_or(0, |s| count(&self.awaiting_by_source, s));
        if self.awaiting >= self.limits.max_clients
            || from_source >= self.limits.max_awaiting_per_source
        {
            self.events.push_back(BrokerEvent::Close {
                conn,
                reason: CloseReason::TooManyClients,
            });
            return;
        }
        self.awaiting += 1;
        if let Some(s) = source {
            *self.awaiting_by_source.entry(s).or_default() += 1;
        }
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::AwaitingConnect,
                accepted_at: now,
                source,
                claimant: false,
                timer: None,
            },
        );
        self.schedule(conn);
    }

    /// Close every connection of `who` (a device whose credential was reset,
    /// a claimant whose device is now claimed) and discard its session, so
    /// nothing of it outlives the revocation. Its will is published. A
    /// claimant keeps its connection for [`Limits::claimant_grace`] more, so
    /// the claim answer it was just sent is not cut off.
    pub fn revoke(&mut self, now: Instant, who: &Principal) {
        let client_id = match who {
            Principal::Device(id) | Principal::Claimant(id) => id.as_str(),
            Principal::Service(_) => return,
        };
        let Some(key) = self.by_client.get(client_id).copied() else {
            return;
        };
        let Some(s) = self.sessions.get(&key) else {
            return;
        };
        if &s.principal != who {
            return;
        }
        if let (Principal::Claimant(_), Some(conn)) = (who, s.conn) {
            let soon = now.checked_add(self.limits.claimant_grace);
            if let Some(Conn {
                state: ConnState::Connected { expires, .. },
                ..
            }) = self.conns.get_mut(&conn)
            {
                *expires = match (*expires, soon) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => b.or(a),
                };
            }
            self.schedule(conn);
            return;
        }
        if let Some(conn) = s.conn {
            self.close(now, conn, CloseReason::Revoked, true);
        }
        self.discard_session(key);
        self.drain_closes(now);
    }

    /// Connected claimants.
    pub fn claimants(&self) -> usize {
        self.claimants
    }

    /// One decoded packet from `conn`. Packets from unknown (already closed)
    /// connections are ignored.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        conn: ConnId,
        packet: Packet,
        auth: &mut dyn Authorizer,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let session = match &mut c.state {
            ConnState::AwaitingConnect => {
                match packet {
                    Packet::Connect(connect) => self.on_connect(now, conn, connect, auth),
                    // §3.1: the first packet must be CONNECT.
                    _ => self.close(now, conn, CloseReason::ProtocolError, true),
                }
                self.drain_closes(now);
                return;
            }
            ConnState::Connected {
                session, last_rx, ..
            } => {
                *last_rx = now;
                *session
            }
        };
        match packet {
            Packet::Publish(p) => self.on_publish(now, conn, session, p, auth),
            Packet::PubAck(a) => self.on_puback(conn, session, a.pkid),
            Packet::PubRel(r) => self.on_pubrel(conn, session, r.pkid),
            // The broker sends QoS ≤ 1 only; stray QoS 2 acks are ignored.
            Packet::PubRec(_) | Packet::PubComp(_) => {}
            Packet::Subscribe(s) => self.on_subscribe(conn, session, s, auth),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, session, u),
            Packet::PingReq => self.transmits.push_back((conn, Packet::PingResp)),
            // §3.14.4: discard the will, close.
            Packet::Disconnect => self.close(now, conn, CloseReason::ClientDisconnect, true),
            // §3.1.0: a second CONNECT is a protocol violation; server-to-client
            // packets from a client are too.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => self.close(now, conn, CloseReason::ProtocolError, true),
        }
        self.drain_closes(now);
    }

    /// The driver could not decode what `conn` sent (malformed / oversized):
    /// close it and publish its will.
    pub fn protocol_error(&mut self, now: Instant, conn: ConnId) {
        self.close(now, conn, CloseReason::ProtocolError, true);
        self.drain_closes(now);
    }

    /// The first packet of `conn` was a CONNECT with a protocol level this
    /// broker does not speak (the codec fails with `InvalidProtocolLevel`):
    /// answer CONNACK 0x01 and close (§3.1.2.2). Later in a connection this
    /// is the same as [`Broker::protocol_error`].
    pub fn unsupported_protocol(&mut self, now: Instant, conn: ConnId) {
        if let Some(Conn {
            state: ConnState::AwaitingConnect,
            ..
        }) = self.conns.get(&conn)
        {
            self.refuse(conn, ConnectReturnCode::RefusedProtocolVersion);
            self.close(now, conn, CloseReason::ProtocolError, true);
        } else {
            self.protocol_error(now, conn);
        }
        self.drain_closes(now);
    }

    /// The transport closed or failed: the session ends (will published
    /// unless the client sent DISCONNECT first). No `Close` event is emitted.
    pub fn closed(&mut self, now: Instant, conn: ConnId) {
        self.close(now, conn, CloseReason::ConnectionLost, false);
        self.drain_closes(now);
    }

    /// Publish from the gateway itself (in-process link): routed to
    /// subscribers, retained if asked. Not subject to ACL. An invalid topic
    /// name (empty, wildcards, NUL, too many levels) is ignored.
    pub fn publish(&mut self, now: Instant, topic: &str, payload: Bytes, qos: QoS, retain: bool) {
        if !valid_topic_name(topic, self.limits.max_topic_levels) {
            return;
        }
        self.route(topic, payload, qos, retain, None);
        self.drain_closes(now);
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.connected
    }

    /// Retained messages stored.
    pub fn retained(&self) -> usize {
        self.retained.len()
    }

    /// Bytes (topic + payload) of the retained messages stored.
    pub fn retained_bytes(&self) -> usize {
        self.retained.bytes()
    }

    /// Retained messages not kept so far: RETAIN on a topic where the
    /// [`Authorizer`] does not allow it, or over a byte or count budget.
    pub fn dropped_retains(&self) -> u64 {
        self.dropped_retains
    }

    /// Sessions kept (connected, or persistent and offline).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Messages dropped so far (full offline queues, slow consumers,
    /// retained store full, sessions evicted with messages).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Fire due timers: CONNECT deadline and keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, conn));
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            c.timer = None;
            let reason = match c.state {
                ConnState::AwaitingConnect => CloseReason::ConnectTimeout,
                ConnState::Connected {
                    expires: Some(e), ..
                } if e <= now => CloseReason::ClaimantExpired,
                ConnState::Connected { .. } => CloseReason::KeepAliveTimeout,
            };
            match self.deadline(conn) {
                Some(d) if d > now => self.schedule(conn),
                None => {}
                Some(_) => self.close(now, conn, reason, true),
            }
        }
        self.drain_closes(now);
    }

    /// Next packet to send: the connection and the packet to encode.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, Packet)> {
        self.transmits.pop_front()
    }

    /// Next event for the gateway.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.pop_front()
    }

    /// When [`Broker::handle_timeout`] should be called next. May be early
    /// (keep-alive deadlines move lazily); calling it early is harmless.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    // ---- timers -------------------------------------------------------

    /// The real deadline of `conn`.
    fn deadline(&self, conn: ConnId) -> Option<Instant> {
        let c = self.conns.get(&conn)?;
        match &c.state {
            ConnState::AwaitingConnect => c.accepted_at.checked_add(self.limits.connect_timeout),
            ConnState::Connected {
                keep_alive,
                last_rx,
                expires,
                ..
            } => {
                // §3.1.2.10: one and a half times the keep-alive period.
                let keep = match keep_alive {
                    0 => None,
                    k => last_rx.checked_add(Duration::from_millis(u64::from(*k) * 1500)),
                };
                match (keep, *expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// (Re)place the timer entry of `conn` at its real deadline.
    fn schedule(&mut self, conn: ConnId) {
        self.unschedule(conn);
        let deadline = self.deadline(conn);
        if let (Some(d), Some(c)) = (deadline, self.conns.get_mut(&conn)) {
            c.timer = Some(d);
            self.timers.insert((d, conn));
        }
    }

    fn unschedule(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if let Some(t) = c.timer.take() {
                self.timers.remove(&(t, conn));
            }
        }
    }

    // ---- publish path -------------------------------------------------

    fn on_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        key: SessionKey,
        mut p: Publish,
        auth: &mut dyn Authorizer,
    ) {
        if !valid_topic_name(&p.topic, self.limits.max_topic_levels) {
            // §4.7.3 / §3.3.2.1: wildcards are not allowed in a topic name.
            self.close(now, conn, CloseReason::ProtocolError, true);
            return;
        }
        let Some(principal) = self.sessions.get(&key).map(|s| s.principal.clone()) else {
            return;
        };
        if !auth.may_publish(&principal, &p.topic) {
            self.close(now, conn, CloseReason::NotAuthorized, true);
            return;
        }
        // Retained only where the gateway says it means something; elsewhere
        // the message is delivered and not kept.
        if p.retain && !auth.may_retain(&principal, &p.topic) {
            p.retain = false;
            self.dropped_retains += 1;
        }
        match p.qos {
            QoS::AtMostOnce => self.accept_publish(key, principal, p),
            QoS::AtLeastOnce => {
                let pkid = p.pkid;
                self.accept_publish(key, principal, p);
                self.transmits
                    .push_back((conn, Packet::PubAck(PubAck::new(pkid))));
            }
            QoS::ExactlyOnce => {
                let pkid = p.pkid;
                let cap = usize::from(self.limits.max_inflight.max(1));
                let Some(s) = self.sessions.get_mut(&key) else {
                    return;
                };
                if !s.incoming.contains_key(&pkid) {
                    if s.incoming.len() >= cap {
                        self.close(now, conn, CloseReason::ProtocolError, true);
                        return;
                    }
                    s.incoming.insert(pkid, p);
                }
                // A duplicate before PUBREL is acknowledged again, not stored twice.
                self.transmits
                    .push_back((conn, Packet::PubRec(PubRec::new(pkid))));
            }
        }
    }

    fn on_pubrel(&mut self, conn: ConnId, key: SessionKey, pkid: u16) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let principal = s.principal.clone();
        if let Some(p) = s.incoming.remove(&pkid) {
            self.accept_publish(key, principal, p);
        }
        // §4.3.3: PUBCOMP even for an unknown id (a resent PUBREL).
        self.transmits
            .push_back((conn, Packet::PubComp(PubComp::new(pkid))));
    }

    fn on_puback(&mut self, conn: ConnId, key: SessionKey, pkid: u16) {
        let limits = &self.limits;
        if let Some(s) = self.sessions.get_mut(&key) {
            for p in s.acked(pkid, limits) {
                self.transmits.push_back((conn, Packet::Publish(p)));
            }
        }
    }

    /// A client publish passed validation and ACL: report and route it.
    fn accept_publish(&mut self, key: SessionKey, principal: Principal, p: Publish) {
        self.events.push_back(BrokerEvent::Published {
            from: Some(principal),
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            qos: p.qos,
            retain: p.retain,
        });
        let owner = self.sessions.get(&key).map(|s| s.client_id.clone());
        self.route(&p.topic, p.payload, p.qos, p.retain, owner.as_deref());
    }

    /// Store if retained (charged to `owner`'s byte budget), and deliver to
    /// every matching session once at min(message QoS, highest granted QoS)
    /// (§3.3.5).
    pub(super) fn route(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        owner: Option<&str>,
    ) {
        if retain {
            // §3.3.1.3: a zero-byte payload removes the retained message.
            if self.retained.store(topic, payload.clone(), qos, owner)
                == retained::StoreOutcome::Full
            {
                self.dropped += 1;
                self.dropped_retains += 1;
            }
        }
        let targets = self.router.matches(topic);
        for (key, granted) in targets {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            let msg = Message {
                topic: topic.to_string(),
                payload: payload.clone(),
                qos: min_qos(qos, granted),
                retain: false,
            };
            match s.deliver(msg, &self.limits) {
                Delivery::Send(p) => {
                    if let Some(conn) = s.conn {
                        self.transmits.push_back((conn, Packet::Publish(p)));
                    }
                }
                Delivery::Queued { evicted } => self.dropped += u64::from(evicted),
                Delivery::Dropped => self.dropped += 1,
                Delivery::Overflow => {
                    self.dropped += 1;
                    if let Some(conn) = s.conn {
                        self.pending_closes.push((conn, CloseReason::SlowConsumer));
                    }
                }
            }
        }
    }

    fn drain_closes(&mut self, now: Instant) {
        while let Some((conn, reason)) = self.pending_closes.pop() {
            self.close(now, conn, reason, true);
        }
    }

    // ---- subscriptions ------------------------------------------------

    fn on_subscribe(
        &mut self,
        conn: ConnId,
        key: SessionKey,
        sub: Subscribe,
        auth: &mut dyn Authorizer,
    ) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut granted = Vec::new();
        for f in sub.filters {
            let ok = valid_topic_filter(&f.path, self.limits.max_topic_levels)
                && auth.may_subscribe(&s.principal, &f.path)
                && (s.subs.contains_key(&f.path) || s.subs.len() < self.limits.max_subscriptions);
            if !ok {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            // Outgoing QoS 2 is not implemented: grant at most QoS 1 (§3.9.3).
            let qos = min_qos(f.qos, QoS::AtLeastOnce);
            s.subs.insert(f.path.clone(), qos);
            self.router.insert(&f.path, key, qos);
            codes.push(SubscribeReasonCode::Success(qos));
            granted.push((f.path, qos));
        }
        self.transmits
            .push_back((conn, Packet::SubAck(SubAck::new(sub.pkid, codes))));
        if !granted.is_empty() {
            self.events.push_back(BrokerEvent::Subscribed {
                conn,
                principal: s.principal.clone(),
                filters: granted.iter().map(|(f, _)| f.clone()).collect(),
            });
        }
        // §3.8.4: retained messages matching a new (or replaced) subscription.
        let mut seen = HashSet::new();
        for (filter, qos) in granted {
            for r in self.retained.matching(&filter) {
                if !seen.insert(r.topic.clone()) {
                    continue;
                }
                let mut msg = Message {
                    topic: r.topic.clone(),
                    payload: r.payload.clone(),
                    qos: min_qos(r.qos, qos),
                    retain: true,
                };
                // A large retained snapshot must not close the subscriber as
                // a slow consumer: what does not fit goes out at QoS 0.
                if msg.qos != QoS::AtMostOnce && !s.has_room(&self.limits) {
                    msg.qos = QoS::AtMostOnce;
                }
                if let Delivery::Send(p) = s.deliver(msg, &self.limits) {
                    self.transmits.push_back((conn, Packet::Publish(p)));
                }
            }
        }
    }

    fn on_unsubscribe(&mut self, conn: ConnId, key: SessionKey, u: Unsubscribe) {
        if let Some(s) = self.sessions.get_mut(&key) {
            for t in &u.topics {
                if s.subs.remove(t).is_some() {
                    self.router.remove(t, key);
                }
            }
        }
        self.transmits
            .push_back((conn, Packet::UnsubAck(UnsubAck::new(u.pkid))));
    }
}

/// Connections counted for `source` in `map`.
fn count(map: &HashMap<Source, usize>, source: Source) -> usize {
    map.get(&source).copied().unwrap_or(0)
}

/// Take one off `source` in `map`, dropping the entry at zero.
fn uncount(map: &mut HashMap<Source, usize>, source: Source) {
    if let Some(n) = map.get_mut(&source) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&source);
        }
    }
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    if a as u8 <= b as u8 {
        a
    } else {
        b
    }
}
