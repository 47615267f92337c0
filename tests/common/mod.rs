//! Test harness: start the real `switchboard` binary on free ports with a
//! generated config, drive it with real SIPp processes, read its admin API.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde_json::Value;

pub mod app;
pub mod ingest;
pub mod rtp;
pub mod wait;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use wait::{poll_until, port_bound, quiet_for, wait_until};

/// Directory with the SIPp scenarios.
pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp")
}

/// A port free on UDP and TCP (loopback).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if port % 2 == 1 || port > 60000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
            // Never hand the same port out twice in one process.
            && HANDED_OUT.lock().unwrap().insert(port)
        {
            return port;
        }
    }
}

static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

static RTP_BLOCK: AtomicU16 = AtomicU16::new(0);
/// Distinct names for temporary directories of this process.
static UNIQUE: AtomicU16 = AtomicU16::new(0);

/// A distinct block of 400 ports for each gateway started by this process, below the kernel's
/// ephemeral range (32768-60999) so that no port [`free_port`] hands a peer (a SIPp media port)
/// can be one of the gateway's own RTP ports, which an SDP may not name.
fn rtp_range() -> (u16, u16) {
    let block = RTP_BLOCK.fetch_add(1, Ordering::SeqCst) % 16;
    let pid_offset = (std::process::id() % 8) as u16 * 2000;
    let low = 10000 + pid_offset + block * 400;
    (low, low + 399)
}

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert, key).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed_with(dir, &[])
}

/// A self-signed leaf certificate (`basicConstraints` CA:FALSE) for 127.0.0.1 in `dir`, as
/// rustls clients need when the certificate itself is the trust anchor (webpki refuses a CA
/// certificate as the server's own): (cert, key).
pub fn self_signed_leaf(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed_with(dir, &["-addext", "basicConstraints=critical,CA:FALSE"])
}

fn self_signed_with(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("openssl not installed");
    assert!(out.status.success(), "openssl: {out:?}");
    (cert, key)
}

/// MQTT options of a claimed test device: its credential, a 5 s keep-alive and the retained
/// Last Will `offline` on its status topic, as the device protocol asks.
pub fn device_options(port: u16, id: &str, pass: &str) -> rumqttc::MqttOptions {
    let mut opts = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    opts.set_credentials(id, pass);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_last_will(rumqttc::LastWill::new(
        format!("devices/{id}/status"),
        "offline",
        rumqttc::QoS::AtLeastOnce,
        true,
    ));
    opts
}

/// The admin key every test gateway is bootstrapped with.
pub const TEST_KEY: &str =
    "sbk_00000000000000aa_00000000000000000000000000000000000000000000000000000000000000bb";

/// A running gateway.
pub struct Gateway {
    child: Option<Child>,
    pub sip_port: u16,
    pub admin_port: u16,
    pub mqtt_port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// Extra environment of the gateway process (kept across restarts).
    pub env: Vec<(String, String)>,
}

impl Gateway {
    /// Start with `extra` TOML appended (trunks and routes).
    pub fn start(extra: &str) -> Self {
        Self::start_with(extra, "")
    }

    /// Start with `extra` TOML and more `[section]` keys in `sections`
    /// (placed before `extra`).
    pub fn start_with(extra: &str, sections: &str) -> Self {
        Self::start_with_env(extra, sections, &[])
    }

    /// Like [`Gateway::start_with`], with environment overrides (`SWITCHBOARD_…`).
    pub fn start_with_env(extra: &str, sections: &str, env: &[(&str, &str)]) -> Self {
        // A counter, not a port: two gateways must never share a store.
        let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("sbtest-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sip_port = free_port();
        let admin_port = free_port();
        let (lo, hi) = rtp_range();
        let config = dir.join("switchboard.toml");
        let mqtt_port = free_port();
        let mqtt = if sections.contains("[mqtt]") {
            String::new()
        } else {
            format!("[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n\n")
        };
        let toml = format!(
            "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\nt1_ms = 500\ntrusted = [\"127.0.0.0/8\"]\n\n[media]\nrtp_ports = \"{lo}-{hi}\"\nallow_loopback = true\nrtp_timeout_secs = 300\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntest_hooks = true\n\n[storage]\npath = \"{}\"\n\n{mqtt}{sections}\n{extra}\n",
            dir.join("data").display()
        );
        std::fs::write(&config, toml).unwrap();
        let mut gw = Self {
            child: None,
            sip_port,
            admin_port,
            mqtt_port,
            dir,
            config,
            env: std::iter::once(("SWITCHBOARD_ADMIN_BOOTSTRAP_KEY", TEST_KEY))
                .chain(env.iter().copied())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        gw.spawn();
        gw
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gateway.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("SWITCHBOARD_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start switchboard");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Wait for `/health/ready` to answer 200.
    pub fn wait_ready(&self) {
        let tls = self
            .env
            .iter()
            .any(|(k, _)| k == "SWITCHBOARD_ADMIN_TLS_CERT");
        let ready = || {
            if tls {
                let out = Command::new("curl")
                    .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(format!(
                        "https://127.0.0.1:{}/health/ready",
                        self.admin_port
                    ))
                    .output();
                out.is_ok_and(|o| o.stdout == b"200")
            } else {
                matches!(self.try_request("GET", "/health/ready"), Ok((200, _)))
            }
        };
        if poll_until(Duration::from_secs(20), ready, |ok| *ok).is_err() {
            panic!("gateway not ready; log:\n{}", self.log());
        }
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    /// `127.0.0.1:port` of the SIP listener.
    pub fn sip(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    /// An admin API request.
    pub fn try_request(&self, method: &str, path: &str) -> std::io::Result<(u16, Value)> {
        self.request_body(method, path, "")
    }

    /// An admin API request with a JSON body, as the bootstrap admin.
    pub fn request_body(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, Value)> {
        let (code, _, value) = self.request_with(
            method,
            path,
            body,
            &[("Authorization", &format!("Bearer {TEST_KEY}"))],
        )?;
        Ok((code, value))
    }

    /// An admin API request with exactly these extra headers (no key unless given); the
    /// status, the response head and the body.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, String, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("{method} {path} HTTP/1.0\r\nHost: x\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes())?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
        Ok((code, head.to_string(), value))
    }

    /// GET returning JSON, panicking on transport errors.
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.try_request("GET", path).expect("admin request")
    }

    /// Raw text of `/metrics`.
    pub fn metrics(&self) -> String {
        match self.get("/metrics").1 {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The value of one metric line (exact name with labels), or 0.
    pub fn metric(&self, name_with_labels: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix(name_with_labels)
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// CDRs, newest first.
    pub fn cdrs(&self) -> Vec<Value> {
        self.get("/api/v1/cdrs?limit=1000").1["cdrs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until at least `n` CDRs are stored.
    pub fn wait_cdrs(&self, n: usize) -> Vec<Value> {
        poll_until(Duration::from_secs(40), || self.cdrs(), |c| c.len() >= n)
            .unwrap_or_else(|last| last)
    }

    /// Active calls.
    pub fn calls(&self) -> Vec<Value> {
        self.get("/api/v1/calls").1["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until `f(calls)` holds.
    pub fn wait_calls(&self, timeout: Duration, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        poll_until(timeout, || self.calls(), |c| f(c)).unwrap_or_else(|last| last)
    }

    /// Wait (up to 10 s) until at least `n` calls are answered; the calls listed then.
    pub fn wait_answered(&self, n: usize) -> Vec<Value> {
        self.wait_calls(Duration::from_secs(10), |c| {
            c.iter().filter(|c| c["state"] == "answered").count() >= n
        })
    }

    /// `/api/v1/status`.
    pub fn status(&self) -> Value {
        self.get("/api/v1/status").1
    }

    /// kill -9 the process.
    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send a signal (`TERM`, `INT`, `HUP`…) to the gateway's process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {} failed", self.pid());
    }

    /// Wait for the process to exit by itself; its exit code (None: still running at the
    /// deadline, or no process).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        // A failed `try_wait` ends the wait as "no process", as before.
        let exited = poll_until(timeout, || child.try_wait(), |r| !matches!(r, Ok(None)));
        match exited {
            Ok(Ok(Some(status))) => {
                self.child = None;
                Some(status.code().unwrap_or(-1))
            }
            _ => None,
        }
    }

    /// Start again on the same config and store.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("gateway log kept in {}", self.dir.display());
        }
    }
}

/// A SIPp process.
pub struct Sipp {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

/// Working directory for SIPp with the `pcap/` folder its built-in
/// `uac_pcap` scenario expects.
fn sipp_dir() -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("sipp-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::os::unix::fs::symlink("/usr/share/sip-tester", dir.join("pcap"));
    dir
}

impl Sipp {
    /// Start SIPp in the background with `args` (port chosen here).
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_bin("sipp", args)
    }

    /// [`Sipp::spawn`] with another SIPp binary (e.g. one built with TLS).
    pub fn spawn_bin(bin: &str, args: &[&str]) -> Self {
        let port = free_port();
        let dir = sipp_dir();
        let child = Command::new(bin)
            .args(args)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-nostdin",
                "-trace_err",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp not installed (apt-get install sip-tester)");
        let mut sipp = Self {
            child: Some(child),
            port,
            dir,
        };
        sipp.wait_bound();
        sipp
    }

    /// Wait until SIPp has bound its port (or has already exited: its caller sees why).
    fn wait_bound(&mut self) {
        let (port, child) = (self.port, self.child.as_mut().expect("spawned"));
        wait_until(
            &format!("SIPp to bind port {port}"),
            Duration::from_secs(10),
            || (port_bound(port), child.try_wait().ok().flatten()),
            |(bound, exited)| *bound || exited.is_some(),
        );
    }

    /// A UAS scenario (built-in name or our XML) listening on a free port.
    pub fn uas(scenario: &str, extra: &[&str]) -> Self {
        Self::uas_bin("sipp", scenario, extra)
    }

    /// [`Sipp::uas`] with another SIPp binary.
    pub fn uas_bin(bin: &str, scenario: &str, extra: &[&str]) -> Self {
        let mut args = scenario_args(scenario);
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn_bin(bin, &refs)
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Wait for the process to end by itself.
    pub fn wait(mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().unwrap();
        match poll_until(timeout, || child.try_wait().unwrap(), Option::is_some) {
            Ok(status) => status.map_or(-1, |s| s.code().unwrap_or(-1)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                -1
            }
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn scenario_args(scenario: &str) -> Vec<String> {
    if scenario.ends_with(".xml") {
        vec![
            "-sf".into(),
            scenarios().join(scenario).display().to_string(),
        ]
    } else {
        vec!["-sn".into(), scenario.into()]
    }
}

/// The outcome of a SIPp client run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub successful: u64,
    pub failed: u64,
    pub output: String,
}

/// [`uac`] on a thread of its own (a caller that stays on the line while the test goes on).
pub fn uac_in_background(
    scenario: &str,
    target: &str,
    extra: &[&str],
    timeout: Duration,
) -> std::thread::JoinHandle<Run> {
    let (scenario, target) = (scenario.to_string(), target.to_string());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        uac(&scenario, &target, &extra, timeout)
    })
}

/// Run a SIPp client scenario toward `target` to completion.
pub fn uac(scenario: &str, target: &str, extra: &[&str], timeout: Duration) -> Run {
    uac_bin("sipp", scenario, target, extra, timeout)
}

/// [`uac`] with another SIPp binary (e.g. one built with TLS).
pub fn uac_bin(bin: &str, scenario: &str, target: &str, extra: &[&str], timeout: Duration) -> Run {
    let dir = sipp_dir();
    let stat = dir.join("stat.csv");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(scenario_args(scenario))
        .arg(target)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
            "-trace_stat",
            "-fd",
            "1",
            "-trace_err",
        ])
        .arg("-stf")
        .arg(&stat)
        .args(["-timeout", &format!("{}s", timeout.as_secs())])
        .args(extra)
        .current_dir(&dir)
        .stdin(Stdio::null());
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .expect("sipp not installed (apt-get install sip-tester)");
    let csv = std::fs::read_to_string(&stat).unwrap_or_default();
    let (successful, failed) = parse_stat(&csv);
    let mut output = String::from_utf8_lossy(&stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr));
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with("_errors.log") {
                output.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        code: status.code().unwrap_or(-1),
        successful,
        failed,
        output,
    }
}

fn parse_stat(csv: &str) -> (u64, u64) {
    let mut lines = csv.lines();
    let Some(head) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.last() else {
        return (0, 0);
    };
    let names: Vec<&str> = head.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    let get = |n: &str| {
        names
            .iter()
            .position(|h| *h == n)
            .and_then(|i| values.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

/// A SIPp built with TLS (`-t l1`): `$SIPP_TLS`, else `sipp-tls` (what `scripts/install-peers`
/// builds when Debian's `sipp` lacks TLS), else `sipp` itself when `sipp -v` says TLS.
pub fn sipp_tls() -> Option<String> {
    let candidates = std::env::var("SIPP_TLS")
        .ok()
        .into_iter()
        .chain(["sipp-tls".to_string(), "sipp".to_string()]);
    candidates.into_iter().find(|bin| {
        Command::new(bin)
            .arg("-v")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).contains("TLS")
                    || String::from_utf8_lossy(&o.stderr).contains("TLS")
            })
    })
}

/// Config for one trunk named `name` at `addr` with route `*` to it.
pub fn trunk_route(name: &str, addr: &str) -> String {
    format!("[[trunk]]\nname = \"{name}\"\naddress = \"{addr}\"\nkeepalive_secs = 0\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:{name}\"\n")
}

/// Number of packets in a classic pcap file.
pub fn pcap_packets(path: &str) -> u64 {
    let data = std::fs::read(path).expect("pcap file");
    let le = data.get(..4) == Some(&[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut off = 24;
    let mut n = 0;
    while off + 16 <= data.len() {
        let b: [u8; 4] = data[off + 8..off + 12].try_into().unwrap();
        let incl = if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize;
        off += 16 + incl;
        n += 1;
    }
    n
}
