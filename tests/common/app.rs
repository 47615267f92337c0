//! The Python media-stream app (`tests/media/app_server.py`) as a test fixture.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The Python app server.
pub struct App {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl App {
    pub fn start(mode: &str, rate: u32, script: &str) -> App {
        Self::start_with(mode, rate, script, None)
    }

    /// Like [`App::start`], serving `wss://` with the PEM certificate and key `tls`.
    pub fn start_tls(mode: &str, rate: u32, script: &str, tls: (&Path, &Path)) -> App {
        Self::start_with(mode, rate, script, Some(tls))
    }

    fn start_with(mode: &str, rate: u32, script: &str, tls: Option<(&Path, &Path)>) -> App {
        let dir = std::env::temp_dir().join(format!(
            "sbapp-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port_file = dir.join("port");
        let log = dir.join("events.jsonl");
        let server =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/app_server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(server);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let child = cmd
            .args([
                "--mode",
                mode,
                "--rate",
                &rate.to_string(),
                "--script",
                script,
            ])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with websockets (scripts/install-peers)");
        let port = super::wait_until(
            "the app server to write its port file",
            Duration::from_secs(15),
            || {
                std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<u16>().ok())
            },
            Option::is_some,
        )
        .expect("a port");
        App { child, port, log }
    }

    /// Every logged record: `{"t", "conn", "msg"}`.
    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The messages the gateway sent with `event`, with their arrival times.
    pub fn events(&self, event: &str) -> Vec<(f64, Value)> {
        self.records()
            .into_iter()
            .filter(|r| r["msg"]["event"] == event)
            .map(|r| (r["t"].as_f64().unwrap_or(0.0), r["msg"].clone()))
            .collect()
    }

    /// When the app performed `action` of its script.
    pub fn sent_at(&self, action: &str) -> Option<f64> {
        self.records()
            .into_iter()
            .find(|r| r["msg"]["sent"] == action)
            .and_then(|r| r["t"].as_f64())
    }

    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&App) -> bool) -> bool {
        super::poll_until(timeout, || f(self), |held| *held).is_ok()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
