//! Golden and torture tests for `switchboard_sip::message` (RFC 3261 §24, RFC 4475 style), and
//! a deterministic mutation run proving `parse` never panics.

use rand::{rngs::StdRng, Rng, SeedableRng};
use switchboard_sip::message::{
    bad_request, make_cancel, make_non2xx_ack, make_response, new_branch, parse, to_bytes,
    MessageExt, ParseError, MAX_HEADERS, MAX_HEADER_LINE, MAX_MESSAGE_SIZE,
};
use switchboard_sip::rsip::{self, Method, SipMessage};

/// RFC 3261 §24.2 F1-style INVITE with an SDP body.
const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

const RESPONSE: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n\
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\
\r\n";

fn req(msg: SipMessage) -> rsip::Request {
    match msg {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("expected a request"),
    }
}

fn resp(msg: SipMessage) -> rsip::Response {
    match msg {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("expected a response"),
    }
}

#[test]
fn rfc3261_invite_golden() {
    let r = req(parse(INVITE.as_bytes()).unwrap());
    assert_eq!(r.method, Method::Invite);
    assert_eq!(
        r.call_id().as_deref(),
        Some("a84b4c76e66710@pc33.atlanta.com")
    );
    assert_eq!(r.from_tag().as_deref(), Some("1928301774"));
    assert_eq!(r.to_tag(), None);
    assert_eq!(r.cseq(), Some((314159, Method::Invite)));
    assert_eq!(r.top_via_branch().as_deref(), Some("z9hG4bK776asdhds"));
    assert_eq!(r.content_type().as_deref(), Some("application/sdp"));
    assert_eq!(r.header_value("max-forwards").as_deref(), Some("70"));
    assert_eq!(r.header_value("i").as_deref(), r.call_id().as_deref());
    assert_eq!(
        r.header_value("m").as_deref(),
        Some("<sip:alice@pc33.atlanta.com>")
    );
    assert_eq!(r.body, b"v=0\n");
    // Round trip.
    let bytes = to_bytes(&SipMessage::Request(r.clone())).unwrap();
    let again = req(parse(&bytes).unwrap());
    assert_eq!(again, r);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("INVITE sip:bob@biloxi.com SIP/2.0\r\n"));
    assert!(text.ends_with("Content-Length: 4\r\n\r\nv=0\n"));
}

#[test]
fn response_golden_keeps_via_order() {
    let r = resp(parse(RESPONSE.as_bytes()).unwrap());
    assert_eq!(r.status_code.code(), 180);
    assert_eq!(r.top_via_branch().as_deref(), Some("z9hG4bK4b43c2ff8.1"));
    assert_eq!(r.to_tag().as_deref(), Some("a6c85cf"));
    let text = String::from_utf8(to_bytes(&SipMessage::Response(r)).unwrap()).unwrap();
    assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"));
    let first = text.find("server10").unwrap();
    let second = text.find("pc33").unwrap();
    assert!(first < second);
}

#[test]
fn compact_forms_folding_and_whitespace() {
    // RFC 4475 3.1.1.1-ish: compact names, folded lines, odd whitespace, unknown headers,
    // escaped characters in the Request-URI, LF-only line ends.
    let msg = "OPTIONS sip:vivekg%40chair-dnrc.example.com@example.com;unknownparam SIP/2.0\n\
v:  SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK.ab\n\
Max-Forwards: 68\n\
t :\tsip:vivekg@chair-dnrc.example.com;tag=1918181833n\n\
f: \"J Rosenberg \\\\\\\"\"\n   <sip:jdrosen@example.com>\n  ;\n  tag = 98asjd8\n\
i: 0ha0isndaksdj@192.0.2.1\n\
CSeq: 8\n   OPTIONS\n\
NewFangledHeader:   newfangled value\n continued newfangled value\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\n\
l: 0\n\
\n";
    let r = req(parse(msg.as_bytes()).unwrap());
    assert_eq!(r.method, Method::Options);
    assert_eq!(r.call_id().as_deref(), Some("0ha0isndaksdj@192.0.2.1"));
    assert_eq!(r.cseq(), Some((8, Method::Options)));
    assert_eq!(r.to_tag().as_deref(), Some("1918181833n"));
    assert_eq!(r.from_tag().as_deref(), Some("98asjd8"));
    assert_eq!(
        r.header_value("newfangledheader").as_deref(),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(r.top_via_branch().as_deref(), Some("z9hG4bK.ab"));
}

#[test]
fn long_values_and_many_vias_within_bounds() {
    let long = "a".repeat(4000);
    let mut msg = format!(
        "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag={long}\r\nTo: <sip:x@example.com>\r\nCall-ID: {long}\r\nCSeq: 1 OPTIONS\r\n"
    );
    for i in 0..50 {
        msg.push_str(&format!("Via: SIP/2.0/UDP h{i};branch=z9hG4bK{i}\r\n"));
    }
    msg.push_str("\r\n");
    let r = req(parse(msg.as_bytes()).unwrap());
    assert_eq!(r.call_id().unwrap().len(), 4000);
    assert_eq!(r.top_via_branch().as_deref(), Some("z9hG4bK1"));
}

fn base_without(skip: &str) -> String {
    INVITE
        .split("\r\n")
        .filter(|l| !l.starts_with(skip))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn missing_mandatory_headers() {
    for (prefix, name) in [
        ("Call-ID", "Call-ID"),
        ("Via", "Via"),
        ("From", "From"),
        ("To", "To"),
        ("CSeq", "CSeq"),
    ] {
        let msg = base_without(prefix);
        match parse(msg.as_bytes()) {
            Err(ParseError::MissingHeader { name: n }) => assert_eq!(n, name),
            other => panic!("{prefix}: {other:?}"),
        }
    }
}

#[test]
fn cseq_method_mismatch() {
    let msg = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS");
    assert!(matches!(
        parse(msg.as_bytes()),
        Err(ParseError::CseqMethodMismatch)
    ));
}

#[test]
fn content_length_rules() {
    // Longer body than declared: truncated (RFC 3261 §18.3).
    let msg = INVITE.replace("Content-Length: 4", "Content-Length: 2");
    let r = req(parse(msg.as_bytes()).unwrap());
    assert_eq!(r.body, b"v=");
    // Shorter body than declared: error.
    let msg = INVITE.replace("Content-Length: 4", "Content-Length: 10");
    assert!(matches!(
        parse(msg.as_bytes()),
        Err(ParseError::ContentLengthMismatch {
            declared: 10,
            actual: 4
        })
    ));
    // Huge Content-Length (RFC 4475 3.1.2.5-ish).
    let msg = INVITE.replace("Content-Length: 4", "Content-Length: 99999999");
    let err = parse(msg.as_bytes()).unwrap_err();
    assert!(matches!(
        err,
        ParseError::ContentLengthMismatch {
            declared: 99999999,
            ..
        }
    ));
    // It still gets a 400.
    let out = bad_request(msg.as_bytes(), &err).unwrap();
    let r400 = resp(parse(&out).unwrap());
    assert_eq!(r400.status_code.code(), 400);
    // Negative or absurd values.
    for v in ["-1", "abc", "999999999999999999999999"] {
        let msg = INVITE.replace("Content-Length: 4", &format!("Content-Length: {v}"));
        assert!(matches!(
            parse(msg.as_bytes()),
            Err(ParseError::BadHeaderValue {
                name: "Content-Length"
            })
        ));
    }
    // Missing Content-Length: the rest of the datagram.
    let msg = base_without("Content-Length");
    assert_eq!(req(parse(msg.as_bytes()).unwrap()).body, b"v=0\n");
}

#[test]
fn bounds_are_enforced() {
    let huge = vec![b'a'; MAX_MESSAGE_SIZE + 1];
    assert!(matches!(parse(&huge), Err(ParseError::TooLarge { .. })));

    let mut many = INVITE.replace("\r\n\r\nv=0\n", "\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(matches!(
        parse(many.as_bytes()),
        Err(ParseError::TooManyHeaders { max: MAX_HEADERS })
    ));

    let long = INVITE.replace(
        "Max-Forwards: 70",
        &format!("X-Long: {}", "b".repeat(10 * 1024)),
    );
    assert!(matches!(
        parse(long.as_bytes()),
        Err(ParseError::HeaderTooLong {
            max: MAX_HEADER_LINE,
            ..
        })
    ));
    // Folding cannot be used to sneak past the line limit.
    let folded = INVITE.replace(
        "Max-Forwards: 70",
        &format!("X-Long: a{}", "\r\n b".repeat(5000)),
    );
    assert!(matches!(
        parse(folded.as_bytes()),
        Err(ParseError::HeaderTooLong { .. })
    ));
}

#[test]
fn garbage_truncated_and_odd_inputs() {
    assert!(matches!(parse(b""), Err(ParseError::Empty)));
    assert!(matches!(parse(b"\r\n\r\n"), Err(ParseError::Empty)));
    assert!(parse(b"\x00\xff\xfe garbage \x80\r\n\r\n").is_err());
    assert!(parse(&[0xff; 300]).is_err());
    // Truncated in the middle of the headers.
    let cut = &INVITE.as_bytes()[..120];
    assert!(matches!(parse(cut), Err(ParseError::Truncated)));
    // Non-UTF-8 in a header value.
    let mut bad = INVITE.as_bytes().to_vec();
    let pos = INVITE.find("Alice").unwrap();
    bad[pos] = 0xC3;
    bad[pos + 1] = 0x28;
    assert!(matches!(parse(&bad), Err(ParseError::NotUtf8)));
    // Empty header name, space in name, lowercase method, bad version, unknown method.
    assert!(parse(INVITE.replace("Max-Forwards: 70", ": 70").as_bytes()).is_err());
    assert!(parse(
        INVITE
            .replace("Max-Forwards: 70", "Max Forwards: 70")
            .as_bytes()
    )
    .is_err());
    assert!(parse(INVITE.replace("INVITE sip", "invite sip").as_bytes()).is_err());
    assert!(parse(
        INVITE
            .replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia")
            .as_bytes()
    )
    .is_err());
    let unknown = INVITE
        .replace("INVITE sip", "NEWMETHOD sip")
        .replace("314159 INVITE", "314159 NEWMETHOD");
    assert!(parse(unknown.as_bytes()).is_err());
    // Status codes out of range.
    assert!(parse(RESPONSE.replace("180 Ringing", "099 Odd").as_bytes()).is_err());
    assert!(parse(RESPONSE.replace("180 Ringing", "1800 Odd").as_bytes()).is_err());
    // Binary body is kept byte for byte.
    let mut bin = INVITE
        .replace("Content-Length: 4", "Content-Length: 3")
        .into_bytes();
    bin.truncate(bin.len() - 4);
    bin.extend_from_slice(&[0xff, 0x00, 0x80]);
    let r = req(parse(&bin).unwrap());
    assert_eq!(r.body, vec![0xff, 0x00, 0x80]);
    assert!(to_bytes(&SipMessage::Request(r))
        .unwrap()
        .ends_with(&[0xff, 0x00, 0x80]));
    // Leading CRLFs are skipped (RFC 3261 §7.5).
    assert!(parse(format!("\r\n\r\n{INVITE}").as_bytes()).is_ok());
}

#[test]
fn bad_request_only_when_answerable() {
    let missing_cseq_method = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS");
    let err = parse(missing_cseq_method.as_bytes()).unwrap_err();
    let out = bad_request(missing_cseq_method.as_bytes(), &err).unwrap();
    let r = resp(parse(&out).unwrap());
    assert_eq!(r.status_code.code(), 400);
    assert_eq!(
        r.call_id().as_deref(),
        Some("a84b4c76e66710@pc33.atlanta.com")
    );
    assert!(r.to_tag().is_some());
    assert!(
        String::from_utf8_lossy(&out).starts_with("SIP/2.0 400 Bad Request (CSeq Method Mismatch)")
    );

    // Missing Call-ID: cannot answer.
    let no_call_id = base_without("Call-ID");
    let err = parse(no_call_id.as_bytes()).unwrap_err();
    assert!(bad_request(no_call_id.as_bytes(), &err).is_none());
    // ACKs are never answered.
    let ack = INVITE
        .replace("INVITE sip", "ACK sip")
        .replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    let err = parse(ack.as_bytes()).unwrap_err();
    assert!(bad_request(ack.as_bytes(), &err).is_none());
    // Responses and garbage are never answered.
    assert!(bad_request(b"SIP/2.0 200 OK\r\n\r\n", &ParseError::Empty).is_none());
    assert!(bad_request(&[0xff; 64], &ParseError::Empty).is_none());
}

#[test]
fn builders() {
    let invite = req(parse(INVITE.as_bytes()).unwrap());
    let r = make_response(&invite, 180, Some("totag1"));
    assert_eq!(r.status_code.code(), 180);
    assert_eq!(r.to_tag().as_deref(), Some("totag1"));
    assert_eq!(r.cseq(), Some((314159, Method::Invite)));
    assert!(r.body.is_empty());
    let text = String::from_utf8(to_bytes(&SipMessage::Response(r.clone())).unwrap()).unwrap();
    assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"));
    assert!(text.contains("Content-Length: 0\r\n\r\n"));
    let text = String::from_utf8(
        to_bytes(&SipMessage::Response(make_response(&invite, 487, None))).unwrap(),
    )
    .unwrap();
    assert!(text.starts_with("SIP/2.0 487 Request Terminated\r\n"));

    let cancel = make_cancel(&invite);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, invite.uri);
    assert_eq!(cancel.top_via_branch(), invite.top_via_branch());
    assert_eq!(cancel.cseq(), Some((314159, Method::Cancel)));
    assert_eq!(cancel.header_value("Max-Forwards").as_deref(), Some("70"));
    assert!(parse(&to_bytes(&SipMessage::Request(cancel)).unwrap()).is_ok());

    let busy = make_response(&invite, 486, Some("xyz"));
    let ack = make_non2xx_ack(&invite, &busy);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.to_tag().as_deref(), Some("xyz"));
    assert_eq!(ack.cseq(), Some((314159, Method::Ack)));
    assert_eq!(ack.top_via_branch(), invite.top_via_branch());
    assert!(parse(&to_bytes(&SipMessage::Request(ack)).unwrap()).is_ok());
    assert!(new_branch().starts_with("z9hG4bK"));
}

/// Seeded mutation run: flip, insert and delete bytes of valid messages; parse must never
/// panic, and neither must bad_request or a round trip of whatever parses.
#[test]
fn mutation_never_panics() {
    // SIP_MUTATIONS / SIP_MUTATION_SEED allow longer or different runs by hand.
    let runs: usize = std::env::var("SIP_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("SIP_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5151_7a7a);
    let mut rng = StdRng::seed_from_u64(seed);
    let seeds = [INVITE.as_bytes().to_vec(), RESPONSE.as_bytes().to_vec()];
    let specials = b"\r\n\t :;,<>\"\\%=@\x00\xff\xc3";
    let mut ok = 0;
    for i in 0..runs {
        let mut m = seeds[i % seeds.len()].clone();
        for _ in 0..rng.gen_range(1..8) {
            let pos = rng.gen_range(0..=m.len());
            let byte = if rng.gen_bool(0.5) {
                specials[rng.gen_range(0..specials.len())]
            } else {
                rng.gen()
            };
            match rng.gen_range(0..3) {
                0 if pos < m.len() => m[pos] = byte,
                1 => m.insert(pos, byte),
                _ if pos < m.len() => {
                    m.remove(pos);
                }
                _ => {}
            }
        }
        match parse(&m) {
            Ok(msg) => {
                ok += 1;
                let _ = msg.call_id();
                let _ = msg.top_via_branch();
                let _ = msg.from_tag();
                let _ = msg.cseq();
                let bytes = to_bytes(&msg).expect("what we parse we can write");
                // What we write must parse again (the fuzz target asserts the same).
                let again = parse(&bytes);
                assert!(
                    again.is_ok(),
                    "re-parse failed: {again:?}\n{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            Err(e) => {
                let _ = bad_request(&m, &e);
            }
        }
    }
    assert!(ok > 100, "mutations too aggressive: only {ok} parsed");
}
