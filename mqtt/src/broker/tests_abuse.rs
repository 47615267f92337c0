//! Scenario tests for what an outsider can try against the broker (issue
//! 11): claimant takeover, client-id squatting, claimants filling the
//! connection table, retained-memory growth, and revocation, on the virtual
//! clock of [`super::tests::Harness`].

use std::net::IpAddr;

use rumqttc::mqttbytes::v4::{ConnectReturnCode, LastWill, Packet};
use rumqttc::mqttbytes::QoS;

use super::tests::{connect_packet, publish, subscribe, Harness};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Accept `conn` from `source` and send CONNECT; the CONNACK code.
fn connect_from(
    h: &mut Harness,
    conn: ConnId,
    source: &str,
    id: &str,
    user: &str,
    ka: u16,
) -> ConnectReturnCode {
    h.b.accepted_from(h.now, conn, ip(source));
    h.send(
        conn,
        Packet::Connect(connect_packet(id, Some(user), true, ka)),
    );
    let acks: Vec<_> = h
        .tx_for(conn)
        .into_iter()
        .filter_map(|p| match p {
            Packet::ConnAck(a) => Some(a.code),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1, "one CONNACK");
    acks[0]
}

#[test]
fn a_claimant_never_takes_over_a_device_nor_a_device_a_claimant() {
    let mut h = Harness::new(Limits::default());
    assert_eq!(
        h.connect(1, "esp-a", "dev:esp-a", false).code,
        ConnectReturnCode::Success
    );
    h.events();
    for conn in 2..10 {
        let ack = h.connect(conn, "esp-a", "claim:esp-a", true);
        assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    }
    assert!(h
        .closes()
        .iter()
        .all(|(c, r)| *c != 1 && *r == CloseReason::NotAuthorized));
    assert_eq!(h.b.clients(), 1);
    // The device's persistent session is not inherited by a claimant either.
    h.b.closed(h.now, 1);
    h.events();
    let ack = h.connect(20, "esp-a", "claim:esp-a", false);
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(!ack.session_present);
    // And the other way round: a device does not take over a claimant.
    let ack = h.connect(21, "esp-a", "dev:esp-a", false);
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
}

#[test]
fn client_id_must_be_the_device_id() {
    let mut h = Harness::new(Limits::default());
    // Another device, or a claimant, cannot hold esp-a's client id.
    let ack = h.connect(1, "esp-a", "dev:esp-b", true);
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    let ack = h.connect(2, "esp-a", "claim:esp-c", true);
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    // Nor an auto-assigned one.
    let ack = h.connect(3, "", "dev:esp-b", true);
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    assert_eq!(h.b.clients(), 0);
    assert_eq!(h.b.sessions(), 0);
    // So the real esp-a gets in.
    let ack = h.connect(4, "esp-a", "dev:esp-a", true);
    assert_eq!(ack.code, ConnectReturnCode::Success);
    // Services keep any client id.
    let ack = h.connect(5, "anything", "svc", true);
    assert_eq!(ack.code, ConnectReturnCode::Success);
}

#[test]
fn claimants_expire_even_with_keep_alive_zero() {
    let mut h = Harness::new(Limits::default());
    let mut c = connect_packet("esp-n", Some("claim:esp-n"), true, 0);
    c.keep_alive = 0;
    h.connect_with(1, c);
    h.connect(2, "esp-d", "dev:esp-d", true);
    h.events();
    h.at(29_000);
    assert!(h.closes().is_empty());
    h.at(30_000);
    assert_eq!(h.closes(), vec![(1, CloseReason::ClaimantExpired)]);
    assert_eq!(h.b.claimants(), 0);
    // The device (keep-alive 0) stays.
    h.at(3_600_000);
    assert!(h.closes().is_empty());
    assert_eq!(h.b.clients(), 1);
}

#[test]
fn claimants_cannot_take_the_devices_share() {
    let mut h = Harness::new(Limits {
        max_clients: 10,
        max_claimants: 2,
        max_claimants_per_source: 100,
        ..Limits::default()
    });
    for i in 0..5u64 {
        let id = format!("new-{i}");
        let code = connect_from(&mut h, i + 1, "192.0.2.1", &id, &format!("claim:{id}"), 0);
        let want = if i < 2 {
            ConnectReturnCode::Success
        } else {
            ConnectReturnCode::ServiceUnavailable
        };
        assert_eq!(code, want, "claimant {i}");
    }
    // Eight devices still get in; the ninth finds the gateway full.
    for i in 0..9u64 {
        let id = format!("dev-{i}");
        let code = connect_from(&mut h, 100 + i, "192.0.2.2", &id, &format!("dev:{id}"), 0);
        let want = if i < 8 {
            ConnectReturnCode::Success
        } else {
            ConnectReturnCode::ServiceUnavailable
        };
        assert_eq!(code, want, "device {i}");
    }
}

#[test]
fn per_source_caps_on_claimants_and_silent_connections() {
    let mut h = Harness::new(Limits {
        max_claimants_per_source: 2,
        max_awaiting_per_source: 3,
        ..Limits::default()
    });
    let mut codes = Vec::new();
    for i in 0..3u64 {
        let id = format!("c-{i}");
        codes.push(connect_from(
            &mut h,
            i + 1,
            "2001:db8:1:2::10",
            &id,
            &format!("claim:{id}"),
            0,
        ));
    }
    use ConnectReturnCode::{ServiceUnavailable, Success};
    assert_eq!(codes, vec![Success, Success, ServiceUnavailable]);
    // Another host of the same /64 is the same source; another /64 is not.
    assert_eq!(
        connect_from(&mut h, 10, "2001:db8:1:2::99", "c-9", "claim:c-9", 0),
        ServiceUnavailable
    );
    assert_eq!(
        connect_from(&mut h, 11, "2001:db8:1:3::1", "c-8", "claim:c-8", 0),
        Success
    );
    // Devices from that source are not limited by the claimant cap.
    assert_eq!(
        connect_from(&mut h, 12, "2001:db8:1:2::10", "d-1", "dev:d-1", 0),
        Success
    );
    h.events();
    // Silent connections: three wait for CONNECT, the fourth is closed.
    for conn in 20..24 {
        h.b.accepted_from(h.now, conn, ip("198.51.100.7"));
    }
    assert_eq!(h.closes(), vec![(23, CloseReason::TooManyClients)]);
    // Another source is not affected; a freed slot is reusable.
    h.b.accepted_from(h.now, 30, ip("198.51.100.8"));
    h.b.closed(h.now, 20);
    h.b.accepted_from(h.now, 24, ip("198.51.100.7"));
    assert!(h.closes().is_empty());
}

#[test]
fn retain_only_where_allowed_and_within_budgets() {
    let mut h = Harness::new(Limits {
        max_retained_bytes_per_client: 100,
        max_retained_bytes: 110,
        ..Limits::default()
    });
    h.connect(1, "a", "dev:a", true);
    h.connect(2, "b", "dev:b", true);
    h.tx();
    // A retained reply, or telemetry, is delivered but not kept.
    for topic in ["devices/a/cmd/x/reply", "devices/a/telemetry"] {
        let mut p = publish(topic, QoS::AtMostOnce, 0, "v");
        if let Packet::Publish(x) = &mut p {
            x.retain = true;
        }
        h.send(1, p);
    }
    assert_eq!(h.b.retained(), 0);
    assert_eq!(h.b.dropped_retains(), 2);
    // Status within the device's budget is kept; a larger one is not, and
    // the old one stays.
    let status = |payload: &str| {
        let mut p = publish("devices/a/status", QoS::AtMostOnce, 0, payload);
        if let Packet::Publish(x) = &mut p {
            x.retain = true;
        }
        p
    };
    h.send(1, status("online"));
    assert_eq!(h.b.retained(), 1);
    h.send(1, status(&"x".repeat(200)));
    assert_eq!(h.b.retained_bytes(), "devices/a/status".len() + 6);
    assert_eq!(h.b.dropped_retains(), 3);
    // The total budget: b's status fits once, then the store is full.
    let mut p = publish("devices/b/status", QoS::AtMostOnce, 0, &"y".repeat(80));
    if let Packet::Publish(x) = &mut p {
        x.retain = true;
    }
    h.send(2, p);
    assert_eq!(h.b.retained(), 1, "over the total budget");
}

#[test]
fn a_retained_will_elsewhere_is_sent_but_not_kept() {
    let mut h = Harness::new(Limits::default());
    let mut c = connect_packet("a", Some("dev:a"), true, 0);
    c.last_will = Some(LastWill::new(
        "devices/a/telemetry",
        "gone",
        QoS::AtMostOnce,
        true,
    ));
    h.connect_with(1, c);
    h.b.closed(h.now, 1);
    assert_eq!(h.b.retained(), 0);
}

#[test]
fn revoke_closes_the_connection_and_discards_the_session() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", false);
    h.send(1, subscribe(1, &[("devices/a/cmd/+", QoS::AtLeastOnce)]));
    h.tx();
    h.events();
    // A claimant principal of the same id is not this session.
    h.b.revoke(
        h.now,
        &Principal::Claimant(crate::DeviceId::parse("a").unwrap()),
    );
    assert!(h.closes().is_empty());
    h.b.revoke(
        h.now,
        &Principal::Device(crate::DeviceId::parse("a").unwrap()),
    );
    assert_eq!(h.closes(), vec![(1, CloseReason::Revoked)]);
    assert_eq!(h.b.sessions(), 0);
    let ack = h.connect(2, "a", "dev:a", false);
    assert!(!ack.session_present);
}

#[test]
fn a_revoked_claimant_gets_a_grace_for_its_answer() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "n", "claim:n", true);
    h.events();
    h.at(1_000);
    h.b.revoke(
        h.now,
        &Principal::Claimant(crate::DeviceId::parse("n").unwrap()),
    );
    assert!(h.closes().is_empty(), "not at once");
    h.at(2_999);
    assert!(h.closes().is_empty());
    h.at(3_000);
    assert_eq!(h.closes(), vec![(1, CloseReason::ClaimantExpired)]);
}

#[test]
fn a_resumed_session_reports_its_filters() {
    let mut h = Harness::new(Limits::default());
    h.connect(1, "a", "dev:a", false);
    h.send(1, subscribe(1, &[("devices/a/cmd/+", QoS::AtLeastOnce)]));
    h.b.closed(h.now, 1);
    h.events();
    h.connect(2, "a", "dev:a", false);
    let ev = h.events();
    assert!(
        ev.iter().any(|e| matches!(e,
            BrokerEvent::Connected { session_present: true, filters, .. }
                if filters == &vec!["devices/a/cmd/+".to_string()])),
        "{ev:?}"
    );
}
