//! Rated calls against the credits ledger, with real SIPp on both sides: admission before the
//! trunk is dialled (402/403), a reservation on answer, the call released when the credit runs
//! out, the real cost posted once on hangup.

mod common;

use std::time::Duration;

use common::{uac, uac_in_background, Gateway, Sipp};
use serde_json::{json, Value};

fn post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    gw.request_body("POST", path, &body.to_string()).unwrap()
}

/// An account `id` holding `credit` units.
fn funded(gw: &Gateway, id: &str, credit: u64) {
    let (code, v) = post(gw, "/api/v1/accounts", json!({ "id": id }));
    assert_eq!(code, 201, "{v}");
    if credit > 0 {
        let (code, v) = post(
            gw,
            &format!("/api/v1/accounts/{id}/topup"),
            json!({"amount": credit, "idempotency_key": format!("fund-{id}")}),
        );
        assert_eq!(code, 201, "{v}");
    }
}

fn account(gw: &Gateway, id: &str) -> Value {
    let (code, v) = gw.get(&format!("/api/v1/accounts/{id}"));
    assert_eq!(code, 200, "{v}");
    v
}

/// The transfers of `id` that belong to call `call`.
fn call_transfers(gw: &Gateway, id: &str, call: &str) -> Vec<Value> {
    let (code, v) = gw.get(&format!("/api/v1/accounts/{id}/transfers"));
    assert_eq!(code, 200, "{v}");
    v["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["reference"] == call)
        .cloned()
        .collect()
}

/// A trunk at `addr` priced `price` per minute, billed by the second, and routes: `*` to it.
fn rated(addr: &str, price: u64, route_extra: &str) -> String {
    format!(
        "[billing]\ninitial_secs = 1\nincrement_secs = 1\n\n\
         [[trunk]]\nname = \"carrier\"\naddress = \"{addr}\"\nkeepalive_secs = 0\nprice_per_minute = {price}\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\n{route_extra}\n"
    )
}

#[test]
fn a_call_with_one_minute_of_credit_is_cut_at_a_minute_and_charged_once() {
    // SIPp's built-in UAS answers and waits for our BYE.
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let gw = Gateway::start(&rated(&uas.addr(), 10, "account = \"acme\""));
    // 10 units at 10 per minute: one minute.
    funded(&gw, "acme", 10);
    let caller = uac_in_background(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(100),
    );
    let calls = gw.wait_answered(1);
    let call = calls[0]["id"].as_str().unwrap().to_string();
    assert_eq!(calls[0]["charge"]["account"], "acme", "{calls:?}");
    assert_eq!(calls[0]["charge"]["price_per_minute"], 10);
    // The whole balance is reserved while the call is up.
    let reserved = common::wait_until(
        "the whole balance (10) to be reserved",
        Duration::from_secs(5),
        || account(&gw, "acme"),
        |a| a["debits_pending"] == 10,
    );
    assert_eq!(reserved["available"], 0, "{reserved}");
    // The gateway hangs up on both sides when the minute is used up.
    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "the caller got no BYE: {}", run.output);
    assert_eq!(uas.wait(Duration::from_secs(20)), 0, "the trunk got no BYE");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["hangup_cause"], "credit exhausted", "{cdr}");
    assert_eq!(cdr["disposition"], "ANSWERED", "{cdr}");
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!((59..=61).contains(&billsec), "cut at {billsec} s: {cdr}");
    assert_eq!(cdr["account"], "acme", "{cdr}");
    assert_eq!(cdr["cost"], 10, "{cdr}");
    // Charged once: one reservation, posted by one transfer of 10; nothing left pending.
    let after = account(&gw, "acme");
    assert_eq!(after["balance"], 0, "{after}");
    assert_eq!(after["debits_pending"], 0, "{after}");
    assert_eq!(after["debits_posted"], 10, "{after}");
    let transfers = call_transfers(&gw, "acme", &call);
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    let posts: Vec<_> = transfers
        .iter()
        .filter(|t| t["kind"] == "post_pending")
        .collect();
    assert_eq!(posts.len(), 1, "{transfers:?}");
    assert_eq!(posts[0]["amount"], 10);
    let pending = transfers.iter().find(|t| t["kind"] == "pending").unwrap();
    assert_eq!(pending["state"], "posted", "{pending}");
    assert_eq!(pending["credit_account"], "@calls");
    // A second call from the empty account is refused before the trunk is dialled.
    let run = uac(
        "uac_expect_refused.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    let cdrs = gw.wait_cdrs(2);
    let refused = cdrs.iter().find(|c| c["id"] != call.as_str()).unwrap();
    assert_eq!(refused["sip_code"], 402, "{refused}");
    assert_eq!(refused["hangup_cause"], "no credit", "{refused}");
    assert_eq!(account(&gw, "acme")["debits_posted"], 10);
}

#[test]
fn calls_without_credit_or_payer_are_refused_before_the_trunk_is_dialled() {
    // The trunk takes exactly one call: a refused call that reached it would make the free
    // call at the end fail.
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let routes = "\n[[route]]\nmatch = \"1*\"\nto = \"trunk:carrier\"\naccount = \"poor\"\n\
                  \n[[route]]\nmatch = \"2*\"\nto = \"trunk:carrier\"\naccount = \"nobody\"\n\
                  \n[[route]]\nmatch = \"3*\"\nto = \"trunk:carrier\"\n\
                  \n[[route]]\nmatch = \"4*\"\nto = \"trunk:carrier\"\nprice_per_minute = 0\n";
    let cfg = format!(
        "[[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\nprice_per_minute = 5\n{routes}",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    // "poor" exists but holds 4 units: less than the first minute (5).
    funded(&gw, "poor", 4);
    for (number, cause) in [
        ("1555", "no credit"),
        ("2555", "no account"),
        ("3555", "no account"),
    ] {
        let run = uac(
            "uac_expect_refused.xml",
            &gw.sip(),
            &["-m", "1", "-s", number],
            Duration::from_secs(20),
        );
        assert_eq!(run.code, 0, "{number}: {}", run.output);
        let cdrs = gw.cdrs();
        let cdr = cdrs
            .iter()
            .find(|c| c["dst"] == number)
            .unwrap_or_else(|| panic!("no CDR for {number}: {cdrs:?}"));
        assert_eq!(cdr["sip_code"], 402, "{cdr}");
        assert_eq!(cdr["hangup_cause"], cause, "{cdr}");
    }
    assert_eq!(account(&gw, "poor")["balance"], 4);
    // A free route on the same trunk is not rated.
    let run = uac(
        "uac_long.xml",
        &gw.sip(),
        &["-m", "1", "-s", "4555"],
        Duration::from_secs(40),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(uas.wait(Duration::from_secs(30)), 0);
    let cdrs = gw.wait_cdrs(4);
    let free = cdrs.iter().find(|c| c["dst"] == "4555").unwrap();
    assert_eq!(free["disposition"], "ANSWERED", "{free}");
    assert!(free.get("cost").is_none(), "{free}");
    // 403 instead of 402 when configured.
    let gw = Gateway::start_with_env(&cfg, "", &[("SWITCHBOARD_BILLING_REJECT_STATUS", "403")]);
    let run = uac(
        "uac_expect_refused.xml",
        &gw.sip(),
        &["-m", "1", "-s", "1555"],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["sip_code"], 403, "{cdr}");
    assert_eq!(cdr["hangup_cause"], "no account", "{cdr}");
}

#[test]
fn a_short_call_posts_its_real_cost_and_releases_the_rest() {
    // The trunk hangs up after 1 s.
    let uas = Sipp::uas("uas_bye.xml", &["-m", "1"]);
    // 60 per minute by the second: one unit a second; the caller's number is the account.
    let cfg = rated(&uas.addr(), 60, "account = \"caller\"");
    let gw = Gateway::start(&cfg);
    funded(&gw, "sipp", 100);
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1", "-s", "442071234567"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(uas.wait(Duration::from_secs(20)), 0);
    let cdr = &gw.wait_cdrs(1)[0];
    let call = cdr["id"].as_str().unwrap();
    let cost = cdr["cost"].as_u64().unwrap();
    assert_eq!(cdr["account"], "sipp", "{cdr}");
    // About one second, rounded up to whole seconds.
    assert!((1..=3).contains(&cost), "{cdr}");
    let after = account(&gw, "sipp");
    assert_eq!(after["balance"], 100 - cost as i64, "{after}");
    assert_eq!(after["debits_pending"], 0, "{after}");
    let transfers = call_transfers(&gw, "sipp", call);
    let pending = transfers.iter().find(|t| t["kind"] == "pending").unwrap();
    // The reservation covered the longest call 100 units pay for; only the cost was posted.
    assert_eq!(pending["amount"], 100, "{pending}");
    assert_eq!(pending["timeout_secs"], 100 + 300, "{pending}");
    let post = transfers
        .iter()
        .find(|t| t["kind"] == "post_pending")
        .unwrap();
    assert_eq!(post["amount"], cost, "{post}");
}

/// Issue 11, item 9: with `account = "caller"` the From user used to pay. A caller on a
/// `[sip] trusted` network proves nothing about its number: it may not pick a payer (402
/// `no account`, the victim's balance untouched). A digest-authenticated `[[sip_user]]` pays
/// from its own `account`, whatever From says.
#[test]
fn from_never_picks_the_payer_the_authenticated_user_pays() {
    // The trunk on 127.0.0.1; callers come from 127.0.0.3: trusted (loopback), not the trunk.
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let gw = Gateway::start(&rated(&uas.addr(), 60, "account = \"caller\""));
    // "sipp" is the From user of every SIPp call: someone else's account.
    funded(&gw, "sipp", 100);
    let run = uac(
        "uac_expect_refused.xml",
        &gw.sip(),
        &["-m", "1", "-s", "1555", "-i", "127.0.0.3"],
        Duration::from_secs(20),
    );
    assert_eq!(
        run.code, 0,
        "a trusted caller picked the payer: {}",
        run.output
    );
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["sip_code"], 402, "{cdr}");
    assert_eq!(cdr["hangup_cause"], "no account", "{cdr}");
    assert_eq!(account(&gw, "sipp")["debits_posted"], 0);
    drop(uas);

    // A digest user: its own account pays ([billing] account = "caller" names nobody for it).
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let cfg = format!(
        "{}\n[[sip_user]]\nusername = \"trunkuser\"\npassword = \"trunkpass\"\naccount = \"alice-co\"\n",
        rated(&uas.addr(), 60, "")
    )
    .replace("[billing]\n", "[billing]\naccount = \"caller\"\n");
    let gw = Gateway::start_with_env(&cfg, "", &[("SWITCHBOARD_SIP_TRUSTED", "")]);
    funded(&gw, "sipp", 100);
    funded(&gw, "alice-co", 100);
    // SIPp hashes `sip:host:port` unless told the Request-URI; the digest `uri` must be it.
    let auth_uri = format!("4930555@{}", gw.sip());
    let run = uac(
        "uac_invite_auth401.xml",
        &gw.sip(),
        &[
            "-m",
            "1",
            "-s",
            "4930555",
            "-i",
            "127.0.0.3",
            "-auth_uri",
            &auth_uri,
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.output, gw.log());
    assert_eq!(uas.wait(Duration::from_secs(20)), 0);
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["account"], "alice-co", "{cdr}");
    assert!(cdr["cost"].as_u64().unwrap() >= 1, "{cdr}");
    assert_eq!(account(&gw, "sipp")["debits_posted"], 0);
    assert_eq!(account(&gw, "alice-co")["debits_pending"], 0);
}
