//! Calls streamed to an app over WebSocket, against real peers: SIPp places the call (its
//! built-in `uac_pcap` plays G.711 audio and an RFC 2833 digit), a Python `websockets` app
//! (`tests/media/app_server.py`) receives the Twilio or Exotel stream and plays audio back,
//! and the test itself is the caller's RTP endpoint where it needs to hear that audio.

mod common;

use std::time::{Duration, Instant};

use common::app::App;
use common::rtp::{call_rtp, caller, decode_ulaw, RtpPeer};
use common::{uac, Gateway};

fn app_config(name: &str, port: u16, mode: &str, extra: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\nurl = \"ws://127.0.0.1:{port}/media\"\nmode = \"{mode}\"\n{extra}\n\n[[route]]\nmatch = \"5000\"\nto = \"app:{name}\"\nparameters = {{ lang = \"de\" }}\n"
    )
}

#[test]
fn a_sipp_call_is_streamed_to_a_twilio_app_with_media_and_its_digit() {
    let app = App::start("twilio", 8000, "");
    let gw = Gateway::start(&app_config("bot", app.port, "twilio", ""));
    let run = uac(
        "uac_pcap",
        &gw.sip(),
        &["-s", "5000", "-m", "1"],
        Duration::from_secs(40),
    );
    assert_eq!(run.code, 0, "SIPp failed: {run:?}\n{}", gw.log());
    assert!(
        app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()),
        "no stop: {:?}\n{}",
        app.records(),
        gw.log()
    );
    let connected = app.events("connected");
    assert_eq!(connected.len(), 1);
    assert_eq!(connected[0].1["protocol"], "Call");
    let start = &app.events("start")[0].1;
    let sid = start["streamSid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("MZ") && sid.len() == 34, "{start}");
    assert_eq!(start["start"]["tracks"], serde_json::json!(["inbound"]));
    assert_eq!(start["start"]["customParameters"]["lang"], "de");
    assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
    assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
    assert!(!start["start"]["callSid"].as_str().unwrap().is_empty());

    // Media: one 160-byte µ-law frame per 20 ms for the whole recording.
    let media = app.events("media");
    // The recording's packets are 30 ms; the stream re-frames them into 20 ms.
    let expected = common::pcap_packets("/usr/share/sip-tester/g711a.pcap") as usize * 3 / 2;
    assert!(
        media.len() + 10 >= expected && media.len() <= expected + 10,
        "{} media messages for {expected} RTP packets",
        media.len()
    );
    for (_, m) in &media {
        assert_eq!(m["streamSid"], sid.as_str());
        assert_eq!(m["media"]["track"], "inbound");
        let payload = m["media"]["payload"].as_str().unwrap();
        assert_eq!(payload.len(), 216, "160 bytes base64-encoded");
    }
    // Pacing: chunks count up by one, timestamps advance by about 20 ms per chunk and the
    // messages arrive at about 50 per second (not in a burst).
    let chunks: Vec<u64> = media
        .iter()
        .map(|(_, m)| m["media"]["chunk"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        chunks.windows(2).all(|w| w[1] == w[0] + 1),
        "chunks not consecutive"
    );
    let first_ts: f64 = media[0].1["media"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last_ts: f64 = media[media.len() - 1].1["media"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let per_frame_ms = (last_ts - first_ts) / (media.len() - 1) as f64;
    assert!(
        (17.0..=23.0).contains(&per_frame_ms),
        "timestamp step {per_frame_ms} ms"
    );
    let span = media[media.len() - 1].0 - media[0].0;
    let rate = (media.len() - 1) as f64 / span;
    assert!(
        (40.0..=60.0).contains(&rate),
        "{rate} media messages per second"
    );
    // Audio, not silence: the recording is speech.
    let loud = media
        .iter()
        .filter(|(_, m)| {
            let bytes = base64_decode(m["media"]["payload"].as_str().unwrap());
            bytes.iter().any(|&b| decode_ulaw(b).unsigned_abs() > 2000)
        })
        .count();
    assert!(loud > media.len() / 4, "only {loud} frames with speech");

    // The RFC 2833 digit, once, after the audio.
    let dtmf = app.events("dtmf");
    assert_eq!(dtmf.len(), 1, "{dtmf:?}");
    assert_eq!(dtmf[0].1["dtmf"]["digit"], "1");
    assert_eq!(dtmf[0].1["dtmf"]["track"], "inbound_track");
    // Then stop, with the call's ids; sequence numbers count every message.
    let stop = &app.events("stop")[0].1;
    assert_eq!(stop["stop"]["callSid"], start["start"]["callSid"]);
    let seq: Vec<u64> = app
        .records()
        .iter()
        .filter_map(|r| {
            r["msg"]["sequenceNumber"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .collect();
    assert!(
        seq.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers not consecutive"
    );
    assert!(gw.metric("switchboard_streams_total{kind=\"app\"}") >= 1.0);
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn app_audio_is_played_to_the_caller_marks_come_back_after_it_and_clear_barges_in() {
    // 1 s of tone and mark m1; later 5 s of tone, mark m2, and a clear 300 ms into it.
    let app = App::start(
        "twilio",
        8000,
        "play:1000,mark:m1,sleep:2000,play:5000,mark:m2,sleep:300,clear",
    );
    let gw = Gateway::start(&app_config("bot", app.port, "twilio", ""));
    let peer = RtpPeer::bind();
    let caller = caller(&gw, "uac_rtp_peer.xml", "5000", &peer, &["-d", "6000"]);
    let (packets, loud) = peer.listen(Duration::from_millis(5500));
    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "SIPp failed: {run:?}\n{}", gw.log());
    assert!(
        packets > 150,
        "only {packets} RTP packets in 5.5 s\n{}",
        gw.log()
    );
    // 50 frames of the first tone, then at most what played before the clear (300 ms plus
    // the time to get the clear through), not the 250 frames of the second tone.
    assert!(
        (48..=100).contains(&loud),
        "{loud} frames of tone reached the caller"
    );
    assert!(app.wait_for(Duration::from_secs(5), |a| a.events("mark").len() == 2));
    let marks = app.events("mark");
    assert_eq!(marks[0].1["mark"]["name"], "m1");
    assert_eq!(marks[1].1["mark"]["name"], "m2");
    // m1 comes back only once its second of audio has been played out...
    let m1_sent = app.sent_at("mark:m1").expect("m1 sent");
    assert!(
        marks[0].0 - m1_sent >= 0.9,
        "m1 echoed {} s after it was sent",
        marks[0].0 - m1_sent
    );
    // ...and m2 as soon as the clear dropped the audio before it.
    let cleared = app.sent_at("clear").expect("clear sent");
    eprintln!(
        "rtp packets {packets}, tone frames {loud}, m1 after {:.3} s, m2 {:.3} s after clear",
        marks[0].0 - m1_sent,
        marks[1].0 - cleared
    );
    assert!(marks[1].0 >= cleared - 0.05, "m2 echoed before the clear");
    assert!(
        marks[1].0 - cleared < 2.0,
        "m2 echoed {} s after the clear",
        marks[1].0 - cleared
    );
}

#[test]
fn an_exotel_app_gets_pcm16_at_16_khz_and_the_stream_is_listed_while_it_runs() {
    let app = App::start("exotel", 16000, "play:600,mark:m1");
    let gw = Gateway::start(&app_config(
        "agent",
        app.port,
        "exotel",
        "sample_rate = 16000",
    ));
    let peer = RtpPeer::bind();
    let caller = caller(&gw, "uac_rtp_peer.xml", "5000", &peer, &["-d", "3000"]);
    let (call_id, gw_rtp) = call_rtp(&gw);
    peer.send_tone(gw_rtp, 50);
    // Listed while the call is up, in /api/v1/streams and in the call.
    let streams = gw.get("/api/v1/streams").1;
    let s = &streams["streams"][0];
    assert_eq!(s["kind"], "app", "{streams}");
    assert_eq!(s["target"], "agent");
    assert_eq!(s["mode"], "exotel");
    assert_eq!(s["state"], "streaming");
    assert_eq!(s["call_id"], call_id.as_str());
    assert!(s["frames_out"].as_u64().unwrap() >= 40, "{s}");
    let call = gw.get(&format!("/api/v1/calls/{call_id}")).1;
    assert_eq!(call["streams"][0]["stream_sid"], s["stream_sid"], "{call}");
    // And in the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("streams")
        .env(
            "SWITCHBOARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", gw.admin_port),
        )
        .env("SWITCHBOARD_API_KEY", common::TEST_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(s["stream_sid"].as_str().unwrap()) && text.contains("agent"),
        "{text}"
    );
    assert!(text.contains("1 active stream"), "{text}");
    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "SIPp failed: {run:?}\n{}", gw.log());

    assert!(app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()));
    let start = &app.events("start")[0].1;
    assert_eq!(
        start["start"]["media_format"]["encoding"], "audio/x-raw",
        "{start}"
    );
    assert_eq!(start["start"]["media_format"]["sample_rate"], "16000");
    assert_eq!(start["start"]["from"], "4930111");
    assert_eq!(start["start"]["to"], "5000");
    assert_eq!(start["start"]["custom_parameters"]["lang"], "de");
    let media = app.events("media");
    assert!(
        (45..=52).contains(&media.len()),
        "{} media messages",
        media.len()
    );
    let mut tone = 0;
    for (_, m) in &media {
        assert_eq!(m["stream_sid"], start["stream_sid"]);
        let pcm = base64_decode(m["media"]["payload"].as_str().unwrap());
        assert_eq!(pcm.len(), 640, "20 ms of PCM16 at 16 kHz");
        let peak = pcm
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]).unsigned_abs())
            .max()
            .unwrap();
        if peak > 5000 {
            tone += 1;
        }
    }
    assert!(
        tone >= 45,
        "the caller's tone reached the app in {tone} frames"
    );
    let mark = app.events("mark");
    assert_eq!(mark.len(), 1);
    assert_eq!(mark[0].1["mark"]["name"], "m1");
    assert_eq!(app.events("stop")[0].1["stop"]["reason"], "call ended");
    // Gone from the list once the call is over.
    common::wait_until(
        "the stream to leave the list",
        Duration::from_secs(5),
        || gw.get("/api/v1/streams").1["streams"].clone(),
        |streams| *streams == serde_json::json!([]),
    );
}

#[test]
fn an_unreachable_app_hangs_the_call_up_or_leaves_it_in_silence_per_policy() {
    // Nothing listens on this port.
    let dead = common::free_port();
    let gw = Gateway::start(&format!(
        "{}\n[[app]]\nname = \"patient\"\nurl = \"ws://127.0.0.1:{dead}/x\"\non_failure = \"continue\"\n\n[[route]]\nmatch = \"6000\"\nto = \"app:patient\"\n",
        app_config("bot", dead, "twilio", "connect_timeout_ms = 500")
    ));
    // `hangup`: the call is answered and the gateway hangs up at once.
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-s", "5000", "-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(
        run.code,
        0,
        "no BYE from the gateway: {run:?}\n{}",
        gw.log()
    );
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["hangup_cause"], "app gone", "{cdr}");
    assert_eq!(cdr["disposition"], "ANSWERED", "{cdr}");
    // `continue`: the caller stays connected (in silence) until it hangs up.
    let peer = RtpPeer::bind();
    let started = Instant::now();
    let run = uac(
        "uac_rtp_peer.xml",
        &gw.sip(),
        &[
            "-s",
            "6000",
            "-m",
            "1",
            "-set",
            "rtp_port",
            &peer.port().to_string(),
            "-d",
            "2000",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{run:?}\n{}", gw.log());
    assert!(started.elapsed() >= Duration::from_secs(2));
    let cdrs = gw.wait_cdrs(2);
    let second = cdrs
        .iter()
        .find(|c| c["dst"] == "6000")
        .expect("CDR of the second call");
    assert_eq!(second["hangup_cause"], "remote hangup", "{cdrs:?}");
    assert!(second["billsec"].as_u64().unwrap() >= 2, "{second}");
    assert!(
        gw.metric("switchboard_stream_app_failures_total{kind=\"app\",reason=\"unreachable\"}")
            >= 2.0,
        "{}",
        gw.metrics()
    );
}

#[test]
fn fork_mode_streams_both_sides_of_a_bridged_call_without_touching_it() {
    let app = App::start("twilio", 8000, "play:2000,mark:ignored");
    let uas = common::Sipp::uas("uas_pcap.xml", &["-m", "1"]);
    let gw = Gateway::start(&format!(
        "[[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\n\n[[app]]\nname = \"recorder\"\nurl = \"ws://127.0.0.1:{}/fork\"\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\nfork = \"recorder\"\nparameters = {{ purpose = \"qa\" }}\n",
        uas.addr(),
        app.port
    ));
    let run = uac(
        "uac_pcap",
        &gw.sip(),
        &["-s", "4930777", "-m", "1"],
        Duration::from_secs(40),
    );
    assert_eq!(
        run.code,
        0,
        "the bridged call failed: {run:?}\n{}",
        gw.log()
    );
    assert_eq!(uas.wait(Duration::from_secs(10)), 0);
    assert!(
        app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()),
        "{:?}",
        app.records()
    );
    let start = &app.events("start")[0].1;
    assert_eq!(
        start["start"]["tracks"],
        serde_json::json!(["inbound", "outbound"]),
        "{start}"
    );
    assert_eq!(start["start"]["customParameters"]["purpose"], "qa");
    let media = app.events("media");
    let count = |track: &str| {
        media
            .iter()
            .filter(|(_, m)| m["media"]["track"] == track)
            .count()
    };
    // Both SIPp ends play the same 30 ms-packet recording: about 1.5 × its packets per track.
    let expected = common::pcap_packets("/usr/share/sip-tester/g711a.pcap") as usize * 3 / 2;
    for track in ["inbound", "outbound"] {
        let n = count(track);
        assert!(
            n + 15 >= expected && n <= expected + 15,
            "{n} {track} frames, expected {expected}"
        );
    }
    // The fork never plays: the app's 2 s of audio were not queued, so its mark is echoed
    // at once instead of after the audio.
    let marks = app.events("mark");
    assert_eq!(marks.len(), 1, "{marks:?}");
    let sent = app.sent_at("mark:ignored").expect("mark sent");
    assert!(
        marks[0].0 - sent < 0.5,
        "mark echoed {} s after it was sent",
        marks[0].0 - sent
    );
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["disposition"], "ANSWERED", "{cdr}");
    assert_eq!(cdr["trunk_out"], "carrier");
    assert!(gw.metric("switchboard_streams_total{kind=\"fork\"}") >= 1.0);
}
