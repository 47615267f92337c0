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
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = gw.get("/api/v1/devices/esp-tls").1;
        if d["counters"]["telemetry"] == 1 {
            assert_eq!(d["telemetry"]["temp"], 21.5, "{d}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "telemetry over TLS not seen: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
