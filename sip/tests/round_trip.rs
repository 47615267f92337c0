//! The round-trip rule (issue 18): what `parse` accepts, `to_bytes` writes, and the written
//! bytes parse again to the same message. Checked over the fuzz seed corpus and over each
//! input the fuzzer found, so plain `cargo test` catches a regression without nightly.

use std::path::PathBuf;

use switchboard_sip::message::{bad_request, parse, same_as_written, to_bytes, ParseError};

/// The property the fuzz target checks too: `Err` describes how it broke.
fn round_trip(data: &[u8]) -> Result<bool, String> {
    let Ok(msg) = parse(data) else {
        return Ok(false);
    };
    let bytes = to_bytes(&msg).map_err(|e| format!("accepted but not writable: {e}"))?;
    let again = parse(&bytes).map_err(|e| {
        format!(
            "re-parse failed ({e}) of {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    if !same_as_written(&msg, &again) {
        return Err(format!("re-parsed message differs:\n{msg:?}\n{again:?}"));
    }
    let twice = to_bytes(&again).map_err(|e| format!("re-parsed but not writable: {e}"))?;
    if twice != bytes {
        return Err("writing is not a fixpoint".into());
    }
    Ok(true)
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_seed_corpus_round_trips() {
    let mut accepted = 0;
    let mut failures = Vec::new();
    for (name, data) in corpus("sip_parse") {
        match round_trip(&data) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(accepted >= 40, "only {accepted} seeds parse");
}

/// The fuzzer's first find (`regress-400-echoes-garbage-via.sip`): a BYE whose Via has no
/// sent-by and whose From has an unclosed `<` was accepted; once refused, `bad_request`
/// echoed those lines into a 400 that did not parse. Now: refused, and no 400 (there is no
/// Via to send it to).
#[test]
fn a_garbage_via_and_from_are_refused_and_never_echoed() {
    let data = b"BYE sip:user@host.eximple.com SIP/2.0\nVia: SIP/2.0/UD0.2.(;branchKlf\n\
From: <sip:a@e:user@st.examg001\r\nTo: <51\r\nCall-ID: 1-3675@127.0.0.1\r\nCSeq: \
0 CANCc76e6gth: 0\n\n";
    let err = parse(data).unwrap_err();
    assert!(bad_request(data, &err).is_none(), "{err:?}");
    assert_eq!(round_trip(data), Ok(false));
}

/// The report: malformed Via and From lines among good ones were accepted by
/// `parse` and forwarded. Each interpreted header is now checked, with the right 400.
#[test]
fn malformed_interpreted_headers_get_a_400_naming_them() {
    let good = "INVITE sip:100@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1\r\n\
From: <sip:a@192.0.2.9>;tag=x\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: c1@test\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n";
    assert!(parse(format!("{good}\r\n").as_bytes()).is_ok());
    // A malformed Via cannot be answered: the 400 would have to echo it.
    for extra in ["Via: garbage here\r\n", "v: SIP/2.0/UDP\r\n"] {
        let msg = format!("{good}{extra}\r\n");
        let err = parse(msg.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseError::BadHeaderValue { name: "Via" }));
        assert!(bad_request(msg.as_bytes(), &err).is_none());
    }
    for (extra, name) in [
        ("Contact: <sip:a@b\r\n", "Contact"),
        ("Route: sip:p1.example.com;lr\r\n", "Route"),
        ("Record-Route: <sip:p1.example.com;lr>,\r\n", "Record-Route"),
        ("Content-Type: sdp\r\n", "Content-Type"),
        ("Session-Expires: soon\r\n", "Session-Expires"),
        ("Require: timer,,\r\n", "Require"),
    ] {
        let msg = format!("{good}{extra}\r\n");
        let err = parse(msg.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ParseError::BadHeaderValue { name: n } if n == name),
            "{extra:?}: {err:?}"
        );
        let out = bad_request(msg.as_bytes(), &err).expect("answerable");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with(&format!("SIP/2.0 400 Bad Request (Malformed {name})\r\n")),
            "{text}"
        );
        assert!(parse(&out).is_ok());
    }
    // A bad Max-Forwards used to be read as 70 (a loop's best friend); a bad From or To
    // cannot be answered at all (a 400 would have to echo it).
    let msg = good.replace("Max-Forwards: 70", "Max-Forwards: 7O");
    let err = parse(format!("{msg}\r\n").as_bytes()).unwrap_err();
    assert!(matches!(
        err,
        ParseError::BadHeaderValue {
            name: "Max-Forwards"
        }
    ));
    for (from, to) in [
        (
            "From: <sip:a@192.0.2.9>;tag=x",
            "From: <sip:a@192.0.2.9;tag=x",
        ),
        ("To: <sip:100@192.0.2.1>", "To: \"Bob <sip:100@192.0.2.1>"),
    ] {
        let msg = format!("{}\r\n", good.replace(from, to));
        let err = parse(msg.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseError::BadHeaderValue { .. }), "{err:?}");
        assert!(bad_request(msg.as_bytes(), &err).is_none());
    }
    // A second From is not something we understood either.
    let msg = format!("{good}From: <sip:b@192.0.2.9>;tag=y\r\n\r\n");
    assert!(matches!(
        parse(msg.as_bytes()),
        Err(ParseError::DuplicateHeader { name: "From" })
    ));
}

/// RFC 4475 §3.1.2-style invalid messages in the corpus are refused, the tortuous valid
/// ones (§3.1.1) still parse.
#[test]
fn torture_seeds_keep_their_verdicts() {
    let seeds = corpus("sip_parse");
    let get = |n: &str| &seeds.iter().find(|(name, _)| name == n).unwrap().1;
    for bad in [
        "bad-via-garbage.sip",
        "bad-unterminated-quote.sip",
        "bad-ltgt-ruri.sip",
        "bad-extra-ws-start.sip",
        "bad-version.sip",
        "bad-cseq-mismatch.sip",
    ] {
        assert!(parse(get(bad)).is_err(), "{bad}");
    }
    for good in [
        "torture-ws-escapes.sip",
        "torture-escaped-uri.sip",
        "torture-lws-display.sip",
        "torture-transports.sip",
        "folded-headers.sip",
        "compact-headers.sip",
        "phone-context-invite.sip",
        "record-route-route.sip",
        "multiple-vias.sip",
    ] {
        assert_eq!(round_trip(get(good)), Ok(true), "{good}");
    }
}

/// The fuzz smoke's find (`regress-101-empty-reason.sip`): a response with an empty reason
/// phrase is written with the standard phrase of its code, and re-parses to the same code.
#[test]
fn an_empty_reason_phrase_is_written_as_the_standard_one() {
    let (_, data) = corpus("sip_parse")
        .into_iter()
        .find(|(n, _)| n == "regress-101-empty-reason.sip")
        .expect("the seed");
    assert_eq!(round_trip(&data), Ok(true));
    let bytes = to_bytes(&parse(&data).unwrap()).unwrap();
    let line = String::from_utf8_lossy(&bytes);
    let line = line.lines().next().unwrap();
    assert!(
        line.starts_with("SIP/2.0 101 ") && line.len() > "SIP/2.0 101 ".len(),
        "{line}"
    );
}

/// The long run's find (`regress-uri-writes-control.sip`, 2026-12-07): a Request-URI of an
/// unknown scheme (`sipb:`) passed the start-line check, and rsip, parsing the whole message,
/// read the scheme on to the first `://` further down, headers, CRLFs and body included, so
/// the accepted request could not be written. Now any scheme but `sip`/`sips` is refused
/// before rsip sees it, and answered 416 (RFC 3261 §8.2.2.1).
#[test]
fn a_request_uri_of_another_scheme_is_refused_with_416() {
    let data = include_bytes!("../../fuzz/corpus/sip_parse/regress-uri-writes-control.sip");
    assert!(matches!(parse(data), Err(ParseError::UnsupportedUriScheme)));
    assert_eq!(round_trip(data), Ok(false));
    for uri in [
        "tel:+15551234567",
        "sipb:bob@192.0.2.4",
        "http://example.com/x",
        "urn:service:sos",
    ] {
        let msg = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nCall-Info: <http://www.example.com/p.jpg>\r\nContent-Length: 0\r\n\r\n"
        );
        let err = parse(msg.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseError::UnsupportedUriScheme), "{uri}");
        let out = bad_request(msg.as_bytes(), &err).expect("answered");
        assert!(
            out.starts_with(b"SIP/2.0 416 Unsupported URI Scheme\r\n"),
            "{uri}"
        );
        assert!(parse(&out).is_ok(), "our 416 parses");
    }
    // sip: and sips: in any case still parse.
    let ok = "INVITE SIPS:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(round_trip(ok.as_bytes()), Ok(true));
}

/// RFC 3261 §8.2's order of checks, each with its own answer: another SIP version 505, an
/// unknown (or wrongly cased) method 501 with `Allow`, then the URI scheme 416. A response
/// with another version is dropped (there is no one to answer).
#[test]
fn version_method_and_scheme_get_their_own_answers() {
    let msg = |start: &str, method: &str| {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
CSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let cases = [
        (
            "NEWMETHOD sip:b@example.com SIP/2.0",
            "NEWMETHOD",
            "SIP/2.0 501 Not Implemented\r\nAllow: INVITE, ",
        ),
        (
            "invite sip:b@example.com SIP/2.0",
            "invite",
            "SIP/2.0 501 Not Implemented\r\n",
        ),
        (
            "INVITE sip:b@example.com SIP/3.0",
            "INVITE",
            "SIP/2.0 505 Version Not Supported\r\n",
        ),
        (
            "NEWMETHOD tel:+15551234567 SIP/2.0",
            "NEWMETHOD",
            "SIP/2.0 501 ",
        ),
        ("INVITE tel:+15551234567 SIP/3.0", "INVITE", "SIP/2.0 505 "),
    ];
    for (start, method, want) in cases {
        let m = msg(start, method);
        let err = parse(m.as_bytes()).unwrap_err();
        let out = bad_request(m.as_bytes(), &err).unwrap_or_else(|| panic!("{start}: no answer"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(want), "{start}: {text}");
        assert!(text.contains(&format!("CSeq: 7 {method}\r\n")), "{text}");
    }
    // A 501's CSeq names the unknown method; nothing else of it fails to parse.
    let m = msg("NEWMETHOD sip:b@example.com SIP/2.0", "NEWMETHOD");
    let out = bad_request(m.as_bytes(), &parse(m.as_bytes()).unwrap_err()).unwrap();
    assert!(matches!(
        parse(&out),
        Err(ParseError::BadHeaderValue { name: "CSeq" })
    ));
    // The CSeq method must still be the request's.
    let m = msg("NEWMETHOD sip:b@example.com SIP/2.0", "OTHER");
    assert!(bad_request(m.as_bytes(), &parse(m.as_bytes()).unwrap_err()).is_none());
    // Not a version at all: malformed, and a response with another version is dropped.
    let m = msg("INVITE sip:b@example.com HTTP/1.1", "INVITE");
    assert!(matches!(parse(m.as_bytes()), Err(ParseError::BadStartLine)));
    let resp = "SIP/3.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c1\r\n\
CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
    let err = parse(resp.as_bytes()).unwrap_err();
    assert!(bad_request(resp.as_bytes(), &err).is_none());
}
