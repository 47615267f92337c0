//! Scenario tests for the broker core on a virtual clock with a fake
//! [`Authorizer`]. Every packet the broker emits is encoded and decoded with
//! the `rumqttc` codec to prove it is well-formed.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Login, Packet, PubAck, PubRel, Publish,
    Subscribe, SubscribeFilter, SubscribeReasonCode, Unsubscribe,
};
use rumqttc::mqttbytes::{Protocol, QoS};

use super::*;
use crate::DeviceId;

/// Users: `svc` (service), `dev:<id>` (device), `claim:<id>` (claimant),
/// `bad` (wrong password), anything else or none: not authorized.
pub(super) struct FakeAuth;

impl Authorizer for FakeAuth {
    fn authenticate(&mut self, _: &str, user: Option<&str>, _: Option<&str>) -> AuthDecision {
        let user = user.unwrap_or("");
        if user == "svc" {
            return AuthDecision::Accept(Principal::Service("svc".into()));
        }
        if user == "bad" {
            return AuthDecision::Reject(ConnectReturnCode::BadUserNamePassword);
        }
        if let Some(id) = user.strip_prefix("dev:") {
            return AuthDecision::Accept(Principal::Device(DeviceId::parse(id).unwrap()));
        }
        if let Some(id) = user.strip_prefix("claim:") {
            return AuthDecision::Accept(Principal::Claimant(DeviceId::parse(id).unwrap()));
        }
        AuthDecision::Reject(ConnectReturnCode::NotAuthorized)
    }
    fn may_publish(&self, who: &Principal, topic: &str) -> bool {
        match who {
            Principal::Service(_) => true,
            Principal::Device(d) => topic.starts_with(&format!("devices/{d}/")),
            Principal::Claimant(d) => topic == format!("claim/{d}/request"),
        }
    }
    fn may_subscribe(&self, who: &Principal, filter: &str) -> bool {
        match who {
            Principal::Service(_) => true,
            Principal::Device(d) => filter.starts_with(&format!("devices/{d}/")),
            Principal::Claimant(d) => filter.starts_with(&format!("claim/{d}/response/")),
        }
    }
    fn may_retain(&self, who: &Principal, topic: &str) -> bool {
        match who {
            Principal::Device(d) => topic == format!("devices/{d}/status"),
            Principal::Claimant(_) => false,
            Principal::Service(_) => true,
        }
    }
}

pub(super) struct Harness {
    pub(super) b: Broker,
    auth: FakeAuth,
    stash: Vec<(ConnId, Packet)>,
    t0: Instant,
    pub(super) now: Instant,
}

pub(super) fn roundtrip(p: &Packet) -> Packet {
    let mut buf = BytesMut::new();
    p.write(&mut buf, 1 << 20).expect("encodable");
    Packet::read(&mut buf, 1 << 20).expect("decodable")
}

pub(super) fn connect_packet(id: &str, user: Option<&str>, clean: bool, ka: u16) -> Connect {
    Connect {
        protocol: Protocol::V4,
        keep_alive: ka,
        client_id: id.into(),
        clean_session: clean,
        last_will: None,
        login: user.map(|u| Login::new(u, "pw")),
    }
}

pub(super) fn publish(topic: &str, qos: QoS, pkid: u16, payload: &str) -> Packet {
    let mut p = Publish::new(topic, qos, payload.as_bytes().to_vec());
    p.pkid = pkid;
    Packet::Publish(p)
}

pub(super) fn subscribe(pkid: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid,
        filters: filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new(f.to_string(), *q))
            .collect(),
    })
}

impl Harness {
    pub(super) fn new(limits: Limits) -> Self {
        let t0 = Instant::now();
        Self {
            b: Broker::new(limits),
            auth: FakeAuth,
            stash: Vec::new(),
            t0,
            now: t0,
        }
    }

    /// Move the virtual clock to `ms` after start and fire timers.
    pub(super) fn at(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
        self.b.handle_timeout(self.now);
    }

    pub(super) fn send(&mut self, conn: ConnId, p: Packet) {
        let p = roundtrip(&p);
        self.b.handle_packet(self.now, conn, p, &mut self.auth);
    }

    /// Accept `conn`, send CONNECT, return the CONNACK.
    pub(super) fn connect_with(&mut self, conn: ConnId, c: Connect) -> ConnAck {
        self.b.accepted(self.now, conn);
        self.send(conn, Packet::Connect(c));
        let mut acks = Vec::new();
        for (c, p) in self.tx() {
            match p {
                Packet::ConnAck(a) if c == conn => acks.push(a),
                // Kept for the next `tx` (e.g. resent messages after CONNACK).
                other => self.stash.push((c, other)),
            }
        }
        assert_eq!(acks.len(), 1, "one CONNACK");
        acks[0].clone()
    }

    pub(super) fn connect(&mut self, conn: ConnId, id: &str, user: &str, clean: bool) -> ConnAck {
        self.connect_with(conn, connect_packet(id, Some(user), clean, 0))
    }

    /// Drain every transmit, checking each encodes and decodes unchanged.
    pub(super) fn tx(&mut self) -> Vec<(ConnId, Packet)> {
        let mut out = std::mem::take(&mut self.stash);
        while let Some((c, p)) = self.b.poll_transmit() {
            assert_eq!(roundtrip(&p), p);
            out.push((c, p));
        }
        out
    }

    /// Drain transmits, keeping those for `conn` (others are discarded).
    pub(super) fn tx_for(&mut self, conn: ConnId) -> Vec<Packet> {
        self.tx()
            .into_iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, p)| p)
            .collect()
    }

    pub(super) fn events(&mut self) -> Vec<BrokerEvent> {
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }

    pub(super) fn closes(&mut self) -> Vec<(ConnId, CloseReason)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                BrokerEvent::Close { conn, reason } => Some((conn, reason)),
                _ => None,
            })
            .collect()
    }
}

pub(super) fn publishes(ps: &[Packet]) -> Vec<&Publish> {
    ps.iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn connect_gets_connack_and_event() {
    let mut h = Harness::new(Limits::default());
    let ack = h.connect(1, "esp-1", "dev:esp-1", true);
    assert_eq!(ack, ConnAck::new(ConnectReturnCode::Success, false));
    let ev = h.events();
    assert!(matches!(
        &ev[..],
        [BrokerEvent::Connected { conn: 1, client_id, principal: Principal::Device(d), .. }]
            if client_id == "esp-1" && d.as_str() == "esp-1"
    ));
    assert_eq!(h.b.clients(), 1);
    h.send(1, Packet::PingReq);
    assert_eq!(h.tx_for(1), vec![Packet::PingResp]);
}

#[test]
fn refused_connects_get_their_code_then_close() {
    let mut h = Harness::new(Limits {
        max_client_id: 8,
        ..Limits::default()
    });
    let cases: Vec<(Connect, ConnectReturnCode, CloseReason)> = vec![
        (
            connect_packet("c1", Some("bad"), true, 0),
            ConnectReturnCode::BadUserNamePassword,
            CloseReason::NotAuthorized,
        ),
        (
            connect_packet("c2", None, true, 0),
            ConnectReturnCode::NotAuthorized,
            CloseReason::NotAuthorized,
        ),
        (
            connect_packet("much-too-long", Some("svc"), true, 0),
            ConnectReturnCode::BadClientId,
            CloseReason::ProtocolError,
        ),
        (
            connect_packet("", Some("svc"), false, 0),
            ConnectReturnCode::BadClientId,
            CloseReason::ProtocolError,
        ),
        (
            Connect {
                protocol: Protocol::V5,
                ..connect_packet("c5", Some("svc"), true, 0)
            },
            ConnectReturnCode::RefusedProtocolVersion,
            CloseReason::ProtocolError,
        ),
    ];
    for (i, (c, code, reason)) in cases.into_iter().enumerate() {
        let conn = i as u64 + 1;
        let ack = h.connect_with(conn, c);
        assert_eq!(ack.code, code);
        assert!(!ack.session_present);
        assert_eq!(h.closes(), vec![(conn, reason)]);
    }
    assert_eq!(h.b.clients(), 0);
    // Packets after the close are ignored.
    h.send(1, Packet::PingReq);
    assert!(h.tx().is_empty());
}

#[test]
fn empty_client_id_with_clean_session_is_assigned_one() {
    let mut h = Harness::new(Limits::default());
    let ack = h.connect_with(1, connect_packet("", Some("svc"), true, 0));
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(matches!(
        &h.events()[..],
        [BrokerEvent::Connected { client_id, .. }] if client_id.starts_with("auto-")
    ));
}

#[test]
fn first_packet_must_be_connect_and_only_once() {
    let mut h = Harness::new(Limits::default());
    h.b.accepted(h.now, 1);
    h.send(1, Packet::PingReq);
    assert_eq!(h.closes(), vec![(1, CloseReason::ProtocolError)]);
    assert!(h.tx().is_empty());

    h.connect(2, "c2", "svc", true);
    h.events();
    h.send(
        2,
        Packet::Connect(connect_packet("c2", Some("svc"), true, 0)),
    );
    assert_eq!(h.closes(), vec![(2, CloseReason::ProtocolError)]);
    assert_eq!(h.b.clients(), 0);
}

#[test]
fn unsupported_protocol_level_gets_connack_0x01() {
    let mut h = Harness::new(Limits::default());
    h.b.accepted(h.now, 1);
    h.b.unsupported_protocol(h.now, 1);
    assert_eq!(
        h.tx_for(1),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::RefusedProtocolVersion,
            false
        ))]
    );
    assert_eq!(h.closes(), vec![(1, CloseReason::ProtocolError)]);
}

#[test]
fn publish_outside_acl_closes_not_authorized() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", true);
    h.connect(2, "svc", "svc", true);
    h.send(2, subscribe(1, &[("#", QoS::AtLeastOnce)]));
    h.tx();
    h.events();
    h.send(1, publish("devices/b/telemetry", QoS::AtLeastOnce, 5, "x"));
    assert!(h.tx().is_empty(), "no PUBACK, nothing routed");
    let ev = h.events();
    assert!(!ev
        .iter()
        .any(|e| matches!(e, BrokerEvent::Published { .. })));
    assert!(ev.iter().any(|e| matches!(
        e,
        BrokerEvent::Close {
            conn: 1,
            reason: CloseReason::NotAuthorized
        }
    )));
    // A wildcard in a topic name is a protocol error.
    h.connect(3, "a", "dev:a", true);
    h.events();
    h.send(3, publish("devices/a/+", QoS::AtMostOnce, 0, "x"));
    assert_eq!(h.closes(), vec![(3, CloseReason::ProtocolError)]);
}

#[test]
fn will_outside_acl_is_refused_at_connect() {
    let mut h = Harness::new(Limits::default());
    let mut c = connect_packet("a", Some("dev:a"), true, 0);
    c.last_will = Some(LastWill::new(
        "devices/b/status",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let ack = h.connect_with(1, c);
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
    assert_eq!(h.closes(), vec![(1, CloseReason::NotAuthorized)]);
}

#[test]
fn subscribe_partial_failure_and_subscription_cap() {
    let mut h = Harness::new(Limits {
        max_subscriptions: 2,
        ..Limits::default()
    });
    h.connect(1, "a", "dev:a", true);
    h.send(
        1,
        subscribe(
            7,
            &[
                ("devices/a/cmd/+", QoS::ExactlyOnce),
                ("devices/b/cmd/+", QoS::AtLeastOnce),
                ("devices/a/#/x", QoS::AtLeastOnce),
                ("devices/a/audio/down", QoS::AtMostOnce),
                ("devices/a/other", QoS::AtMostOnce),
                ("devices/a/cmd/+", QoS::AtMostOnce),
            ],
        ),
    );
    let Packet::SubAck(ack) = &h.tx_for(1)[0] else {
        panic!("SUBACK expected")
    };
    assert_eq!(ack.pkid, 7);
    use SubscribeReasonCode::*;
    assert_eq!(
        ack.return_codes,
        vec![
            Success(QoS::AtLeastOnce), // QoS 2 granted as 1
            Failure,                   // ACL
            Failure,                   // invalid filter
            Success(QoS::AtMostOnce),
            Failure,                  // over the cap of 2
            Success(QoS::AtMostOnce), // replacing an existing one is fine
        ]
    );
    h.send(1, Packet::Unsubscribe(Unsubscribe::new("devices/a/cmd/+")));
    assert!(matches!(&h.tx_for(1)[..], [Packet::UnsubAck(_)]));
    h.b.publish(
        h.now,
        "devices/a/cmd/1",
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
    );
    assert!(h.tx().is_empty(), "unsubscribed");
}

#[test]
fn retained_delivered_on_subscribe_and_deleted_by_empty_payload() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", true);
    let mut p = Publish::new("devices/a/status", QoS::AtLeastOnce, b"online".to_vec());
    p.retain = true;
    p.pkid = 1;
    h.send(1, Packet::Publish(p));
    assert!(matches!(
        &h.tx_for(1)[..],
        [Packet::PubAck(PubAck { pkid: 1 })]
    ));
    assert_eq!(h.b.retained(), 1);

    h.connect(2, "svc", "svc", true);
    h.send(2, subscribe(1, &[("devices/+/status", QoS::AtMostOnce)]));
    let out = h.tx_for(2);
    assert!(matches!(out[0], Packet::SubAck(_)), "SUBACK first");
    let pubs = publishes(&out);
    assert_eq!(pubs.len(), 1);
    assert!(pubs[0].retain);
    assert_eq!(pubs[0].qos, QoS::AtMostOnce);
    assert_eq!(&pubs[0].payload[..], b"online");

    // Live delivery to an existing subscriber has RETAIN=0 (§3.3.1.3).
    h.b.publish(
        h.now,
        "devices/a/status",
        Bytes::new(),
        QoS::AtMostOnce,
        true,
    );
    let pubs = h.tx_for(2);
    assert_eq!(publishes(&pubs).len(), 1);
    assert!(!publishes(&pubs)[0].retain);
    assert_eq!(h.b.retained(), 0);
    h.connect(3, "svc2", "svc", true);
    h.send(3, subscribe(1, &[("devices/#", QoS::AtLeastOnce)]));
    assert!(publishes(&h.tx_for(3)).is_empty());
}

#[test]
fn retained_store_is_capped() {
    let mut h = Harness::new(Limits {
        max_retained: 1,
        ..Limits::default()
    });
    h.b.publish(h.now, "a", Bytes::from_static(b"1"), QoS::AtMostOnce, true);
    h.b.publish(h.now, "b", Bytes::from_static(b"1"), QoS::AtMostOnce, true);
    assert_eq!(h.b.retained(), 1);
    assert_eq!(h.b.dropped(), 1);
}

#[test]
fn qos1_flow_inflight_cap_queue_and_slow_consumer() {
    let mut h = Harness::new(Limits {
        max_inflight: 2,
        max_queued: 2,
        ..Limits::default()
    });
    h.connect(1, "svc", "svc", true);
    h.send(1, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    h.tx();
    for i in 0..4 {
        h.b.publish(h.now, "t", Bytes::from(vec![i]), QoS::AtLeastOnce, false);
    }
    let out = h.tx_for(1);
    let pubs = publishes(&out);
    assert_eq!(pubs.len(), 2, "window of 2");
    assert_eq!((pubs[0].pkid, pubs[1].pkid), (1, 2));
    assert!(pubs.iter().all(|p| p.qos == QoS::AtLeastOnce && !p.dup));

    h.send(1, Packet::PubAck(PubAck::new(1)));
    let out = h.tx_for(1);
    let pubs = publishes(&out);
    assert_eq!(pubs.len(), 1);
    assert_eq!((pubs[0].pkid, pubs[0].payload[0]), (3, 2));
    // An unknown PUBACK is harmless.
    h.send(1, Packet::PubAck(PubAck::new(999)));
    assert!(h.tx().is_empty());

    // Window 2 full (2, 3), queue holds 3; two more overflow the queue.
    h.b.publish(
        h.now,
        "t",
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
    );
    assert!(h.closes().is_empty());
    h.b.publish(
        h.now,
        "t",
        Bytes::from_static(b"y"),
        QoS::AtLeastOnce,
        false,
    );
    assert_eq!(h.closes(), vec![(1, CloseReason::SlowConsumer)]);
    assert_eq!(h.b.clients(), 0);
    // QoS 0 to a connected client is never queued.
    h.connect(2, "svc", "svc", true);
    h.send(2, subscribe(1, &[("t", QoS::AtMostOnce)]));
    h.tx();
    for _ in 0..10 {
        h.b.publish(
            h.now,
            "t",
            Bytes::from_static(b"z"),
            QoS::AtLeastOnce,
            false,
        );
    }
    assert_eq!(publishes(&h.tx_for(2)).len(), 10);
}

#[test]
fn qos2_inbound_is_routed_exactly_once() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "sub", "svc", true);
    h.send(
        1,
        subscribe(1, &[("devices/a/telemetry", QoS::AtLeastOnce)]),
    );
    h.connect(2, "a", "dev:a", true);
    h.tx();
    h.events();
    let p = publish("devices/a/telemetry", QoS::ExactlyOnce, 9, "t");
    h.send(2, p.clone());
    assert!(matches!(&h.tx_for(2)[..], [Packet::PubRec(r)] if r.pkid == 9));
    let Packet::Publish(mut dup) = p else {
        unreachable!()
    };
    dup.dup = true;
    h.send(2, Packet::Publish(dup));
    let out = h.tx();
    assert_eq!(out.len(), 1, "only PUBREC again, nothing routed: {out:?}");
    assert!(h.events().is_empty());

    h.send(2, Packet::PubRel(PubRel::new(9)));
    let out = h.tx();
    assert!(out
        .iter()
        .any(|(c, p)| *c == 2 && matches!(p, Packet::PubComp(x) if x.pkid == 9)));
    let to_sub: Vec<_> = out.iter().filter(|(c, _)| *c == 1).collect();
    assert_eq!(to_sub.len(), 1);
    assert!(matches!(&to_sub[0].1, Packet::Publish(p) if p.qos == QoS::AtLeastOnce));
    let ev = h.events();
    assert!(matches!(
        &ev[..],
        [BrokerEvent::Published {
            qos: QoS::ExactlyOnce,
            from: Some(Principal::Device(_)),
            ..
        }]
    ));
    // A resent PUBREL is completed again but routes nothing.
    h.send(2, Packet::PubRel(PubRel::new(9)));
    assert_eq!(h.tx().len(), 1);
    assert!(h.events().is_empty());
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_highest_qos() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "svc", "svc", true);
    h.send(
        1,
        subscribe(
            1,
            &[
                ("devices/+/telemetry", QoS::AtMostOnce),
                ("devices/#", QoS::AtLeastOnce),
                ("devices/a/telemetry", QoS::AtMostOnce),
            ],
        ),
    );
    h.tx();
    h.b.publish(
        h.now,
        "devices/a/telemetry",
        Bytes::from_static(b"1"),
        QoS::ExactlyOnce,
        false,
    );
    let out = h.tx_for(1);
    let pubs = publishes(&out);
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0].qos, QoS::AtLeastOnce);
}

#[test]
fn gateway_publish_is_routed_and_not_reported() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", true);
    h.connect(2, "b", "dev:b", true);
    h.send(1, subscribe(1, &[("devices/a/cmd/+", QoS::AtLeastOnce)]));
    h.send(2, subscribe(1, &[("devices/b/cmd/+", QoS::AtLeastOnce)]));
    h.tx();
    h.events();
    h.b.publish(
        h.now,
        "devices/a/cmd/r1",
        Bytes::from_static(b"{}"),
        QoS::AtLeastOnce,
        false,
    );
    let out = h.tx();
    assert_eq!(out.len(), 1);
    assert!(
        matches!(&out[0], (1, Packet::Publish(p)) if p.topic == "devices/a/cmd/r1" && p.pkid == 1)
    );
    assert!(h.events().is_empty());
    // Invalid topics from the gateway are ignored.
    h.b.publish(
        h.now,
        "devices/+/cmd/x",
        Bytes::new(),
        QoS::AtMostOnce,
        false,
    );
    assert!(h.tx().is_empty());
}

#[test]
fn client_publish_is_reported_and_acked() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", true);
    h.events();
    h.send(
        1,
        publish("devices/a/telemetry", QoS::AtLeastOnce, 3, "{\"t\":1}"),
    );
    assert_eq!(h.tx_for(1), vec![Packet::PubAck(PubAck::new(3))]);
    let ev = h.events();
    assert!(matches!(
        &ev[..],
        [BrokerEvent::Published { topic, qos: QoS::AtLeastOnce, retain: false, .. }]
            if topic == "devices/a/telemetry"
    ));
}

#[test]
fn too_many_clients_get_server_unavailable() {
    let mut h = Harness::new(Limits {
        max_clients: 1,
        ..Limits::default()
    });
    h.connect(1, "a", "dev:a", true);
    h.events();
    let ack = h.connect(2, "b", "dev:b", true);
    assert_eq!(ack.code, ConnectReturnCode::ServiceUnavailable);
    assert_eq!(h.closes(), vec![(2, CloseReason::TooManyClients)]);
    // A takeover does not need a free slot.
    let ack = h.connect(3, "a", "dev:a", true);
    assert_eq!(ack.code, ConnectReturnCode::Success);
    // Connections waiting for CONNECT are capped too.
    h.b.accepted(h.now, 10);
    h.b.accepted(h.now, 11);
    assert!(h.closes().contains(&(11, CloseReason::TooManyClients)));
}

#[test]
fn connect_timeout_closes_silent_connections() {
    let mut h = Harness::new(Limits::default());
    h.b.accepted(h.now, 1);
    assert_eq!(h.b.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.at(9_999);
    assert!(h.events().is_empty());
    h.at(10_000);
    assert_eq!(h.closes(), vec![(1, CloseReason::ConnectTimeout)]);
    assert_eq!(h.b.poll_timeout(), None);
}

#[test]
fn decode_errors_close_with_protocol_error() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", true);
    h.events();
    h.b.protocol_error(h.now, 1);
    let ev = h.events();
    assert!(matches!(
        ev[0],
        BrokerEvent::Close {
            conn: 1,
            reason: CloseReason::ProtocolError
        }
    ));
    assert!(matches!(
        ev[1],
        BrokerEvent::Disconnected {
            reason: CloseReason::ProtocolError,
            will_sent: false,
            ..
        }
    ));
}
