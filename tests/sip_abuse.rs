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
    // SIPp hashes `sip:remote_ip:remote_port` unless told the Request-URI (tests/sipp/README.md);
    // the gateway checks that the digest-uri names the Request-URI.
    let auth_uri = format!("4930555@{}", gw.sip());
    let run = uac(
        "uac_invite_auth401.xml",
        &gw.sip(),
        &["-s", "4930555", "-auth_uri", &auth_uri, "-m", "1"],
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

// ---- Raw UDP: reflection, spoofed bans and digest replay (issue 11, items 12-14) ----

use std::net::UdpSocket;
use std::time::Instant;

use switchboard_sip::digest::{authorization, Challenge};

/// The gateway above with a short T1 (Timer G would retransmit a final answer after 100 ms,
/// then 200 ms) and more environment.
fn untrusting_fast(env: &[(&str, &str)]) -> Gateway {
    let mut all = vec![
        ("SWITCHBOARD_SIP_TRUSTED", ""),
        ("SWITCHBOARD_SIP_BAN_AFTER", "5"),
        ("SWITCHBOARD_SIP_T1_MS", "100"),
    ];
    all.extend_from_slice(env);
    Gateway::start_with_env(
        "[[sip_user]]\nusername = \"trunkuser\"\npassword = \"trunkpass\"\n\n[[route]]\nmatch = \"*\"\nto = \"fax\"\n",
        "",
        &all,
    )
}

/// How long to listen for answers to one request: past Timer G's first two retransmissions
/// at T1 = 100 ms (100 ms and 300 ms after the answer), with margin.
const WINDOW: Duration = Duration::from_millis(700);

/// A raw SIP UDP client, standing in for a spoofed source (whatever it is sent, it counts).
struct Raw {
    sock: UdpSocket,
    gw: String,
    n: u32,
}

impl Raw {
    fn new(gw: &Gateway) -> Self {
        Raw {
            sock: UdpSocket::bind("127.0.0.1:0").unwrap(),
            gw: gw.sip(),
            n: 0,
        }
    }

    fn local(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// A request with a new branch; `call` names its Call-ID, `extra` adds headers.
    fn request(&mut self, method: &str, uri: &str, call: &str, extra: &str) -> String {
        self.n += 1;
        let (local, n) = (self.local(), self.n);
        let cseq_method = if method == "ACK" { "INVITE" } else { method };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-abuse-{n};rport\r\n\
             From: <sip:trunkuser@127.0.0.1>;tag=f{n}\r\nTo: <{uri}>\r\nCall-ID: {call}\r\n\
             CSeq: {n} {cseq_method}\r\nContact: <sip:trunkuser@{local}>\r\nMax-Forwards: 70\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), &self.gw).unwrap();
    }

    /// Every datagram received until `window` has passed since the call.
    fn collect(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        got
    }

    /// The first final answer within 2 s (provisional ones are skipped: the checks of
    /// replays hold whether or not a 100 came first).
    fn answer(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .expect("a final answer within 2 s");
            self.sock.set_read_timeout(Some(left)).unwrap();
            let (n, _) = self
                .sock
                .recv_from(&mut buf)
                .expect("a final answer within 2 s");
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status(&msg) >= 200 {
                return msg;
            }
        }
    }

    /// Send `msg` and return every answer within [`WINDOW`].
    fn exchange(&self, msg: &str) -> Vec<String> {
        self.send(msg);
        self.collect(WINDOW)
    }
}

fn status(msg: &str) -> u16 {
    msg.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn statuses(msgs: &[String]) -> Vec<u16> {
    msgs.iter().map(|m| status(m)).collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn challenge_of(msg: &str) -> Challenge {
    assert_eq!(status(msg), 401, "{msg}");
    Challenge::parse(header(msg, "WWW-Authenticate").expect("WWW-Authenticate")).unwrap()
}

/// `Authorization: …\r\n` answering `ch` for `method` and `uri`.
fn credentials(ch: &Challenge, pass: &str, method: &str, uri: &str, nc: u32) -> String {
    format!(
        "Authorization: {}\r\n",
        authorization(ch, "trunkuser", pass, method, uri, nc, "0a4f113b")
    )
}

#[test]
fn one_stranger_request_gets_one_answer_never_a_retransmission() {
    let gw = untrusting_fast(&[]);
    let mut c = Raw::new(&gw);
    let invite_uri = format!("sip:4930555@{}", gw.sip());
    let register_uri = format!("sip:{}", gw.sip());
    // One spoofed INVITE: a single 401 (no 100 Trying), nothing more while Timer G would
    // have retransmitted it twice.
    let invite = c.request("INVITE", &invite_uri, "refl-1", "");
    let got = c.exchange(&invite);
    assert_eq!(statuses(&got), [401], "{got:#?}");
    // Its retransmission: another single 401 with the same To tag (stateless, §8.2.7).
    let again = c.exchange(&invite);
    assert_eq!(statuses(&again), [401], "{again:#?}");
    assert_eq!(header(&got[0], "To"), header(&again[0], "To"));
    // The ACK of the 401 gets nothing.
    let ack = c.request("ACK", &invite_uri, "refl-1", "");
    assert!(c.exchange(&ack).is_empty());
    // Junk credentials: one 401 too.
    let junk = c.request(
        "INVITE",
        &invite_uri,
        "refl-2",
        "Authorization: Digest username=\"trunkuser\", realm=\"switchboard\", nonce=\"deadbeef\", uri=\"sip:x\", response=\"00\"\r\n",
    );
    assert_eq!(statuses(&c.exchange(&junk)), [401]);
    // Every other stranger path: one answer per request.
    for (method, uri, call, extra, expect) in [
        ("REGISTER", &register_uri, "refl-3", "", 401),
        ("OPTIONS", &register_uri, "refl-4", "", 200),
        ("BYE", &invite_uri, "refl-5", "", 481),
        ("CANCEL", &invite_uri, "refl-6", "", 481),
        ("INFO", &invite_uri, "refl-7", "", 481),
    ] {
        let req = c.request(method, uri, call, extra);
        assert_eq!(statuses(&c.exchange(&req)), [expect], "{method}");
        assert_eq!(statuses(&c.exchange(&req)), [expect], "{method} again");
    }
    // An in-dialog INVITE (re-INVITE) for a dialog that does not exist: one 481.
    let reinvite = c.request("INVITE", &invite_uri, "refl-8", "").replace(
        &format!("To: <{invite_uri}>"),
        &format!("To: <{invite_uri}>;tag=nodialog"),
    );
    let got = c.exchange(&reinvite);
    assert_eq!(statuses(&got), [481], "{got:#?}");
    assert!(
        gw.metric("switchboard_sip_stateless_challenges_total") >= 4.0,
        "{}",
        gw.metrics()
    );
    assert!(gw.cdrs().is_empty());
}

#[test]
fn junk_credentials_never_ban_but_wrong_passwords_to_our_nonce_do() {
    let gw = untrusting_fast(&[]);
    let mut c = Raw::new(&gw);
    let uri = format!("sip:4930555@{}", gw.sip());
    // Twenty INVITEs with credentials for nonces we never issued (spoofed, or a scanner's
    // junk): each gets its 401, none counts, nobody is banned (ban_after = 5).
    for i in 0..20 {
        let forged = if i % 2 == 0 {
            "deadbeef"
        } else {
            "6b49d200.1.0123456789abcdef01234567"
        };
        let ch = Challenge {
            realm: "switchboard".into(),
            nonce: forged.into(),
            opaque: None,
            algorithm: Default::default(),
            qop: vec!["auth".into()],
            stale: false,
        };
        let req = c.request(
            "INVITE",
            &uri,
            &format!("junk-{i}"),
            &credentials(&ch, "guess", "INVITE", &uri, 1),
        );
        c.send(&req);
        assert_eq!(status(&c.answer()), 401, "junk {i}");
    }
    assert_eq!(gw.get("/api/v1/bans").1["bans"], serde_json::json!([]));
    assert_eq!(gw.metric("switchboard_sip_auth_failures_total"), 0.0);
    assert!(gw.metric("switchboard_sip_auth_rejects_total{reason=\"foreign_nonce\"}") >= 20.0);
    // The real source guessing passwords against the nonces it was given: five wrong ones ban.
    let first = c.request("INVITE", &uri, "guess-0", "");
    c.send(&first);
    let mut ch = challenge_of(&c.answer());
    for i in 1..=5 {
        let req = c.request(
            "INVITE",
            &uri,
            &format!("guess-{i}"),
            &credentials(&ch, &format!("pw{i}"), "INVITE", &uri, 1),
        );
        c.send(&req);
        ch = challenge_of(&c.answer());
    }
    let bans = gw.get("/api/v1/bans").1;
    assert_eq!(bans["bans"][0]["ip"], "127.0.0.1", "{bans}");
    assert_eq!(gw.metric("switchboard_sip_auth_failures_total"), 5.0);
    // Banned: nothing comes back any more.
    let after = c.request("INVITE", &uri, "guess-6", "");
    let got = c.exchange(&after);
    assert!(got.is_empty(), "{got:#?}");
}

/// A 401 challenge for a new `method` request to `uri`.
fn challenge(c: &mut Raw, method: &str, uri: &str) -> Challenge {
    let req = c.request(method, uri, &format!("ch-{}", c.n), "");
    c.send(&req);
    challenge_of(&c.answer())
}

/// None of the refusals was a password guess: nothing counted, nobody banned, no call.
fn nothing_counted(gw: &Gateway) {
    assert_eq!(gw.metric("switchboard_sip_auth_failures_total"), 0.0);
    assert_eq!(gw.get("/api/v1/bans").1["bans"], serde_json::json!([]));
    assert!(gw.cdrs().is_empty(), "{:?}", gw.cdrs());
}

#[test]
fn credentials_for_another_request_uri_are_refused() {
    let gw = untrusting_fast(&[]);
    let mut c = Raw::new(&gw);
    let victim = format!("sip:4930555@{}", gw.sip());
    let other = format!("sip:4930666@{}", gw.sip());
    // Credentials made for one number (captured), used to call another: refused.
    let ch = challenge(&mut c, "INVITE", &victim);
    let auth = credentials(&ch, "trunkpass", "INVITE", &victim, 1);
    let req = c.request("INVITE", &other, "replay-uri", &auth);
    c.send(&req);
    let got = c.answer();
    assert_eq!(status(&got), 401, "{got}");
    assert!(!challenge_of(&got).stale);
    nothing_counted(&gw);
}

#[test]
fn a_reused_nonce_count_is_refused_as_stale() {
    let gw = untrusting_fast(&[]);
    let mut c = Raw::new(&gw);
    let uri = format!("sip:{}", gw.sip());
    // nc=1 passes; its retransmission gets the same 200 (the transaction absorbs it).
    let ch = challenge(&mut c, "REGISTER", &uri);
    let auth = credentials(&ch, "trunkpass", "REGISTER", &uri, 1);
    let req = c.request("REGISTER", &uri, "reg", &auth);
    assert_eq!(statuses(&c.exchange(&req)), [200]);
    assert_eq!(statuses(&c.exchange(&req)), [200], "retransmission");
    // The same credentials in a new request (a replay): 401 with stale=true.
    let replay = c.request("REGISTER", &uri, "reg", &auth);
    let got = c.exchange(&replay);
    assert_eq!(statuses(&got), [401], "{got:#?}");
    assert!(challenge_of(&got[0]).stale, "{}", got[0]);
    // The next count passes.
    let next = c.request(
        "REGISTER",
        &uri,
        "reg",
        &credentials(&ch, "trunkpass", "REGISTER", &uri, 2),
    );
    assert_eq!(statuses(&c.exchange(&next)), [200]);
    nothing_counted(&gw);
}

#[test]
fn credentials_without_qop_are_refused() {
    let gw = untrusting_fast(&[]);
    let mut c = Raw::new(&gw);
    let uri = format!("sip:{}", gw.sip());
    // The RFC 2069 form (no qop, so no nonce count), even with the right password.
    let mut no_qop = challenge(&mut c, "REGISTER", &uri);
    no_qop.qop.clear();
    let req = c.request(
        "REGISTER",
        &uri,
        "reg",
        &credentials(&no_qop, "trunkpass", "REGISTER", &uri, 1),
    );
    let got = c.exchange(&req);
    assert_eq!(statuses(&got), [401], "{got:#?}");
    assert!(!challenge_of(&got[0]).stale);
    nothing_counted(&gw);
}

#[test]
fn an_expired_nonce_is_stale_and_never_counted() {
    // Nonces live one second; one counted failure would ban.
    let gw = untrusting_fast(&[
        ("SWITCHBOARD_SIP_NONCE_LIFETIME_SECS", "1"),
        ("SWITCHBOARD_SIP_BAN_AFTER", "1"),
    ]);
    let mut c = Raw::new(&gw);
    let uri = format!("sip:{}", gw.sip());
    let req = c.request("REGISTER", &uri, "stale", "");
    c.send(&req);
    let ch = challenge_of(&c.answer());
    // Keep using the nonce (the right password, a rising count) until it expires.
    let mut nc = 0;
    let expired = common::wait_until(
        "the nonce to expire (401)",
        Duration::from_secs(6),
        || {
            nc += 1;
            let req = c.request(
                "REGISTER",
                &uri,
                "stale",
                &credentials(&ch, "trunkpass", "REGISTER", &uri, nc),
            );
            c.send(&req);
            let got = c.answer();
            assert!(matches!(status(&got), 200 | 401), "{got}");
            got
        },
        |got| status(got) == 401,
    );
    let fresh = challenge_of(&expired);
    assert!(fresh.stale, "{expired}");
    assert_ne!(fresh.nonce, ch.nonce);
    // A wrong password with the expired nonce is also only stale.
    let req = c.request(
        "REGISTER",
        &uri,
        "stale",
        &credentials(&ch, "wrong", "REGISTER", &uri, nc + 1),
    );
    c.send(&req);
    assert!(challenge_of(&c.answer()).stale);
    assert_eq!(gw.metric("switchboard_sip_auth_failures_total"), 0.0);
    assert_eq!(gw.get("/api/v1/bans").1["bans"], serde_json::json!([]));
    // The new nonce works at once.
    let req = c.request(
        "REGISTER",
        &uri,
        "stale",
        &credentials(&fresh, "trunkpass", "REGISTER", &uri, 1),
    );
    c.send(&req);
    assert_eq!(status(&c.answer()), 200);
}
