//! WebSocket media over TLS, end to end against real peers: the media-ingest server serves
//! `wss://` (`[media_ws] tls_cert`/`tls_key`) to the Python `websockets` CPaaS, and the gateway
//! connects to a Python app serving `wss://` with a self-signed certificate it trusts through
//! `[[app]] tls_ca`; without `tls_ca` the same app's certificate is refused and the call
//! follows `on_failure`.

mod common;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::app::App;
use common::ingest::{cpaas, good, ingest_gateway, ingest_url};
use common::rtp::RtpPeer;
use common::{self_signed, self_signed_leaf, uac, Gateway};

/// A fresh directory for a test's certificate.
fn cert_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sbtls-{tag}-{}-{}",
        std::process::id(),
        common::free_port()
    ))
}

#[test]
fn ingest_over_wss_relays_the_stream_and_a_plain_client_is_refused_alone() {
    let dir = cert_dir("ingest");
    let (cert, key) = self_signed(&dir);
    let app = App::start("twilio", 8000, "play:400,mark:m1");
    let gw = ingest_gateway(
        app.port,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\nhandshake_timeout_ms = 1000",
            cert.display(),
            key.display()
        ),
    );
    let url = ingest_url(&gw, "app:bot", "");
    assert!(url.starts_with("wss://"), "{url}");
    let ca = cert.display().to_string();
    // A TLS stream of 2 s, with plain and untrusting clients knocking meanwhile.
    let stream = {
        let (url, ca, tok) = (url.clone(), ca.clone(), good());
        thread::spawn(move || {
            cpaas(
                &url,
                &[
                    "--token",
                    &tok,
                    "--ca",
                    &ca,
                    "--media-ms",
                    "2000",
                    "--hold-ms",
                    "800",
                ],
            )
        })
    };
    common::wait_until(
        "the TLS stream to be accepted",
        Duration::from_secs(10),
        || gw.metric("switchboard_ingest_accepted_total"),
        |n| *n >= 1.0,
    );
    // Plain ws:// to the TLS port: no HTTP answer, no upgrade.
    let plain_url = url.replacen("wss://", "ws://", 1);
    let plain = cpaas(&plain_url, &["--token", &good()]);
    assert_eq!(plain["status"], 0, "a plain client was answered: {plain}");
    // A client that does not trust our certificate gives up during the handshake.
    let untrusting = cpaas(&url, &["--token", &good()]);
    assert_eq!(untrusting["status"], 0, "{untrusting}");
    assert!(
        untrusting["error"]
            .as_str()
            .unwrap_or("")
            .contains("CERTIFICATE_VERIFY_FAILED"),
        "{untrusting}"
    );
    // A silent TCP client is cut off after handshake_timeout_ms (TLS never starts).
    let silent =
        std::net::TcpStream::connect(url.trim_start_matches("wss://").split('/').next().unwrap())
            .unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut &silent, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server sent something to a silent client");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "a silent client was held for {waited:?}"
    );

    let r = stream.join().unwrap();
    assert_eq!(r["status"], 101, "{r}\n{}", gw.log());
    assert_eq!(r["close_code"], 1000, "the TLS stream was disturbed: {r}");
    // The CPaaS's media reached the app through the TLS ingest, and the app's audio came back.
    assert!(
        app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()),
        "{:?}",
        app.records()
    );
    assert_eq!(app.events("start")[0].1["start"]["callSid"], "CA1");
    let media = app.events("media").len();
    assert!(
        (95..=100).contains(&media),
        "{media} media frames reached the app"
    );
    let back = r["received"].as_array().unwrap();
    assert!(
        back.iter().filter(|m| m["event"] == "media").count() >= 4,
        "{back:?}"
    );
    assert!(
        back.iter()
            .any(|m| m["event"] == "mark" && m["mark"]["name"] == "m1"),
        "{back:?}"
    );
    assert!(
        gw.metric("switchboard_ingest_rejects_total{reason=\"tls_handshake\"}") >= 2.0,
        "{}",
        gw.metrics()
    );
    assert!(gw.metric("switchboard_ingest_rejects_total{reason=\"handshake_timeout\"}") >= 1.0);
    assert_eq!(gw.metric("switchboard_ingest_accepted_total"), 1.0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_wss_app_is_trusted_through_tls_ca_and_refused_without_it() {
    // webpki takes a self-signed certificate as its own trust anchor only when it is a leaf
    // (CA:FALSE); see the `tls_ca` docs.
    let dir = cert_dir("app");
    let (cert, key) = self_signed_leaf(&dir);
    let app = App::start_tls("twilio", 8000, "", (&cert, &key));
    let gw = Gateway::start(&format!(
        "[[app]]\nname = \"bot\"\nurl = \"wss://127.0.0.1:{port}/media\"\ntls_ca = \"{ca}\"\n\n\
         [[app]]\nname = \"untrusted\"\nurl = \"wss://127.0.0.1:{port}/media\"\n\
         connect_timeout_ms = 2000\n\n\
         [[route]]\nmatch = \"5000\"\nto = \"app:bot\"\n\n\
         [[route]]\nmatch = \"6000\"\nto = \"app:untrusted\"\n",
        port = app.port,
        ca = cert.display()
    ));
    // Trusted: the call's audio streams to the app over TLS.
    let peer = RtpPeer::bind();
    let caller = common::rtp::caller(&gw, "uac_rtp_peer.xml", "5000", &peer, &["-d", "2000"]);
    let (_, gw_rtp) = common::rtp::call_rtp(&gw);
    peer.send_tone(gw_rtp, 50);
    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "SIPp failed: {run:?}\n{}", gw.log());
    assert!(
        app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()),
        "{:?}\n{}",
        app.records(),
        gw.log()
    );
    let start = &app.events("start")[0].1;
    assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
    let media = app.events("media").len();
    assert!(media >= 45, "{media} media frames reached the wss app");
    assert!(gw.metric("switchboard_streams_total{kind=\"app\"}") >= 1.0);

    // Untrusted (webpki roots only): the handshake fails, on_failure = hangup ends the call.
    let before = app.records().len();
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-s", "6000", "-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(
        run.code,
        0,
        "no BYE from the gateway: {run:?}\n{}",
        gw.log()
    );
    let cdrs = gw.wait_cdrs(2);
    let cdr = cdrs
        .iter()
        .find(|c| c["dst"] == "6000")
        .expect("CDR of 6000");
    assert_eq!(cdr["hangup_cause"], "app gone", "{cdr}");
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("app unreachable") && l.contains("untrusted"))
        .unwrap_or_else(|| panic!("no app unreachable line:\n{log}"));
    assert!(line.contains("certificate verification failed"), "{line}");
    assert_eq!(
        app.records()[before..]
            .iter()
            .filter(|r| r["msg"]["event"] == "start")
            .count(),
        0,
        "the untrusted connection was upgraded"
    );
    assert!(
        gw.metric("switchboard_stream_app_failures_total{kind=\"app\",reason=\"unreachable\"}")
            >= 1.0
    );
    let _ = std::fs::remove_dir_all(dir);
}
