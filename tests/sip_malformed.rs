//! Malformed SIP sent at the gateway while real calls run: every bad message
//! gets a 400 (416 for a Request-URI scheme we do not serve) or is dropped as RFC 3261 says, the process never falls over and
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
