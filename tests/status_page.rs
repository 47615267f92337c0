//! The status page in a real browser: headless Chromium loads `/` with an API key in the
//! fragment, the page's script polls `/api/v1/overview`, and the rendered DOM shows the live
//! call, the trunk and the counters. `switchboard status` prints the same overview.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{trunk_route, Gateway, Sipp, TEST_KEY};

/// Load `url` in headless Chromium (its own profile in `profile`) and dump the DOM after
/// `budget_ms` of virtual time.
fn dump_dom(
    browser: &str,
    profile: &std::path::Path,
    url: &str,
    budget_ms: u32,
) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(String::from)
}

#[test]
fn the_status_page_shows_live_data_in_headless_chromium() {
    let browser = chromium().expect("chromium not installed (scripts/install-peers)");
    let uas = Sipp::uas("uas", &["-m", "1"]);
    let gw = Gateway::start(&trunk_route("carrier-x", &uas.addr()));
    let caller = common::uac_in_background(
        "uac_long.xml",
        &gw.sip(),
        &["-s", "4930777888", "-m", "1"],
        Duration::from_secs(40),
    );
    gw.wait_answered(1);
    // A balance for the page to show.
    let post = |path: &str, body: serde_json::Value| {
        let (code, v) = gw.request_body("POST", path, &body.to_string()).unwrap();
        assert_eq!(code, 201, "{v}");
    };
    post("/api/v1/accounts", serde_json::json!({"id": "acme-ops"}));
    post(
        "/api/v1/accounts/acme-ops/topup",
        serde_json::json!({"amount": 250, "idempotency_key": "k1"}),
    );

    // The page itself is static and carries a strict CSP.
    let (code, head, _) = gw.request_with("GET", "/", "", &[]).unwrap();
    assert_eq!(code, 200);
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(lower.contains("x-frame-options: deny"), "{head}");

    let (dom, stderr) = dump_dom(
        &browser,
        &gw.dir.join("chromium-profile"),
        &format!("http://127.0.0.1:{}/#key={TEST_KEY}", gw.admin_port),
        4000,
    );
    assert!(
        dom.contains("<span id=\"state\" class=\"muted\">live</span>"),
        "page not live:\n{dom}\n{stderr}"
    );
    assert!(dom.contains("<b id=\"calls-active\">1</b>"), "{dom}");
    assert!(
        dom.contains("<td>4930777888</td>"),
        "the live call's number: {dom}"
    );
    assert!(dom.contains("<td>carrier-x</td>"), "the trunk: {dom}");
    assert!(dom.contains("<td>answered</td>"), "{dom}");
    assert!(
        dom.contains("<td>acme-ops</td><td>250</td><td>250</td><td>0</td>"),
        "the balance: {dom}"
    );
    assert!(!dom.contains("<td>@topup</td>"), "{dom}");
    assert!(
        !dom.contains(TEST_KEY),
        "the key must leave the URL and the page"
    );

    // The CLI's overview agrees.
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("status")
        .env(
            "SWITCHBOARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", gw.admin_port),
        )
        .env("SWITCHBOARD_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("calls active") && l.trim_end().ends_with(" 1")),
        "{text}"
    );
    assert!(text.contains("carrier-x"), "{text}");
    assert!(text.contains("acme-ops"), "{text}");
    // A key without credits:read sees no balances (and the page says why).
    let (code, k) = gw
        .request_body(
            "POST",
            "/api/v1/admin/api-keys",
            &serde_json::json!({"name": "wall", "scopes": ["calls:read"]}).to_string(),
        )
        .unwrap();
    assert_eq!(code, 201, "{k}");
    let key = k["key"].as_str().unwrap();
    let (code, _, o) = gw
        .request_with(
            "GET",
            "/api/v1/overview",
            "",
            &[("Authorization", &format!("Bearer {key}"))],
        )
        .unwrap();
    assert_eq!(code, 200);
    assert!(o["accounts"].is_null(), "{o}");
    assert_eq!(o["calls"].as_array().map(Vec::len), Some(1), "{o}");

    // Without a key the page asks for one and shows nothing.
    let (dom, _) = dump_dom(
        &browser,
        &gw.dir.join("chromium-profile-2"),
        &format!("http://127.0.0.1:{}/", gw.admin_port),
        3000,
    );
    assert!(dom.contains("an API key is needed"), "{dom}");
    assert!(!dom.contains("4930777888"), "{dom}");

    let _ = gw.try_request(
        "DELETE",
        &format!("/api/v1/calls/{}", gw.calls()[0]["id"].as_str().unwrap()),
    );
    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "{run:?}");
}
