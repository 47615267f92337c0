//! The status page in a real browser: headless Chromium loads `/` with an API key in the
//! fragment, the page's script polls `/api/v1/overview`, and the rendered DOM shows the live
//! call (its trunk, duration, packets and loss each way), the trunks (a monitored one up with
//! its last reply, an unmonitored one as such) and the counters. `switchboard status` prints
//! the same overview.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::rtp::{call_rtp, caller, RtpPeer};
use common::{trunk_route, Gateway, Sipp, TEST_KEY};

/// Poll `f` until it holds or `timeout` passes.
fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    common::poll_until(timeout, f, |held| *held).is_ok()
}

/// One 20 ms PCMU frame of silence with sequence number `seq`.
fn rtp_frame(seq: u16) -> Vec<u8> {
    let mut pkt = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d];
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
    pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    pkt.extend_from_slice(&[0xff; 160]);
    pkt
}

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
    let echo_port = common::free_port().to_string();
    let uas = Sipp::uas("uas", &["-m", "1", "-rtp_echo", "-mp", &echo_port]);
    // A second trunk, monitored (qualify) and answering OPTIONS.
    let watched = Sipp::uas("uas_options.xml", &[]);
    let gw = Gateway::start(&format!(
        "{}\n[[trunk]]\nname = \"watched\"\naddress = \"{}\"\nqualify = true\nkeepalive_secs = 1\n",
        trunk_route("carrier-x", &uas.addr()),
        watched.addr()
    ));
    let peer = RtpPeer::bind();
    let caller = caller(
        &gw,
        "uac_rtp_peer.xml",
        "4930777888",
        &peer,
        &["-d", "20000"],
    );
    gw.wait_answered(1);
    // The caller talks: 45 frames, with 5 sequence numbers missing (lost on the way in); the
    // provider echoes what it gets, gap included, so both directions count 5 lost.
    let (_, a_port): (String, SocketAddr) = call_rtp(&gw);
    for seq in (0u16..20).chain(25..50) {
        peer.socket.send_to(&rtp_frame(seq), a_port).unwrap();
        // pacing: one 20 ms frame every 20 ms, as a phone sends them.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = gw.calls()[0]["media"].clone();
            m["a_to_b"]["packets"] == 45 && m["b_to_a"]["packets"] == 45
        }),
        "{}",
        gw.calls()[0]["media"]
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            gw.get("/api/v1/trunks").1["trunks"][1]["state"] == "up"
        }),
        "the monitored trunk never came up"
    );
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
    assert!(dom.contains("<td>answered</td>"), "{dom}");
    // The call: its trunk, a duration, packets and loss each way.
    assert!(
        dom.contains("<td>4930777888</td><td>carrier-x</td><td>0:00:"),
        "the call's trunk and duration: {dom}"
    );
    assert!(
        dom.contains("<td>45 / 45</td><td>5 (10 %) / 5 (10 %)</td>"),
        "the call's packets and loss: {dom}"
    );
    // The trunks: monitored and up with its last reply, or not monitored at all.
    assert!(
        dom.contains("<td>carrier-x</td><td>not probed</td><td class=\"unmonitored\">unmonitored</td><td>–</td>"),
        "the unmonitored trunk: {dom}"
    );
    assert!(
        dom.contains("<td>watched</td><td>OPTIONS every 1 s</td><td class=\"up\">up</td><td>20"),
        "the monitored trunk and its last reply: {dom}"
    );
    assert!(dom.contains("<b id=\"trunks-up\">1 / 1</b>"), "{dom}");
    assert!(dom.contains("<b id=\"trunks-unmonitored\">1</b>"), "{dom}");
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
    assert!(
        text.lines()
            .any(|l| l.starts_with("trunks up (monitored)") && l.trim_end().ends_with(" 1 / 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("trunks not monitored") && l.trim_end().ends_with(" 1")),
        "{text}"
    );
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

    let run = caller.join().unwrap();
    assert_eq!(run.code, 0, "{run:?}");
}
