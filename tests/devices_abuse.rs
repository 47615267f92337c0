//! What an outsider can try against the embedded MQTT broker (issue 11,
//! items 1-5): take a claimed device over with an empty password, squat its
//! client id, fill the connection table with anonymous claimants, grow the
//! gateway with retained messages, and rotate a credential by claiming
//! again. Raw TCP for the many-sockets cases, rumqttc for real devices.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Gateway;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{json, Value};
use switchboard_mqtt::claim::{claim_mac, device_secret};

const FLEET: &str = "test-fleet-secret-0123456789";

fn gateway_with(mqtt: &str) -> Gateway {
    Gateway::start_with(
        "",
        &format!("{mqtt}[devices]\nfleet_secret = \"{FLEET}\"\ncommand_timeout_secs = 30\n"),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claim_body(id: &str, nonce: &str) -> String {
    let secret = device_secret(FLEET.as_bytes(), id);
    let mac = claim_mac(&secret, id, nonce, now());
    json!({"device_id": id, "nonce": nonce, "ts": now(), "hmac": mac}).to_string()
}

/// Claim over HTTP: (status, body).
fn try_claim(gw: &Gateway, id: &str, nonce: &str) -> (u16, Value) {
    gw.request_body("POST", "/api/v1/devices/claim", &claim_body(id, nonce))
        .unwrap()
}

fn claim(gw: &Gateway, id: &str) -> String {
    let (code, body) = try_claim(gw, id, &format!("nonce-{id}-first"));
    assert_eq!(code, 200, "{body}");
    body["password"].as_str().unwrap().to_string()
}

fn device(gw: &Gateway, id: &str) -> Value {
    gw.get(&format!("/api/v1/devices/{id}")).1
}

fn wait_for(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    common::wait_until(what, timeout, f, |held| *held);
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An MQTT 3.1.1 CONNECT, clean session; `pass` `Some("")` sends an empty
/// password.
fn connect_bytes(client_id: &str, user: Option<&str>, pass: Option<&str>, ka: u16) -> Vec<u8> {
    let mut flags = 0x02u8;
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(4);
    if user.is_some() {
        flags |= 0x80;
    }
    if pass.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&ka.to_be_bytes());
    string(&mut body, client_id);
    if let Some(u) = user {
        string(&mut body, u);
    }
    if let Some(p) = pass {
        string(&mut body, p);
    }
    let mut out = vec![0x10];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&body);
    out
}

/// Open a raw connection, send CONNECT, return the socket and the CONNACK
/// return code (None: closed without a CONNACK).
fn raw_connect(
    port: u16,
    client_id: &str,
    user: Option<&str>,
    pass: Option<&str>,
    ka: u16,
) -> (TcpStream, Option<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&connect_bytes(client_id, user, pass, ka))
        .unwrap();
    let mut ack = [0u8; 4];
    let code = match s.read_exact(&mut ack) {
        Ok(()) if ack[0] == 0x20 && ack[1] == 2 => Some(ack[3]),
        _ => None,
    };
    (s, code)
}

/// A real device on rumqttc: connects, subscribes to its commands and says
/// `online`; reports every event on the channel until told to stop.
struct RealDevice {
    events: std::sync::mpsc::Receiver<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RealDevice {
    fn start(port: u16, id: &str, pass: &str) -> Self {
        let (tx, events) = std::sync::mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (id, pass) = (id.to_string(), pass.to_string());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let opts = common::device_options(port, &id, &pass);
                let (client, mut ev) = AsyncClient::new(opts, 64);
                client
                    .subscribe(format!("devices/{id}/cmd/+"), QoS::AtLeastOnce)
                    .await
                    .unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        e = ev.poll() => match e {
                            Ok(Event::Incoming(Packet::SubAck(_))) => {
                                let _ = tx.send("suback".into());
                                client
                                    .publish(format!("devices/{id}/status"), QoS::AtLeastOnce, true, "online")
                                    .await
                                    .unwrap();
                            }
                            Ok(Event::Incoming(Packet::ConnAck(a))) => {
                                let _ = tx.send(format!("connack {:?}", a.code));
                            }
                            Ok(Event::Incoming(Packet::Disconnect)) => {
                                let _ = tx.send("disconnect".into());
                            }
                            Ok(_) => {}
                            Err(err) => {
                                let _ = tx.send(format!("error {err}"));
                                // No reconnect: the test sees each loss.
                                break;
                            }
                        }
                    }
                }
            });
        });
        Self {
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn wait(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e.starts_with(what) => return,
                Ok(_) => {}
                Err(_) => panic!("device never saw {what}"),
            }
        }
    }

    fn lost(&self) -> Vec<String> {
        self.events
            .try_iter()
            .filter(|e| e.starts_with("error") || e == "disconnect")
            .collect()
    }
}

impl Drop for RealDevice {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Item 1: an empty-password CONNECT with a claimed device's id is refused
/// (CONNACK 5) and does not touch the connected device.
#[test]
fn empty_password_connects_do_not_take_over_a_claimed_device() {
    let gw = gateway_with("");
    let pass = claim(&gw, "esp-a");
    let dev = RealDevice::start(gw.mqtt_port, "esp-a", &pass);
    dev.wait("suback");
    wait_for("esp-a online", Duration::from_secs(10), || {
        device(&gw, "esp-a")["online"] == true
    });
    for _ in 0..20 {
        let (_s, code) = raw_connect(gw.mqtt_port, "esp-a", Some("esp-a"), Some(""), 0);
        assert_eq!(code, Some(5), "CONNACK 5 (not authorized)");
        let (_s, code) = raw_connect(gw.mqtt_port, "esp-a", Some("esp-a"), None, 0);
        assert_eq!(code, Some(5), "no password at all: the same");
    }
    // The device never lost its connection and is still online.
    let d = device(&gw, "esp-a");
    assert_eq!(d["online"], true, "{d}");
    assert!(dev.lost().is_empty(), "the device was disconnected");
    assert!(gw.metric("switchboard_mqtt_auth_failures_total{reason=\"already_claimed\"}") >= 40.0);
}

/// Item 2: client ids are bound to logins; no claimant or other device can
/// hold `esp-a`, so the real esp-a always gets in.
#[test]
fn no_one_can_squat_another_devices_client_id() {
    let gw = gateway_with("");
    let pass_a = claim(&gw, "esp-a");
    let pass_b = claim(&gw, "esp-b");
    // An unauthenticated claimant (for an unclaimed id) with esp-a's client
    // id, keep-alive 0.
    let (_squat1, code) = raw_connect(gw.mqtt_port, "esp-a", Some("esp-z"), None, 0);
    assert_eq!(code, Some(2), "claimant squatting esp-a's client id");
    // Another device, with its own good credential.
    let (_squat2, code) = raw_connect(gw.mqtt_port, "esp-a", Some("esp-b"), Some(&pass_b), 0);
    assert_eq!(code, Some(2), "device esp-b squatting esp-a's client id");
    // The real esp-a connects.
    let (_real, code) = raw_connect(gw.mqtt_port, "esp-a", Some("esp-a"), Some(&pass_a), 0);
    assert_eq!(code, Some(0));
}

/// Item 3: anonymous claimants cannot fill the gateway: per-source cap and
/// a share of `max_connections` only.
#[test]
fn anonymous_claimants_cannot_lock_devices_out() {
    let port = common::free_port();
    let gw = gateway_with(&format!(
        "[mqtt]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = 50\n\n"
    ));
    let pass = claim(&gw, "esp-real");
    let mut held = Vec::new();
    let mut accepted = 0;
    for i in 0..50 {
        let id = format!("anon-{i}");
        let (s, code) = raw_connect(port, &id, Some(&id), None, 0);
        if code == Some(0) {
            accepted += 1;
        }
        held.push(s);
    }
    assert!(accepted <= 5, "{accepted} anonymous claimants accepted");
    let (_dev, code) = raw_connect(port, "esp-real", Some("esp-real"), Some(&pass), 0);
    assert_eq!(code, Some(0), "the real device gets in");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Item 4: a device's retained messages outside its status are not kept, so
/// 2,000 x 60 KB retained replies do not grow the gateway.
#[test]
fn retained_messages_cannot_grow_the_gateway() {
    let gw = gateway_with("");
    let pass = claim(&gw, "esp-r");
    let before = rss_kb(gw.pid());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = gw.mqtt_port;
    rt.block_on(async {
        let mut opts = common::device_options(port, "esp-r", &pass);
        opts.set_max_packet_size(128 * 1024, 128 * 1024);
        let (client, mut ev) = AsyncClient::new(opts, 64);
        let big = vec![b'x'; 60 * 1024];
        let sender = {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..2000 {
                    let topic = format!("devices/esp-r/cmd/r{i}/reply");
                    client
                        .publish(topic, QoS::AtLeastOnce, true, big.clone())
                        .await
                        .unwrap();
                }
                // A large status is over the device's budget too.
                client
                    .publish(
                        "devices/esp-r/status",
                        QoS::AtLeastOnce,
                        true,
                        vec![b'y'; 4096],
                    )
                    .await
                    .unwrap();
            })
        };
        let mut acked = 0;
        while acked < 2001 {
            match tokio::time::timeout(Duration::from_secs(30), ev.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
                other => panic!("device lost: {other:?}"),
            }
        }
        sender.await.unwrap();
    });
    let grown_mb = rss_kb(gw.pid()).saturating_sub(before) / 1024;
    assert!(grown_mb < 40, "the gateway grew by {grown_mb} MB");
    // At most the device's own status (its will `offline` once it left).
    assert!(gw.metric("switchboard_mqtt_retained_messages") <= 1.0);
    assert!(gw.metric("switchboard_mqtt_retained_bytes") <= 1024.0);
}

/// Item 5: a valid claim for a claimed device is 409 `already_claimed` and
/// leaves the credential alone; an operator's reset (API or CLI) makes it
/// claimable again and closes the connection still open with the old one.
#[test]
fn claiming_again_is_refused_and_reset_is_an_operator_act() {
    let gw = gateway_with("");
    let pass = claim(&gw, "esp-c");
    let (code, body) = try_claim(&gw, "esp-c", "nonce-esp-c-again");
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["reason"], "already_claimed", "{body}");
    assert!(body.get("password").is_none());
    // The old credential still works; the MQTT equivalent of "already
    // claimed" is a refused claimant login.
    let (_s, code) = raw_connect(gw.mqtt_port, "esp-c", Some("esp-c"), Some(&pass), 0);
    assert_eq!(code, Some(0));
    drop(_s);
    let (_s, code) = raw_connect(gw.mqtt_port, "esp-c", Some("esp-c"), None, 0);
    assert_eq!(code, Some(5));

    let dev = RealDevice::start(gw.mqtt_port, "esp-c", &pass);
    dev.wait("suback");
    wait_for("esp-c online", Duration::from_secs(10), || {
        device(&gw, "esp-c")["online"] == true
    });
    // The operator resets it through the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "device",
            "reset",
            "--admin",
            &format!("http://127.0.0.1:{}", gw.admin_port),
            "--api-key",
            common::TEST_KEY,
            "esp-c",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The connection with the old credential is closed, and the credential
    // no longer works.
    wait_for(
        "the old connection to close",
        Duration::from_secs(10),
        || !dev.lost().is_empty(),
    );
    let (_s, code) = raw_connect(gw.mqtt_port, "esp-c", Some("esp-c"), Some(&pass), 0);
    assert_eq!(code, Some(4));
    assert_eq!(gw.get("/api/v1/devices/esp-c").0, 404);
    let (code, _) = gw
        .request_body("POST", "/api/v1/devices/esp-c/reset", "")
        .unwrap();
    assert_eq!(code, 404, "nothing left to reset");
    // Claimed again: a new credential.
    let (code, body) = try_claim(&gw, "esp-c", "nonce-esp-c-third");
    assert_eq!(code, 200, "{body}");
    assert_ne!(body["password"].as_str().unwrap(), pass);
}
