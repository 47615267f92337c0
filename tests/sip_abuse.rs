//! SIP abuse protection against real attack tools: sipvicious (`svwar` to enumerate
//! extensions, `svcrack` to guess passwords) finds nothing and gets banned; a `[[sip_user]]`
//! with the right password still registers and calls (SIPp with digest); sources that are not
//! trunks get a challenge, never a call through.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{uac, Gateway};

/// A gateway that trusts nothing but its trunks (the harness trusts loopback).
fn untrusting(extra: &str) -> Gateway {
    Gateway::start_with_env(
        &format!(
            "[[sip_user]]\nusername = \"trunkuser\"\npassword = \"trunkpass\"\n\n[[route]]\nmatch = \"*\"\nto = \"fax\"\n{extra}"
        ),
        "",
        &[("SWITCHBOARD_SIP_TRUSTED", ""), ("SWITCHBOARD_SIP_BAN_AFTER", "5")],
    )
}

fn sipvicious(tool: &str, args: &[&str]) -> String {
    let out = Command::new(format!("sipvicious_{tool}"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("sipvicious_{tool} (pip install sipvicious): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn svwar_finds_no_extension_and_unauthenticated_calls_are_challenged() {
    let gw = untrusting("");
    let target = format!("udp://{}", gw.sip());
    let dict = gw.dir.join("names.txt");
    std::fs::write(&dict, "trunkuser\nalice\nadmin\n100\n4930555\n").unwrap();
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let out = sipvicious(
            "svwar",
            &["--force", "-m", method, "-e", "100-140", &target],
        );
        assert!(out.contains("found nothing"), "{method} numeric: {out}");
        let out = sipvicious(
            "svwar",
            &[
                "--force",
                "-m",
                method,
                "-d",
                dict.to_str().unwrap(),
                &target,
            ],
        );
        assert!(
            out.contains("found nothing"),
            "{method} names (incl. the real user): {out}"
        );
    }
    // Nothing got through to a call, and the scans did not get anyone banned (no credentials
    // were tried).
    assert!(gw.cdrs().is_empty(), "{:?}", gw.cdrs());
    assert_eq!(gw.get("/api/v1/bans").1["bans"], serde_json::json!([]));
    // A plain INVITE from a non-trunk source is challenged (401), not routed.
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-s", "4930555", "-m", "1"],
        Duration::from_secs(5),
    );
    assert_ne!(run.code, 0);
    assert!(run.output.contains("401"), "{}", run.output);
}

#[test]
fn svcrack_is_banned_and_the_real_user_still_gets_in() {
    let gw = untrusting("");
    let target = format!("udp://{}", gw.sip());
    let out = sipvicious("svcrack", &["-u", "trunkuser", "-r", "1-60", &target]);
    assert!(!out.contains("trunkpass"), "{out}");
    let bans = gw.get("/api/v1/bans").1;
    assert_eq!(bans["bans"][0]["ip"], "127.0.0.1", "{bans}");
    assert_eq!(bans["bans"][0]["reason"], "authentication failures");
    assert!(gw.metric("switchboard_sip_bans_total") >= 1.0);
    assert!(
        gw.metric("switchboard_sip_dropped_total{reason=\"banned\"}") >= 1.0,
        "the banned source's requests are dropped: {}",
        gw.metrics()
    );
    // While banned, even the right password gets no answer.
    let run = uac(
        "uac_register_auth.xml",
        &gw.sip(),
        &["-m", "1", "-recv_timeout", "2000"],
        Duration::from_secs(5),
    );
    assert_ne!(run.code, 0, "a banned source must not register");
    // An operator lifts the ban; the real user registers and calls with digest.
    let (code, v) = gw
        .request_body("DELETE", "/api/v1/bans/127.0.0.1", "")
        .unwrap();
    assert_eq!(code, 200, "{v}");
    let run = uac(
        "uac_register_auth.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(10),
    );
    assert_eq!(
        run.code,
        0,
        "REGISTER with the right password: {run:?}\n{}",
        gw.log()
    );
    let run = uac(
        "uac_invite_auth401.xml",
        &gw.sip(),
        &["-s", "4930555", "-m", "1"],
        Duration::from_secs(15),
    );
    assert_eq!(
        run.code,
        0,
        "INVITE with the right password: {run:?}\n{}",
        gw.log()
    );
    assert_eq!(gw.wait_cdrs(1).len(), 1);
}
