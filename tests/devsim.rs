//! `switchboard-devsim` against a real gateway: 20 simulated devices claim over MQTT, send
//! telemetry, answer a command from the admin API and leave cleanly; a second run reuses the
//! saved credentials instead of claiming again.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Gateway;
use serde_json::{json, Value};

const FLEET: &str = "devsim-fleet-secret-0123456789";
const DEVICES: usize = 20;

/// A running devsim whose stdout lines arrive on a channel.
struct Sim {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sim {
    fn start(gw: &Gateway, credentials: &Path, secs: u64) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-devsim"))
            .args(["--broker", &format!("127.0.0.1:{}", gw.mqtt_port)])
            .args(["--devices", &DEVICES.to_string(), "--prefix", "sim"])
            .args(["--telemetry-interval-ms", "200"])
            .args(["--duration-secs", &secs.to_string()])
            .args(["--stats-interval-secs", "1"])
            .arg("--credentials")
            .arg(credentials)
            .env("SWITCHBOARD_DEVICES_FLEET_SECRET", FLEET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchboard-devsim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Wait for the process to end; returns its final JSON summary.
    fn finish(mut self) -> Value {
        let status = common::wait_until(
            "devsim to stop by itself",
            Duration::from_secs(60),
            || self.child.try_wait().expect("wait devsim"),
            Option::is_some,
        )
        .expect("exited");
        assert!(status.success(), "devsim failed: {status}");
        let lines: Vec<String> = self.lines.iter().collect();
        let last = lines.last().cloned().unwrap_or_default();
        serde_json::from_str(&last)
            .unwrap_or_else(|e| panic!("last line is not the JSON summary ({e}): {lines:#?}"))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn devices(gw: &Gateway) -> Vec<Value> {
    gw.get("/api/v1/devices").1["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    common::wait_until(
        what,
        Duration::from_secs(20),
        || {
            found = f();
            found.is_some()
        },
        |held| *held,
    );
    found.expect("found")
}

#[test]
fn devsim_claims_runs_answers_commands_and_reuses_credentials() {
    let gw = Gateway::start_with(
        "",
        &format!("[devices]\nfleet_secret = \"{FLEET}\"\ncommand_timeout_secs = 2\n"),
    );
    let creds = gw.dir.join("devsim-credentials.json");
    let sim = Sim::start(&gw, &creds, 6);

    // While it runs: one device is online and answers a command from the API.
    let target = "sim-000007";
    wait_for("sim-000007 online", || {
        let (code, d) = gw.get(&format!("/api/v1/devices/{target}"));
        (code == 200 && d["online"] == true).then_some(())
    });
    let (code, rec) = gw
        .request_body(
            "POST",
            &format!("/api/v1/devices/{target}/commands"),
            &json!({"action": "blink", "times": 3}).to_string(),
        )
        .expect("post command");
    assert_eq!(code, 202, "{rec}");
    let req = rec["id"].as_str().expect("command id").to_string();
    let done = wait_for("the command reply", || {
        let rec = gw
            .get(&format!("/api/v1/devices/{target}/commands/{req}"))
            .1;
        (rec["status"] == "replied").then_some(rec)
    });
    assert_eq!(done["reply"]["ok"], true, "{done}");
    assert_eq!(done["reply"]["echo"]["action"], "blink", "{done}");

    let summary = sim.finish();
    assert_eq!(summary["devices"], DEVICES, "{summary}");
    assert_eq!(summary["claims"], DEVICES, "{summary}");
    assert_eq!(summary["claim_failures"], 0, "{summary}");
    assert_eq!(summary["connected"], DEVICES, "{summary}");
    assert!(summary["telemetry_sent"].as_u64() > Some(0), "{summary}");
    assert!(
        summary["commands_answered"].as_u64() >= Some(1),
        "{summary}"
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&creds).expect("credentials file")).unwrap();
    assert_eq!(saved.as_object().map(|o| o.len()), Some(DEVICES), "{saved}");

    // Every device reported telemetry and its firmware, and is offline after the clean exit.
    let list = wait_for("all devices offline", || {
        let list = devices(&gw);
        list.iter().all(|d| d["online"] == false).then_some(list)
    });
    let sims: Vec<&Value> = list
        .iter()
        .filter(|d| d["id"].as_str().is_some_and(|id| id.starts_with("sim-")))
        .collect();
    assert_eq!(sims.len(), DEVICES, "{list:#?}");
    for d in &sims {
        assert!(d["counters"]["telemetry"].as_u64() > Some(0), "{d}");
        assert_eq!(d["counters"]["bad_telemetry"], 0, "{d}");
        assert_eq!(d["firmware"], "devsim-1", "{d}");
        assert_eq!(d["online"], false, "{d}");
    }
    let before = sims[0]["counters"]["telemetry"].as_u64().unwrap_or(0);

    // Again with the same credentials file: no claim, the same devices connect and report.
    let again = Sim::start(&gw, &creds, 2).finish();
    assert_eq!(again["claims"], 0, "{again}");
    assert_eq!(again["claim_failures"], 0, "{again}");
    assert_eq!(again["connected"], DEVICES, "{again}");
    assert!(again["telemetry_sent"].as_u64() > Some(0), "{again}");
    let first = &devices(&gw)[0];
    assert!(
        first["counters"]["telemetry"].as_u64() > Some(before),
        "no telemetry in the second run: {first}"
    );
    assert!(
        gw.metric("switchboard_mqtt_auth_failures_total{reason=\"bad_credential\"}") == 0.0,
        "a saved credential was refused"
    );
}
