//! Drain and orderly shutdown (issue 12), through the real binary with SIPp on both sides:
//! SIGTERM lets calls go on for `[sip] drain_secs`, then BYEs both legs with cause `shutdown`,
//! writes the CDRs, posts the reservations and exits 0; during the drain new INVITEs get 503
//! with Retry-After and readiness is false; the admin call and `switchboard drain` start a
//! drain; a second SIGTERM skips the wait.

mod common;

use std::time::{Duration, Instant};

use common::{uac, uac_in_background, Gateway, Sipp, TEST_KEY};
use serde_json::{json, Value};

fn post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    gw.request_body("POST", path, &body.to_string()).unwrap()
}

/// An account `id` holding `credit` units.
fn funded(gw: &Gateway, id: &str, credit: u64) {
    let (code, v) = post(gw, "/api/v1/accounts", json!({ "id": id }));
    assert_eq!(code, 201, "{v}");
    let (code, v) = post(
        gw,
        &format!("/api/v1/accounts/{id}/topup"),
        json!({"amount": credit, "idempotency_key": format!("fund-{id}")}),
    );
    assert_eq!(code, 201, "{v}");
}

/// A trunk at `addr` priced 60 per minute (1 a second, billed by the second), every number
/// routed to it and charged to `acme`, and `[sip] drain_secs`.
fn config(addr: &str) -> String {
    format!(
        "[billing]\ninitial_secs = 1\nincrement_secs = 1\n\n\
         [[trunk]]\nname = \"carrier\"\naddress = \"{addr}\"\nkeepalive_secs = 0\nprice_per_minute = 60\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\naccount = \"acme\"\n"
    )
}

fn start(uas: &Sipp, drain_secs: u64) -> Gateway {
    let gw = Gateway::start_with_env(
        &config(&uas.addr()),
        "",
        &[("SWITCHBOARD_SIP_DRAIN_SECS", &drain_secs.to_string())],
    );
    funded(&gw, "acme", 100_000);
    gw
}

/// `/health/ready` once, as (status, body).
fn ready(gw: &Gateway) -> (u16, Value) {
    gw.try_request("GET", "/health/ready").unwrap()
}

/// Wait until readiness answers 503 with `draining: true`.
fn wait_draining(gw: &Gateway) -> Value {
    match common::poll_until(
        Duration::from_secs(5),
        || ready(gw),
        |(code, v)| *code == 503 && v["draining"] == true,
    ) {
        Ok((_, v)) => v,
        Err((code, v)) => panic!("not draining: {code} {v}\n{}", gw.log()),
    }
}

/// After the process exited: start it again on the same store and read what it left.
fn records(gw: &mut Gateway) -> (Vec<Value>, Value) {
    gw.restart();
    let cdrs = gw.cdrs();
    let (code, acct) = gw.get("/api/v1/accounts/acme");
    assert_eq!(code, 200, "{acct}");
    (cdrs, acct)
}

#[test]
fn sigterm_lets_calls_run_then_byes_both_legs_writes_cdrs_and_exits_zero() {
    const DRAIN: u64 = 3;
    // SIPp's built-in UAS answers and waits for our BYE; it exits 0 after 5 complete calls.
    let uas = Sipp::uas("uas", &["-m", "5"]);
    let mut gw = start(&uas, DRAIN);
    let started = Instant::now();
    // Five callers that stay on the line until the network hangs up (exit 0 only on 5 BYEs).
    let callers = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "5", "-l", "5", "-r", "10", "-s", "442071234567"],
        Duration::from_secs(60),
    );
    gw.wait_answered(5);
    let answered = Instant::now();
    gw.signal("TERM");
    let term = Instant::now();
    // Readiness turns false at once; the calls go on during the window.
    wait_draining(&gw);
    assert_eq!(gw.calls().len(), 5, "calls cut before the deadline");
    let code = gw.wait_exit(Duration::from_secs(DRAIN + 5));
    let exited = Instant::now();
    assert_eq!(code, Some(0), "exit code; log:\n{}", gw.log());
    assert!(
        exited - term >= Duration::from_secs(DRAIN) - Duration::from_millis(200),
        "exited before the drain window: {:?}",
        exited - term
    );
    // Both sides got BYE for every call.
    let run = callers.join().unwrap();
    assert_eq!(run.code, 0, "the callers got no BYE: {}", run.output);
    assert_eq!(run.successful, 5, "{}", run.output);
    assert_eq!(uas.wait(Duration::from_secs(10)), 0, "the trunk got no BYE");
    // On disk: 5 CDRs with cause `shutdown` and the time answered; reservations posted.
    let (cdrs, acct) = records(&mut gw);
    assert_eq!(cdrs.len(), 5, "{cdrs:?}");
    // Each call was answered between `started` and `answered` and hung up at the deadline
    // (between `term + DRAIN` and `exited`).
    let low = (term + Duration::from_secs(DRAIN) - answered).as_secs_f64() - 1.0;
    let high = (exited - started).as_secs_f64() + 1.0;
    let mut charged = 0;
    for cdr in &cdrs {
        assert_eq!(cdr["hangup_cause"], "shutdown", "{cdr}");
        assert_eq!(cdr["disposition"], "ANSWERED", "{cdr}");
        let billsec = cdr["billsec"].as_f64().unwrap();
        assert!(
            (low..=high).contains(&billsec),
            "billsec {billsec} not in {low:.1}..{high:.1}: {cdr}"
        );
        let cost = cdr["cost"].as_u64().unwrap();
        // 1 unit a second, billed by the second.
        assert!(
            cost.abs_diff(cdr["billsec"].as_u64().unwrap()) <= 1,
            "cost {cost}: {cdr}"
        );
        assert_eq!(cdr["account"], "acme", "{cdr}");
        charged += cost;
    }
    assert_eq!(
        acct["debits_pending"], 0,
        "reservations left pending: {acct}"
    );
    assert_eq!(acct["debits_posted"], charged, "{acct}");
}

#[test]
fn during_a_drain_new_invites_get_503_with_retry_after_and_a_second_sigterm_skips_the_wait() {
    const DRAIN: u64 = 60;
    let uas = Sipp::uas("uas", &["-m", "2"]);
    let mut gw = start(&uas, DRAIN);
    let callers = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "2", "-l", "2", "-s", "442071234567"],
        Duration::from_secs(90),
    );
    gw.wait_answered(2);
    gw.signal("TERM");
    let v = wait_draining(&gw);
    assert_eq!(v["ready"], false, "{v}");
    // A new call is refused with 503 and Retry-After; the two calls in progress go on.
    let run = uac(
        "uac_expect_503_retry.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234568"],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "no 503 with Retry-After: {}", run.output);
    assert_eq!(gw.calls().len(), 2, "calls in progress were cut");
    // The second signal hangs up at once: exit well before the 60 s window.
    let second = Instant::now();
    gw.signal("TERM");
    let code = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "exit code; log:\n{}", gw.log());
    assert!(second.elapsed() < Duration::from_secs(10));
    let run = callers.join().unwrap();
    assert_eq!(run.code, 0, "the callers got no BYE: {}", run.output);
    assert_eq!(uas.wait(Duration::from_secs(10)), 0, "the trunk got no BYE");
    let (cdrs, acct) = records(&mut gw);
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    assert!(
        cdrs.iter().all(|c| c["hangup_cause"] == "shutdown"),
        "{cdrs:?}"
    );
    assert_eq!(acct["debits_pending"], 0, "{acct}");
}

#[test]
fn sigint_drains_as_sigterm_does() {
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let mut gw = start(&uas, 1);
    let caller = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(60),
    );
    gw.wait_answered(1);
    gw.signal("INT");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log()
    );
    assert_eq!(caller.join().unwrap().code, 0, "the caller got no BYE");
    assert_eq!(uas.wait(Duration::from_secs(10)), 0, "the trunk got no BYE");
    let (cdrs, _) = records(&mut gw);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["hangup_cause"], "shutdown", "{cdrs:?}");
}

#[test]
fn the_admin_call_starts_a_drain_and_the_gateway_leaves_when_the_last_call_ends() {
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let mut gw = start(&uas, 60);
    let caller = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(90),
    );
    let calls = gw.wait_answered(1);
    let id = calls[0]["id"].as_str().unwrap().to_string();
    // Admin scope only: an operator key for calls cannot drain the gateway.
    let (code, v) = post(
        &gw,
        "/api/v1/admin/api-keys",
        json!({"name": "ops", "scopes": ["calls:write", "calls:read"]}),
    );
    assert_eq!(code, 201, "{v}");
    let auth = format!("Bearer {}", v["key"].as_str().unwrap());
    let (code, _, v) = gw
        .request_with(
            "POST",
            "/api/v1/admin/drain",
            "",
            &[("Authorization", &auth)],
        )
        .unwrap();
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        ready(&gw).0,
        200,
        "a refused drain call drained the gateway"
    );
    let (code, v) = post(&gw, "/api/v1/admin/drain", json!({}));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["draining"], true, "{v}");
    assert_eq!(v["started"], true, "{v}");
    assert_eq!(v["in_progress"]["calls"], 1, "{v}");
    assert_eq!(v["drain_secs"], 60, "{v}");
    wait_draining(&gw);
    // Again: still draining, not started anew.
    let (code, v) = post(&gw, "/api/v1/admin/drain", json!({}));
    assert_eq!((code, &v["started"]), (200, &json!(false)), "{v}");
    // The admin API still works during the drain: hang the last call up; the gateway leaves
    // long before the 60 s window.
    let (code, v) = gw
        .request_body("DELETE", &format!("/api/v1/calls/{id}"), "")
        .unwrap();
    assert!(code < 300, "{code} {v}");
    let code = gw.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "exit code; log:\n{}", gw.log());
    assert_eq!(caller.join().unwrap().code, 0);
    let (cdrs, acct) = records(&mut gw);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["hangup_cause"], "operator", "{cdrs:?}");
    assert_eq!(acct["debits_pending"], 0, "{acct}");
}

#[test]
fn the_cli_starts_a_drain() {
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let mut gw = start(&uas, 30);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["drain", "--admin"])
        .arg(format!("http://127.0.0.1:{}", gw.admin_port))
        .env("SWITCHBOARD_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("draining: 0 call(s)"), "{stdout}");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log()
    );
}

#[test]
fn devices_are_told_on_their_command_topic_and_disconnected() {
    use switchboard_mqtt::claim::{claim_mac, device_secret};
    const FLEET: &str = "test-fleet-secret-0123456789";
    let mut gw = Gateway::start_with("", &format!("[devices]\nfleet_secret = \"{FLEET}\"\n"));
    let (id, ts) = (
        "esp-drain",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let mac = claim_mac(
        &device_secret(FLEET.as_bytes(), id),
        id,
        "nonce-esp-drain-0000abcd",
        ts,
    );
    let body = json!({"device_id": id, "nonce": "nonce-esp-drain-0000abcd", "ts": ts, "hmac": mac});
    let (code, v) = post(&gw, "/api/v1/devices/claim", body);
    assert_eq!(code, 200, "{v}");
    let pass = v["password"].as_str().unwrap().to_string();
    // The device listens on its command topics, as devices do, and prints what it gets.
    let mut sub = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &gw.mqtt_port.to_string()])
        .args([
            "-u", id, "-P", &pass, "-i", id, "-q", "1", "-v", "-C", "2", "-W", "30",
        ])
        .args(["-t", &format!("devices/{id}/cmd/+")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto_sub not installed (apt-get install mosquitto-clients)");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // A command proves the subscription is in place (delivered again until it is).
    common::wait_until(
        "the device to come online",
        Duration::from_secs(10),
        || gw.get(&format!("/api/v1/devices/{id}")).1,
        |d| d["online"] == true,
    );
    let (code, v) = post(
        &gw,
        &format!("/api/v1/devices/{id}/commands"),
        json!({"ping": 1}),
    );
    assert_eq!(code, 202, "{v}");
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no command");
    assert!(first.contains("\"ping\""), "{first}");
    gw.signal("TERM");
    let notice = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no drain notice ({e:?}); log:\n{}", gw.log()));
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log()
    );
    let (topic, payload) = notice.split_once(' ').unwrap_or_default();
    assert_eq!(topic, format!("devices/{id}/cmd/gateway-drain"), "{notice}");
    let notice: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(notice["type"], "gateway_draining", "{notice}");
    assert_eq!(notice["drain_secs"], 30, "{notice}");
    // Its connection was closed by the gateway.
    common::wait_until(
        "the gateway to close the device's connection",
        Duration::from_secs(5),
        || sub.try_wait().unwrap(),
        Option::is_some,
    );
}

#[test]
fn a_websocket_app_gets_stop_before_the_gateway_exits() {
    let app = common::app::App::start("twilio", 8000, "");
    let mut gw = Gateway::start_with_env(
        &format!(
            "[[app]]\nname = \"bot\"\nurl = \"ws://127.0.0.1:{}/media\"\nmode = \"twilio\"\n\n\
             [[route]]\nmatch = \"5000\"\nto = \"app:bot\"\n",
            app.port
        ),
        "",
        &[("SWITCHBOARD_SIP_DRAIN_SECS", "1")],
    );
    let caller = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "5000"],
        Duration::from_secs(60),
    );
    assert!(
        app.wait_for(Duration::from_secs(10), |a| !a.events("start").is_empty()),
        "the app never got start: {:?}",
        app.records()
    );
    gw.signal("TERM");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log()
    );
    assert_eq!(caller.join().unwrap().code, 0, "the caller got no BYE");
    assert!(
        app.wait_for(Duration::from_secs(5), |a| !a.events("stop").is_empty()),
        "no stop: {:?}",
        app.records()
    );
}

/// `switchboard fax send --json TO one-page.tif` against `gw`: the job's id.
fn fax_send(gw: &Gateway, to: &str) -> String {
    let doc =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fax/fixtures/one-page.tif");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["fax", "send", "--json", to])
        .arg(&doc)
        .env(
            "SWITCHBOARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", gw.admin_port),
        )
        .env("SWITCHBOARD_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["status"], "queued", "{j}");
    j["id"].as_str().unwrap().to_string()
}

fn fax_job(gw: &Gateway, id: &str) -> Value {
    gw.get(&format!("/api/v1/faxes/{id}")).1
}

#[test]
fn fax_jobs_start_no_attempt_during_a_drain_and_a_cut_attempt_is_on_disk() {
    // The far end rings until it is cancelled.
    let uas = Sipp::uas("uas_ring.xml", &["-m", "1"]);
    let mut gw = Gateway::start_with_env(
        &common::trunk_route("carrier", &uas.addr()),
        "[fax]\nretry_delay_secs = 300\n",
        &[("SWITCHBOARD_SIP_DRAIN_SECS", "2")],
    );
    let first = fax_send(&gw, "+4930123456");
    common::wait_until(
        "the first fax job to be in progress",
        Duration::from_secs(10),
        || fax_job(&gw, &first),
        |j| j["status"] == "in_progress",
    );
    gw.signal("TERM");
    wait_draining(&gw);
    // A job submitted now is kept queued: its attempt does not start.
    let second = fax_send(&gw, "+4930123457");
    if common::poll_until(
        Duration::from_secs(5),
        || {
            gw.log()
                .lines()
                .any(|l| l.contains("fax attempt not started") && l.contains(&second))
        },
        |held| *held,
    )
    .is_err()
    {
        panic!("the second job's attempt was not held back:\n{}", gw.log());
    }
    assert_eq!(fax_job(&gw, &second)["attempts"], 0);
    // At the deadline the ringing attempt is cancelled; the job's state is on disk at exit.
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log()
    );
    assert_eq!(
        uas.wait(Duration::from_secs(10)),
        0,
        "the far end got no CANCEL"
    );
    gw.restart();
    let j = fax_job(&gw, &first);
    assert_eq!(j["status"], "queued", "{j}");
    assert_eq!(j["attempts"], 1, "{j}");
    // Recorded by the drain, not found interrupted by the next start.
    assert!(
        j["error_text"].as_str().unwrap_or("").contains("shutdown"),
        "{j}"
    );
}

#[test]
fn a_media_ingest_stream_is_refused_with_try_again_later_during_a_drain() {
    use common::ingest::{cpaas, good, ingest_url, media_ws_section};
    let app = common::app::App::start("twilio", 8000, "");
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let mut gw = Gateway::start_with_env(
        &format!(
            "[[app]]\nname = \"bot\"\nurl = \"ws://127.0.0.1:{}/media\"\n\n{}",
            app.port,
            common::trunk_route("carrier", &uas.addr())
        ),
        &media_ws_section(""),
        &[("SWITCHBOARD_SIP_DRAIN_SECS", "30")],
    );
    // One call keeps the drain going.
    let caller = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(60),
    );
    gw.wait_answered(1);
    gw.signal("TERM");
    wait_draining(&gw);
    let r = cpaas(&ingest_url(&gw, "app:bot", ""), &["--token", &good()]);
    assert_eq!(r["close_code"], 1013, "{r}");
    assert_eq!(r["close_reason"], "draining", "{r}");
    assert!(app.records().is_empty(), "{:?}", app.records());
    gw.signal("TERM");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log()
    );
    assert_eq!(caller.join().unwrap().code, 0);
}
