//! Interop with a real fax engine: the spandsp reference peer
//! (`tests/fax/peer.c`, built here against Debian's libspandsp-dev) is the
//! far end's T.38 terminal, and SIPp plays its SIP side, answering our T.38
//! re-INVITE with an image stream that points at the peer. We send the
//! 2-page fixture to spandsp and receive it from spandsp, with ECM off and
//! on, and once with 10% of the peer's datagrams dropped (our UDPTL
//! redundancy decoding has to carry it) and garbage datagrams thrown at our
//! UDPTL port. Pages are compared as decoded bitmaps.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{free_port, trunk_route, uac, Gateway, Sipp};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fax/fixtures")
        .join(name)
}

/// Build the peer once per test process.
fn peer_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spandsp-peer");
        let status = Command::new("sh")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fax/build.sh"))
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("sh");
        assert!(
            status.success(),
            "building the spandsp peer failed (apt-get install libspandsp-dev)"
        );
        out.join("spandsp-peer")
    })
}

/// The peer running one fax.
struct Peer {
    child: Child,
}

impl Peer {
    fn start(args: &[String]) -> Self {
        let child = Command::new(peer_bin())
            .args(args)
            .args(["--timeout", "150"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spandsp peer");
        Self { child }
    }

    /// Wait for the peer's verdict: (exit code, its JSON summary).
    fn finish(mut self, timeout: Duration) -> (i32, Value) {
        let code =
            match common::poll_until(timeout, || self.child.try_wait().unwrap(), Option::is_some) {
                Ok(status) => status.map_or(-1, |s| s.code().unwrap_or(-1)),
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    -1
                }
            };
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let json = out
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        (code, json)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded pages of a TIFF file, fitted to the fax line.
fn pages(path: &Path) -> Vec<Vec<Vec<u8>>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    switchboard_fax::tiff::read_tiff(&data)
        .expect("a readable TIFF")
        .iter()
        .map(|p| switchboard_fax::tiff::fit_to_fax(p).rows().to_vec())
        .collect()
}

fn get_bytes(gw: &Gateway, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        common::TEST_KEY
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    resp.split_off(at + 4)
}

/// An even port with the next three free: a gateway's smallest RTP range.
fn rtp_base() -> u16 {
    loop {
        let p = free_port();
        let free = (2..4).all(|i| std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok());
        if free {
            return p;
        }
    }
}

/// A gateway whose RTP range starts at `rtp`: the one call takes the first
/// pair, so the peer knows where our UDPTL is before the call.
fn gateway(extra: &str, fax: &str, rtp: u16) -> Gateway {
    Gateway::start_with_env(
        extra,
        &format!("[fax]\nt38_switch_timeout_secs = 1\nmax_attempts = 1\n{fax}\n"),
        &[("SWITCHBOARD_MEDIA_RTP_PORTS", &format!("{rtp}-{}", rtp + 3))],
    )
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "fax-interop-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn send_to_spandsp(ecm: bool, loss: bool) {
    let (rtp, peer_port) = (rtp_base(), free_port());
    let uas = Sipp::uas(
        "uas_t38_peer.xml",
        &["-set", "peer_port", &peer_port.to_string()],
    );
    let gw = gateway(
        &trunk_route("carrier", &uas.addr()),
        &format!("ecm = {ecm}"),
        rtp,
    );
    let received = tmp("from-switchboard.tif");
    let mut args: Vec<String> = [
        "--mode",
        "receive",
        "--file",
        received.to_str().unwrap(),
        "--local",
        &format!("127.0.0.1:{peer_port}"),
        "--remote",
        &format!("127.0.0.1:{rtp}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if ecm {
        args.push("--ecm".into());
    }
    if loss {
        args.extend(["--loss", "10", "--seed", "7"].map(String::from));
    }
    let peer = Peer::start(&args);
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["fax", "send", "--json", "+4930555000"])
        .arg(fixture("two-pages.tif"))
        .env(
            "SWITCHBOARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", gw.admin_port),
        )
        .env("SWITCHBOARD_API_KEY", common::TEST_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    // The value is asserted below, with the peer's verdict and the log.
    let done = common::poll_until(
        Duration::from_secs(180),
        || gw.get(&format!("/api/v1/faxes/{id}")).1,
        |j| j["status"] == "succeeded" || j["status"] == "failed",
    )
    .unwrap_or_else(|last| last);
    let (code, verdict) = peer.finish(Duration::from_secs(30));
    assert_eq!(done["status"], "succeeded", "{done}\n{}", gw.log());
    assert_eq!(code, 0, "spandsp says: {verdict}");
    assert_eq!(verdict["pages"], 2, "{verdict}");
    assert_eq!(verdict["ecm"], ecm, "{verdict}");
    assert_eq!(done["ecm"], ecm, "{done}");
    assert_eq!(done["pages_sent"], 2, "{done}");
    assert_eq!(
        pages(&received),
        pages(&fixture("two-pages.tif")),
        "spandsp received different pages"
    );
}

fn receive_from_spandsp(ecm: bool, loss: bool) {
    let (rtp, peer_port) = (rtp_base(), free_port());
    let gw = gateway(
        "[[route]]\nmatch = \"*\"\nto = \"fax\"\n",
        &format!("ecm = {ecm}"),
        rtp,
    );
    let mut args: Vec<String> = [
        "--mode",
        "send",
        "--calling",
        "--file",
        fixture("two-pages.tif").to_str().unwrap(),
        "--local",
        &format!("127.0.0.1:{peer_port}"),
        "--remote",
        &format!("127.0.0.1:{rtp}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if ecm {
        args.push("--ecm".into());
    }
    if loss {
        args.extend(["--loss", "10", "--seed", "11"].map(String::from));
    }
    let peer = Peer::start(&args);
    // With loss, also throw garbage at our UDPTL port during the transfer:
    // it must be counted and ignored.
    let garbage = loss.then(|| {
        std::thread::spawn(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut x: u32 = 0x1234_5678;
            for i in 0..300u32 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let len = (x % 60) as usize + 1;
                let mut d: Vec<u8> = (0..len).map(|j| (x >> (j % 24)) as u8).collect();
                if i % 3 == 0 {
                    d[0] = 0xff; // a sequence number far away, then junk
                }
                let _ = sock.send_to(&d, ("127.0.0.1", rtp));
                // pacing: junk spread over the whole transfer, one datagram every 30 ms.
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    });
    let run = uac(
        "uac_t38_peer.xml",
        &gw.sip(),
        &[
            "-s",
            "4930555000",
            "-m",
            "1",
            "-set",
            "peer_port",
            &peer_port.to_string(),
        ],
        Duration::from_secs(180),
    );
    let (code, verdict) = peer.finish(Duration::from_secs(30));
    if let Some(g) = garbage {
        g.join().unwrap();
        assert!(gw.metric("switchboard_udptl_malformed_total") > 0.0);
    }
    assert_eq!(run.code, 0, "SIPp: {run:?}\n{}", gw.log());
    assert_eq!(code, 0, "spandsp says: {verdict}\n{}", gw.log());
    assert_eq!(verdict["pages"], 2, "{verdict}");
    let rec = common::wait_until(
        "the inbound fax record to be final",
        Duration::from_secs(10),
        || gw.get("/api/v1/inbound-faxes").1["faxes"][0].clone(),
        |rec| rec["status"] != "receiving",
    );
    assert_eq!(rec["status"], "received", "{rec}");
    assert_eq!(rec["pages"], 2, "{rec}");
    assert_eq!(rec["ecm"], ecm, "{rec}");
    let got = tmp("at-switchboard.tif");
    std::fs::write(&got, get_bytes(&gw, rec["file_url"].as_str().unwrap())).unwrap();
    assert_eq!(
        pages(&got),
        pages(&fixture("two-pages.tif")),
        "received pages differ"
    );
}

#[test]
fn sends_to_spandsp_without_ecm() {
    send_to_spandsp(false, false);
}

#[test]
fn sends_to_spandsp_with_ecm() {
    send_to_spandsp(true, false);
}

#[test]
fn receives_from_spandsp_without_ecm() {
    receive_from_spandsp(false, false);
}

#[test]
fn receives_from_spandsp_with_ecm() {
    receive_from_spandsp(true, false);
}

#[test]
fn receives_from_spandsp_through_10_percent_loss() {
    receive_from_spandsp(false, true);
}
