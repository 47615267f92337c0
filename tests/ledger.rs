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
    thread::sleep(Duration::from_millis(700));
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
