//! The log never carries a secret or a whole phone number, even at `trace`: the gateway runs
//! with `SWITCHBOARD_LOG=trace` (every crate, dependencies included) through a SIPp call whose
//! caller sends an `Authorization` header and whose trunk challenges the INVITE (digest with
//! the trunk password), a trunk REGISTER with digest, an API key created and used, a device
//! claimed over HTTP that then logs in over MQTT with its password, an ingest connection
//! with its JWT in the query, and a malformed request (numbers and a digest in it) that rsip
//! refuses. The log must then hold none of those secrets nor the dialled or
//! calling number in full, and must hold the masked numbers (so the check can fail).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{uac, Gateway, Sipp, TEST_KEY};
use serde_json::{json, Value};
use switchboard_mqtt::claim::{claim_mac, device_secret};

const DIALLED: &str = "4930555012345";
const CALLER: &str = "4420795550123";
/// The trunk password `uas_invite_auth401.xml` and `uas_register_auth.xml` verify.
const TRUNK_PASSWORD: &str = "trunkpass";
const SIP_USER_PASSWORD: &str = "sip-user-pw-Zq81x";
const APP_TOKEN: &str = "Bearer app-token-Kx93hd";
const FLEET: &str = "audit-fleet-secret-Vb20s9";
const WEBHOOK_SECRET: &str = "audit-webhook-secret-Pw55";
/// The canary digest response in `uac_audit.xml`'s Authorization header.
const CALLER_DIGEST: &str = "c0ffeec0ffeec0ffeec0ffeec0ffee00";

/// Wait (up to 15 s) until `f` holds; else fail with `what` and the log.
fn wait_until(what: &str, gw: &Gateway, f: impl Fn() -> bool) {
    if common::poll_until(Duration::from_secs(15), f, |held| *held).is_err() {
        panic!("{what}\n{}", gw.log());
    }
}

#[test]
fn secrets_and_numbers_stay_out_of_a_trace_log() {
    let trunk = Sipp::uas("uas_invite_auth401.xml", &["-m", "1"]);
    let registrar = Sipp::uas("uas_register_auth.xml", &["-m", "1"]);
    let sections = format!(
        "[devices]\nfleet_secret = \"{FLEET}\"\n\n[fax]\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n\n{}",
        common::ingest::media_ws_section("")
    );
    let gw = Gateway::start_with_env(
        &format!(
            "[[trunk]]\nname = \"carrier\"\naddress = \"{trunk}\"\nusername = \"trunkuser\"\n\
             password = \"{TRUNK_PASSWORD}\"\nkeepalive_secs = 0\n\n\
             [[trunk]]\nname = \"registrar\"\naddress = \"{registrar}\"\nusername = \"trunkuser\"\n\
             password = \"{TRUNK_PASSWORD}\"\nregister = true\nkeepalive_secs = 0\n\n\
             [[sip_user]]\nusername = \"alice\"\npassword = \"{SIP_USER_PASSWORD}\"\n\n\
             [[app]]\nname = \"bot\"\nurl = \"ws://127.0.0.1:9/x\"\nauth_header = \"{APP_TOKEN}\"\n\n\
             [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\n",
            trunk = trunk.addr(),
            registrar = registrar.addr(),
        ),
        &sections,
        &[("SWITCHBOARD_LOG", "trace")],
    );

    // The trunk REGISTER with digest.
    wait_until("the registrar trunk never registered", &gw, || {
        gw.get("/api/v1/trunks").1["trunks"]
            .as_array()
            .is_some_and(|t| {
                t.iter()
                    .any(|t| t["name"] == "registrar" && t["registered"] == true)
            })
    });
    assert_eq!(
        registrar.wait(Duration::from_secs(10)),
        0,
        "bad REGISTER digest"
    );

    // A call from CALLER to DIALLED; the trunk challenges the INVITE.
    let run = uac(
        "uac_audit.xml",
        &gw.sip(),
        &[
            "-s", DIALLED, "-set", "caller", CALLER, "-m", "1", "-d", "300",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.output, gw.log());
    assert_eq!(trunk.wait(Duration::from_secs(10)), 0, "bad INVITE digest");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["dst"], DIALLED, "{cdr}");
    assert_eq!(cdr["src"], CALLER, "{cdr}");

    // An API key, created and then used.
    let (code, made) = gw
        .request_body(
            "POST",
            "/api/v1/admin/api-keys",
            r#"{"name":"audit","scopes":["calls:read"]}"#,
        )
        .unwrap();
    assert_eq!(code, 201, "{made}");
    let api_key = made["key"].as_str().unwrap().to_string();
    let (code, _, _) = gw
        .request_with(
            "GET",
            "/api/v1/calls",
            "",
            &[("Authorization", &format!("Bearer {api_key}"))],
        )
        .unwrap();
    assert_eq!(code, 200);

    // A device claim over HTTP, then an MQTT login with the issued password.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let nonce = "audit-nonce-000000001";
    let mac = claim_mac(
        &device_secret(FLEET.as_bytes(), "esp-audit"),
        "esp-audit",
        nonce,
        ts,
    );
    let (code, claimed) = gw
        .request_body(
            "POST",
            "/api/v1/devices/claim",
            &json!({"device_id": "esp-audit", "nonce": nonce, "ts": ts, "hmac": mac}).to_string(),
        )
        .unwrap();
    assert_eq!(code, 200, "{claimed}");
    let device_password = claimed["password"].as_str().unwrap().to_string();
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &gw.mqtt_port.to_string()])
        .args(["-i", "esp-audit", "-u", "esp-audit", "-P", &device_password])
        .args([
            "-q",
            "1",
            "-t",
            "devices/esp-audit/telemetry",
            "-m",
            r#"{"t":1}"#,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(out.status.success(), "{out:?}\n{}", gw.log());
    wait_until("telemetry not seen", &gw, || {
        gw.get("/api/v1/devices/esp-audit").1["counters"]["telemetry"] == 1
    });

    // An ingest connection with its token in the query (refused: no such app).
    let jwt = common::ingest::good();
    let url = common::ingest::ingest_url(&gw, "app:nobody", &format!("?token={jwt}"));
    let r: Value = common::ingest::cpaas(&url, &[]);
    assert_eq!(r["status"], 404, "{r}");

    // A request rsip refuses (its Request-URI): the parse error is logged at debug, and rsip's
    // own error text would quote the whole message.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let raw = format!(
        "INVITE sip:{DIALLED}@127.0.0.1;a=b?c SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKaudit1\r\n\
         From: <sip:{CALLER}@127.0.0.1>;tag=audit1\r\nTo: <sip:{DIALLED}@127.0.0.1>\r\n\
         Call-ID: audit-malformed\r\nCSeq: 1 INVITE\r\n\
         Authorization: Digest username=\"alice\", realm=\"switchboard\", nonce=\"n\", \
         uri=\"sip:{DIALLED}@127.0.0.1\", response=\"{CALLER_DIGEST}\"\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(raw.as_bytes(), gw.sip()).unwrap();
    wait_until("the malformed request was not logged", &gw, || {
        gw.log().contains("malformed SIP")
    });

    // The last lines are in the file once a probe sent after the malformed request is logged:
    // the SIP receive loop handles datagrams one at a time, and every earlier step above
    // waited for its own effect.
    let probe = format!(
        "OPTIONS sip:probe@127.0.0.1;a=b?c SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\n\
         Call-ID: audit-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(probe.as_bytes(), gw.sip()).unwrap();
    wait_until("the probe was not logged", &gw, || {
        gw.log().matches("malformed SIP").count() >= 2
    });
    let log = gw.log();
    assert!(
        log.contains("TRACE"),
        "the gateway did not log at trace:\n{log}"
    );
    let test_key_secret = TEST_KEY.rsplit('_').next().unwrap();
    let api_key_secret = api_key.rsplit('_').next().unwrap();
    let app_token = APP_TOKEN.trim_start_matches("Bearer ");
    let jwt_signature = jwt.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("the dialled number", DIALLED),
        ("the calling number", CALLER),
        ("the trunk password", TRUNK_PASSWORD),
        ("a sip_user password", SIP_USER_PASSWORD),
        ("an app's auth_header", app_token),
        ("the fleet secret", FLEET),
        ("the fax webhook secret", WEBHOOK_SECRET),
        ("the bootstrap API key", test_key_secret),
        ("the new API key", api_key_secret),
        ("the device's MQTT password", device_password.as_str()),
        ("the claim HMAC", mac.as_str()),
        ("an ingest JWT", jwt_signature),
        ("the caller's digest response", CALLER_DIGEST),
        ("a digest response", "response=\""),
        ("an Authorization header", "Digest username"),
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("{what} ({secret}) is in the log: {line}");
        }
    }
    // The numbers are there, masked (the calls were logged at all).
    for masked in ["4930*******45", "4420*******23"] {
        assert!(log.contains(masked), "{masked} not in the log:\n{log}");
    }
}
