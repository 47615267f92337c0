//! Media hardening (issue 11, items 6 and 7) against the real binary and SIPp: strict latching
//! of the RTP relay, the SDP media-address policy (488), the RTP inactivity timeout and the
//! maximum call length.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::rtp::{caller, RtpPeer};
use common::{trunk_route, uac, Gateway, Sipp};

/// The SSRC of the stranger's packets (the caller's are 0x12345678, see `send_tone`).
const STRANGER_SSRC: [u8; 4] = [0xba, 0xdb, 0xad, 0x00];
const CALLER_SSRC: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// The `[media] rtp_ports` range of a test gateway.
fn rtp_range(gw: &Gateway) -> (u16, u16) {
    let toml = std::fs::read_to_string(&gw.config).unwrap();
    let line = toml
        .lines()
        .find_map(|l| l.strip_prefix("rtp_ports = "))
        .expect("rtp_ports in the test config");
    let (lo, hi) = line.trim_matches('"').split_once('-').unwrap();
    (lo.parse().unwrap(), hi.parse().unwrap())
}

/// Poll `f` until it holds or `timeout` passes.
fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    common::poll_until(timeout, f, |held| *held).is_ok()
}

/// A stranger on 127.0.0.2 sending RTP (loud, its own SSRC) at `targets` every 5 ms, and
/// counting whatever reaches it.
struct Sprayer {
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sprayer {
    fn start(targets: Vec<SocketAddr>) -> Sprayer {
        let socket = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).expect("bind 127.0.0.2");
        socket.set_nonblocking(true).unwrap();
        let targets = Arc::new(Mutex::new(targets));
        let (sent, received, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let thread = {
            let (targets, sent, received, stop) = (
                Arc::clone(&targets),
                Arc::clone(&sent),
                Arc::clone(&received),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut seq: u16 = 0;
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let mut pkt = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                    pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    pkt.extend_from_slice(&STRANGER_SSRC);
                    pkt.extend_from_slice(&[0x00; 160]);
                    seq = seq.wrapping_add(1);
                    for t in targets.lock().unwrap().iter() {
                        if socket.send_to(&pkt, t).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    while socket.recv_from(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    // pacing: the stranger sprays a packet every 5 ms.
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Sprayer {
            targets,
            sent,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn add(&self, more: &[SocketAddr]) {
        self.targets.lock().unwrap().extend_from_slice(more);
    }
}

impl Drop for Sprayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_stranger_spraying_rtp_before_and_during_a_call_reaches_nobody() {
    let echo_port = common::free_port().to_string();
    let uas = Sipp::uas("uas", &["-rtp_echo", "-mp", &echo_port]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    // Before the call: spray the first ports of the range, which a fresh gateway hands out
    // first, RTP and RTCP.
    let (low, _) = rtp_range(&gw);
    let sprayer = Sprayer::start((low..low + 8).map(lo).collect());
    assert!(wait_until(Duration::from_secs(5), || {
        sprayer.sent.load(Ordering::Relaxed) > 200
    }));

    let peer = RtpPeer::bind();
    let call = caller(&gw, "uac_rtp_peer.xml", "5000", &peer, &["-d", "8000"]);
    let calls = gw.wait_answered(1);
    let legs = calls[0]["legs"].as_array().expect("legs").clone();
    let port = |i: usize| legs[i]["rtp_port"].as_u64().expect("rtp port") as u16;
    let (a_port, b_port) = (port(0), port(1));
    // During the call: the call's actual ports too, before the caller sends anything.
    sprayer.add(&[lo(a_port), lo(a_port + 1), lo(b_port), lo(b_port + 1)]);
    let before = sprayer.sent.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(5), || {
        sprayer.sent.load(Ordering::Relaxed) > before + 100
    }));

    // The caller talks; the callee echoes. The caller hears itself and nothing of the stranger.
    peer.send_tone(lo(a_port), 75);
    let (mut own, mut foreign) = (0, 0);
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_millis(800);
    while Instant::now() < deadline {
        let Ok(n) = peer.socket.recv(&mut buf) else {
            continue;
        };
        if n < 12 {
            continue;
        }
        let ssrc = &buf[8..12];
        if ssrc == CALLER_SSRC {
            own += 1;
        } else if ssrc == STRANGER_SSRC {
            foreign += 1;
        }
    }
    let media = gw.calls()[0]["media"].clone();
    let stranger_got = sprayer.received.load(Ordering::Relaxed);
    drop(sprayer);

    assert!(
        own >= 50,
        "the echo of the caller's audio came back: {own}; {media}"
    );
    assert_eq!(foreign, 0, "stranger's packets reached the caller; {media}");
    assert_eq!(
        stranger_got, 0,
        "the stranger received the call's media; {media}"
    );
    // Dropped and counted, per call and in the metric.
    assert!(
        media["a_to_b"]["foreign"].as_u64().unwrap_or(0) > 0,
        "{media}"
    );
    assert!(
        media["b_to_a"]["foreign"].as_u64().unwrap_or(0) > 0,
        "{media}"
    );
    assert_eq!(media["a_to_b"]["packets"], 75, "{media}");
    assert!(gw.metric("switchboard_rtp_dropped_foreign_total") > 0.0);
    let run = call.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.output);
}

#[test]
fn offers_pointing_media_at_multicast_loopback_or_our_own_ports_get_488() {
    let uas = Sipp::uas("uas", &[]);
    // 5000 is answered by the gateway itself (an app), anything else goes to the trunk.
    let config = format!(
        "[[app]]\nname = \"bot\"\nurl = \"ws://127.0.0.1:9/media\"\n\n[[route]]\nmatch = \"5000\"\nto = \"app:bot\"\n\n{}",
        trunk_route("uas", &uas.addr())
    );
    let gw = Gateway::start(&config);
    let (low, _) = rtp_range(&gw);
    let sip_port = gw.sip_port.to_string();
    let rtp_port = low.to_string();
    let refused_to = |gw: &Gateway, number: &str, addr: &str, port: &str| {
        let run = uac(
            "uac_expect_488_media.xml",
            &gw.sip(),
            &[
                "-m", "1", "-s", number, "-set", "maddr", addr, "-set", "mport", port,
            ],
            Duration::from_secs(20),
        );
        assert_eq!(run.code, 0, "{addr}:{port} not refused: {}", run.output);
    };
    let refused = |gw: &Gateway, addr: &str, port: &str| refused_to(gw, "4000", addr, port);
    refused(&gw, "224.0.1.10", "6000");
    refused(&gw, "255.255.255.255", "6000");
    // Loopback is allowed in this lab, but not the gateway's own SIP and RTP ports.
    refused(&gw, "127.0.0.1", &sip_port);
    refused(&gw, "127.0.0.1", &rtp_port);
    // A call the gateway answers itself follows the same policy.
    refused_to(&gw, "5000", "239.1.2.3", "6000");
    let cdrs = gw.wait_cdrs(5);
    assert_eq!(cdrs.len(), 5);
    for c in &cdrs {
        assert_eq!(c["sip_code"], 488, "{c}");
        assert_eq!(c["hangup_cause"], "media address refused", "{c}");
    }

    // Production default: no loopback at all.
    let strict = Gateway::start_with_env(
        &trunk_route("uas", &uas.addr()),
        "",
        &[("SWITCHBOARD_MEDIA_ALLOW_LOOPBACK", "false")],
    );
    refused(&strict, "127.0.0.1", "6000");
    refused(&strict, "127.3.2.1", "6000");
    assert!(strict.metric("switchboard_sdp_refused_total") >= 2.0);
}

#[test]
fn a_call_without_rtp_is_hung_up_after_rtp_timeout_secs() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start_with_env(
        &trunk_route("uas", &uas.addr()),
        "",
        &[("SWITCHBOARD_MEDIA_RTP_TIMEOUT_SECS", "2")],
    );
    let started = Instant::now();
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "the caller got no BYE: {}", run.output);
    assert!(started.elapsed() < Duration::from_secs(15));
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
    assert_eq!(cdrs[0]["hangup_cause"], "rtp timeout", "{}", cdrs[0]);
    let billsec = cdrs[0]["billsec"].as_u64().unwrap();
    assert!((2..=4).contains(&billsec), "billsec {billsec}");
    assert_eq!(gw.metric("switchboard_rtp_timeouts_total"), 1.0);
    assert!(wait_until(Duration::from_secs(10), || gw
        .calls()
        .is_empty()));
}

#[test]
fn a_call_with_rtp_outlives_rtp_timeout_secs() {
    let echo_port = common::free_port().to_string();
    let uas = Sipp::uas("uas", &["-rtp_echo", "-mp", &echo_port]);
    let gw = Gateway::start_with_env(
        &trunk_route("uas", &uas.addr()),
        "",
        &[("SWITCHBOARD_MEDIA_RTP_TIMEOUT_SECS", "2")],
    );
    let peer = RtpPeer::bind();
    let call = caller(&gw, "uac_rtp_peer.xml", "5000", &peer, &["-d", "4500"]);
    let (_, a) = common::rtp::call_rtp(&gw);
    // 4 s of audio from the caller: twice the timeout.
    peer.send_tone(a, 200);
    let run = call.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.output);
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "caller hangup", "{}", cdrs[0]);
}

#[test]
fn max_call_secs_ends_a_long_call() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start_with_env(
        &trunk_route("uas", &uas.addr()),
        "",
        &[("SWITCHBOARD_SIP_MAX_CALL_SECS", "2")],
    );
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "the caller got no BYE: {}", run.output);
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "max duration", "{}", cdrs[0]);
    let billsec = cdrs[0]["billsec"].as_u64().unwrap();
    assert!((2..=3).contains(&billsec), "billsec {billsec}");
}

#[test]
fn a_held_call_is_exempt_from_the_rtp_timeout() {
    let uas = Sipp::uas("uas_reinvite.xml", &["-m", "1"]);
    let gw = Gateway::start_with_env(
        &trunk_route("uas", &uas.addr()),
        "",
        &[("SWITCHBOARD_MEDIA_RTP_TIMEOUT_SECS", "2")],
    );
    // Held for 5 s without a packet, then resumed and hung up at once.
    let run = uac(
        "uac_hold_long.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(40),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(uas.wait(Duration::from_secs(20)), 0);
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "caller hangup", "{}", cdrs[0]);
}

#[test]
fn a_reinvite_pointing_media_at_multicast_gets_488_and_the_call_goes_on() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let run = uac(
        "uac_reinvite_bad_media.xml",
        &gw.sip(),
        &["-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "caller hangup", "{}", cdrs[0]);
    assert_eq!(gw.metric("switchboard_sdp_refused_total"), 1.0);
}

#[test]
fn a_silent_caller_of_an_app_is_hung_up_after_rtp_timeout_secs() {
    // The app is unreachable and the route says `continue`: the gateway plays silence to a
    // caller that sends nothing back.
    let dead = common::free_port();
    let gw = Gateway::start_with_env(
        &format!(
            "[[app]]\nname = \"patient\"\nurl = \"ws://127.0.0.1:{dead}/x\"\non_failure = \"continue\"\nconnect_timeout_ms = 500\n\n[[route]]\nmatch = \"6000\"\nto = \"app:patient\"\n"
        ),
        "",
        &[("SWITCHBOARD_MEDIA_RTP_TIMEOUT_SECS", "2")],
    );
    let run = uac(
        "uac_wait_bye.xml",
        &gw.sip(),
        &["-s", "6000", "-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "no BYE from the gateway: {}", run.output);
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["hangup_cause"], "rtp timeout", "{cdr}");
}
