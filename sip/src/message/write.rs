//! The SIP message writer (RFC 3261 §7, §18.3): start line, headers, a correct
//! Content-Length, the body.
//!
//! It refuses to write a start line or a header field that carries a control character
//! (CR, LF, NUL, any other of `%x00-1F` except HTAB, and DEL): the grammar of RFC 3261 §25.1
//! has no room for them outside a body, and a CR LF in a value written as given would add a
//! header of the writer's caller's choosing (header injection). It also refuses a malformed
//! value of a header the gateway interprets (the same checks [`parse`](super::parse) applies),
//! so what we send is always something we would accept back, exactly. Whoever builds the message
//! (a call, a fax job, a device or ingest originator, the transaction layer) gets
//! [`WriteError`] instead of bytes, and nothing is sent.

use rsip::{Header, Headers, Request, Response, SipMessage};

use super::reason_phrase;

/// Why a message could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A header field carries a control character.
    #[error("header {name} carries a control character")]
    ControlInHeader {
        /// The header's name (up to its first control character, at most 64 bytes).
        name: String,
    },
    /// A header the gateway interprets (Via, From, To, Call-ID, CSeq, Contact, Route,
    /// Record-Route, Max-Forwards, Content-Type, Session-Expires, Min-SE, Supported, Require)
    /// is malformed: it would not parse back to what the writer's caller meant.
    #[error("header {name} is malformed")]
    Malformed {
        /// The header's canonical name.
        name: &'static str,
    },
    /// The start line (method, Request-URI or reason phrase) carries a control character.
    #[error("the start line carries a control character")]
    ControlInStartLine,
}

/// Whether `b` may not appear in a start line or header field: CTL except HTAB (RFC 5234
/// `CTL = %x00-1F / %x7F`; HTAB is linear white space).
fn is_forbidden(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn has_control(s: &str) -> bool {
    s.bytes().any(is_forbidden)
}

fn write_headers(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) -> Result<(), WriteError> {
    for h in headers.iter() {
        match h {
            Header::ContentLength(_) => continue,
            Header::Other(name, _) if name.eq_ignore_ascii_case("Content-Length") => continue,
            _ => {}
        }
        let line = h.to_string();
        if has_control(&line) {
            let name: String = line
                .split(|c: char| c == ':' || (c as u32) < 0x20 || c == '\u{7f}')
                .next()
                .unwrap_or("")
                .chars()
                .take(64)
                .collect();
            return Err(WriteError::ControlInHeader { name });
        }
        // Never forward what we could not parse back exactly (docs/decisions.md §15.1).
        if let Some((name, value)) = line.split_once(':') {
            super::grammar::check(name.trim(), value.trim())
                .map_err(|name| WriteError::Malformed { name })?;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Serializes a request, always writing a correct Content-Length (binary-safe body).
/// Refused when the start line or a header carries a control character.
pub fn request_bytes(req: &Request) -> Result<Vec<u8>, WriteError> {
    let start = format!("{} {} SIP/2.0", req.method, req.uri);
    if has_control(&start) {
        return Err(WriteError::ControlInStartLine);
    }
    let mut out = Vec::with_capacity(512 + req.body.len());
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(&mut out, &req.headers, &req.body)?;
    Ok(out)
}

/// Whether `again`, what `parse` made of `to_bytes(msg)`, is the message `msg` as the writer
/// defines writing it: Content-Length is rewritten from the body, and an empty reason phrase
/// gets its code's standard one (RFC 3261 §25.1 allows either). The round-trip rule the
/// `sip_parse` fuzz target and the round-trip tests check (docs/decisions.md §15.1).
pub fn same_as_written(msg: &SipMessage, again: &SipMessage) -> bool {
    fn normal(msg: &SipMessage, again: &SipMessage) -> SipMessage {
        use rsip::message::HasHeaders;
        let mut m = msg.clone();
        m.headers_mut()
            .retain(|h| !matches!(h, Header::ContentLength(_)));
        if let (SipMessage::Response(a), SipMessage::Response(b)) = (&mut m, again) {
            let empty = matches!(&a.status_code, rsip::StatusCode::Other(_, r) if r.is_empty());
            if empty && a.status_code.code() == b.status_code.code() {
                a.status_code = b.status_code.clone();
            }
        }
        m
    }
    normal(msg, again) == normal(again, again)
}

/// Serializes a response with the standard reason phrase for known codes (the parsed one for
/// unknown codes), always writing a correct Content-Length (binary-safe body). Refused when a
/// header carries a control character.
pub fn response_bytes(resp: &Response) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(512 + resp.body.len());
    let code = resp.status_code.code();
    let reason = match &resp.status_code {
        rsip::StatusCode::Other(_, r) if !r.is_empty() && !has_control(r) => r.as_str(),
        _ => reason_phrase(code),
    };
    out.extend_from_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());
    write_headers(&mut out, &resp.headers, &resp.body)?;
    Ok(out)
}

/// Serializes a message, always writing a correct Content-Length; refused when a header
/// (or a request's start line) carries a control character.
pub fn to_bytes(msg: &SipMessage) -> Result<Vec<u8>, WriteError> {
    match msg {
        SipMessage::Request(r) => request_bytes(r),
        SipMessage::Response(r) => response_bytes(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;

    fn invite(extra: Vec<Header>) -> Request {
        let text = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
        let SipMessage::Request(mut r) = parse(text.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        r.headers.extend(extra);
        r
    }

    #[test]
    fn header_values_with_control_characters_are_refused() {
        // The ingest injection: a From display name that ends the line and adds a header.
        let injected = "\"1>\r\nP-Asserted-Identity: <sip:911@evil>\" <sip:1@example.com>;tag=x";
        let mut r = invite(vec![]);
        r.headers.retain(|h| !matches!(h, Header::From(_)));
        r.headers.push(Header::From(injected.into()));
        assert_eq!(
            request_bytes(&r),
            Err(WriteError::ControlInHeader {
                name: "From".into()
            })
        );
        for bad in ["a\rb", "a\nb", "a\0b", "a\x01b", "a\x1bb", "a\x7fb"] {
            let r = invite(vec![Header::Other("X-Test".into(), bad.into())]);
            assert!(
                matches!(request_bytes(&r), Err(WriteError::ControlInHeader { ref name }) if name == "X-Test"),
                "{bad:?}"
            );
        }
        // A control character in the name is refused too.
        let r = invite(vec![Header::Other("X\r\nInjected".into(), "v".into())]);
        assert!(request_bytes(&r).is_err());
        // HTAB is white space, UTF-8 is text: both are fine.
        let r = invite(vec![Header::Other("X-Test".into(), "a\tb é".into())]);
        let bytes = request_bytes(&r).unwrap();
        assert!(parse(&bytes).is_ok());
        // Responses too.
        let mut resp = crate::message::make_response(&invite(vec![]), 200, Some("t"));
        assert!(response_bytes(&resp).is_ok());
        resp.headers
            .push(Header::Other("Contact".into(), "<sip:a@b>\r\nX: y".into()));
        assert!(response_bytes(&resp).is_err());
    }

    #[test]
    fn malformed_interpreted_headers_are_never_written() {
        // Whatever a leg copies or builds toward the next hop is written only if it would
        // parse back exactly: a caller-controlled value that breaks the grammar stops here.
        for (h, name) in [
            (Header::From("<sip:a@b;tag=1".into()), "From"),
            (Header::To("\"Bob <sip:b@c>".into()), "To"),
            (Header::Via("SIP/2.0/UDP".into()), "Via"),
            (Header::CallId("a b".into()), "Call-ID"),
            (Header::Contact("<sip:a@b>,".into()), "Contact"),
            (Header::Route("sip:p;lr".into()), "Route"),
            (Header::MaxForwards("300".into()), "Max-Forwards"),
            (
                Header::Other("Session-Expires".into(), "1800 x".into()),
                "Session-Expires",
            ),
            (Header::Other("k".into(), "timer,,".into()), "Supported"),
        ] {
            let mut r = invite(vec![]);
            let single = matches!(h, Header::From(_) | Header::To(_) | Header::CallId(_));
            if single {
                r.headers
                    .retain(|x| std::mem::discriminant(x) != std::mem::discriminant(&h));
            }
            r.headers.push(h);
            assert_eq!(request_bytes(&r), Err(WriteError::Malformed { name }));
        }
        // Well-formed ones, tortuous or not, are written and parse back to the same headers.
        let r = invite(vec![
            Header::Contact(
                "\"A \\\"x\\\"\" <sip:a@[2001:db8::1]:5060;transport=tcp>;expires=60".into(),
            ),
            Header::Other("Session-Expires".into(), "1800;refresher=uac".into()),
            Header::Other("Supported".into(), "".into()),
        ]);
        let bytes = request_bytes(&r).unwrap();
        let SipMessage::Request(again) = parse(&bytes).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(request_bytes(&again).unwrap(), bytes);
    }

    #[test]
    fn a_request_uri_with_control_characters_is_refused() {
        let mut r = invite(vec![]);
        r.uri.auth = Some(rsip::Auth {
            user: "1\r\nX-Evil: 1".into(),
            password: None,
        });
        assert_eq!(request_bytes(&r), Err(WriteError::ControlInStartLine));
    }

    #[test]
    fn the_bytes_are_the_message_with_one_content_length() {
        let mut r = invite(vec![]);
        r.body = b"v=0\r\n".to_vec();
        let text = String::from_utf8(request_bytes(&r).unwrap()).unwrap();
        assert!(text.starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"));
        assert_eq!(text.matches("Content-Length").count(), 1);
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
    }
}
