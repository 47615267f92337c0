//! Scenario tests for connection lifecycle: Last Will, keep-alive, takeover
//! and persistent sessions (MQTT 3.1.1 §3.1.2.4, §3.1.2.5, §3.1.2.10, §3.1.4,
//! §4.4), on the virtual clock of [`super::tests::Harness`].

use bytes::Bytes;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, LastWill, Packet, PubAck};
use rumqttc::mqttbytes::QoS;

use super::tests::{connect_packet, publishes, subscribe, Harness};
use super::*;

/// Device `a` with a retained will `offline` on its status, and a service
/// watching statuses on conn 100.
fn with_watcher_and_device(ka: u16) -> Harness {
    let mut h = Harness::new(Limits::default());
    h.connect(100, "svc", "svc", true);
    h.send(100, subscribe(1, &[("devices/+/status", QoS::AtLeastOnce)]));
    let mut c = connect_packet("a", Some("dev:a"), true, ka);
    c.last_will = Some(LastWill::new(
        "devices/a/status",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    h.connect_with(1, c);
    h.tx();
    h.events();
    h
}

fn will_seen(h: &mut Harness) -> bool {
    let to_watcher = h.tx_for(100);
    publishes(&to_watcher)
        .iter()
        .any(|p| p.topic == "devices/a/status" && &p.payload[..] == b"offline")
}

fn disconnected(ev: &[BrokerEvent]) -> Option<(CloseReason, bool)> {
    ev.iter().find_map(|e| match e {
        BrokerEvent::Disconnected {
            reason, will_sent, ..
        } => Some((reason.clone(), *will_sent)),
        _ => None,
    })
}

#[test]
fn will_is_published_when_the_transport_drops() {
    let mut h = with_watcher_and_device(0);
    h.b.closed(h.now, 1);
    assert!(will_seen(&mut h));
    let ev = h.events();
    assert!(
        !ev.iter().any(|e| matches!(e, BrokerEvent::Close { .. })),
        "transport already gone"
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        BrokerEvent::Published { topic, retain: true, from: Some(Principal::Device(_)), .. }
            if topic == "devices/a/status"
    )));
    assert_eq!(disconnected(&ev), Some((CloseReason::ConnectionLost, true)));
    assert_eq!(h.b.retained(), 1, "will was retained");
    assert_eq!(h.b.clients(), 1);
}

#[test]
fn will_is_published_on_keepalive_timeout() {
    let mut h = with_watcher_and_device(10);
    // 1.5 × 10 s; traffic at 10 s pushes the deadline to 25 s.
    assert_eq!(h.b.poll_timeout(), Some(h.now + Duration::from_secs(15)));
    h.at(10_000);
    h.send(1, Packet::PingReq);
    h.tx();
    h.at(15_000);
    assert!(h.events().is_empty(), "deadline moved by traffic");
    h.at(24_999);
    assert!(h.events().is_empty());
    h.at(25_000);
    assert!(will_seen(&mut h));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(
        e,
        BrokerEvent::Close {
            conn: 1,
            reason: CloseReason::KeepAliveTimeout
        }
    )));
    assert_eq!(
        disconnected(&ev),
        Some((CloseReason::KeepAliveTimeout, true))
    );
}

#[test]
fn no_will_after_disconnect() {
    let mut h = with_watcher_and_device(10);
    h.send(1, Packet::Disconnect);
    assert!(!will_seen(&mut h));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(
        e,
        BrokerEvent::Close {
            conn: 1,
            reason: CloseReason::ClientDisconnect
        }
    )));
    assert_eq!(
        disconnected(&ev),
        Some((CloseReason::ClientDisconnect, false))
    );
    // A later transport close changes nothing.
    h.b.closed(h.now, 1);
    assert!(h.events().is_empty());
    assert_eq!(h.b.poll_timeout(), None);
}

#[test]
fn takeover_closes_the_old_connection_without_will() {
    let mut h = with_watcher_and_device(0);
    let ack = h.connect(2, "a", "dev:a", true);
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(!will_seen(&mut h));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(
        e,
        BrokerEvent::Close {
            conn: 1,
            reason: CloseReason::TakenOver
        }
    )));
    assert_eq!(disconnected(&ev), Some((CloseReason::TakenOver, false)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, BrokerEvent::Connected { conn: 2, .. })));
    assert_eq!(h.b.clients(), 2);
    // The old connection is gone: its packets are ignored.
    h.send(1, Packet::PingReq);
    assert!(h.tx().is_empty());
}

#[test]
fn persistent_session_queues_and_resends_with_dup() {
    let mut h = Harness::new(Limits {
        max_inflight: 2,
        max_queued: 3,
        ..Limits::default()
    });
    let ack = h.connect(1, "a", "dev:a", false);
    assert!(!ack.session_present);
    h.send(1, subscribe(1, &[("devices/a/cmd/+", QoS::AtLeastOnce)]));
    h.tx();
    let cmd = |h: &mut Harness, n: u8| {
        h.b.publish(
            h.now,
            &format!("devices/a/cmd/r{n}"),
            Bytes::from(vec![n]),
            QoS::AtLeastOnce,
            false,
        )
    };
    cmd(&mut h, 1);
    assert_eq!(publishes(&h.tx_for(1)).len(), 1, "pkid 1 unacked");
    h.b.closed(h.now, 1);
    h.events();
    // Offline: QoS 1 queued (oldest dropped beyond 3), QoS 0 dropped.
    for n in 2..=5 {
        cmd(&mut h, n);
    }
    h.b.publish(
        h.now,
        "devices/a/cmd/q0",
        Bytes::from_static(b"0"),
        QoS::AtMostOnce,
        false,
    );
    assert!(h.tx().is_empty());
    assert_eq!(h.b.sessions(), 1);
    assert_eq!(h.b.dropped(), 2);

    let ack = h.connect(2, "a", "dev:a", false);
    assert!(ack.session_present);
    let out = h.tx_for(2);
    let pubs = publishes(&out);
    let got: Vec<(u16, bool, u8)> = pubs.iter().map(|p| (p.pkid, p.dup, p.payload[0])).collect();
    // Resend of pkid 1 with DUP, then the queue fills the window of 2.
    assert_eq!(got, vec![(1, true, 1), (2, false, 3)]);
    h.send(2, Packet::PubAck(PubAck::new(1)));
    h.send(2, Packet::PubAck(PubAck::new(2)));
    let out = h.tx_for(2);
    let got: Vec<u8> = publishes(&out).iter().map(|p| p.payload[0]).collect();
    assert_eq!(got, vec![4, 5]);
    // Subscriptions survived: live traffic flows.
    h.send(2, Packet::PubAck(PubAck::new(3)));
    cmd(&mut h, 6);
    assert_eq!(publishes(&h.tx_for(2)).len(), 1);
}

#[test]
fn clean_session_discards_state() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", false);
    h.send(1, subscribe(1, &[("devices/a/cmd/+", QoS::AtLeastOnce)]));
    h.b.closed(h.now, 1);
    h.b.publish(
        h.now,
        "devices/a/cmd/1",
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
    );
    // Reconnect with clean_session=1: no session, no messages, no subscriptions.
    let ack = h.connect(2, "a", "dev:a", true);
    assert!(!ack.session_present);
    assert!(publishes(&h.tx_for(2)).is_empty());
    h.b.publish(
        h.now,
        "devices/a/cmd/2",
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
    );
    assert!(h.tx().is_empty());
    // And a clean session is gone after disconnect.
    h.send(2, Packet::Disconnect);
    assert_eq!(h.b.sessions(), 0);
}

#[test]
fn session_of_another_principal_is_not_resumed() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "shared", "svc", false);
    h.send(1, subscribe(1, &[("#", QoS::AtLeastOnce)]));
    h.b.closed(h.now, 1);
    let ack = h.connect(2, "shared", "dev:a", false);
    assert!(!ack.session_present, "a device must not inherit `#`");
    h.tx();
    h.b.publish(
        h.now,
        "x",
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
    );
    assert!(h.tx().is_empty());
}

#[test]
fn full_session_table_evicts_the_longest_offline() {
    let mut h = Harness::new(Limits {
        max_sessions: 2,
        ..Limits::default()
    });
    h.connect(1, "a", "dev:a", false);
    h.connect(2, "b", "dev:b", false);
    h.b.closed(h.now, 1);
    h.at(1_000);
    h.b.closed(h.now, 2);
    let ack = h.connect(3, "c", "dev:c", false);
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert_eq!(h.b.sessions(), 2);
    assert!(
        !h.connect(4, "a", "dev:a", false).session_present,
        "a was evicted"
    );
    // Table full of connected sessions (b was evicted for a): refused.
    let ack = h.connect(5, "d", "dev:d", false);
    assert_eq!(ack.code, ConnectReturnCode::ServiceUnavailable);
}

#[test]
fn many_device_sessions_route_by_trie() {
    // 2000 devices each on their own command filter; one publish reaches one.
    let mut h = Harness::new(Limits::default());
    for i in 0..2000u64 {
        let id = format!("d{i}");
        h.connect(i + 1, &id, &format!("dev:{id}"), true);
        h.send(
            i + 1,
            subscribe(1, &[(&format!("devices/{id}/cmd/+"), QoS::AtLeastOnce)]),
        );
    }
    h.tx();
    h.b.publish(
        h.now,
        "devices/d1234/cmd/r",
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
    );
    let out = h.tx();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1235);
}

#[test]
fn another_principal_cannot_take_over_a_live_client_id() {
    let mut h = with_watcher_and_device(0);
    let ack = h.connect(2, "a", "dev:b", true);
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    assert_eq!(h.closes(), vec![(2, CloseReason::NotAuthorized)]);
    // Nor may a claimant of the same id: claimant and device are different
    // principals (issue 11, item 1).
    let ack = h.connect(3, "a", "claim:a", true);
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    assert_eq!(h.closes(), vec![(3, CloseReason::NotAuthorized)]);
    assert!(h.closes().is_empty(), "the device was not touched");
}

#[test]
fn broker_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Broker>();
}

/// Load sketch: 10k devices, two own filters each, a service on
/// `devices/+/telemetry`, every device publishing once. Run with
/// `cargo test -p switchboard-mqtt --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn load_10k_devices() {
    let mut h = Harness::new(Limits::default());
    h.connect(1_000_000, "svc", "svc", true);
    h.send(
        1_000_000,
        subscribe(1, &[("devices/+/telemetry", QoS::AtMostOnce)]),
    );
    for i in 0..10_000u64 {
        let id = format!("d{i}");
        h.connect(i + 1, &id, &format!("dev:{id}"), false);
        h.send(
            i + 1,
            subscribe(
                1,
                &[
                    (&format!("devices/{id}/cmd/+"), QoS::AtLeastOnce),
                    (&format!("devices/{id}/audio/down"), QoS::AtMostOnce),
                ],
            ),
        );
    }
    h.tx();
    h.events();
    let start = std::time::Instant::now();
    let rounds = 10u64;
    for _ in 0..rounds {
        for i in 0..10_000u64 {
            let p = super::tests::publish(
                &format!("devices/d{i}/telemetry"),
                QoS::AtLeastOnce,
                1,
                "{}",
            );
            h.b.handle_packet(h.now, i + 1, p, &mut super::tests::FakeAuth);
        }
        while h.b.poll_transmit().is_some() {}
        while h.b.poll_event().is_some() {}
    }
    let per = start.elapsed() / (rounds as u32 * 10_000);
    println!("{per:?} per publish (route + PUBACK + event)");
}
