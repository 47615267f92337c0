//! Configuration reload under load: SIPp places 100 calls through a trunk while the config
//! file is rewritten and reloaded by `POST /api/v1/admin/reload` and by SIGHUP. Not one call
//! fails; a new route works at once; an invalid file, or a change only a restart can apply,
//! is refused and the running configuration stays.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{poll_until, uac, wait_until, Gateway, Sipp};

fn hup(gw: &Gateway) {
    let ok = Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_metric(gw: &Gateway, name: &str, at_least: f64) {
    if poll_until(
        Duration::from_secs(5),
        || gw.metric(name),
        |v| *v >= at_least,
    )
    .is_err()
    {
        panic!("{name} < {at_least}\n{}", gw.log());
    }
}

#[test]
fn reload_under_load_drops_no_call_and_refuses_bad_files() {
    let uas = Sipp::uas("uas", &["-m", "102"]);
    let trunk = format!(
        "[[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\n",
        uas.addr()
    );
    let route = |m: &str| format!("\n[[route]]\nmatch = \"{m}\"\nto = \"trunk:carrier\"\n");
    let gw = Gateway::start(&format!("{trunk}{}", route("1*")));
    let original = std::fs::read_to_string(&gw.config).unwrap();

    // 100 calls of 1 s at 20 per second through route 1*.
    let sip = gw.sip();
    let load = std::thread::spawn(move || {
        uac(
            "uac",
            &sip,
            &["-s", "1000", "-r", "20", "-m", "100", "-d", "1000"],
            Duration::from_secs(60),
        )
    });
    wait_until(
        "10 calls of the load up at once",
        Duration::from_secs(10),
        || gw.calls().len(),
        |n| *n >= 10,
    );

    // A second route, by the API, while calls are up.
    std::fs::write(&gw.config, format!("{original}{}", route("2*"))).unwrap();
    let (code, v) = gw.request_body("POST", "/api/v1/admin/reload", "").unwrap();
    assert_eq!(code, 200, "{v}\n{}", gw.log());
    assert_eq!(v["routes"], 2);

    // An invalid file: refused with its errors, by the API and by SIGHUP.
    std::fs::write(
        &gw.config,
        format!("{original}\n[[route]]\nmatch = \"3*\"\nto = \"trunk:nowhere\"\n"),
    )
    .unwrap();
    let (code, v) = gw.request_body("POST", "/api/v1/admin/reload", "").unwrap();
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_config");
    assert!(v["error"]["errors"].to_string().contains("nowhere"), "{v}");
    hup(&gw);
    wait_metric(
        &gw,
        "switchboard_config_reloads_total{result=\"invalid\"}",
        2.0,
    );

    // A change only a restart can apply: refused, nothing applied.
    let moved = original.replace(
        &format!("listen = \"127.0.0.1:{}\"", gw.sip_port),
        "listen = \"127.0.0.1:1\"",
    );
    assert_ne!(moved, original);
    std::fs::write(&gw.config, format!("{moved}{}", route("2*"))).unwrap();
    let (code, v) = gw.request_body("POST", "/api/v1/admin/reload", "").unwrap();
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("[sip]"),
        "{v}"
    );

    // Back to the good file by SIGHUP.
    std::fs::write(&gw.config, format!("{original}{}", route("2*"))).unwrap();
    hup(&gw);
    wait_metric(
        &gw,
        "switchboard_config_reloads_total{result=\"applied\"}",
        2.0,
    );

    let run = load.join().unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        (run.successful, run.failed),
        (100, 0),
        "calls failed across reloads"
    );
    // The route added by the reload carries calls.
    let run = uac(
        "uac",
        &gw.sip(),
        &["-s", "2000", "-m", "1"],
        Duration::from_secs(15),
    );
    assert_eq!(run.code, 0, "the reloaded route: {run:?}\n{}", gw.log());
    assert!(gw.log().contains("configuration reloaded"));
}
