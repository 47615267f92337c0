//! Command delivery to devices across reconnects and restarts (issue 11,
//! "also seen"): one delivery path per command, `commands_pending` for
//! offline devices, and no retry spent before the device has subscribed.

mod common;

use std::time::Duration;

use common::Gateway;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use serde_json::{json, Value};
use switchboard_mqtt::claim::{claim_mac, device_secret};

const FLEET: &str = "test-fleet-secret-0123456789";

fn gateway(timeout_secs: u32) -> Gateway {
    Gateway::start_with(
        "",
        &format!(
            "[devices]\nfleet_secret = \"{FLEET}\"\ncommand_timeout_secs = {timeout_secs}\ncommand_retries = 3\n"
        ),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claim(gw: &Gateway, id: &str) -> String {
    let nonce = format!("nonce-{id}-delivery");
    let mac = claim_mac(&device_secret(FLEET.as_bytes(), id), id, &nonce, now());
    let body = json!({"device_id": id, "nonce": nonce, "ts": now(), "hmac": mac}).to_string();
    let (code, r) = gw
        .request_body("POST", "/api/v1/devices/claim", &body)
        .unwrap();
    assert_eq!(code, 200, "{r}");
    r["password"].as_str().unwrap().to_string()
}

fn command(gw: &Gateway, id: &str, n: u32) -> String {
    let (code, r) = gw
        .request_body(
            "POST",
            &format!("/api/v1/devices/{id}/commands"),
            &json!({"n": n}).to_string(),
        )
        .unwrap();
    assert_eq!(code, 202, "{r}");
    r["id"].as_str().unwrap().to_string()
}

fn device(gw: &Gateway, id: &str) -> Value {
    gw.get(&format!("/api/v1/devices/{id}")).1
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(15), f, |held| *held);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The next incoming PUBLISH (within 15 s).
async fn next_publish(ev: &mut EventLoop) -> rumqttc::Publish {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return p,
            Ok(Ok(_)) => {}
            other => panic!("no publish: {other:?}"),
        }
    }
}

/// Poll until `f` says stop (within 15 s).
async fn until(ev: &mut EventLoop, mut f: impl FnMut(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, ev.poll()).await {
            Ok(Ok(e)) if f(&e) => return,
            Ok(Ok(_)) => {}
            other => panic!("event loop: {other:?}"),
        }
    }
}

/// An unacknowledged QoS 1 command reaches a device that reconnects onto its
/// persistent session once: resent with DUP by the broker, not published
/// again as a new message.
#[test]
fn an_unacknowledged_command_reaches_a_reconnecting_device_once() {
    let gw = gateway(30);
    let pass = claim(&gw, "esp-q");
    let port = gw.mqtt_port;
    let options = || {
        let mut o = common::device_options(port, "esp-q", &pass);
        o.set_clean_session(false);
        o.set_manual_acks(true);
        o
    };
    let rt = rt();
    let first = rt.block_on(async {
        let (client, mut ev) = AsyncClient::new(options(), 16);
        client
            .subscribe("devices/esp-q/cmd/+", QoS::AtLeastOnce)
            .await
            .unwrap();
        until(&mut ev, |e| matches!(e, Event::Incoming(Packet::SubAck(_)))).await;
        client
            .publish("devices/esp-q/status", QoS::AtLeastOnce, true, "online")
            .await
            .unwrap();
        (client, ev)
    });
    let req1 = command(&gw, "esp-q", 1);
    rt.block_on(async {
        let (_client, mut ev) = first;
        let p = next_publish(&mut ev).await;
        assert!(p.topic.ends_with(&req1), "{}", p.topic);
        // Gone without acknowledging it (the client and its socket drop).
    });
    wait_for("esp-q offline", || device(&gw, "esp-q")["online"] == false);
    let (seen, req2) = rt.block_on(async {
        let (client, mut ev) = AsyncClient::new(options(), 16);
        until(
            &mut ev,
            |e| matches!(e, Event::Incoming(Packet::ConnAck(a)) if a.session_present),
        )
        .await;
        client
            .publish("devices/esp-q/status", QoS::AtLeastOnce, true, "online")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let p = next_publish(&mut ev).await;
        seen.push((p.topic.clone(), p.dup));
        client.ack(&p).await.unwrap();
        client
            .publish(format!("{}/reply", p.topic), QoS::AtLeastOnce, false, "{}")
            .await
            .unwrap();
        // A second command: anything sent for the first comes before it.
        let gw_req2 = {
            let (code, r) = tokio::task::block_in_place(|| {
                gw.request_body(
                    "POST",
                    "/api/v1/devices/esp-q/commands",
                    &json!({"n": 2}).to_string(),
                )
                .unwrap()
            });
            assert_eq!(code, 202);
            r["id"].as_str().unwrap().to_string()
        };
        loop {
            let p = next_publish(&mut ev).await;
            seen.push((p.topic.clone(), p.dup));
            client.ack(&p).await.unwrap();
            if p.topic.ends_with(&gw_req2) {
                break;
            }
        }
        (seen, gw_req2)
    });
    let copies: Vec<_> = seen.iter().filter(|(t, _)| t.ends_with(&req1)).collect();
    assert_eq!(copies.len(), 1, "command 1 delivered {seen:?}");
    assert!(copies[0].1, "resent with DUP");
    assert!(seen.last().unwrap().0.ends_with(&req2));
}

/// `commands_pending` counts what waits for an offline device, also after a
/// restart.
#[test]
fn commands_pending_counts_the_queue_of_an_offline_device() {
    let mut gw = gateway(2);
    claim(&gw, "esp-o");
    command(&gw, "esp-o", 1);
    command(&gw, "esp-o", 2);
    let d = device(&gw, "esp-o");
    assert_eq!(d["commands_pending"], 2, "{d}");
    let list = gw.get("/api/v1/devices").1;
    assert_eq!(list["devices"][0]["commands_pending"], 2, "{list}");
    gw.restart();
    let d = device(&gw, "esp-o");
    assert_eq!(d["commands_pending"], 2, "after a restart: {d}");
}

/// After a restart a command is delivered once the device has subscribed,
/// not at its `online` (which would publish to no one and spend a retry).
#[test]
fn after_a_restart_commands_wait_for_the_subscription() {
    let mut gw = gateway(2);
    let pass = claim(&gw, "esp-p");
    let req = command(&gw, "esp-p", 1);
    gw.restart();

    let port = gw.mqtt_port;
    let rt = rt();
    rt.block_on(async {
        let (client, mut ev) = AsyncClient::new(common::device_options(port, "esp-p", &pass), 16);
        until(&mut ev, |e| {
            matches!(e, Event::Incoming(Packet::ConnAck(_)))
        })
        .await;
        // `online` first, and telemetry to know the gateway has handled it.
        client
            .publish("devices/esp-p/status", QoS::AtLeastOnce, true, "online")
            .await
            .unwrap();
        client
            .publish(
                "devices/esp-p/telemetry",
                QoS::AtLeastOnce,
                false,
                "{\"t\":1}",
            )
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(50), ev.poll()).await;
            let seen = tokio::task::block_in_place(|| device(&gw, "esp-p"));
            if seen["counters"]["telemetry"] == 1 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "telemetry not seen");
        }
        client
            .subscribe("devices/esp-p/cmd/+", QoS::AtLeastOnce)
            .await
            .unwrap();
        let p = next_publish(&mut ev).await;
        assert!(p.topic.ends_with(&req), "{}", p.topic);
        client
            .publish(format!("{}/reply", p.topic), QoS::AtLeastOnce, false, "{}")
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(50), ev.poll()).await;
            let (_, c) = tokio::task::block_in_place(|| {
                gw.get(&format!("/api/v1/devices/esp-p/commands/{req}"))
            });
            if c["status"] == "replied" {
                assert_eq!(c["attempts"], 1, "a retry was spent: {c}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no reply recorded");
        }
    });
}
