//! OPTIONS keepalive is opt-in per trunk (`qualify`, as in Asterisk). A trunk without it is
//! never probed, shows as `unmonitored` (API, CLI, metrics) and is tried by every call routed
//! to it; a qualified trunk that stops answering goes down and calls to it get 503 at once.
//! SIP timers run at `t1_ms = 50` here, so an OPTIONS or INVITE times out in 3.2 s.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{uac, Gateway, Sipp, TEST_KEY};

/// T1 of 50 ms: Timer B/F (64·T1) fire after 3.2 s.
const FAST_TIMERS: &[(&str, &str)] = &[("SWITCHBOARD_SIP_T1_MS", "50")];

/// A trunk that never answers: a bare UDP socket that records what it is sent.
struct Silent {
    sock: UdpSocket,
    requests: Vec<(String, String)>,
}

impl Silent {
    fn bind() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Self {
            sock,
            requests: Vec::new(),
        }
    }

    fn addr(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// Receive for `span`; record (method, Call-ID) of every request.
    fn listen(&mut self, span: Duration) {
        let deadline = Instant::now() + span;
        let mut buf = vec![0u8; 65_536];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                break;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            let method = text.split(' ').next().unwrap_or_default().to_string();
            let call_id = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.eq_ignore_ascii_case("call-id") || k == "i").then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            self.requests.push((method, call_id));
        }
    }

    fn count(&self, method: &str) -> usize {
        self.requests.iter().filter(|(m, _)| m == method).count()
    }

    fn distinct_calls(&self, method: &str) -> usize {
        let mut ids: Vec<&str> = self
            .requests
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, c)| c.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

fn trunk(gw: &Gateway, name: &str) -> serde_json::Value {
    gw.get("/api/v1/trunks").1["trunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no trunk {name}"))
}

fn wait_trunk(
    gw: &Gateway,
    name: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    // The caller asserts on the value.
    common::poll_until(Duration::from_secs(20), || trunk(gw, name), |t| f(t))
        .unwrap_or_else(|last| last)
}

fn cli_trunks(gw: &Gateway) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "trunks",
            "--admin",
            &format!("http://127.0.0.1:{}", gw.admin_port),
        ])
        .env("SWITCHBOARD_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_trunk_with_default_config_is_never_probed_and_always_tried() {
    // The tour's provider: SIPp's built-in UAS, which never answers OPTIONS; and a trunk
    // that answers nothing at all. Neither says anything about keepalives.
    let uas = Sipp::uas("uas", &[]);
    let mut quiet = Silent::bind();
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\n\n\
         [[trunk]]\nname = \"quiet\"\naddress = \"{}\"\n\n\
         [[route]]\nmatch = \"0099*\"\nto = \"trunk:quiet\"\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:provider\"\n",
        uas.addr(),
        quiet.addr()
    );
    let gw = Gateway::start_with_env(&cfg, "", FAST_TIMERS);

    // Longer than an OPTIONS timeout: not one probe reaches the trunk.
    quiet.listen(Duration::from_secs(5));
    assert_eq!(quiet.count("OPTIONS"), 0, "{:?}", quiet.requests);

    // Calls to the provider work, however long the gateway has been up.
    let run = uac("uac", &gw.sip(), &["-m", "2"], Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.output);
    assert!(gw
        .wait_cdrs(2)
        .iter()
        .all(|c| c["disposition"] == "ANSWERED"));

    for name in ["provider", "quiet"] {
        let t = trunk(&gw, name);
        assert_eq!(t["state"], "unmonitored", "{t}");
        assert_eq!(t["monitored"], false, "{t}");
        assert!(t["keepalive_secs"].is_null(), "{t}");
        assert_eq!(
            gw.metric(&format!("switchboard_trunk_monitored{{trunk=\"{name}\"}}")),
            0.0
        );
    }
    assert!(
        !gw.metrics()
            .contains("switchboard_trunk_up{trunk=\"provider\"}"),
        "an unmonitored trunk has no up/down gauge"
    );
    let text = cli_trunks(&gw);
    assert!(
        text.lines()
            .any(|l| l.starts_with("provider") && l.contains("unmonitored")),
        "{text}"
    );

    // An unmonitored trunk whose INVITE times out is not marked down: the next call tries it
    // again instead of getting 503 at once.
    for _ in 0..2 {
        let _ = uac(
            "uac",
            &gw.sip(),
            &["-m", "1", "-s", "00991234"],
            Duration::from_secs(15),
        );
    }
    quiet.listen(Duration::from_millis(500));
    assert_eq!(
        quiet.distinct_calls("INVITE"),
        2,
        "both calls reach the trunk: {:?}",
        quiet.requests
    );
    let t = trunk(&gw, "quiet");
    assert_eq!(t["state"], "unmonitored", "{t}");
    assert_eq!(t["last_error"], "INVITE timed out", "{t}");
}

#[test]
fn qualify_false_never_probes_even_with_an_interval() {
    let mut off = Silent::bind();
    let cfg = format!(
        "[[trunk]]\nname = \"off\"\naddress = \"{}\"\nqualify = false\nkeepalive_secs = 1\n",
        off.addr()
    );
    let gw = Gateway::start_with_env(&cfg, "", FAST_TIMERS);
    off.listen(Duration::from_secs(3));
    assert_eq!(off.count("OPTIONS"), 0, "{:?}", off.requests);
    assert_eq!(trunk(&gw, "off")["state"], "unmonitored");
}

#[test]
fn a_qualified_trunk_that_stops_answering_goes_down() {
    let mut silent = Silent::bind();
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\nqualify = true\nkeepalive_secs = 1\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:provider\"\n",
        silent.addr()
    );
    let gw = Gateway::start_with_env(&cfg, "", FAST_TIMERS);
    let t = trunk(&gw, "provider");
    assert_eq!(t["monitored"], true, "{t}");
    assert_eq!(t["keepalive_secs"], 1, "{t}");
    let t = wait_trunk(&gw, "provider", |t| t["state"] == "down");
    assert_eq!(t["state"], "down", "{t}");
    assert_eq!(t["last_error"], "OPTIONS timed out", "{t}");
    assert!(t["last_reply"].is_null(), "{t}");
    silent.listen(Duration::from_millis(200));
    assert!(silent.count("OPTIONS") >= 1, "{:?}", silent.requests);
    assert_eq!(
        gw.metric("switchboard_trunk_monitored{trunk=\"provider\"}"),
        1.0
    );
    assert_eq!(gw.metric("switchboard_trunk_up{trunk=\"provider\"}"), 0.0);
    assert!(cli_trunks(&gw).contains("down"));

    // A trunk known down is not tried: the caller gets 503 at once.
    let started = Instant::now();
    let run = uac("uac", &gw.sip(), &["-m", "1"], Duration::from_secs(15));
    assert_ne!(run.code, 0, "{}", run.output);
    assert!(started.elapsed() < Duration::from_secs(3), "{run:?}");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["sip_code"], 503, "{cdr}");
    silent.listen(Duration::from_millis(200));
    assert_eq!(silent.count("INVITE"), 0, "{:?}", silent.requests);
}

#[test]
fn a_qualified_trunk_that_answers_shows_its_last_reply() {
    let uas = Sipp::uas("uas_options.xml", &[]);
    let cfg = format!(
        "[[trunk]]\nname = \"provider\"\naddress = \"{}\"\nqualify = true\nkeepalive_secs = 1\n",
        uas.addr()
    );
    let gw = Gateway::start(&cfg);
    let t = wait_trunk(&gw, "provider", |t| {
        t["state"] == "up" && t["last_reply"].is_string()
    });
    assert_eq!(t["state"], "up", "{t}");
    assert!(t["rtt_ms"].is_number(), "{t}");
    assert_eq!(gw.metric("switchboard_trunk_up{trunk=\"provider\"}"), 1.0);
}
