//! External broker mode against a real mosquitto started by the test: two
//! gateway instances connect to it as clients and split the device traffic
//! through the shared subscription `$share/switchboard/…`. Each telemetry
//! message is handled by exactly one instance; presence reaches both; a
//! command queued on one instance is delivered and its reply lands there.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, Gateway};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use switchboard_mqtt::claim::{claim_mac, device_secret};

const FLEET: &str = "test-fleet-secret-0123456789";
const TELEMETRY: usize = 200;

/// A mosquitto broker on a free loopback port, stopped on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl Mosquitto {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("sbtest-mosq-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let bin = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
            .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto not installed (apt-get install mosquitto)");
        common::wait_until(
            "mosquitto to listen",
            Duration::from_secs(10),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
            |up| *up,
        );
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn external_gateway(broker: &Mosquitto) -> Gateway {
    // `start_with` waits for /health/ready, which waits for the broker link.
    Gateway::start_with(
        "",
        &format!(
            "[mqtt]\nmode = \"external\"\nurl = \"mqtt://127.0.0.1:{}\"\n\n[devices]\nfleet_secret = \"{FLEET}\"\ncommand_timeout_secs = 3\n",
            broker.port
        ),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn device(gw: &Gateway, id: &str) -> Value {
    gw.get(&format!("/api/v1/devices/{id}")).1
}

fn telemetry_of(gw: &Gateway, id: &str) -> u64 {
    device(gw, id)["counters"]["telemetry"]
        .as_u64()
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    common::wait_until(what, timeout, f, |held| *held);
}

/// A device on rumqttc: Last Will `offline`, subscribes to its commands,
/// announces `online`, publishes `TELEMETRY` messages (QoS 1) and answers
/// every command, until `stay` has passed. Then it vanishes without
/// DISCONNECT, so the broker publishes its will. Returns the commands seen.
fn run_device(port: u16, id: &str, stay: Duration) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_last_will(LastWill::new(
            format!("devices/{id}/status"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut events) = AsyncClient::new(opts, 512);
        client
            .subscribe(format!("devices/{id}/cmd/+"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + stay;
        while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, events.poll()).await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    let c = client.clone();
                    let id = id.to_string();
                    tokio::spawn(async move {
                        let status = format!("devices/{id}/status");
                        let _ = c.publish(status, QoS::AtLeastOnce, true, "online").await;
                        let topic = format!("devices/{id}/telemetry");
                        for n in 0..TELEMETRY {
                            let body = json!({"n": n, "fw": "ext-1.0"}).to_string();
                            let _ = c.publish(&topic, QoS::AtLeastOnce, false, body).await;
                        }
                    });
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let req = p.topic.rsplit('/').next().unwrap_or_default().to_string();
                    let reply = format!("devices/{id}/cmd/{req}/reply");
                    let _ = client.try_publish(reply, QoS::AtLeastOnce, false, r#"{"ok":true}"#);
                    seen.push(req);
                }
                _ => {}
            }
        }
        // Dropping the event loop closes the socket without DISCONNECT.
        seen
    })
}

fn claim(gw: &Gateway, id: &str) {
    let nonce = format!("ext-nonce-{id}-{}", now());
    let secret = device_secret(FLEET.as_bytes(), id);
    let mac = claim_mac(&secret, id, &nonce, now());
    let body = json!({"device_id": id, "nonce": nonce, "ts": now(), "hmac": mac}).to_string();
    let (code, r) = gw
        .request_body("POST", "/api/v1/devices/claim", &body)
        .unwrap();
    assert_eq!(code, 200, "{r}");
}

#[test]
fn two_instances_split_device_traffic_through_a_shared_subscription() {
    let broker = Mosquitto::start();
    let a = external_gateway(&broker);
    let b = external_gateway(&broker);
    let status = a.get("/health/ready").1;
    assert_eq!(status["mqtt"], true, "{status}");

    // The device is registered on A, and a command waits there for it.
    claim(&a, "ext-1");
    let (code, cmd) = a
        .request_body(
            "POST",
            "/api/v1/devices/ext-1/commands",
            &json!({"blink": 3}).to_string(),
        )
        .unwrap();
    assert_eq!(code, 202, "{cmd}");
    let req = cmd["id"].as_str().unwrap().to_string();

    let port = broker.port;
    let dev = std::thread::spawn(move || run_device(port, "ext-1", Duration::from_secs(6)));
    wait_for(
        "both instances to see the device online",
        Duration::from_secs(10),
        || device(&a, "ext-1")["online"] == true && device(&b, "ext-1")["online"] == true,
    );
    wait_for(
        "all telemetry to be handled",
        Duration::from_secs(15),
        || telemetry_of(&a, "ext-1") + telemetry_of(&b, "ext-1") >= TELEMETRY as u64,
    );
    let seen = dev.join().unwrap();

    // Each message handled by exactly one instance, and both took a share.
    let (ta, tb) = (telemetry_of(&a, "ext-1"), telemetry_of(&b, "ext-1"));
    assert_eq!(ta + tb, TELEMETRY as u64, "A {ta} + B {tb}");
    assert!(ta > 0 && tb > 0, "not split: A {ta}, B {tb}");
    assert_eq!(device(&a, "ext-1")["firmware"], "ext-1.0");

    // The command queued on A went out once and A saw the reply.
    assert_eq!(seen, vec![req.clone()], "commands seen by the device");
    let rec = a.get(&format!("/api/v1/devices/ext-1/commands/{req}")).1;
    assert_eq!(rec["status"], "replied", "{rec}");
    assert_eq!(rec["attempts"], 1, "{rec}");

    // The device vanished: its will reaches both instances.
    wait_for(
        "both instances to see the device offline",
        Duration::from_secs(15),
        || device(&a, "ext-1")["online"] == false && device(&b, "ext-1")["online"] == false,
    );
    assert_eq!(a.metric("switchboard_devices_online"), 0.0);
}

#[test]
fn readiness_follows_the_external_broker() {
    let broker = Mosquitto::start();
    let gw = external_gateway(&broker);
    let port = broker.port;
    drop(broker);
    wait_for(
        "readiness to drop with the broker",
        Duration::from_secs(15),
        || {
            gw.try_request("GET", "/health/ready")
                .is_ok_and(|(code, body)| code == 503 && body["mqtt"] == false)
        },
    );
    // The broker comes back on the same port: the link reconnects by itself.
    let _again = Mosquitto::start_on(port);
    wait_for("readiness to come back", Duration::from_secs(20), || {
        gw.try_request("GET", "/health/ready")
            .is_ok_and(|(code, _)| code == 200)
    });
}
