//! SIP calls through the gateway against real SIPp peers: SIPp UAC (caller)
//! → switchboard (B2BUA) → SIPp UAS (the trunk).
//!
//! A thin end-to-end set (issue 13): load, media relay, CANCEL, routing and
//! trunk failure, 481 outside a dialog, crash and kill -9 recovery, TCP and the
//! operator's hang-up. The call-control scenarios (busy and the failure table,
//! no answer, CANCEL races, crossed BYEs, re-INVITE and hold, session timers,
//! digest, early media, glare, loss) run against the sans-IO call core on a
//! virtual clock in `call/src/tests/`, where each takes microseconds.

mod common;

use std::time::Duration;

use common::{trunk_route, uac, uac_in_background, Gateway, Sipp};

#[test]
fn five_hundred_calls_at_50_cps_all_answered_with_cdrs() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let run = uac(
        "uac",
        &gw.sip(),
        &["-r", "50", "-m", "500", "-l", "200"],
        Duration::from_secs(90),
    );
    assert_eq!(run.code, 0, "sipp failed: {}", run.output);
    assert_eq!((run.successful, run.failed), (500, 0));
    let cdrs = gw.wait_cdrs(500);
    let answered = cdrs
        .iter()
        .filter(|c| c["disposition"] == "ANSWERED")
        .count();
    assert_eq!(answered, 500, "CDRs: {} total", cdrs.len());
    for c in &cdrs {
        assert_eq!(c["trunk_out"], "uas");
        assert!(c["answer"].is_string() && c["end"].is_string() && c["start"].is_string());
    }
    assert_eq!(
        gw.metric("switchboard_calls_total{disposition=\"ANSWERED\"}"),
        500.0
    );
    assert_eq!(gw.status()["calls_active"], 0);
}

#[test]
fn rtp_and_rfc2833_relayed_through_gateway_ports() {
    let echo_port = common::free_port().to_string();
    let uas = Sipp::uas("uas", &["-rtp_echo", "-mp", &echo_port]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let media_port = common::free_port().to_string();
    let gw2 = &gw;
    // Sample the call's counters while it runs (uac_pcap plays 8 s of audio and a digit).
    let sampler = std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut last = serde_json::Value::Null;
            let mut seen = false;
            // Until the call, once seen, is gone: `last` is its final state.
            let _ = common::poll_until(
                Duration::from_secs(30),
                || match gw2.calls().first() {
                    Some(c) => {
                        seen = true;
                        last = c.clone();
                        false
                    }
                    None => seen,
                },
                |gone| *gone,
            );
            last
        });
        let run = uac(
            "uac_pcap",
            &gw.sip(),
            &["-m", "1", "-mp", &media_port],
            Duration::from_secs(40),
        );
        assert_eq!(run.code, 0, "sipp failed: {}", run.output);
        h.join().unwrap()
    });
    let media = &sampler["media"];
    let a_to_b = media["a_to_b"]["packets"].as_u64().unwrap_or(0);
    let b_to_a = media["b_to_a"]["packets"].as_u64().unwrap_or(0);
    // Everything SIPp plays (the G.711 capture and the RFC 2833 digit) crosses
    // the gateway, and the echo comes back whole: nothing lost on loopback.
    let sent = common::pcap_packets("/usr/share/sip-tester/g711a.pcap")
        + common::pcap_packets("/usr/share/sip-tester/dtmf_2833_1.pcap");
    assert!(sent > 200);
    assert_eq!(a_to_b, sent, "caller->callee packets: {media}");
    assert_eq!(b_to_a, sent, "echo back: {media}");
    assert_eq!(media["a_to_b"]["lost"], 0, "{media}");
    assert_eq!(media["b_to_a"]["lost"], 0, "{media}");
    let legs = sampler["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    assert_ne!(legs[0]["rtp_port"], legs[1]["rtp_port"]);
    assert!(gw.metric("switchboard_rtp_packets_relayed_total") >= (a_to_b + b_to_a) as f64 * 0.99);
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
    assert_eq!(
        gw.status()["rtp_port_pairs_free"],
        gw.status()["rtp_port_pairs_total"]
    );
}

#[test]
fn cancel_before_answer_gives_487_and_cancels_the_trunk_leg() {
    let uas = Sipp::uas("uas_ring.xml", &["-m", "1"]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let run = uac(
        "uac_cancel.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "caller side: {}", run.output);
    assert_eq!(
        uas.wait(Duration::from_secs(20)),
        0,
        "the trunk side did not see CANCEL/487/ACK"
    );
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["disposition"], "NO ANSWER");
    assert_eq!(cdrs[0]["hangup_cause"], "cancelled");
}

#[test]
fn unroutable_number_gets_404() {
    let uas = Sipp::uas("uas", &[]);
    let cfg = format!(
        "[[trunk]]\nname = \"uas\"\naddress = \"{}\"\nkeepalive_secs = 0\n\n[[route]]\nmatch = \"0044*\"\nto = \"trunk:uas\"\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let run = uac(
        "uac_expect_404.xml",
        &gw.sip(),
        &["-m", "1", "-s", "12345"],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(gw.wait_cdrs(1)[0]["hangup_cause"], "no route");
}

#[test]
fn trunk_down_gives_503_within_timer_b() {
    // Nothing listens at the trunk address. The trunk is monitored (`qualify`): only a
    // monitored trunk is marked down (an unmonitored one is always tried: tests/trunk_qualify.rs).
    let dead = format!("127.0.0.1:{}", common::free_port());
    let gw = Gateway::start(&format!(
        "[[trunk]]\nname = \"dead\"\naddress = \"{dead}\"\nqualify = true\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:dead\"\n"
    ));
    let started = std::time::Instant::now();
    let run = uac(
        "uac_expect_503.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    // Timer B = 64*T1 = 32 s; the caller must have its answer by then (plus slack).
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["disposition"], "CONGESTION");
    let trunks = gw.get("/api/v1/trunks").1;
    assert_eq!(trunks["trunks"][0]["state"], "down");
    // Once known down, the next call is refused at once.
    let started = std::time::Instant::now();
    let run = uac(
        "uac_expect_503.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn unknown_dialog_gets_481() {
    let gw = Gateway::start("");
    let run = uac(
        "uac_481.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}", run.output);
}

#[test]
fn crashed_call_actor_is_torn_down_and_others_survive() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let total = gw.status()["rtp_port_pairs_total"].clone();
    // Two long calls: each caller waits for a BYE from the network.
    let victim = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(60),
    );
    let calls = gw.wait_answered(1);
    let victim_id = calls
        .iter()
        .find(|c| c["state"] == "answered")
        .expect("an answered call")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let survivor = uac_in_background(
        "uac_long.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(60),
    );
    gw.wait_answered(2);
    let (code, _) = gw
        .try_request("POST", &format!("/api/v1/calls/{victim_id}/crash"))
        .unwrap();
    assert_eq!(code, 202);
    // The caller of the crashed call gets a BYE and completes successfully.
    let run = victim.join().unwrap();
    assert_eq!(
        run.code, 0,
        "crashed call's caller did not get a BYE: {}",
        run.output
    );
    let cdrs = gw.wait_cdrs(1);
    let crashed = cdrs
        .iter()
        .find(|c| c["id"] == victim_id.as_str())
        .expect("CDR for the crashed call");
    assert_eq!(crashed["hangup_cause"], "crash");
    assert!(gw.metric("switchboard_call_actor_crashes_total") >= 1.0);
    // The other call is unaffected and ends normally.
    let run = survivor.join().unwrap();
    assert_eq!(run.code, 0, "surviving call failed: {}", run.output);
    let cdrs = gw.wait_cdrs(2);
    assert!(cdrs
        .iter()
        .any(|c| c["id"] != victim_id.as_str() && c["hangup_cause"] == "caller hangup"));
    // Every port pair is back in the pool.
    let status = gw.wait_calls(Duration::from_secs(5), |c| c.is_empty());
    assert!(status.is_empty());
    assert_eq!(gw.status()["rtp_port_pairs_free"], total);
}

#[test]
fn cdrs_survive_kill_9_and_restart() {
    let uas = Sipp::uas("uas", &[]);
    let mut gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let run = uac(
        "uac",
        &gw.sip(),
        &["-r", "20", "-m", "20"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    let before = gw.wait_cdrs(20);
    assert_eq!(before.len(), 20);
    gw.kill9();
    gw.restart();
    let after = gw.cdrs();
    assert_eq!(after.len(), 20, "CDRs lost across kill -9");
    assert_eq!(before, after);
}

#[test]
fn calls_over_tcp() {
    let uas = Sipp::uas("uas", &["-t", "t1"]);
    let cfg = format!(
        "[[trunk]]\nname = \"uas\"\naddress = \"{}\"\ntransport = \"tcp\"\nkeepalive_secs = 0\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:uas\"\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let run = uac(
        "uac",
        &gw.sip(),
        &["-t", "t1", "-r", "10", "-m", "20"],
        Duration::from_secs(40),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(run.successful, 20);
    assert_eq!(
        gw.wait_cdrs(20)
            .iter()
            .filter(|c| c["disposition"] == "ANSWERED")
            .count(),
        20
    );
}

#[test]
fn operator_hangup_through_the_api_and_cli_views() {
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let caller = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(40),
    );
    let calls = gw.wait_answered(1);
    let id = calls[0]["id"].as_str().expect("call id").to_string();
    // One call by id, with both legs and their own Call-IDs.
    let (code, call) = gw.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(code, 200);
    assert_eq!(call["dst"], "442071234567");
    assert_eq!(call["legs"].as_array().unwrap().len(), 2);
    assert_ne!(
        call["legs"][0]["call_id"], call["legs"][1]["call_id"],
        "the B leg needs its own Call-ID"
    );
    // The CLI table shows it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "calls",
            "--admin",
            &format!("http://127.0.0.1:{}", gw.admin_port),
        ])
        .env("SWITCHBOARD_API_KEY", common::TEST_KEY)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains(&id) && table.contains("1 active call"),
        "{table}"
    );
    // Hang up: both legs get a BYE.
    let (code, _) = gw
        .try_request("DELETE", &format!("/api/v1/calls/{id}"))
        .unwrap();
    assert_eq!(code, 202);
    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "caller did not get a BYE: {}", run.output);
    assert_eq!(
        uas.wait(Duration::from_secs(10)),
        0,
        "trunk did not get a BYE"
    );
    assert_eq!(gw.wait_cdrs(1)[0]["hangup_cause"], "operator");
    // Unknown ids are a JSON 404.
    let (code, body) = gw.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(code, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (code, _) = gw.try_request("DELETE", "/api/v1/calls/nope").unwrap();
    assert_eq!(code, 404);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "cdrs",
            "--admin",
            &format!("http://127.0.0.1:{}", gw.admin_port),
        ])
        .env("SWITCHBOARD_API_KEY", common::TEST_KEY)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ANSWERED") && table.contains("operator"),
        "{table}"
    );
}
