//! The admin API's perimeter against a real HTTP client (raw HTTP/1.0 over TCP, and the
//! `switchboard keys` CLI): every route × key without its scope → 403, no key → 401,
//! revoked and expired keys → 401; keys shown once and stored hashed; per-source rate limits
//! with Retry-After that recover; CORS preflights from unlisted origins refused; security
//! headers on every answer.

mod common;

use std::time::Duration;

use common::{Gateway, TEST_KEY};
use serde_json::{json, Value};

/// Every protected route with the scope it needs.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/status", "calls:read"),
    ("GET", "/api/v1/calls", "calls:read"),
    ("GET", "/api/v1/calls/abc", "calls:read"),
    ("DELETE", "/api/v1/calls/abc", "calls:write"),
    ("POST", "/api/v1/calls/abc/crash", "admin"),
    ("GET", "/api/v1/cdrs", "calls:read"),
    ("GET", "/api/v1/streams", "calls:read"),
    ("GET", "/api/v1/trunks", "calls:read"),
    ("GET", "/api/v1/devices", "devices:read"),
    ("GET", "/api/v1/devices/esp1", "devices:read"),
    ("POST", "/api/v1/devices/esp1/commands", "devices:write"),
    ("GET", "/api/v1/devices/esp1/commands/r1", "devices:read"),
    ("GET", "/api/v1/faxes", "fax:read"),
    ("POST", "/api/v1/faxes", "fax:send"),
    ("GET", "/api/v1/faxes/abc", "fax:read"),
    ("GET", "/api/v1/faxes/abc/file", "fax:read"),
    ("POST", "/api/v1/files", "fax:send"),
    ("GET", "/api/v1/inbound-faxes", "fax:read"),
    ("GET", "/api/v1/inbound-faxes/abc", "fax:read"),
    ("GET", "/api/v1/inbound-faxes/abc/file", "fax:read"),
    ("GET", "/api/v1/admin/api-keys", "admin"),
    ("POST", "/api/v1/admin/api-keys", "admin"),
    ("DELETE", "/api/v1/admin/api-keys/abc", "admin"),
    ("POST", "/api/v1/admin/reload", "admin"),
    ("GET", "/api/v1/bans", "admin"),
    ("GET", "/api/v1/overview", "calls:read"),
    ("POST", "/api/v1/accounts", "credits:write"),
    ("GET", "/api/v1/accounts/abc", "credits:read"),
    ("POST", "/api/v1/accounts/abc/topup", "credits:write"),
    ("GET", "/api/v1/accounts/abc/transfers", "credits:read"),
    ("POST", "/api/v1/transfers", "credits:write"),
    ("GET", "/api/v1/transfers/abc", "credits:read"),
    ("POST", "/api/v1/transfers/abc/post", "credits:write"),
    ("POST", "/api/v1/transfers/abc/void", "credits:write"),
];

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn call(gw: &Gateway, method: &str, path: &str, key: Option<&str>) -> (u16, String, Value) {
    let auth = key.map(bearer);
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    gw.request_with(method, path, "", &headers).unwrap()
}

/// Create a key through the API as the bootstrap admin.
fn make_key(gw: &Gateway, scopes: &[&str], ttl: Option<u64>) -> (String, String) {
    let mut body = json!({"name": "t", "scopes": scopes});
    if let Some(t) = ttl {
        body["expires_in_secs"] = t.into();
    }
    let (code, v) = gw
        .request_body("POST", "/api/v1/admin/api-keys", &body.to_string())
        .unwrap();
    assert_eq!(code, 201, "{v}");
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn scope_matrix_no_key_wrong_scope_revoked_and_expired() {
    // Hundreds of requests in a burst: lift the rate limits for this one.
    let gw = Gateway::start_with_env(
        "",
        "",
        &[
            ("SWITCHBOARD_ADMIN_RATE_LIMIT_PER_IP", "100000"),
            ("SWITCHBOARD_ADMIN_RATE_LIMIT_PER_KEY", "100000"),
        ],
    );
    // A key for every scope that some route needs, and one that fits none of them.
    let mut keys = std::collections::HashMap::new();
    for (_, _, scope) in ROUTES {
        if !keys.contains_key(scope) {
            keys.insert(*scope, make_key(&gw, &[scope], None).0);
        }
    }
    let (metrics_only, _) = make_key(&gw, &["metrics:read"], None);
    for (method, path, scope) in ROUTES {
        let (code, head, body) = call(&gw, method, path, None);
        assert_eq!(code, 401, "{method} {path} without a key: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
        assert_eq!(body["error"]["code"], "unauthorized");
        let (code, _, body) = call(&gw, method, path, Some(&metrics_only));
        assert_eq!(code, 403, "{method} {path} with metrics:read: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        for (other, key) in &keys {
            let (code, _, body) = call(&gw, method, path, Some(key));
            let granted = other == scope;
            if granted {
                assert!(
                    code != 401 && code != 403,
                    "{method} {path} with {other}: {code} {body}"
                );
            } else if *other != "admin" {
                assert_eq!(code, 403, "{method} {path} with {other}: {body}");
            }
        }
        // `admin` opens everything.
        let (code, _, _) = call(&gw, method, path, Some(TEST_KEY));
        assert!(
            code != 401 && code != 403,
            "{method} {path} as admin: {code}"
        );
    }
    // A family wildcard covers its family only.
    let (devices_all, _) = make_key(&gw, &["devices:*"], None);
    assert_eq!(
        call(&gw, "GET", "/api/v1/devices", Some(&devices_all)).0,
        200
    );
    assert_eq!(call(&gw, "GET", "/api/v1/calls", Some(&devices_all)).0, 403);
    // Revoked and expired keys are refused like unknown ones.
    let (key, id) = make_key(&gw, &["calls:read"], None);
    assert_eq!(call(&gw, "GET", "/api/v1/calls", Some(&key)).0, 200);
    let (code, _) = gw
        .request_body("DELETE", &format!("/api/v1/admin/api-keys/{id}"), "")
        .unwrap();
    assert_eq!(code, 200);
    let (code, _, revoked) = call(&gw, "GET", "/api/v1/calls", Some(&key));
    assert_eq!(code, 401);
    // A key that lives one second is refused once its second is over.
    let (short, _) = make_key(&gw, &["calls:read"], Some(1));
    let (_, _, expired) = common::wait_until(
        "the one-second key to expire (401)",
        Duration::from_secs(5),
        || call(&gw, "GET", "/api/v1/calls", Some(&short)),
        |(code, _, _)| *code == 401,
    );
    let unknown = format!("sbk_{}_{}", "1".repeat(16), "2".repeat(64));
    let (code, _, unknown_body) = call(&gw, "GET", "/api/v1/calls", Some(&unknown));
    assert_eq!(code, 401);
    assert_eq!(revoked, expired, "the same answer for every bad key");
    assert_eq!(revoked, unknown_body);
    // Open routes stay open; the claim is authenticated by its HMAC instead.
    assert_eq!(call(&gw, "GET", "/health", None).0, 200);
    assert_eq!(call(&gw, "GET", "/health/ready", None).0, 200);
    assert_eq!(call(&gw, "POST", "/api/v1/devices/claim", None).0, 400);
    // Metrics from loopback need no key (default metrics_allow).
    assert_eq!(call(&gw, "GET", "/metrics", None).0, 200);
    assert!(gw.metric("switchboard_admin_auth_failures_total{reason=\"unauthorized\"}") >= 25.0);
}

#[test]
fn keys_are_shown_once_stored_hashed_listed_and_revoked_from_the_cli() {
    let gw = Gateway::start("");
    let cli = |args: &[&str], key: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(args)
            .env(
                "SWITCHBOARD_ADMIN_URL",
                format!("http://127.0.0.1:{}", gw.admin_port),
            )
            .env("SWITCHBOARD_API_KEY", key)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = cli(
        &[
            "keys",
            "create",
            "--name",
            "reporting",
            "--scope",
            "calls:read",
            "--scope",
            "fax:read",
        ],
        TEST_KEY,
    );
    assert!(ok, "{out}");
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("sbk_"))
        .expect("the key is printed once")
        .to_string();
    // It works for its scopes, in the CLI too.
    let (ok, table) = cli(&["calls"], &key);
    assert!(ok && table.contains("0 active calls"), "{table}");
    let (ok, refused) = cli(&["devices"], &key);
    assert!(!ok && refused.contains("403"), "{refused}");
    // Listed without the secret.
    let (ok, list) = cli(&["keys", "list"], TEST_KEY);
    assert!(
        ok && list.contains("reporting") && list.contains("calls:read,fax:read"),
        "{list}"
    );
    assert!(
        !list.contains(&key[21..]),
        "the secret must never be listed"
    );
    let (_, v) = gw
        .request_body("GET", "/api/v1/admin/api-keys", "")
        .unwrap();
    assert!(
        !v.to_string().contains(&key[21..]) && !v.to_string().contains("hash"),
        "{v}"
    );
    // The store holds its hash only.
    let id = &key[4..20];
    let (ok, out) = cli(&["keys", "revoke", id], TEST_KEY);
    assert!(ok, "{out}");
    let (ok, refused) = cli(&["calls"], &key);
    assert!(!ok && refused.contains("401"), "{refused}");
    let data = std::fs::read_dir(gw.dir.join("data")).unwrap();
    for f in data.flatten() {
        if f.path().is_file() {
            let bytes = std::fs::read(f.path()).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(&key[21..]),
                "secret found in {}",
                f.path().display()
            );
        }
    }
    // Bad requests get clear errors.
    let (code, v) = gw
        .request_body(
            "POST",
            "/api/v1/admin/api-keys",
            r#"{"name":"x","scopes":["root"]}"#,
        )
        .unwrap();
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("bad_scopes")),
        "{v}"
    );
    let (code, _) = gw
        .request_body("DELETE", "/api/v1/admin/api-keys/ffffffffffffffff", "")
        .unwrap();
    assert_eq!(code, 404);
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_recover() {
    let gw = Gateway::start_with_env("", "", &[("SWITCHBOARD_ADMIN_RATE_LIMIT_PER_IP", "5")]);
    let mut limited = None;
    for _ in 0..40 {
        let (code, head, body) = call(&gw, "GET", "/api/v1/calls", Some(TEST_KEY));
        if code == 429 {
            limited = Some((head, body));
            break;
        }
        assert_eq!(code, 200);
    }
    let (head, body) = limited.expect("no 429 after 40 quick requests at 5/s");
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry: u64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // pacing: wait exactly the Retry-After the gateway gave; recovering then is what it promised.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(
        call(&gw, "GET", "/api/v1/calls", Some(TEST_KEY)).0,
        200,
        "recovered"
    );
    assert!(gw.metric("switchboard_admin_rate_limited_total") >= 1.0);
}

#[test]
fn cors_security_headers_and_metrics_outside_the_allowlist() {
    let gw = Gateway::start_with_env(
        "",
        "",
        &[
            ("SWITCHBOARD_ADMIN_CORS_ORIGINS", "https://ops.example.com"),
            ("SWITCHBOARD_ADMIN_METRICS_ALLOW", "10.0.0.0/8"),
        ],
    );
    let preflight = |origin: &str| {
        gw.request_with(
            "OPTIONS",
            "/api/v1/calls",
            "",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
        )
        .unwrap()
    };
    let (code, head, body) = preflight("https://evil.example.net");
    assert_eq!(code, 403, "{head}");
    assert_eq!(body["error"]["code"], "cors_refused");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{head}"
    );
    let (code, head, _) = preflight("https://ops.example.com");
    assert_eq!(code, 204, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: https://ops.example.com"),
        "{head}"
    );
    assert!(!lower.contains("access-control-allow-origin: *"));
    assert!(!lower.contains("access-control-allow-credentials"));
    // Every answer carries the security headers; API answers are not cached.
    let (_, head, _) = call(&gw, "GET", "/api/v1/calls", Some(TEST_KEY));
    let lower = head.to_ascii_lowercase();
    for h in [
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
    ] {
        assert!(lower.contains(h), "missing {h}: {head}");
    }
    // Errors say what is wrong, not how the gateway is built.
    let (code, _, body) = call(&gw, "GET", "/api/v1/nothing-here", Some(TEST_KEY));
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "route not found"}})
    );
    // Loopback is outside this metrics allowlist: a key with metrics:read is needed.
    assert_eq!(call(&gw, "GET", "/metrics", None).0, 401);
    let (key, _) = make_key(&gw, &["metrics:read"], None);
    let (code, _, body) = call(&gw, "GET", "/metrics", Some(&key));
    assert_eq!(code, 200);
    assert!(
        body.as_str().unwrap_or("").contains("switchboard_"),
        "{body}"
    );
}
