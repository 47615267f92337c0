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
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, v) = ready(gw);
        if code == 503 && v["draining"] == true {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not draining: {code} {v}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
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
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0), "{}", gw.log());
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
