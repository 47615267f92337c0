//! Trunk behaviour against real SIPp peers: REGISTER with digest
//! authentication, INVITE challenged by the trunk, OPTIONS keepalive.

mod common;

use std::time::Duration;

use common::{uac, Gateway, Sipp};

fn wait_trunk(gw: &Gateway, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    // The caller asserts on the value.
    common::poll_until(
        Duration::from_secs(20),
        || gw.get("/api/v1/trunks").1["trunks"][0].clone(),
        |t| f(t),
    )
    .unwrap_or_else(|last| last)
}

#[test]
fn registers_with_digest_auth() {
    let uas = Sipp::uas("uas_register_auth.xml", &["-m", "1"]);
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\nusername = \"trunkuser\"\npassword = \"trunkpass\"\nregister = true\nkeepalive_secs = 0\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let t = wait_trunk(&gw, |t| t["registered"] == true);
    assert_eq!(t["registered"], true, "trunk: {t}");
    // Registration is shown as `registered`; reachability is only probed with `qualify`.
    assert_eq!(t["state"], "unmonitored");
    // SIPp's verifyauth checked our digest; it exits 0 only when it was valid.
    assert_eq!(uas.wait(Duration::from_secs(10)), 0);
    assert!(
        !gw.log().contains("trunkpass"),
        "the password must never be logged"
    );
}

#[test]
fn wrong_password_is_reported_on_the_trunk() {
    let uas = Sipp::uas("uas_register_auth.xml", &["-m", "1"]);
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\nusername = \"trunkuser\"\npassword = \"wrong\"\nregister = true\nkeepalive_secs = 0\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let t = wait_trunk(&gw, |t| t["last_error"].is_string());
    assert_eq!(t["registered"], false, "trunk: {t}");
    assert!(
        t["last_error"].as_str().unwrap().contains("403"),
        "trunk: {t}"
    );
}

#[test]
fn invite_challenged_by_the_trunk_is_resent_with_credentials() {
    let uas = Sipp::uas("uas_invite_auth401.xml", &["-m", "1"]);
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\nusername = \"trunkuser\"\npassword = \"trunkpass\"\nkeepalive_secs = 0\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:provider\"\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let run = uac("uac", &gw.sip(), &["-m", "1"], Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(
        uas.wait(Duration::from_secs(10)),
        0,
        "the trunk rejected our digest"
    );
    assert_eq!(gw.wait_cdrs(1)[0]["disposition"], "ANSWERED");
}

#[test]
fn options_keepalive_marks_the_trunk_up() {
    let uas = Sipp::uas("uas_options.xml", &[]);
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\nkeepalive_secs = 1\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let t = wait_trunk(&gw, |t| t["state"] == "up" && t["rtt_ms"].is_number());
    assert_eq!(t["state"], "up", "trunk: {t}");
    assert_eq!(gw.metric("switchboard_trunk_up{trunk=\"provider\"}"), 1.0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "trunks",
            "--admin",
            &format!("http://127.0.0.1:{}", gw.admin_port),
        ])
        .env("SWITCHBOARD_API_KEY", common::TEST_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("provider") && text.contains("up"), "{text}");
}
