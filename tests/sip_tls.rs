//! SIP over TLS (`[sip] tls_listen`, `transport = "tls"` trunks) against real peers.
//!
//! The TLS peer on every machine is Kamailio with its TLS module (OpenSSL): a stateless hop
//! between Debian's SIPp over UDP (built without TLS) and the gateway over TLS, in both
//! directions. With a SIPp built with TLS (`scripts/install-peers` builds `sipp-tls` when it
//! can download SIPp's source), SIPp also speaks TLS itself (`-t l1`) in two `#[ignore]`d
//! tests (`cargo test --test sip_tls -- --ignored`). The same calls also run through a small TLS↔TCP bridge in this
//! file, and a rustls client checks the listener directly (OPTIONS, a plain-TCP client and a
//! silent one on the TLS port).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{sipp_tls, trunk_route, uac, uac_bin, Gateway, Sipp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl not installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A fresh directory with a test CA and a certificate it issued for 127.0.0.1 and localhost:
/// (dir, ca, cert, key). (rustls, like browsers, refuses a CA certificate as a server's own,
/// so the usual `openssl req -x509` self-signed certificate cannot stand in for both.)
fn certs(tag: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sb-sip-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-days", "2", "-subj", "/CN=switchboard test CA"]);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    );
    let path = |f: &str| dir.join(f);
    (path(""), path("ca.pem"), path("cert.pem"), path("key.pem"))
}

/// A gateway with a SIP over TLS listener on a free port (set from the environment, as
/// `SWITCHBOARD_SIP_TLS_*`); returns it and the TLS port.
fn tls_gateway(extra: &str, cert: &Path, key: &Path) -> (Gateway, u16) {
    let tls_port = common::free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let gw = Gateway::start_with_env(
        extra,
        "",
        &[
            ("SWITCHBOARD_SIP_TLS_LISTEN", &listen),
            ("SWITCHBOARD_SIP_TLS_CERT", cert.to_str().unwrap()),
            ("SWITCHBOARD_SIP_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    (gw, tls_port)
}

/// The SIPp built with TLS. The `-t l1` tests are `#[ignore]`d (Debian's SIPp has no TLS;
/// Kamailio is the TLS peer that always runs): run them with `cargo test --test sip_tls --
/// --ignored` where `sipp-tls` is installed; without it they fail, they do not pass empty.
fn native_sipp() -> String {
    sipp_tls().expect("no SIPp built with TLS (sipp-tls): see scripts/install-peers")
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// A TLS↔TCP bridge, so SIPp without TLS can stand on either side of a TLS connection.

/// A bridge running on its own runtime; stops when dropped.
struct Bridge {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Plain TCP in (from SIPp `-t t1`), TLS out to `tls_target`, verified with `ca`.
fn tls_client_bridge(tls_target: SocketAddr, ca: &Path) -> Bridge {
    let rt = runtime();
    let connector = switchboard_actors::tls::connector(Some(ca)).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((mut plain, _)) = listener.accept().await {
            let connector = connector.clone();
            tokio::spawn(async move {
                let Ok(tcp) = tokio::net::TcpStream::connect(tls_target).await else {
                    return;
                };
                let name = switchboard_actors::tls::server_name("127.0.0.1").unwrap();
                let Ok(mut tls) = connector.connect(name, tcp).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
            });
        }
    });
    Bridge { addr, _rt: rt }
}

/// TLS in (the gateway's trunk connection, with `cert`/`key`), plain TCP out to `target`.
fn tls_server_bridge(cert: &Path, key: &Path, target: SocketAddr) -> Bridge {
    let rt = runtime();
    let acceptor = switchboard_actors::tls::acceptor(cert, key).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Bridge { addr, _rt: rt }
}

// ---------------------------------------------------------------------------------------
// Kamailio (with its TLS module) as the TLS peer: a stateless hop between Debian's SIPp over
// UDP and the gateway over TLS, with OpenSSL on the far side of every handshake.

/// A Kamailio process; killed when dropped.
struct Kamailio {
    child: std::process::Child,
    udp: SocketAddr,
    tls: SocketAddr,
    log: PathBuf,
}

impl Drop for Kamailio {
    /// Kamailio forks workers: end its whole process group (SIGTERM, then SIGKILL).
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, "--", &group]).status();
            let ended = common::poll_until(
                Duration::from_secs(2),
                || matches!(self.child.try_wait(), Ok(Some(_))),
                |ended| *ended,
            );
            if ended.is_ok() {
                return;
            }
        }
        let _ = self.child.wait();
    }
}

impl Kamailio {
    fn log(&self) -> String {
        read_log(&self.log)
    }
}

/// Start Kamailio on free UDP and TLS ports of 127.0.0.1, serving `cert`/`key` and verifying
/// the servers it connects to with `ca`. Every request that arrives over `from` (`UDP` or
/// `TLS`) goes to `next_hop` (a SIP URI; SIPp's built-in scenarios send in-dialog requests to
/// the address they dialled, not to the Contact); requests from the other side follow their
/// Request-URI, responses their Via.
fn kamailio(
    dir: &Path,
    (ca, cert, key): (&Path, &Path, &Path),
    from: &str,
    next_hop: &str,
) -> Kamailio {
    let (udp_port, tls_port) = (common::free_port(), common::free_port());
    std::fs::write(
        dir.join("tls.cfg"),
        format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
             private_key = {}\ncertificate = {}\n\n\
             [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n\
             ca_list = {}\n",
            key.display(),
            cert.display(),
            ca.display()
        ),
    )
    .unwrap();
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(
        &cfg,
        format!(
            "#!KAMAILIO\n\
             debug=2\nlog_stderror=yes\nchildren=1\ntcp_children=1\nenable_tls=yes\nauto_aliases=no\n\
             listen=udp:127.0.0.1:{udp_port}\nlisten=tls:127.0.0.1:{tls_port}\n\
             loadmodule \"tls.so\"\nloadmodule \"sl.so\"\nloadmodule \"pv.so\"\n\
             modparam(\"tls\", \"config\", \"{}\")\n\
             request_route {{\n\
               if (proto == {from}) {{ $du = \"{next_hop}\"; }}\n\
               forward();\n\
               exit;\n\
             }}\n",
            dir.join("tls.cfg").display()
        ),
    )
    .unwrap();
    let log = dir.join("kamailio.log");
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "32", "-M", "8", "-w"])
        .arg(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("kamailio not installed (scripts/install-peers)");
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let up = common::poll_until(
        Duration::from_secs(10),
        || std::net::TcpStream::connect(tls).is_ok(),
        |up| *up,
    );
    assert!(up.is_ok(), "kamailio did not start: {}", read_log(&log));
    Kamailio {
        child,
        udp: SocketAddr::from(([127, 0, 0, 1], udp_port)),
        tls,
        log,
    }
}

#[test]
fn kamailio_over_tls_carries_sipp_calls_to_the_gateway() {
    tls_caller_reaches_udp_trunk("in-kamailio", |tls_port, (ca, cert, key), five| {
        let dir = ca.parent().unwrap();
        let kam = kamailio(
            dir,
            (ca, cert, key),
            "UDP",
            &format!("sip:127.0.0.1:{tls_port};transport=tls"),
        );
        let run = uac("uac", &kam.udp.to_string(), five, Duration::from_secs(40));
        assert_eq!(run.code, 0, "{}\nkamailio:\n{}", run.output, kam.log());
        run
    });
}

#[test]
fn the_gateway_calls_sipp_through_kamailio_over_tls() {
    let (dir, ca, cert, key) = certs("out-kamailio");
    let messages = dir.join("uas_messages.log");
    let uas = Sipp::uas(
        "uas",
        &["-trace_msg", "-message_file", messages.to_str().unwrap()],
    );
    let kam = kamailio(
        &dir,
        (&ca, &cert, &key),
        "TLS",
        &format!("sip:{}", uas.addr()),
    );
    gateway_calls_tls_trunk(kam.tls, (&ca, &cert, &key), &messages);
    drop(uas);
    drop(kam);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// (a) A caller over TLS, routed to a UDP trunk.

/// Five calls from a caller over TLS (`caller` runs SIPp toward the gateway's TLS port with
/// the given arguments for five traced calls, and any of its own) to a SIPp UAS over UDP: all
/// answered, and the gateway's answers say TLS (Contact `;transport=tls` on the TLS port).
fn tls_caller_reaches_udp_trunk(
    tag: &str,
    caller: impl FnOnce(u16, (&Path, &Path, &Path), &[&str]) -> common::Run,
) {
    // Each test its own directory: they run in parallel.
    let (dir, ca, cert, key) = certs(tag);
    let uas = Sipp::uas("uas", &[]);
    let (gw, tls_port) = tls_gateway(&trunk_route("uas", &uas.addr()), &cert, &key);
    let messages = dir.join("caller_messages.log");
    let five = [
        "-m",
        "5",
        "-r",
        "5",
        "-trace_msg",
        "-message_file",
        messages.to_str().unwrap(),
    ];
    let run = caller(tls_port, (&ca, &cert, &key), &five);
    assert_eq!(run.code, 0, "sipp failed: {}", run.output);
    assert_eq!((run.successful, run.failed), (5, 0));
    let cdrs = gw.wait_cdrs(5);
    assert_eq!(cdrs.len(), 5, "{}", gw.log());
    for c in &cdrs {
        assert_eq!(c["disposition"], "ANSWERED", "{c}");
        assert_eq!(c["trunk_out"], "uas");
    }
    let log = read_log(&messages);
    let contact = format!("Contact: <sip:switchboard@127.0.0.1:{tls_port};transport=tls>");
    assert!(
        log.contains(&contact),
        "the 200 OK's Contact should name the TLS listener: {log}"
    );
    assert_eq!(gw.status()["calls_active"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs a SIPp built with TLS (sipp-tls); Kamailio is the TLS peer run by default"]
fn sipp_tls_caller_reaches_a_udp_trunk() {
    let sipp = native_sipp();
    tls_caller_reaches_udp_trunk("in-sipp", |tls_port, (_, cert, key), five| {
        uac_bin(
            &sipp,
            "uac",
            &format!("127.0.0.1:{tls_port}"),
            &[
                &[
                    "-t",
                    "l1",
                    "-tls_cert",
                    cert.to_str().unwrap(),
                    "-tls_key",
                    key.to_str().unwrap(),
                ],
                five,
            ]
            .concat(),
            Duration::from_secs(40),
        )
    });
}

#[test]
fn bridged_tls_caller_reaches_a_udp_trunk() {
    tls_caller_reaches_udp_trunk("in-bridged", |tls_port, (ca, _, _), five| {
        let bridge = tls_client_bridge(SocketAddr::from(([127, 0, 0, 1], tls_port)), ca);
        uac(
            "uac",
            &bridge.addr.to_string(),
            &[&["-t", "t1"], five].concat(),
            Duration::from_secs(40),
        )
    });
}

// ---------------------------------------------------------------------------------------
// (b) The gateway calls out over TLS to a trunk verified with its `tls_ca`.

/// `uas_addr` is where the gateway's TLS trunk connects; `uas_messages` is the UAS's message
/// trace. A caller over UDP; the call is answered and the trunk saw our INVITE over TLS.
fn gateway_calls_tls_trunk(
    uas_addr: SocketAddr,
    (ca, cert, key): (&Path, &Path, &Path),
    uas_messages: &Path,
) {
    let trunk = format!(
        "[[trunk]]\nname = \"secure\"\naddress = \"{uas_addr}\"\ntransport = \"tls\"\ntls_ca = \"{}\"\nkeepalive_secs = 0\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:secure\"\n",
        ca.display()
    );
    let (gw, tls_port) = tls_gateway(&trunk, cert, key);
    let run = uac(
        "uac",
        &gw.sip(),
        &["-m", "3", "-r", "3"],
        Duration::from_secs(40),
    );
    assert_eq!(run.code, 0, "sipp failed: {}\n{}", run.output, gw.log());
    assert_eq!((run.successful, run.failed), (3, 0));
    let cdrs = gw.wait_cdrs(3);
    assert!(
        cdrs.iter().all(|c| c["disposition"] == "ANSWERED"),
        "{cdrs:?}"
    );
    let log = read_log(uas_messages);
    // Via names the TLS listener, where responses on a new connection would go.
    assert!(
        log.contains(&format!("Via: SIP/2.0/TLS 127.0.0.1:{tls_port};")),
        "{log}"
    );
    let contact = format!("sip:switchboard@127.0.0.1:{tls_port};transport=tls");
    assert!(log.contains(&contact), "{log}");
    assert_eq!(
        gw.metric(
            "switchboard_sip_tls_handshake_failures_total{direction=\"out\",reason=\"error\"}"
        ),
        0.0
    );
}

#[test]
#[ignore = "needs a SIPp built with TLS (sipp-tls); Kamailio is the TLS peer run by default"]
fn gateway_calls_a_sipp_tls_trunk() {
    let sipp = native_sipp();
    let (dir, ca, cert, key) = certs("out");
    let messages = dir.join("uas_messages.log");
    let uas = Sipp::uas_bin(
        &sipp,
        "uas",
        &[
            "-t",
            "l1",
            "-tls_cert",
            cert.to_str().unwrap(),
            "-tls_key",
            key.to_str().unwrap(),
            "-trace_msg",
            "-message_file",
            messages.to_str().unwrap(),
        ],
    );
    gateway_calls_tls_trunk(uas.addr().parse().unwrap(), (&ca, &cert, &key), &messages);
    drop(uas);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gateway_calls_a_bridged_tls_trunk() {
    let (dir, ca, cert, key) = certs("out-bridged");
    let messages = dir.join("uas_messages.log");
    let uas = Sipp::uas(
        "uas",
        &[
            "-t",
            "t1",
            "-trace_msg",
            "-message_file",
            messages.to_str().unwrap(),
        ],
    );
    let bridge = tls_server_bridge(&cert, &key, uas.addr().parse().unwrap());
    gateway_calls_tls_trunk(bridge.addr, (&ca, &cert, &key), &messages);
    drop(uas);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A trunk whose certificate does not verify (unknown issuer without `tls_ca`, or the wrong
/// `tls_server_name`) gets no INVITE: the handshake fails and the caller hears 503 at once
/// rather than after Timer B.
#[test]
fn an_unverified_tls_trunk_fails_the_call_fast() {
    let (dir, ca, cert, key) = certs("untrusted");
    let uas = Sipp::uas("uas", &["-t", "t1"]);
    // Two listeners: TLS settings are per trunk address.
    let a = tls_server_bridge(&cert, &key, uas.addr().parse().unwrap());
    let b = tls_server_bridge(&cert, &key, uas.addr().parse().unwrap());
    let trunks = format!(
        "[[trunk]]\nname = \"public-roots\"\naddress = \"{a}\"\ntransport = \"tls\"\nkeepalive_secs = 0\n\n\
         [[trunk]]\nname = \"wrong-name\"\naddress = \"{b}\"\ntransport = \"tls\"\ntls_ca = \"{c}\"\ntls_server_name = \"sbc.example.net\"\nkeepalive_secs = 0\n\n\
         [[route]]\nmatch = \"1*\"\nto = \"trunk:public-roots\"\n\n[[route]]\nmatch = \"2*\"\nto = \"trunk:wrong-name\"\n",
        a = a.addr,
        b = b.addr,
        c = ca.display(),
    );
    let gw = Gateway::start(&trunks);
    for service in ["1000", "2000"] {
        let started = Instant::now();
        let run = uac(
            "uac_expect_503.xml",
            &gw.sip(),
            &["-m", "1", "-s", service],
            Duration::from_secs(30),
        );
        assert_eq!(run.code, 0, "{service}: {}\n{}", run.output, gw.log());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{service}: took {:?}",
            started.elapsed()
        );
    }
    let cdrs = gw.wait_cdrs(2);
    assert!(
        cdrs.iter().all(|c| c["disposition"] == "CONGESTION"),
        "{cdrs:?}"
    );
    let metrics = gw.metrics();
    assert!(
        metrics.contains(
            "switchboard_sip_tls_handshake_failures_total{direction=\"out\",reason=\"error\"} 2"
        ),
        "{metrics}"
    );
    let log = gw.log();
    assert!(log.contains("SIP TLS handshake failed"), "{log}");
    assert!(log.contains("UnknownIssuer"), "{log}");
    assert!(log.contains("not valid for name"), "{log}");
    drop(uas);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// (c) The listener itself: OPTIONS over TLS; plain TCP and silent clients are dropped
// without disturbing anyone.

const OPTIONS: &str = "OPTIONS sip:switchboard@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@127.0.0.1>;tag=t1\r\n\
To: <sip:switchboard@127.0.0.1>\r\n\
Call-ID: tls-options-1@127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

/// Reads until a whole SIP response head arrives (or the stream ends).
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn plain_tcp_on_the_tls_port_fails_cleanly_and_tls_keeps_serving() {
    let (dir, ca, cert, key) = certs("listener");
    let (gw, tls_port) = tls_gateway("", &cert, &key);
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    assert_eq!(
        gw.status()["sip_tls_listen"],
        format!("127.0.0.1:{tls_port}")
    );

    // A client that connects and says nothing must not hold up the listener.
    let silent = std::net::TcpStream::connect(tls_addr).unwrap();

    // Plain SIP on the TLS port: no SIP answer, the connection is closed.
    let mut plain = std::net::TcpStream::connect(tls_addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(OPTIONS.as_bytes()).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let closed = loop {
        let mut buf = [0u8; 1024];
        match plain.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(
        closed,
        "the gateway kept a plain-TCP client open on the TLS port"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !String::from_utf8_lossy(&got).contains("SIP/2.0"),
        "plain text got a SIP answer"
    );

    // Meanwhile a real TLS client is served, on the same TLS connection.
    let rt = runtime();
    rt.block_on(async {
        let connector = switchboard_actors::tls::connector(Some(&ca)).unwrap();
        let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
        let name = switchboard_actors::tls::server_name("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        tls.write_all(OPTIONS.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let head = read_head(&mut tls).await;
        assert!(head.starts_with("SIP/2.0 200"), "{head}");
        assert!(
            head.contains("Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-1"),
            "{head}"
        );
        let status = gw.status();
        assert_eq!(status["endpoint"]["tls_connections"], 1, "{status}");
        // A second request on the same connection.
        let again = OPTIONS
            .replace("z9hG4bK-tls-1", "z9hG4bK-tls-2")
            .replace("CSeq: 1", "CSeq: 2");
        tls.write_all(again.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let head = read_head(&mut tls).await;
        assert!(head.starts_with("SIP/2.0 200"), "{head}");
    });
    // Only the plain-text client failed so far; the silent one is still waiting.
    let metrics = gw.metrics();
    assert!(
        metrics.contains(
            "switchboard_sip_tls_handshake_failures_total{direction=\"in\",reason=\"error\"} 1"
        ),
        "{metrics}"
    );
    drop(silent);
    // Plain UDP keeps working too.
    let run = uac(
        "uac_options.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(10),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    let _ = std::fs::remove_dir_all(&dir);
}
