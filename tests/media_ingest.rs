//! The media-ingest server against a real WebSocket client: a Python `websockets` CPaaS
//! (`tests/media/cpaas_client.py`) streams a call in the Twilio or Exotel shapes. Admission
//! (RS256 tokens, allowlist, per-IP limits) is decided before the upgrade; frame floods are
//! cut off without disturbing other streams; a stream to `app:NAME` is relayed to a Python
//! app and the app's audio comes back.

mod common;

use std::time::Duration;

use common::app::App;
use common::ingest::{b64url, cpaas, good, ingest_gateway, ingest_url, key, now, token};
use common::Gateway;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

#[test]
fn a_cpaas_stream_is_relayed_to_an_app_and_the_apps_audio_comes_back() {
    let app = App::start("twilio", 8000, "play:400,mark:m1");
    let gw = ingest_gateway(app.port, "");
    assert_eq!(gw.get("/health").1["features"]["media_ingest"], true);
    let url = ingest_url(&gw, "app:bot", "");
    let r = cpaas(
        &url,
        &[
            "--token",
            &good(),
            "--media-ms",
            "1000",
            "--digit",
            "7",
            "--hold-ms",
            "800",
        ],
    );
    assert_eq!(r["status"], 101, "{r}\n{}", gw.log());
    // The app got the CPaaS's audio as a stream of its own, with the digit.
    assert!(
        app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()),
        "{:?}",
        app.records()
    );
    let start = &app.events("start")[0].1;
    assert_eq!(start["start"]["callSid"], "CA1");
    assert_eq!(start["start"]["customParameters"]["who"], "cpaas");
    let media = app.events("media").len();
    assert!(
        (45..=50).contains(&media),
        "{media} media frames reached the app"
    );
    assert_eq!(app.events("dtmf")[0].1["dtmf"]["digit"], "7");
    // The app's 400 ms of tone and its mark came back to the CPaaS as Twilio app messages.
    let back: Vec<&Value> = r["received"].as_array().unwrap().iter().collect();
    let media_back: usize = back
        .iter()
        .filter(|m| m["event"] == "media")
        .map(|m| m["media"]["payload"].as_str().unwrap().len() / 4 * 3)
        .sum();
    assert!(
        (3000..=3300).contains(&media_back),
        "{media_back} bytes of audio came back: {back:?}"
    );
    assert!(
        back.iter()
            .any(|m| m["event"] == "mark" && m["mark"]["name"] == "m1"),
        "{back:?}"
    );
    assert_eq!(r["close_code"], 1000, "{r}");
    assert!(gw.metric("switchboard_ingest_accepted_total") >= 1.0);
}

#[test]
fn bad_tokens_foreign_targets_and_sources_are_refused_before_the_upgrade() {
    let app = App::start("twilio", 8000, "");
    let gw = ingest_gateway(app.port, "");
    let url = ingest_url(&gw, "app:bot", "");
    let refused = |args: &[&str], status: u64, reason: &str| {
        let r = cpaas(&url, args);
        assert_eq!(r["status"], status, "{args:?}: {r}");
        assert!(
            r["body"].as_str().unwrap_or("").contains(reason),
            "{args:?}: {r}"
        );
    };
    refused(&[], 401, "no_token");
    let expired = token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() - 3600}),
    );
    refused(&["--token", &expired], 401, "expired");
    // alg "none": unsigned.
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(
            json!({"tenant": "acme", "exp": now() + 300})
                .to_string()
                .as_bytes()
        )
    );
    refused(&["--token", &unsigned], 401, "wrong_algorithm");
    // HS256 forged with the public key as the HMAC secret.
    let public = std::fs::read(key("signing_public.pem")).unwrap();
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"tenant": "acme", "exp": now() + 300}),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    refused(&["--token", &forged], 401, "wrong_algorithm");
    // Signed by a key we do not trust.
    let foreign = token(
        "other_private.pem",
        json!({"tenant": "acme", "exp": now() + 300}),
    );
    refused(&["--token", &foreign], 401, "bad_signature");
    // A token for devices only may not stream to an app.
    let devices_only = token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() + 300, "targets": ["device:*"]}),
    );
    refused(&["--token", &devices_only], 403, "target_not_allowed");
    let r = cpaas(&ingest_url(&gw, "app:nobody", ""), &["--token", &good()]);
    assert_eq!(r["status"], 404, "{r}");
    // The app never saw any of them.
    assert!(app.records().is_empty(), "{:?}", app.records());
    assert!(gw.metric("switchboard_ingest_rejects_total{reason=\"bad_signature\"}") >= 1.0);

    // A source outside the allowlist is refused before anything is read.
    let fenced = ingest_gateway(app.port, "allow = [\"10.0.0.0/8\"]");
    let r = cpaas(&ingest_url(&fenced, "app:bot", ""), &["--token", &good()]);
    assert_eq!(r["status"], 403, "{r}");
    assert!(r["body"].as_str().unwrap().contains("not_allowed"), "{r}");
}

#[test]
fn connection_limits_and_frame_floods_cut_off_only_the_offender() {
    let app = App::start("twilio", 8000, "");
    let gw = ingest_gateway(app.port, "max_per_ip = 2\nmax_frames_per_sec = 60\n");
    let url = ingest_url(&gw, "app:bot", "");
    let tok = good();
    // Two long streams take the per-source allowance.
    let long = |url: String, tok: String| {
        std::thread::spawn(move || cpaas(&url, &["--token", &tok, "--media-ms", "3000"]))
    };
    let first = long(url.clone(), tok.clone());
    let second = long(url.clone(), tok.clone());
    let accepted = |n: f64| {
        common::wait_until(
            &format!("{n} ingest streams accepted"),
            Duration::from_secs(10),
            || gw.metric("switchboard_ingest_accepted_total"),
            |a| *a >= n,
        )
    };
    accepted(2.0);
    let third = cpaas(&url, &["--token", &tok]);
    assert_eq!(third["status"], 429, "{third}");
    let first = first.join().unwrap();
    let second = second.join().unwrap();
    for r in [&first, &second] {
        assert_eq!(r["status"], 101, "{r}");
        assert_eq!(r["close_code"], 1000, "a paced stream ends normally: {r}");
    }
    // A flood (500 frames at once) is closed with 1008 while a paced stream carries on.
    let paced = long(url.clone(), tok.clone());
    accepted(3.0);
    // The ended streams have let go of their places: the paced one is the only one up.
    common::wait_until(
        "the paced stream to be the only one up",
        Duration::from_secs(10),
        || gw.metric("switchboard_ingest_connections"),
        |n| *n <= 1.0,
    );
    let flood = cpaas(&url, &["--token", &tok, "--flood", "500"]);
    assert_eq!(flood["status"], 101, "{flood}");
    assert_eq!(flood["close_code"], 1008, "{flood}");
    let paced = paced.join().unwrap();
    assert_eq!(
        paced["close_code"], 1000,
        "the other stream was disturbed: {paced}"
    );
    assert!(gw.metric("switchboard_ingest_rejects_total{reason=\"frame_rate\"}") >= 1.0);
    assert!(gw.metric("switchboard_ingest_rejects_total{reason=\"too_many_from_ip\"}") >= 1.0);
}

#[test]
fn ingest_is_off_by_default_and_health_says_so() {
    let gw = Gateway::start("");
    assert_eq!(gw.get("/health").1["features"]["media_ingest"], false);
}

#[test]
fn a_cpaas_stream_to_call_dials_through_the_dial_plan_and_hears_the_far_end() {
    let uas = common::Sipp::uas("uas_pcap.xml", &["-m", "1"]);
    let gw = Gateway::start_with(
        &common::trunk_route("carrier", &uas.addr()),
        &common::ingest::media_ws_section(""),
    );
    let tok = token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() + 300, "targets": ["call:*"]}),
    );
    let url = ingest_url(&gw, "call:4930999", "");
    let r = cpaas(
        &url,
        &["--token", &tok, "--media-ms", "3000", "--hold-ms", "200"],
    );
    assert_eq!(r["status"], 101, "{r}\n{}", gw.log());
    // The far end's recording came back as Twilio media (µ-law, 8 bytes per ms).
    let bytes: usize = r["received"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["event"] == "media")
        .map(|m| m["media"]["payload"].as_str().unwrap().len() / 4 * 3)
        .sum();
    assert!(bytes >= 16_000, "{bytes} bytes of the far end's audio: {r}");
    // The stream's stop hung the call up: the UAS got its BYE.
    assert_eq!(uas.wait(Duration::from_secs(10)), 0, "{}", gw.log());
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["dst"], "4930999", "{cdr}");
    assert_eq!(cdr["trunk_out"], "carrier");
    assert_eq!(cdr["hangup_cause"], "stream ended");
}

/// Issue 11, item 11: `start.from` reaches the From of the INVITE a `call:` stream places.
/// A value that is not a dial string (here one that would end the From line and add a
/// `P-Asserted-Identity`) closes the stream (1008 `bad_from`); no INVITE carries it.
#[test]
fn a_start_from_that_is_not_a_dial_string_never_reaches_a_sip_header() {
    // The "trunk": a bare UDP socket that records what the gateway sends it.
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gw = Gateway::start_with(
        &common::trunk_route("carrier", &trunk.local_addr().unwrap().to_string()),
        &common::ingest::media_ws_section(""),
    );
    let tok = token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() + 300, "targets": ["call:*"]}),
    );
    let url = ingest_url(&gw, "call:4930999", "");
    let injected = "1>\r\nP-Asserted-Identity: <sip:911@evil.example>";
    let r = cpaas(
        &url,
        &["--token", &tok, "--from", injected, "--media-ms", "600"],
    );
    assert_eq!(r["status"], 101, "{r}\n{}", gw.log());
    // Whatever reached the trunk (nothing is expected) carries no injected header.
    trunk
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 65_536];
    while let Ok((n, _)) = trunk.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            !text.contains("P-Asserted-Identity"),
            "header injected into what the trunk got:\n{text}"
        );
        assert!(!text.starts_with("INVITE"), "a call was placed:\n{text}");
    }
    assert_eq!(r["close_code"], 1008, "{r}");
    assert_eq!(r["close_reason"], "bad_from", "{r}");
    assert!(gw.metric("switchboard_ingest_rejects_total{reason=\"bad_from\"}") >= 1.0);
    // A dial string is fine: the call is placed with it as the calling number.
    let r = cpaas(
        &url,
        &["--token", &tok, "--from", "+4930222", "--media-ms", "200"],
    );
    assert_eq!(r["status"], 101, "{r}");
    trunk
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let invite = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no INVITE reached the trunk"
        );
        if let Ok((n, _)) = trunk.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("INVITE") {
                break text;
            }
        }
    };
    assert!(invite.contains("From: <sip:+4930222@"), "{invite}");
}

/// Issue 11, item 8: an ingest `call:` target goes through the same admission as a SIP call:
/// on a priced route whose account is empty the call is refused (402 `no credit`) before the
/// trunk is dialled, and the stream is closed.
#[test]
fn an_ingest_call_on_a_priced_route_with_an_empty_account_is_refused() {
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gw = Gateway::start_with(
        &format!(
            "[[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\nprice_per_minute = 10\n\n\
             [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\naccount = \"acme\"\n",
            trunk.local_addr().unwrap()
        ),
        &common::ingest::media_ws_section(""),
    );
    let (code, v) = gw
        .request_body(
            "POST",
            "/api/v1/accounts",
            &json!({"id": "acme"}).to_string(),
        )
        .unwrap();
    assert_eq!(code, 201, "{v}");
    let tok = token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() + 300, "targets": ["call:*"]}),
    );
    let r = cpaas(
        &ingest_url(&gw, "call:4930999", ""),
        &["--token", &tok, "--media-ms", "2000", "--no-stop"],
    );
    assert_eq!(r["status"], 101, "{r}\n{}", gw.log());
    assert_eq!(r["close_reason"], "call ended", "{r}");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["sip_code"], 402, "{cdr}");
    assert_eq!(cdr["hangup_cause"], "no credit", "{cdr}");
    assert_eq!(cdr["account"], "acme", "{cdr}");
    trunk
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 65_536];
    if let Ok((n, _)) = trunk.recv_from(&mut buf) {
        panic!(
            "the trunk was dialled:\n{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}
