//! Fuzz target for the embedded MQTT broker core (MQTT 3.1.1, sans-IO):
//! the input is read as a small program of steps from several clients
//! (accept, CONNECT with a client id / user / password kind and a will,
//! SUBSCRIBE, PUBLISH with QoS/retain/payload size, acks, UNSUBSCRIBE,
//! PINGREQ, DISCONNECT, transport loss, takeover, raw packet bytes through
//! the codec, gateway publishes, credential reset and claim completion,
//! time advancing on a virtual clock). The authorizer follows the
//! gateway's `StoreAuthorizer` (client id = user name, claimant only while
//! unclaimed, the crate's topic rules, a device retains only its status).
//!
//! After every step: the broker's own bookkeeping agrees with itself and
//! stays within its limits (`Broker::check_invariants`), no device receives
//! or publishes outside `devices/{its id}/…` (its topic rules), a claimant
//! never receives device traffic, retained messages a client owns are only
//! its own `devices/{id}/status` within 1 KiB per client and the total
//! budget, and every packet the broker sends encodes and decodes.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, LastWill, Login, Packet, PubAck, PubRel, Publish, Subscribe,
    SubscribeFilter, Unsubscribe,
};
use rumqttc::mqttbytes::{Protocol, QoS};
use switchboard_fuzz::Program;
use switchboard_mqtt::broker::{AuthDecision, Authorizer, Broker, BrokerEvent, Limits, Principal};
use switchboard_mqtt::{
    claimant_may_publish, claimant_may_subscribe, may_publish, may_subscribe,
    principal_may_publish, principal_may_retain, principal_may_subscribe, DeviceId,
};

const IDS: [&str; 4] = ["d0", "d1", "d2", "d3"];
const SLOTS: usize = 6;

/// The gateway's authorizer, with the store replaced by a set of claimed
/// device ids; the password of device `d` is `pw-d`.
struct FuzzAuth {
    claimed: HashSet<String>,
}

impl Authorizer for FuzzAuth {
    fn authenticate(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> AuthDecision {
        let Some(id) = username.and_then(|u| DeviceId::parse(u).ok()) else {
            return AuthDecision::Reject(ConnectReturnCode::BadUserNamePassword);
        };
        if client_id != id.as_str() {
            return AuthDecision::Reject(ConnectReturnCode::BadClientId);
        }
        let claimed = self.claimed.contains(id.as_str());
        match password.unwrap_or("") {
            "" if claimed => AuthDecision::Reject(ConnectReturnCode::NotAuthorized),
            "" => AuthDecision::Accept(Principal::Claimant(id)),
            p if claimed && p == format!("pw-{id}") => AuthDecision::Accept(Principal::Device(id)),
            _ => AuthDecision::Reject(ConnectReturnCode::BadUserNamePassword),
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

/// The broker's vocabulary read from the program: device ids, QoS levels, topics and
/// payloads.
trait Shapes {
    fn id(&mut self) -> &'static str;
    fn qos(&mut self) -> QoS;
    fn topic(&mut self) -> String;
    fn payload(&mut self) -> Bytes;
}

impl Shapes for Program<'_> {
    fn id(&mut self) -> &'static str {
        IDS[usize::from(self.byte()) % IDS.len()]
    }
    fn qos(&mut self) -> QoS {
        match self.byte() % 3 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }
    /// A topic name or filter: mostly the device protocol's shapes, with
    /// wildcards and odd pieces mixed in.
    fn topic(&mut self) -> String {
        let kind = self.byte();
        let id = self.id();
        let req = format!("r{}", self.byte() % 4);
        match kind % 22 {
            0 => format!("devices/{id}/status"),
            1 => format!("devices/{id}/telemetry"),
            2 => format!("devices/{id}/cmd/{req}"),
            3 => format!("devices/{id}/cmd/{req}/reply"),
            4 => format!("devices/{id}/audio/up"),
            5 => format!("devices/{id}/audio/down"),
            6 => format!("devices/{id}/call"),
            7 => format!("devices/{id}/call/event"),
            8 => format!("devices/{id}/dial"),
            9 => format!("claim/{id}/request"),
            10 => format!("claim/{id}/response/{req}"),
            11 => format!("devices/{id}/cmd/+"),
            12 => "devices/+/status".into(),
            13 => format!("devices/{id}/#"),
            14 => "#".into(),
            15 => "+/+/+".into(),
            16 => format!("claim/{id}/response/+"),
            17 => "$SYS/broker".into(),
            18 => String::new(),
            19 => format!("devices/{id}/+/reply"),
            20 => format!("devices//{id}/status"),
            _ => {
                let n = usize::from(self.byte() % 24);
                String::from_utf8_lossy(self.take(n)).into_owned()
            }
        }
    }
    fn payload(&mut self) -> Bytes {
        let n = match self.byte() % 6 {
            0 => 0,
            1 => 1,
            2 => 7,
            3 => 300,
            4 => 1000,
            _ => 1100,
        };
        Bytes::from(vec![b'x'; n])
    }
}

struct Slot {
    conn: u64,
}

struct Run {
    broker: Broker,
    auth: FuzzAuth,
    now: Instant,
    slots: Vec<Option<Slot>>,
    next_conn: u64,
    /// Who each connected connection is, from `Connected` events.
    principals: HashMap<u64, Principal>,
    /// Packet ids of QoS 1 publishes sent to each connection (to ack).
    sent_pkids: HashMap<u64, Vec<u16>>,
}

impl Run {
    fn conn(&self, slot: usize) -> Option<u64> {
        self.slots[slot].as_ref().map(|s| s.conn)
    }

    fn feed(&mut self, slot: usize, packet: Packet) {
        if let Some(conn) = self.conn(slot) {
            self.broker
                .handle_packet(self.now, conn, packet, &mut self.auth);
        }
    }

    /// Drain events and transmits, checking each against the rules.
    fn drain(&mut self) {
        while let Some(ev) = self.broker.poll_event() {
            match ev {
                BrokerEvent::Connected {
                    conn, principal, ..
                } => {
                    match &principal {
                        Principal::Device(d) => {
                            assert!(
                                self.auth.claimed.contains(d.as_str()),
                                "unclaimed device in"
                            )
                        }
                        Principal::Claimant(d) => {
                            assert!(
                                !self.auth.claimed.contains(d.as_str()),
                                "claimant of a claimed id"
                            )
                        }
                        Principal::Service(_) => panic!("service principal from this authorizer"),
                    }
                    self.principals.insert(conn, principal);
                }
                BrokerEvent::Disconnected { conn, .. } => {
                    self.principals.remove(&conn);
                    self.sent_pkids.remove(&conn);
                }
                BrokerEvent::Close { conn, .. } => {
                    self.principals.remove(&conn);
                    self.sent_pkids.remove(&conn);
                    for s in self.slots.iter_mut() {
                        if s.as_ref().is_some_and(|s| s.conn == conn) {
                            *s = None;
                        }
                    }
                    // The driver closes the socket: the broker hears of it.
                    self.broker.closed(self.now, conn);
                }
                BrokerEvent::Published { from, topic, .. } => match from {
                    Some(Principal::Device(d)) => {
                        assert!(may_publish(&d, &topic), "device {d} published on {topic}")
                    }
                    Some(Principal::Claimant(d)) => assert!(
                        claimant_may_publish(&d, &topic),
                        "claimant {d} published on {topic}"
                    ),
                    _ => panic!("publish with no client principal"),
                },
                BrokerEvent::Subscribed {
                    principal, filters, ..
                } => {
                    for f in &filters {
                        match &principal {
                            Principal::Device(d) => assert!(may_subscribe(d, f), "{d} got {f}"),
                            Principal::Claimant(d) => {
                                assert!(claimant_may_subscribe(d, f), "claimant {d} got {f}")
                            }
                            Principal::Service(_) => {}
                        }
                    }
                }
            }
        }
        while let Some((conn, packet)) = self.broker.poll_transmit() {
            // Every packet the broker emits is well-formed.
            let mut buf = BytesMut::new();
            packet.write(&mut buf, 1 << 20).expect("encodable");
            Packet::read(&mut buf, 1 << 20).expect("decodable");
            if let Packet::Publish(p) = &packet {
                match self.principals.get(&conn) {
                    Some(Principal::Device(d)) => assert!(
                        may_subscribe(d, &p.topic),
                        "device {d} received {}",
                        p.topic
                    ),
                    Some(Principal::Claimant(d)) => assert!(
                        claimant_may_subscribe(d, &p.topic),
                        "claimant {d} received {}",
                        p.topic
                    ),
                    Some(Principal::Service(_)) => {}
                    None => panic!("publish to a connection that is not connected"),
                }
                if p.qos == QoS::AtLeastOnce {
                    let v = self.sent_pkids.entry(conn).or_default();
                    if v.len() < 64 {
                        v.push(p.pkid);
                    }
                }
            }
        }
    }

    fn check(&self) {
        if let Err(e) = self.broker.check_invariants() {
            panic!("broker invariant: {e}");
        }
        let limits = self.broker.limits();
        assert!(self.broker.retained_bytes() <= limits.max_retained_bytes);
        let mut per_owner: HashMap<&str, usize> = HashMap::new();
        let entries = self.broker.retained_entries();
        for e in &entries {
            if let Some(o) = &e.owner {
                assert_eq!(e.topic, format!("devices/{o}/status"), "retained by {o}");
                *per_owner.entry(o.as_str()).or_default() += e.size;
            }
        }
        assert!(per_owner
            .values()
            .all(|n| *n <= limits.max_retained_bytes_per_client));
        for s in self.broker.session_views() {
            for f in &s.filters {
                match &s.principal {
                    Principal::Device(d) => assert!(may_subscribe(d, f), "{d} holds {f}"),
                    Principal::Claimant(d) => assert!(claimant_may_subscribe(d, f)),
                    Principal::Service(_) => {}
                }
            }
            if let Principal::Device(d) = &s.principal {
                // A reset credential leaves nothing of the device behind.
                assert!(
                    self.auth.claimed.contains(d.as_str()),
                    "session of reset {d}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Program::new(data);
    let setup = input.byte();
    let limits = if setup & 1 == 0 {
        // Tight limits, so every bound is reached by small inputs.
        Limits {
            max_clients: 4,
            max_subscriptions: 3,
            max_inflight: 2,
            max_queued: 3,
            max_retained: 6,
            max_sessions: 5,
            max_claimants: 2,
            max_claimants_per_source: 1,
            max_awaiting_per_source: 3,
            max_retained_bytes: 2048,
            ..Limits::default()
        }
    } else {
        // The gateway's limits for a small installation.
        Limits {
            max_clients: 100,
            max_claimants: 10,
            ..Limits::default()
        }
    };
    let claimed: HashSet<String> = IDS
        .iter()
        .enumerate()
        .filter(|(i, _)| setup & (2 << i) != 0)
        .map(|(_, id)| id.to_string())
        .collect();
    let t0 = Instant::now();
    let mut run = Run {
        broker: Broker::new(limits),
        auth: FuzzAuth { claimed },
        now: t0,
        slots: (0..SLOTS).map(|_| None).collect(),
        next_conn: 1,
        principals: HashMap::new(),
        sent_pkids: HashMap::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < 400 {
        steps += 1;
        let op = input.byte();
        let slot = usize::from(input.byte()) % SLOTS;
        match op % 16 {
            // Transport accepted (a new connection replaces the slot's old one).
            0 => {
                if let Some(old) = run.conn(slot) {
                    run.broker.closed(run.now, old);
                }
                let conn = run.next_conn;
                run.next_conn += 1;
                let src = std::net::IpAddr::from([10, 0, 0, input.byte() % 3]);
                run.broker.accepted_from(run.now, conn, src);
                run.slots[slot] = Some(Slot { conn });
            }
            // CONNECT (on a fresh connection; a second one is a violation).
            1 | 2 => {
                let id = input.id();
                let flags = input.byte();
                let client_id = match flags & 3 {
                    0 | 1 => id.to_string(),
                    2 => input.id().to_string(),
                    _ => String::new(),
                };
                let user = match (flags >> 2) & 3 {
                    0 | 1 => Some(id.to_string()),
                    2 => Some(input.id().to_string()),
                    _ => None,
                };
                let password = match (flags >> 4) & 3 {
                    0 => format!("pw-{id}"),
                    1 => String::new(),
                    2 => format!("pw-{}", input.id()),
                    _ => "wrong".into(),
                };
                let last_will = if flags & 0x40 != 0 {
                    Some(LastWill {
                        topic: input.topic(),
                        message: Bytes::from_static(b"offline"),
                        qos: input.qos(),
                        retain: input.byte() & 1 == 1,
                    })
                } else {
                    None
                };
                let keep_alive = [0, 1, 5, 60][usize::from(input.byte() % 4)];
                let connect = Connect {
                    protocol: Protocol::V4,
                    keep_alive,
                    client_id,
                    clean_session: flags & 0x80 != 0,
                    last_will,
                    login: user.map(|username| Login { username, password }),
                };
                run.feed(slot, Packet::Connect(connect));
            }
            3 => {
                let pkid = input.u16();
                let n = 1 + usize::from(input.byte() % 3);
                let filters = (0..n)
                    .map(|_| SubscribeFilter::new(input.topic(), input.qos()))
                    .collect();
                let mut s = Subscribe::new_many(Vec::<SubscribeFilter>::new());
                s.filters = filters;
                s.pkid = pkid;
                run.feed(slot, Packet::Subscribe(s));
            }
            4 | 5 => {
                let topic = input.topic();
                let qos = input.qos();
                let retain = input.byte() & 1 == 1;
                let payload = input.payload();
                let mut p = Publish::from_bytes(topic, qos, payload);
                p.retain = retain;
                p.pkid = if qos == QoS::AtMostOnce {
                    0
                } else {
                    1 + input.u16() % 8
                };
                run.feed(slot, Packet::Publish(p));
            }
            6 => {
                let conn = run.conn(slot).unwrap_or(0);
                let pkid = match run.sent_pkids.get_mut(&conn) {
                    Some(v) if !v.is_empty() && input.byte() & 1 == 0 => v.remove(0),
                    _ => input.u16(),
                };
                run.feed(slot, Packet::PubAck(PubAck::new(pkid)));
            }
            7 => {
                let pkid = 1 + input.u16() % 8;
                run.feed(slot, Packet::PubRel(PubRel::new(pkid)));
            }
            8 => {
                let mut u = Unsubscribe::new(input.topic());
                u.pkid = input.u16();
                run.feed(slot, Packet::Unsubscribe(u));
            }
            9 => run.feed(slot, Packet::PingReq),
            10 => run.feed(slot, Packet::Disconnect),
            11 => {
                if let Some(conn) = run.slots[slot].take().map(|s| s.conn) {
                    match input.byte() % 3 {
                        0 => run.broker.closed(run.now, conn),
                        1 => run.broker.protocol_error(run.now, conn),
                        _ => {
                            run.broker.unsupported_protocol(run.now, conn);
                            run.slots[slot] = Some(Slot { conn });
                        }
                    }
                }
            }
            // Time passes; due timers fire.
            12 => {
                let step = Duration::from_millis(u64::from(input.byte()) * 250);
                run.now += step;
                if run.broker.poll_timeout().is_some_and(|t| t <= run.now) {
                    run.broker.handle_timeout(run.now);
                }
            }
            // The gateway publishes (commands, claim answers, retained state).
            13 => {
                let topic = input.topic();
                let qos = input.qos();
                let retain = input.byte() & 1 == 1;
                let payload = input.payload();
                run.broker.publish(run.now, &topic, payload, qos, retain);
            }
            // A credential reset (revoke the device) or a completed claim
            // (revoke the claimant, the id becomes claimed).
            14 => {
                let id = input.id();
                let dev = DeviceId::parse(id).expect("valid id");
                if run.auth.claimed.remove(id) {
                    run.broker.revoke(run.now, &Principal::Device(dev));
                } else {
                    run.auth.claimed.insert(id.to_string());
                    run.broker.revoke(run.now, &Principal::Claimant(dev));
                }
            }
            // Raw bytes through the codec, as the driver decodes them.
            _ => {
                let n = usize::from(input.byte() % 64);
                let mut buf = BytesMut::from(input.take(n));
                if let Some(conn) = run.conn(slot) {
                    match Packet::read(&mut buf, run.broker.limits().max_packet) {
                        Ok(p) => run.broker.handle_packet(run.now, conn, p, &mut run.auth),
                        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                        Err(_) => run.broker.protocol_error(run.now, conn),
                    }
                }
            }
        }
        run.drain();
        run.check();
    }
    // Every connection ends once time passes far enough: nothing is left
    // connected but keep-alive 0 devices, and claimants are gone.
    run.now += Duration::from_secs(3600);
    run.broker.handle_timeout(run.now);
    run.drain();
    run.check();
    assert_eq!(
        run.broker.claimants(),
        0,
        "a claimant outlived its lifetime"
    );
});
