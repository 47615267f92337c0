//! A `kill -9` with answered rated calls does not lose them from the books (issue 12): after
//! the restart each call has a CDR with cause `crash`, lasting until the journal's last
//! checkpoint, and its reservation is posted for that time (real SIPp on both sides).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{trunk_route, uac, uac_in_background, Gateway, Sipp};
use serde_json::{json, Value};

/// The checkpoint interval the test runs with (`[sip] journal_checkpoint_secs`).
const CHECKPOINT_MS: u64 = 1_000;
/// Slack on top of one checkpoint for the writer's own tick and scheduling.
const SLACK_MS: u64 = 500;
const CALLS: usize = 5;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    gw.request_body("POST", path, &body.to_string()).unwrap()
}

fn account(gw: &Gateway, id: &str) -> Value {
    let (code, v) = gw.get(&format!("/api/v1/accounts/{id}"));
    assert_eq!(code, 200, "{v}");
    v
}

/// Poll `f` until it holds or `timeout` passes; whether it held.
fn eventually(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    common::poll_until(timeout, f, |held| *held).is_ok()
}

#[test]
fn kill_9_with_five_answered_rated_calls_bills_them_after_restart() {
    // SIPp's built-in UAS answers and keeps each call until a BYE that never comes.
    let uas = Sipp::uas("uas", &["-m", &CALLS.to_string()]);
    // One credit unit a second, billed by the second; each call reserves at most 120 units.
    let config = format!(
        "[billing]\ninitial_secs = 1\nincrement_secs = 1\nmax_call_secs = 120\n\n\
         [[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\nprice_per_minute = 60\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\naccount = \"acme\"\n",
        uas.addr()
    );
    let mut gw = Gateway::start_with_env(
        &config,
        "",
        &[("SWITCHBOARD_SIP_JOURNAL_CHECKPOINT_SECS", "1")],
    );
    let (code, v) = post(&gw, "/api/v1/accounts", json!({ "id": "acme" }));
    assert_eq!(code, 201, "{v}");
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/acme/topup",
        json!({"amount": 1000, "idempotency_key": "fund-acme"}),
    );
    assert_eq!(code, 201, "{v}");

    let _callers = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "5", "-l", "5", "-r", "5", "-s", "442071234567"],
        Duration::from_secs(40),
    );
    let calls = gw.wait_answered(CALLS);
    let answered = calls.iter().filter(|c| c["state"] == "answered").count();
    assert_eq!(answered, CALLS, "{calls:?}");
    // Every call holds its reservation.
    assert!(
        eventually(Duration::from_secs(10), || account(&gw, "acme")
            ["debits_pending"]
            == 600),
        "reservations: {}",
        account(&gw, "acme")
    );
    // A checkpoint has seen all five calls; then two more pass, so the calls last a while.
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("switchboard_journal_calls")
            == CALLS as f64),
        "no checkpoint of {CALLS} calls:\n{}",
        gw.metrics()
    );
    let checkpoints = gw.metric("switchboard_journal_checkpoints_total");
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("switchboard_journal_checkpoints_total")
            >= checkpoints + 2.0),
        "no more checkpoints:\n{}",
        gw.metrics()
    );
    assert!(gw.cdrs().is_empty(), "{:?}", gw.cdrs());

    let killed_after = now_ms();
    gw.kill9();
    let killed_before = now_ms();
    gw.restart();

    let cdrs = gw.wait_cdrs(CALLS);
    assert_eq!(cdrs.len(), CALLS, "{cdrs:?}\n{}", gw.log());
    let mut charged = 0;
    for cdr in &cdrs {
        assert_eq!(cdr["hangup_cause"], "crash", "{cdr}");
        assert_eq!(cdr["disposition"], "ANSWERED", "{cdr}");
        assert_eq!(cdr["account"], "acme", "{cdr}");
        // The call ends at its last checkpoint: before the kill, and at most one checkpoint
        // (plus the writer's own slack) before it.
        let end = cdr["end_unix_ms"].as_u64().unwrap();
        assert!(end <= killed_before, "ends after the kill: {cdr}");
        assert!(
            killed_after - end <= CHECKPOINT_MS + SLACK_MS,
            "ends {} ms before the kill: {cdr}",
            killed_after - end
        );
        // At one unit a second billed by the second, the charge is billsec or one more (the
        // last part-second), and at least the checkpoints waited for.
        let billsec = cdr["billsec"].as_u64().unwrap();
        let cost = cdr["cost"].as_u64().unwrap();
        assert!(billsec >= 1, "{cdr}");
        assert!(cost == billsec || cost == billsec + 1, "{cdr}");
        charged += cost;
    }
    // Every reservation was posted for what the CDRs say; nothing is left pending.
    let acme = account(&gw, "acme");
    assert_eq!(acme["debits_pending"], 0, "{acme}");
    assert_eq!(acme["debits_posted"], charged, "{acme}");
    assert_eq!(acme["balance"], 1000 - charged, "{acme}");
    assert!(
        gw.metric("switchboard_crash_cdrs_total") == CALLS as f64,
        "{}",
        gw.metrics()
    );
    assert!(
        gw.log().contains("recovered calls cut by a crash"),
        "{}",
        gw.log()
    );

    // A second restart changes nothing: recovery ran once.
    gw.restart();
    assert_eq!(gw.cdrs().len(), CALLS);
    assert_eq!(account(&gw, "acme")["debits_posted"], charged);
}

#[test]
fn calls_that_ended_leave_nothing_to_recover() {
    let uas = Sipp::uas("uas", &[]);
    let mut gw = Gateway::start_with_env(
        &trunk_route("uas", &uas.addr()),
        "",
        &[("SWITCHBOARD_SIP_JOURNAL_CHECKPOINT_SECS", "1")],
    );
    // Calls that end normally while checkpoints run.
    let run = uac(
        "uac",
        &gw.sip(),
        &["-r", "10", "-m", "30", "-l", "30", "-d", "1500"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, 0, "sipp failed: {}", run.output);
    assert_eq!(gw.wait_cdrs(30).len(), 30);
    assert!(
        gw.metric("switchboard_journal_writes_total") >= 30.0,
        "{}",
        gw.metrics()
    );
    // The next checkpoint finds the journal empty: every CDR removed its record.
    let checkpoints = gw.metric("switchboard_journal_checkpoints_total");
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("switchboard_journal_checkpoints_total")
            > checkpoints),
        "{}",
        gw.metrics()
    );
    assert_eq!(gw.metric("switchboard_journal_calls"), 0.0);
    gw.kill9();
    gw.restart();
    let cdrs = gw.cdrs();
    assert_eq!(cdrs.len(), 30);
    assert!(
        cdrs.iter().all(|c| c["hangup_cause"] != "crash"),
        "{cdrs:?}"
    );
    assert_eq!(gw.metric("switchboard_crash_cdrs_total"), 0.0);
}

/// One-leg calls the gateway places itself (here an ingest `call:` stream on a rated route)
/// are journaled and recovered like B2BUA calls.
#[test]
fn kill_9_with_an_answered_ingest_call_bills_it_after_restart() {
    use common::ingest::{cpaas, ingest_url, media_ws_section, now, token};
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let config = format!(
        "[billing]\ninitial_secs = 1\nincrement_secs = 1\nmax_call_secs = 120\n\n\
         [[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\nprice_per_minute = 60\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\naccount = \"acme\"\n",
        uas.addr()
    );
    let mut gw = Gateway::start_with_env(
        &config,
        &media_ws_section(""),
        &[("SWITCHBOARD_SIP_JOURNAL_CHECKPOINT_SECS", "1")],
    );
    let (code, v) = post(&gw, "/api/v1/accounts", json!({ "id": "acme" }));
    assert_eq!(code, 201, "{v}");
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/acme/topup",
        json!({"amount": 1000, "idempotency_key": "fund-acme"}),
    );
    assert_eq!(code, 201, "{v}");
    let tok = token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() + 300, "targets": ["call:*"]}),
    );
    let url = ingest_url(&gw, "call:4930999", "");
    let _stream = std::thread::spawn(move || {
        cpaas(
            &url,
            &["--token", &tok, "--media-ms", "30000", "--hold-ms", "200"],
        )
    });
    let calls = gw.wait_answered(1);
    assert_eq!(calls.len(), 1, "{calls:?}\n{}", gw.log());
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("switchboard_journal_calls")
            == 1.0),
        "{}",
        gw.metrics()
    );
    let checkpoints = gw.metric("switchboard_journal_checkpoints_total");
    assert!(eventually(Duration::from_secs(10), || gw
        .metric("switchboard_journal_checkpoints_total")
        >= checkpoints + 2.0));
    let killed_after = now_ms();
    gw.kill9();
    gw.restart();
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let cdr = &cdrs[0];
    assert_eq!(cdr["hangup_cause"], "crash", "{cdr}");
    assert_eq!(cdr["dst"], "4930999", "{cdr}");
    assert_eq!(cdr["trunk_out"], "carrier", "{cdr}");
    let end = cdr["end_unix_ms"].as_u64().unwrap();
    assert!(killed_after - end <= CHECKPOINT_MS + SLACK_MS, "{cdr}");
    let cost = cdr["cost"].as_u64().unwrap();
    assert!(cost >= 1, "{cdr}");
    let acme = account(&gw, "acme");
    assert_eq!(acme["debits_pending"], 0, "{acme}");
    assert_eq!(acme["debits_posted"], cost, "{acme}");
}
