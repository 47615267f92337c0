//! Fuzz target for the admin API's JSON request bodies (RFC 8259 through
//! serde_json): the first byte picks the route, the rest is the body.
//! The body types and their stateless checks are the binary's own
//! (`src/admin/bodies.rs`, compiled here as a module); device claims go
//! through `switchboard_mqtt::claim` as `POST /api/v1/devices/claim` does,
//! device commands through the size cap and JSON parse of
//! `POST /api/v1/devices/{id}/commands`. Deserializing and validating never
//! panics, and what validation accepts is within the documented bounds.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/admin/bodies.rs"]
mod bodies;

use libfuzzer_sys::fuzz_target;
use switchboard_mqtt::claim::{claim_mac, verify, ClaimRequest, ClaimResponse};
use switchboard_storage::ledger::{is_gateway_transfer, is_internal_account, MAX_ID};

/// `switchboard_actors::devices::MAX_COMMAND_BYTES` (the actors crate is
/// not built here).
const MAX_COMMAND_BYTES: usize = 16 * 1024;

fn checked_ids(ids: &[&str]) {
    for id in ids {
        let _ = is_gateway_transfer(id);
        let _ = is_internal_account(id);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((route, body)) = data.split_first() else {
        return;
    };
    match route % 8 {
        0 => {
            if let Ok(b) = serde_json::from_slice::<bodies::NewKeyBody>(body) {
                let ok = bodies::check_request(&b.name, &b.scopes, b.expires_in_secs);
                if ok.is_ok() {
                    assert!(!b.name.is_empty() && b.name.len() <= 64);
                    assert!(b
                        .scopes
                        .iter()
                        .all(|s| bodies::SCOPES.contains(&s.as_str())));
                } else if let Err(e) = ok {
                    let _ = (e.code(), e.to_string());
                }
                if bodies::valid_key_accounts(&b.accounts) {
                    assert!(b.accounts.len() <= 64);
                    assert!(b
                        .accounts
                        .iter()
                        .all(|a| !a.is_empty() && a.len() <= MAX_ID && !is_internal_account(a)));
                }
            }
        }
        1 => {
            if let Ok(b) = serde_json::from_slice::<bodies::NewAccount>(body) {
                checked_ids(&[&b.id]);
                let _ = b.debits_must_not_exceed_credits;
            }
        }
        2 => {
            if let Ok(b) = serde_json::from_slice::<bodies::Topup>(body) {
                checked_ids(&[&b.idempotency_key]);
                let _ = b.amount;
            }
        }
        3 => {
            if let Ok(b) = serde_json::from_slice::<bodies::NewTransfer>(body) {
                checked_ids(&[&b.id, &b.debit_account, &b.credit_account]);
                let _ = (
                    b.amount,
                    b.pending,
                    b.timeout_secs.min(86_400 * 30),
                    b.reference,
                );
            }
        }
        4 => {
            if let Ok(b) = serde_json::from_slice::<bodies::Settle>(body) {
                checked_ids(&[&b.id]);
                let _ = b.amount;
            }
        }
        5 => {
            if let Ok(b) = serde_json::from_slice::<bodies::JsonJob>(body) {
                let _ = (b.to, b.file_id, b.account);
            }
        }
        6 => match ClaimRequest::from_json(body) {
            Ok(req) => {
                assert!(body.len() <= switchboard_mqtt::claim::MAX_CLAIM_JSON);
                switchboard_mqtt::DeviceId::parse(&req.device_id).expect("a claimed id is valid");
                assert!((16..=64).contains(&req.nonce.len()));
                let secret = [7u8; 32];
                let _ = verify(&req, &secret, req.ts, 300, false);
                let good = ClaimRequest {
                    hmac: claim_mac(&secret, &req.device_id, &req.nonce, req.ts),
                    ..req.clone()
                };
                assert_eq!(verify(&good, &secret, req.ts, 300, false), Ok(()));
            }
            Err(r) => {
                let out = ClaimResponse::rejected(r).to_json();
                serde_json::from_slice::<serde_json::Value>(&out).expect("the answer is JSON");
            }
        },
        _ => {
            if body.len() <= MAX_COMMAND_BYTES {
                let _ = serde_json::from_slice::<serde_json::Value>(body);
            }
        }
    }
});
