//! Slowloris and descriptor exhaustion (issue 11, item 15), through raw TCP sockets, the admin
//! API and SIPp: 1,100 idle connections from one source to each listener leave `/health` and
//! calls (with their RTP ports) working; per-source caps on SIP TCP/TLS and admin HTTP; a SIP
//! message or an HTTP header block trickled a byte at a time is cut off at its deadline; the
//! gateway refuses to start when its caps cannot fit under the open-files limit.
//!
//! Attackers connect from other loopback addresses (127.0.0.2 and up) so the test's own
//! requests (from 127.0.0.1) are not counted against the attacker's per-source caps.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{trunk_route, uac, Gateway, Sipp};

/// Held while this process's open-files limit is lowered, so no other test opens sockets then.
static NOFILE: Mutex<()> = Mutex::new(());

/// This process may open as many descriptors as its hard limit allows (the test itself holds
/// 2,200 sockets).
fn raise_own_limit() {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(hard, hard).unwrap();
}

/// A TCP connection to `to` from the loopback address `from`, within a second.
fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&src.into())?;
    sock.connect_timeout(&to.into(), Duration::from_secs(1))?;
    Ok(sock.into())
}

/// Whether the server closed `s` (EOF or reset, after any answer it sent); false while it is
/// open and silent.
fn closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1024];
    let shut = loop {
        match (&*s).read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break e.kind() != ErrorKind::WouldBlock,
        }
    };
    let _ = s.set_nonblocking(false);
    shut
}

/// Poll until `f` holds, up to `timeout`.
fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    common::poll_until(timeout, f, |held| *held).is_ok()
}

/// Open `n` connections from `from` to `to`; the ones the kernel completed (it stops after
/// five failures in a row: a listener that no longer accepts).
fn flood(from: &str, to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let (mut out, mut failed) = (Vec::new(), 0);
    for _ in 0..n {
        match connect_from(from, to) {
            Ok(s) => {
                failed = 0;
                out.push(s);
            }
            Err(_) if failed >= 4 => break,
            Err(_) => failed += 1,
        }
    }
    out
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port)
}

/// The last lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// GET /health from 127.0.0.1 within a few seconds.
fn health(gw: &Gateway) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr(gw.admin_port), Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    raw.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn eleven_hundred_idle_connections_per_listener_leave_health_and_calls_working() {
    let _only_us = NOFILE.lock().unwrap_or_else(|e| e.into_inner());
    let uas = Sipp::uas("uas", &[]);
    // The gateway starts with the soft limit most systems give: 1024. Children inherit it, so
    // lower ours while it starts, then take ours back up to the hard limit.
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(1024, hard).unwrap();
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    raise_own_limit();
    let started = Instant::now();
    let sip = flood("127.0.0.2", addr(gw.sip_port), 1100);
    let admin = flood("127.0.0.2", addr(gw.admin_port), 1100);
    eprintln!(
        "opened {} SIP and {} admin connections in {:?}",
        sip.len(),
        admin.len(),
        started.elapsed()
    );
    // The admin API answers other sources, and a call gets its RTP ports.
    assert_eq!(health(&gw), Some(200), "log:\n{}", tail(&gw.log()));
    let run = uac("uac", &gw.sip(), &["-m", "1"], Duration::from_secs(20));
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.output);
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
    // The per-source caps close all but a few at once.
    assert!(
        wait_until(Duration::from_secs(10), || sip
            .iter()
            .filter(|s| !closed(s))
            .count()
            <= 32),
        "SIP connections from one source still open: {}",
        sip.iter().filter(|s| !closed(s)).count()
    );
    assert!(
        wait_until(Duration::from_secs(10), || admin
            .iter()
            .filter(|s| !closed(s))
            .count()
            <= 16),
        "admin connections from one source still open: {}",
        admin.iter().filter(|s| !closed(s)).count()
    );
    assert!(
        !gw.log().contains("Too many open files"),
        "descriptors ran out:\n{}",
        tail(&gw.log())
    );
    drop((sip, admin));
}

#[test]
fn per_source_caps_on_sip_tcp_tls_and_admin_http_spare_other_sources() {
    let _only_us = NOFILE.lock().unwrap_or_else(|e| e.into_inner());
    let certs = std::env::temp_dir().join(format!("sb-conn-certs-{}", std::process::id()));
    let (cert, key) = common::self_signed(&certs);
    let tls_port = common::free_port();
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let gw = Gateway::start_with_env(
        "",
        "",
        &[
            ("SWITCHBOARD_SIP_MAX_TCP_PER_SOURCE", "4"),
            ("SWITCHBOARD_ADMIN_MAX_CONNECTIONS_PER_SOURCE", "4"),
            ("SWITCHBOARD_SIP_TLS_LISTEN", &tls_listen),
            ("SWITCHBOARD_SIP_TLS_CERT", &cert),
            ("SWITCHBOARD_SIP_TLS_KEY", &key),
        ],
    );
    let _ = std::fs::remove_dir_all(&certs);
    // TLS: the cap holds before any handshake (these never start one); it shares the
    // source's count with TCP, so a new source is used for it.
    for (from, port) in [
        ("127.0.0.3", gw.sip_port),
        ("127.0.0.3", gw.admin_port),
        ("127.0.0.6", tls_port),
    ] {
        let conns = flood(from, addr(port), 10);
        assert_eq!(conns.len(), 10);
        assert!(
            wait_until(Duration::from_secs(5), || conns
                .iter()
                .filter(|s| closed(s))
                .count()
                == 6),
            "port {port}: {} of 10 closed",
            conns.iter().filter(|s| closed(s)).count()
        );
        // The first four stay open.
        assert!(conns[..4].iter().all(|s| !closed(s)));
    }
    // Another source is served on both.
    let mut s = connect_from("127.0.0.4", addr(gw.sip_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let options = format!(
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.4:5099;branch=z9hG4bKcap1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.4>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\n\
         Call-ID: cap-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        std::process::id()
    );
    s.write_all(options.as_bytes()).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(health(&gw), Some(200));
}

#[test]
fn a_trickled_sip_message_or_http_header_is_cut_off_at_its_deadline() {
    let gw = Gateway::start_with_env(
        "",
        "",
        &[
            ("SWITCHBOARD_SIP_TCP_MESSAGE_TIMEOUT_SECS", "2"),
            ("SWITCHBOARD_ADMIN_HEADER_TIMEOUT_SECS", "2"),
        ],
    );
    let sip = b"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.5:5099;branch=z9hG4bKslow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let http = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    for (port, bytes) in [(gw.sip_port, &sip[..]), (gw.admin_port, &http[..])] {
        let mut s = connect_from("127.0.0.5", addr(port)).unwrap();
        let start = Instant::now();
        // One byte every 100 ms: each arrives well within any per-read idle timer.
        let mut cut_at = None;
        for b in bytes.iter().cycle().take(80) {
            if s.write_all(std::slice::from_ref(b)).is_err() || closed(&s) {
                cut_at = Some(start.elapsed());
                break;
            }
            // pacing: a slow client on purpose (one byte every 100 ms).
            std::thread::sleep(Duration::from_millis(100));
        }
        let cut_at = cut_at.unwrap_or_else(|| panic!("port {port}: still open after 8 s"));
        assert!(
            cut_at >= Duration::from_millis(1500) && cut_at < Duration::from_secs(5),
            "port {port}: closed after {cut_at:?}"
        );
        // A silent connection is closed at the same deadline.
        let silent = connect_from("127.0.0.5", addr(port)).unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || closed(&silent)),
            "port {port}: a silent connection stays open"
        );
    }
    // Whole messages are still served.
    assert_eq!(health(&gw), Some(200));
}

#[test]
fn caps_that_cannot_fit_under_the_open_files_limit_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("sb-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchboard.toml");
    let (sip, admin, mqtt) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nmax_connections = 5000\n\n\
             [storage]\npath = \"{}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    // A hard limit of 2048: the MQTT cap alone does not fit.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 2048 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_switchboard"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        panic!("the gateway started with caps that do not fit in 2048 descriptors");
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.unwrap().success());
    assert!(
        err.contains("open-files limit is 2048") && err.contains("mqtt.max_connections = 5000"),
        "{err}"
    );
}

#[test]
fn a_request_body_that_never_completes_is_answered_408_at_the_request_timeout() {
    let gw = Gateway::start_with_env("", "", &[("SWITCHBOARD_ADMIN_REQUEST_TIMEOUT_SECS", "1")]);
    let mut s = connect_from("127.0.0.7", addr(gw.admin_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let start = Instant::now();
    s.write_all(
        format!(
            "POST /api/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Length: 100000\r\n\r\nfirst bytes of a body that never ends",
            common::TEST_KEY
        )
        .as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "after {:?}: {text}",
        start.elapsed()
    );
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}
