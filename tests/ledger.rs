//! The credits ledger over HTTP: thousands of concurrent top-ups and charges keep the
//! balance equal to the sum of the transfers on record; replayed ids create nothing; a
//! `kill -9` during a burst loses no acknowledged transfer and doubles none.

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::Gateway;
use serde_json::{json, Value};

fn post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    gw.request_body("POST", path, &body.to_string()).unwrap()
}

fn account(gw: &Gateway, id: &str) -> Value {
    gw.get(&format!("/api/v1/accounts/{id}")).1
}

fn fast(extra: &str) -> Gateway {
    // Thousands of requests in bursts: lift the admin rate limits.
    Gateway::start_with_env(
        extra,
        "",
        &[
            ("SWITCHBOARD_ADMIN_RATE_LIMIT_PER_IP", "100000"),
            ("SWITCHBOARD_ADMIN_RATE_LIMIT_PER_KEY", "100000"),
        ],
    )
}

#[test]
fn concurrent_topups_and_charges_balance_and_replays_create_nothing() {
    let gw = Arc::new(fast(""));
    assert_eq!(post(&gw, "/api/v1/accounts", json!({"id": "acme"})).0, 201);
    assert_eq!(
        post(&gw, "/api/v1/accounts", json!({"id": "@revenue-x"})).0,
        400
    );
    assert_eq!(
        post(
            &gw,
            "/api/v1/accounts",
            json!({"id": "revenue", "debits_must_not_exceed_credits": false})
        )
        .0,
        201
    );
    // 8 threads × 250 requests: top-ups of 10 and charges of 7, interleaved.
    let accepted = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (gw, accepted) = (Arc::clone(&gw), Arc::clone(&accepted));
            thread::spawn(move || {
                for i in 0..250 {
                    if i % 2 == 0 {
                        let (code, v) = post(&gw, "/api/v1/accounts/acme/topup", json!({"amount": 10, "idempotency_key": format!("top-{w}-{i}")}));
                        assert_eq!(code, 201, "{v}");
                        accepted.lock().unwrap().0 += 10;
                    } else {
                        let (code, v) = post(&gw, "/api/v1/transfers", json!({"id": format!("chg-{w}-{i}"), "debit_account": "acme", "credit_account": "revenue", "amount": 7}));
                        match code {
                            201 => accepted.lock().unwrap().1 += 7,
                            422 => {
                                assert_eq!(v["error"]["code"], "exceeds_credits", "{v}");
                                accepted.lock().unwrap().2 += 1;
                            }
                            other => panic!("{other}: {v}"),
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (topped, charged, refused) = *accepted.lock().unwrap();
    assert_eq!(topped, 8 * 125 * 10);
    let a = account(&gw, "acme");
    assert_eq!(
        a["balance"].as_i64().unwrap(),
        (topped - charged) as i64,
        "{a} ({refused} refused)"
    );
    assert!(a["balance"].as_i64().unwrap() >= 0);
    assert_eq!(
        account(&gw, "revenue")["balance"].as_i64().unwrap(),
        charged as i64
    );
    // The record agrees: the sum of the account's transfers is its balance.
    let list = gw.get("/api/v1/accounts/acme/transfers?limit=10000").1;
    let sum: i64 = list["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let amount = t["amount"].as_i64().unwrap();
            if t["credit_account"] == "acme" {
                amount
            } else {
                -amount
            }
        })
        .sum();
    assert_eq!(sum, a["balance"].as_i64().unwrap());
    // Replays: same ids, same fields → nothing new; same id, other fields → refused.
    for w in 0..8 {
        let (code, v) = post(
            &gw,
            "/api/v1/accounts/acme/topup",
            json!({"amount": 10, "idempotency_key": format!("top-{w}-0")}),
        );
        assert_eq!((code, v["created"].as_bool()), (200, Some(false)), "{v}");
    }
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/acme/topup",
        json!({"amount": 11, "idempotency_key": "top-0-0"}),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("exists_with_different_fields"))
    );
    assert_eq!(
        account(&gw, "acme")["balance"],
        a["balance"],
        "replays changed the balance"
    );

    // Two-phase: reserve, post part, the rest is released.
    let before = account(&gw, "acme")["balance"].as_i64().unwrap();
    let (code, _) = post(
        &gw,
        "/api/v1/transfers",
        json!({"id": "call-1", "debit_account": "acme", "credit_account": "revenue", "amount": 60, "pending": true, "timeout_secs": 300}),
    );
    assert_eq!(code, 201);
    assert_eq!(
        account(&gw, "acme")["available"].as_i64().unwrap(),
        before - 60
    );
    let (code, v) = post(
        &gw,
        "/api/v1/transfers/call-1/post",
        json!({"id": "call-1-post", "amount": 25}),
    );
    assert_eq!(code, 201, "{v}");
    let a = account(&gw, "acme");
    assert_eq!(
        (
            a["balance"].as_i64().unwrap(),
            a["debits_pending"].as_i64().unwrap()
        ),
        (before - 25, 0)
    );
    let (code, v) = post(
        &gw,
        "/api/v1/transfers/call-1/void",
        json!({"id": "call-1-void"}),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("pending_not_pending")),
        "{v}"
    );
}

#[test]
fn kill_9_during_a_burst_loses_no_acknowledged_transfer_and_doubles_none() {
    let mut gw = fast("");
    assert_eq!(post(&gw, "/api/v1/accounts", json!({"id": "acme"})).0, 201);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let port = gw.admin_port;
    let burst = {
        let acked = Arc::clone(&acked);
        thread::spawn(move || {
            for i in 0..5000 {
                let id = format!("burst-{i}");
                let body = json!({"amount": 1, "idempotency_key": id}).to_string();
                let r = raw_post(port, "/api/v1/accounts/acme/topup", &body);
                match r {
                    Some(201) => acked.lock().unwrap().push(id),
                    _ => break, // the gateway is gone
                }
            }
        })
    };
    // Kill in the middle of the burst, once more than 20 top-ups are acknowledged.
    common::wait_until(
        "more than 20 acknowledged top-ups",
        Duration::from_secs(20),
        || acked.lock().unwrap().len(),
        |n| *n > 20,
    );
    gw.kill9();
    burst.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "only {} acknowledged before the kill",
        acked.len()
    );
    gw.restart();
    for id in &acked {
        let (code, t) = gw.get(&format!("/api/v1/transfers/{id}"));
        assert_eq!(code, 200, "acknowledged {id} lost: {t}");
    }
    // Every transfer on record counted once: balance = number of top-ups on record, which is
    // the acknowledged ones plus at most the one in flight at the kill.
    let balance = account(&gw, "acme")["balance"].as_u64().unwrap();
    let on_record = gw.get("/api/v1/accounts/acme/transfers?limit=10000").1["transfers"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!(balance, on_record);
    assert!(
        on_record == acked.len() as u64 || on_record == acked.len() as u64 + 1,
        "{on_record} vs {}",
        acked.len()
    );
    // Replaying the acknowledged ones after the restart creates nothing.
    for id in acked.iter().take(50) {
        let (code, _) = post(
            &gw,
            "/api/v1/accounts/acme/topup",
            json!({"amount": 1, "idempotency_key": id}),
        );
        assert_eq!(code, 200);
    }
    assert_eq!(account(&gw, "acme")["balance"].as_u64().unwrap(), balance);
}

/// A POST that reports only the status (None when the connection fails).
fn raw_post(port: u16, path: &str, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        common::TEST_KEY,
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_whitespace().nth(1)?.parse().ok()
}

/// POST a multipart fax (`to`, `file`, optional `account`) with `key`.
fn fax_with(gw: &Gateway, key: &str, account: Option<&str>) -> (u16, Value) {
    use std::io::{Read, Write};
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fax/fixtures/two-pages.tif"),
    )
    .unwrap();
    let boundary = "sbledgerboundary";
    let mut body = Vec::new();
    if let Some(a) = account {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"account\"\r\n\r\n{a}\r\n"
        )
        .unwrap();
    }
    write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n4930555\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"two.tif\"\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap();
    body.extend_from_slice(&file);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    write!(s, "POST /api/v1/faxes HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    s.write_all(&body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let v = resp
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (code, v)
}

/// POST `body` to `path` with `key`.
fn post_as(gw: &Gateway, key: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let (code, _, v) = gw
        .request_with("POST", path, &body.to_string(), &[("Authorization", &auth)])
        .unwrap();
    (code, v)
}

/// A new API key with `scopes`, bound to `accounts`.
fn key(gw: &Gateway, scopes: &[&str], accounts: &[&str]) -> String {
    let mut body = json!({"name": "customer", "scopes": scopes});
    if !accounts.is_empty() {
        body["accounts"] = json!(accounts);
    }
    let (code, v) = post(gw, "/api/v1/admin/api-keys", body);
    assert_eq!(code, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}

/// A gateway with fax pages priced at 1 and a trunk that never answers (a fax job's call
/// rings out for a while, so its page reservation stays pending), with `acme` and `other`
/// holding 100 each.
fn ledger_gateway() -> (Gateway, std::net::UdpSocket) {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gw = Gateway::start_with_env(
        &common::trunk_route("mute", &silent.local_addr().unwrap().to_string()),
        "[billing]\nprice_per_page = 1\n\n[fax]\nmax_attempts = 1\n",
        &[],
    );
    for id in ["acme", "other"] {
        assert_eq!(post(&gw, "/api/v1/accounts", json!({"id": id})).0, 201);
        let (code, v) = post(
            &gw,
            &format!("/api/v1/accounts/{id}/topup"),
            json!({"amount": 100, "idempotency_key": format!("seed-{id}")}),
        );
        assert_eq!(code, 201, "{v}");
    }
    (gw, silent)
}

/// Issue 11, item 10: a top-up of u64::MAX used to be accepted and the balance shown
/// clamped. Every sum stays exact; what would overflow is refused (422 `overflow`).
#[test]
fn amounts_that_would_overflow_are_refused_and_balances_are_exact() {
    // The probe, on a fresh gateway: a first top-up of u64::MAX.
    let gw = Gateway::start("");
    assert_eq!(post(&gw, "/api/v1/accounts", json!({"id": "acme"})).0, 201);
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/acme/topup",
        json!({"amount": u64::MAX, "idempotency_key": "huge"}),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (422, Some("overflow")),
        "{v}"
    );
    assert_eq!(account(&gw, "acme")["balance"], 0);
    assert_eq!(gw.get("/api/v1/transfers/huge").0, 404);
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/acme/topup",
        json!({"amount": 100, "idempotency_key": "seed"}),
    );
    assert_eq!(code, 201, "{v}");
    // Up to the limit, exact; one more unit, refused.
    assert_eq!(post(&gw, "/api/v1/accounts", json!({"id": "rich"})).0, 201);
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/rich/topup",
        json!({"amount": i64::MAX as u64 - 100, "idempotency_key": "big"}),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = post(
        &gw,
        "/api/v1/accounts/rich/topup",
        json!({"amount": 1, "idempotency_key": "one-more"}),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (422, Some("overflow")),
        "{v}"
    );
    let rich = account(&gw, "rich");
    assert_eq!(rich["balance"].as_i64(), Some(i64::MAX - 100), "{rich}");
    assert_eq!(rich["available"].as_i64(), Some(i64::MAX - 100), "{rich}");
    assert_eq!(
        rich["credits_posted"].as_u64(),
        Some(i64::MAX as u64 - 100),
        "{rich}"
    );
}

/// Issue 11, item 10: a `credits:write` key could post or void the gateway's own
/// `call:`/`fax:` transfers, pre-create `call:{id}:post`, or move the gateway's `@` money.
#[test]
fn the_gateways_transfer_ids_and_accounts_are_out_of_the_apis_reach() {
    let (gw, _trunk) = ledger_gateway();
    let credits = key(&gw, &["credits:write", "credits:read"], &[]);
    let reserved = |(code, v): (u16, Value), what: &str| {
        assert_eq!(code, 403, "{what}: {v}");
        assert_eq!(v["error"]["code"], "reserved_id", "{what}: {v}");
    };
    let t = |id: &str, pending: bool| json!({"id": id, "debit_account": "acme", "credit_account": "other", "amount": 5, "pending": pending});
    reserved(
        post_as(
            &gw,
            &credits,
            "/api/v1/transfers",
            t("call:0123456789abcdef:post", false),
        ),
        "call:…:post",
    );
    reserved(
        post_as(
            &gw,
            &credits,
            "/api/v1/transfers",
            t("call:0123456789abcdef", true),
        ),
        "call: pending",
    );
    reserved(
        post_as(&gw, &credits, "/api/v1/transfers", t("fax:0123", false)),
        "fax:",
    );
    let (code, v) = post_as(
        &gw,
        &credits,
        "/api/v1/transfers",
        json!({"id": "x1", "debit_account": "@calls", "credit_account": "acme", "amount": 5}),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("reserved_account")),
        "{v}"
    );
    // A real fax job's reservation: the gateway's, not the key's, to post or void.
    let (code, job) = fax_with(&gw, common::TEST_KEY, Some("acme"));
    assert_eq!(code, 202, "{job}");
    let pending = format!("fax:{}", job["id"].as_str().unwrap());
    assert_eq!(
        gw.get(&format!("/api/v1/transfers/{pending}")).1["state"],
        "pending"
    );
    reserved(
        post_as(
            &gw,
            &credits,
            &format!("/api/v1/transfers/{pending}/void"),
            json!({"id": "v1"}),
        ),
        "void of a fax job",
    );
    reserved(
        post_as(
            &gw,
            &credits,
            &format!("/api/v1/transfers/{pending}/post"),
            json!({"id": "p1", "amount": 1}),
        ),
        "post of a fax job",
    );
    assert_eq!(
        gw.get(&format!("/api/v1/transfers/{pending}")).1["state"],
        "pending"
    );
    assert_eq!(account(&gw, "acme")["debits_posted"], 0);
}

/// Issue 11, item 10: a `fax:send` key could bill any account, the gateway's included. A key
/// names no payer it is not bound to; a key bound to `acme` bills and debits only `acme`.
#[test]
fn a_key_bills_only_the_accounts_it_is_bound_to() {
    let (gw, _trunk) = ledger_gateway();
    let fax = key(&gw, &["fax:send"], &[]);
    for account in ["@calls", "@faxes", "other"] {
        let (code, v) = fax_with(&gw, &fax, Some(account));
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (403, Some("account_not_allowed")),
            "{account}: {v}"
        );
    }
    for id in ["@calls", "@faxes", "other"] {
        assert_eq!(account(&gw, id)["debits_pending"], 0, "{id}");
    }
    let bound = key(&gw, &["fax:send", "credits:write"], &["acme"]);
    let (code, v) = fax_with(&gw, &bound, Some("other"));
    assert_eq!(code, 403, "{v}");
    let (code, v) = fax_with(&gw, &bound, None);
    assert_eq!((code, v["account"].as_str()), (202, Some("acme")), "{v}");
    let (code, v) = post_as(
        &gw,
        &bound,
        "/api/v1/transfers",
        json!({"id": "b1", "debit_account": "other", "credit_account": "acme", "amount": 5}),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("account_not_allowed")),
        "{v}"
    );
    let (code, v) = post_as(
        &gw,
        &bound,
        "/api/v1/transfers",
        json!({"id": "b2", "debit_account": "acme", "credit_account": "other", "amount": 5}),
    );
    assert_eq!(code, 201, "{v}");
    let (code, _) = post_as(
        &gw,
        &bound,
        "/api/v1/accounts/acme/topup",
        json!({"amount": 5, "idempotency_key": "mint"}),
    );
    assert_eq!(code, 403, "a bound key mints no credit");
}
