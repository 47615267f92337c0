//! MQTT over TLS on the embedded broker (`[mqtt] tls_listen`), driven by
//! mosquitto_pub with a self-signed certificate made by openssl for the test.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, self_signed, Gateway};
use serde_json::json;
use switchboard_mqtt::claim::{claim_mac, device_secret};

const FLEET: &str = "test-fleet-secret-0123456789";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claim(gw: &Gateway, id: &str) -> String {
    let nonce = format!("tls-nonce-{id}-{}", now());
    let mac = claim_mac(&device_secret(FLEET.as_bytes(), id), id, &nonce, now());
    let body = json!({"device_id": id, "nonce": nonce, "ts": now(), "hmac": mac}).to_string();
    let (code, r) = gw
        .request_body("POST", "/api/v1/devices/claim", &body)
        .unwrap();
    assert_eq!(code, 200, "{r}");
    r["password"].as_str().unwrap().to_string()
}

fn publish(port: u16, extra: &[&str], args: &[&str]) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)")
}

#[test]
fn devices_connect_over_tls_and_plain_text_on_the_tls_port_is_refused() {
    let dir = std::env::temp_dir().join(format!("sbtest-tls-{}", std::process::id()));
    let (cert, key) = self_signed(&dir);
    let (plain, tls) = (free_port(), free_port());
    let gw = Gateway::start_with(
        "",
        &format!(
            "[mqtt]\nlisten = \"127.0.0.1:{plain}\"\ntls_listen = \"127.0.0.1:{tls}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[devices]\nfleet_secret = \"{FLEET}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let pass = claim(&gw, "esp-tls");
    let cafile = cert.to_str().unwrap().to_string();
    let as_device = ["-u", "esp-tls", "-P", &pass, "-i", "esp-tls", "-q", "1"];
    let telemetry = ["-t", "devices/esp-tls/telemetry", "-m", r#"{"temp":21.5}"#];

    // Plain MQTT to the TLS port: no handshake, no session, and it costs nothing else.
    let out = publish(tls, &as_device, &telemetry);
    assert!(!out.status.success(), "plain text accepted on the TLS port");

    // Over TLS, verified against the test's CA: accepted and handled.
    let out = publish(
        tls,
        &["--cafile", &cafile],
        &[&as_device[..], &telemetry[..]].concat(),
    );
    assert!(
        out.status.success(),
        "TLS publish failed: {out:?}\n{}",
        gw.log()
    );
    let d = common::wait_until(
        "telemetry over TLS",
        Duration::from_secs(10),
        || gw.get("/api/v1/devices/esp-tls").1,
        |d| d["counters"]["telemetry"] == 1,
    );
    assert_eq!(d["telemetry"]["temp"], 21.5, "{d}");
    assert!(gw.metric("switchboard_mqtt_tls_handshake_failures_total") >= 1.0);

    // A wrong credential over TLS is still refused.
    let out = publish(
        tls,
        &["--cafile", &cafile],
        &[
            "-u",
            "esp-tls",
            "-P",
            "wrong-password",
            "-i",
            "esp-tls",
            "-t",
            "devices/esp-tls/telemetry",
            "-m",
            "{}",
        ],
    );
    assert!(!out.status.success(), "wrong credential accepted over TLS");
    // The plain listener still works next to it.
    let out = publish(plain, &as_device, &telemetry);
    assert!(out.status.success(), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_certificate_stops_start_up_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("sbtest-tlsbad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchboard.toml");
    let missing = dir.join("nope.pem");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n[storage]\npath = \"{}\"\n[mqtt]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            free_port(),
            free_port(),
            dir.join("data").display(),
            free_port(),
            free_port(),
            missing.display(),
            missing.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS certificate") && err.contains("nope.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 11, item 15 (MQTT part): TLS handshakes are capped per source and
/// bounded in time. Idle sockets from 127.0.0.2 that never send a ClientHello
/// hold at most 8 handshake slots; the next ones are closed at once, and a
/// device from another source still connects over TLS.
#[test]
fn tls_handshakes_are_capped_per_source_and_time_bound() {
    use tokio::io::AsyncReadExt;
    let dir = std::env::temp_dir().join(format!("sbtest-tls-cap-{}", std::process::id()));
    let (cert, key) = self_signed(&dir);
    let (plain, tls) = (free_port(), free_port());
    let gw = Gateway::start_with(
        "",
        &format!(
            "[mqtt]\nlisten = \"127.0.0.1:{plain}\"\ntls_listen = \"127.0.0.1:{tls}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[devices]\nfleet_secret = \"{FLEET}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let pass = claim(&gw, "esp-cap");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect_from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind((ip, 0).into()).unwrap();
            s.connect(([127, 0, 0, 1], tls).into()).await.unwrap()
        }
    };
    // Whether the server closed the socket within `within`.
    async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(within, s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
    let started = Instant::now();
    let mut idle = Vec::new();
    rt.block_on(async {
        for _ in 0..8 {
            idle.push(connect_from("127.0.0.2").await);
        }
        // Over the per-source cap: closed at once, without waiting for the
        // handshake deadline.
        for i in 0..4 {
            let mut extra = connect_from("127.0.0.2").await;
            assert!(
                closed_within(&mut extra, Duration::from_secs(3)).await,
                "extra handshake {i} was not refused"
            );
        }
    });
    // A device from another source is not affected.
    let cafile = cert.to_str().unwrap().to_string();
    let out = publish(
        tls,
        &["--cafile", &cafile],
        &[
            "-u",
            "esp-cap",
            "-P",
            &pass,
            "-i",
            "esp-cap",
            "-t",
            "devices/esp-cap/telemetry",
            "-m",
            "{}",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // The idle handshakes end at their deadline (10 s).
    rt.block_on(async {
        for s in &mut idle {
            assert!(closed_within(s, Duration::from_secs(15)).await);
        }
    });
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(gw.metric("switchboard_mqtt_tls_handshakes_refused_total") >= 4.0);
    let _ = std::fs::remove_dir_all(&dir);
}
