//! Malformed SIP sent at the gateway while real calls run: every bad message
//! gets a 400 (416 for a Request-URI scheme we do not serve, 501 for an unknown
//! method, 505 for another SIP version) or is dropped as RFC 3261 says, the process never falls over and
//! the calls in progress all succeed.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{trunk_route, Gateway, Sipp};

fn invite(extra_headers: &str, content_length: &str, body: &str) -> Vec<u8> {
    format!(
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-bad-{}\r\nFrom: <sip:a@127.0.0.1>;tag=x\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: bad-{}@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra_headers}Content-Length: {content_length}\r\n\r\n{body}",
        rand_suffix(),
        rand_suffix()
    )
    .into_bytes()
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Send and return the status code of the answer, if any came within 1 s.
fn send(sock: &UdpSocket, to: &str, data: &[u8]) -> Option<u16> {
    sock.send_to(data, to).ok()?;
    let mut buf = [0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn malformed_sip_is_rejected_or_dropped_and_calls_are_unaffected() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let target = gw.sip();
    // Real calls in the background the whole time.
    let calls = common::uac_in_background(
        "uac",
        &target,
        &["-r", "20", "-m", "100"],
        Duration::from_secs(60),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let long_value = "a".repeat(10_000);
    let many_headers: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cseq_mismatch = String::from_utf8(invite("", "0", ""))
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: 1 BYE")
        .into_bytes();
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("garbage", b"\x00\x01\x02garbage\xff\xfe".to_vec(), None),
        ("empty-ish", b"\r\n\r\n".to_vec(), None),
        ("truncated request line", b"INVITE sip:1@x".to_vec(), None),
        (
            "huge Content-Length",
            invite("", "99999999", "v=0\r\n"),
            Some(400),
        ),
        ("negative Content-Length", invite("", "-5", ""), Some(400)),
        (
            "oversized header line",
            invite(&format!("Subject: {long_value}\r\n"), "0", ""),
            Some(400),
        ),
        (
            "too many headers",
            invite(&many_headers, "0", ""),
            Some(400),
        ),
        ("CSeq method mismatch", cseq_mismatch, Some(400)),
        // RFC 3261 §8.2.2.1, RFC 4475 §3.3.8 (unksm): a scheme we do not serve is 416, and
        // with a "://" later in the message (rsip read the scheme on into the headers).
        (
            "unknown Request-URI scheme",
            String::from_utf8(invite(
                "Call-Info: <http://www.example.com/p.jpg>\r\n",
                "0",
                "",
            ))
            .unwrap()
            .replacen(
                "INVITE sip:100@127.0.0.1",
                "INVITE unknownscheme:100@127.0.0.1",
                1,
            )
            .into_bytes(),
            Some(416),
        ),
        // RFC 3261 §21.5.2 and §21.5.6 (RFC 4475's badvers): an unknown method is 501, an
        // unknown version 505; before, both were dropped and the sender retransmitted.
        (
            "unknown method",
            String::from_utf8(invite("", "0", ""))
                .unwrap()
                .replace("INVITE", "NEWMETHOD")
                .into_bytes(),
            Some(501),
        ),
        (
            "SIP version 7.0",
            String::from_utf8(invite("", "0", ""))
                .unwrap()
                .replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1)
                .into_bytes(),
            Some(505),
        ),
        (
            "tel: Request-URI",
            String::from_utf8(invite("", "0", ""))
                .unwrap()
                .replacen("INVITE sip:100@127.0.0.1", "INVITE tel:+15551234567", 1)
                .into_bytes(),
            Some(416),
        ),
        (
            "missing Call-ID",
            String::from_utf8(invite("", "0", ""))
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("Call-ID"))
                .collect::<Vec<_>>()
                .join("\r\n")
                .into_bytes(),
            None,
        ),
        (
            "binary junk after start line",
            [b"OPTIONS sip:x SIP/2.0\r\n".to_vec(), vec![0xff; 300]].concat(),
            None,
        ),
    ];
    for (name, data, expect) in &cases {
        let got = send(&sock, &target, data);
        match expect {
            Some(code) => assert_eq!(got, Some(*code), "case {name}"),
            None => assert!(
                got.is_none() || got == Some(400),
                "case {name}: got {got:?}"
            ),
        }
    }
    // 2,000 random mutations of a valid INVITE: whatever happens, the gateway stays up.
    let base = invite("", "0", "");
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..2000 {
        let mut m = base.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pos = (seed as usize) % m.len();
            m[pos] = (seed >> 32) as u8;
        }
        let _ = sock.send_to(&m, &target);
    }
    let run = calls.join().unwrap();
    assert_eq!(
        run.code, 0,
        "calls failed during the malformed storm: {}",
        run.output
    );
    assert_eq!((run.successful, run.failed), (100, 0));
    assert_eq!(gw.get("/health/ready").0, 200);
    assert!(gw.metric("switchboard_sip_parse_errors_total{transport=\"udp\"}") >= 7.0);
    assert!(!gw.log().contains("panicked"));
}

/// Over TCP a malformed request is answered on its connection, as over UDP (before, nothing
/// was sent and the peer waited for its own timeout), and a framing error that closes the
/// connection no longer loses the answers to the good messages read with it.
#[test]
fn malformed_sip_over_tcp_is_answered_and_a_framing_error_loses_no_reply() {
    use std::io::{Read, Write};
    let gw = Gateway::start("");
    let request = |start: &str, method: &str, n: u32, length: bool| {
        let cl = if length { "Content-Length: 0\r\n" } else { "" };
        format!(
            "{start}\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-tcp-{n}\r\n\
             From: <sip:a@127.0.0.1>;tag=t{n}\r\nTo: <sip:100@127.0.0.1>\r\n\
             Call-ID: tcp-{n}@test\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\n{cl}\r\n"
        )
    };
    let mut burst = String::new();
    burst += &request("OPTIONS sip:100@127.0.0.1 SIP/2.0", "OPTIONS", 1, true);
    burst += &request("NEWMETHOD sip:100@127.0.0.1 SIP/2.0", "NEWMETHOD", 2, true);
    burst += &request("OPTIONS sip:100@127.0.0.1 SIP/3.0", "OPTIONS", 3, true);
    burst += &request("OPTIONS tel:+15551234567 SIP/2.0", "OPTIONS", 4, true);
    // No Content-Length on a stream (RFC 3261 §18.3): the framing is lost, the gateway
    // closes the connection.
    burst += &request("OPTIONS sip:100@127.0.0.1 SIP/2.0", "OPTIONS", 5, false);
    let mut sock = std::net::TcpStream::connect(gw.sip()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(burst.as_bytes()).unwrap();
    // Read to the gateway's close (a read timeout fails the test: it did not close).
    let mut got = Vec::new();
    sock.read_to_end(&mut got)
        .expect("the gateway closes the connection after the framing error");
    let text = String::from_utf8_lossy(&got);
    let statuses: Vec<(String, String)> = text
        .split("\r\n\r\n")
        .filter(|m| m.starts_with("SIP/2.0 "))
        .map(|m| {
            let code = m[8..11].to_string();
            let cseq = m
                .lines()
                .find_map(|l| l.strip_prefix("CSeq: "))
                .unwrap_or_default()
                .to_string();
            (cseq, code)
        })
        .collect();
    for (cseq, code) in [
        ("1 OPTIONS", "200"),
        ("2 NEWMETHOD", "501"),
        ("3 OPTIONS", "505"),
        ("4 OPTIONS", "416"),
    ] {
        assert!(
            statuses.contains(&(cseq.to_string(), code.to_string())),
            "no {code} for CSeq {cseq}: {text}"
        );
    }
    assert!(
        !statuses.iter().any(|(c, _)| c == "5 OPTIONS"),
        "an unframed message was answered: {text}"
    );
    // The gateway is still up and answers a new connection.
    let mut again = std::net::TcpStream::connect(gw.sip()).unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    again
        .write_all(request("OPTIONS sip:100@127.0.0.1 SIP/2.0", "OPTIONS", 6, true).as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = again.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// RFC 3261 §8.2.2.3: a request that requires an extension we do not implement gets 420
/// with the tags in `Unsupported`, before anything else (an INVITE is never rung or
/// relayed to the trunk); `timer` (RFC 4028) is one we do implement.
#[test]
fn a_required_extension_we_lack_gets_420_with_unsupported() {
    let uas = Sipp::uas("uas", &[]);
    let gw = Gateway::start(&trunk_route("uas", &uas.addr()));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let ask = |method: &str, require: &str, n: u32| -> String {
        let msg = format!(
            "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-req-{n}\r\n\
             From: <sip:a@127.0.0.1>;tag=r{n}\r\nTo: <sip:100@127.0.0.1>\r\n\
             Call-ID: require-{n}@test\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
             Contact: <sip:a@{me}>\r\n{require}Content-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), gw.sip()).unwrap();
        // Skip provisionals: the final answer.
        loop {
            let mut buf = [0u8; 4096];
            let (n, _) = sock.recv_from(&mut buf).expect("an answer");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    };
    let r = ask("INVITE", "Require: 100rel, foo\r\n", 1);
    assert!(r.starts_with("SIP/2.0 420 "), "{r}");
    assert!(r.contains("\r\nUnsupported: 100rel, foo\r\n"), "{r}");
    let r = ask("OPTIONS", "Require: timer\r\nRequire: precondition\r\n", 2);
    assert!(r.starts_with("SIP/2.0 420 "), "{r}");
    assert!(r.contains("\r\nUnsupported: precondition\r\n"), "{r}");
    let r = ask("OPTIONS", "Require: timer\r\n", 3);
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    // The refused INVITE never reached the trunk, and left no call behind.
    assert!(gw.calls().is_empty(), "{:?}", gw.calls());
    assert!(gw.cdrs().is_empty(), "{:?}", gw.cdrs());
}
