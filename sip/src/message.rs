//! SIP message parsing with bounds, serialization and construction helpers (RFC 3261 §7, §8.2.6,
//! §9.1, §17.1.1.3, §18.3; torture cases of RFC 4475).
//!
//! [`parse`] never hands untrusted bytes straight to rsip: it first scans the message itself,
//! enforcing [`MAX_MESSAGE_SIZE`], [`MAX_HEADERS`] and [`MAX_HEADER_LINE`], unfolding continuation
//! lines (RFC 3261 §7.3.1), expanding compact header names, checking the mandatory headers, the
//! CSeq method and Content-Length, and then feeds rsip a canonical rebuild of the message.
//! [`bad_request`] answers unparseable requests with a `400` when enough can be salvaged, and
//! [`to_bytes`] always writes a correct Content-Length and standard reason phrases.

use rand::{distributions::Alphanumeric, Rng};
use rsip::headers::UntypedHeader;
use rsip::{message::HasHeaders, Header, Headers, Method, Request, Response, SipMessage};
use std::str::FromStr;

mod grammar;
mod write;
pub use write::{request_bytes, response_bytes, same_as_written, to_bytes, WriteError};

/// Largest message accepted by [`parse`] (a UDP datagram or one framed stream message).
pub const MAX_MESSAGE_SIZE: usize = 65_535;
/// Largest number of (unfolded) header fields accepted by [`parse`].
pub const MAX_HEADERS: usize = 128;
/// Longest header field accepted by [`parse`], after unfolding, in bytes.
pub const MAX_HEADER_LINE: usize = 8_192;

/// Why a SIP message was rejected by [`parse`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The message is larger than allowed.
    #[error("message of {size} bytes exceeds {max}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit ([`MAX_MESSAGE_SIZE`]).
        max: usize,
    },
    /// The input is empty (or only blank lines).
    #[error("empty message")]
    Empty,
    /// More header fields than allowed.
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The limit ([`MAX_HEADERS`]).
        max: usize,
    },
    /// A header field (after unfolding) is longer than allowed.
    #[error("header field of {len} bytes exceeds {max}")]
    HeaderTooLong {
        /// Length of the offending field.
        len: usize,
        /// The limit ([`MAX_HEADER_LINE`]).
        max: usize,
    },
    /// The header section is not terminated by an empty line.
    #[error("header section not terminated by an empty line")]
    Truncated,
    /// The start line is neither a valid Request-Line nor a valid Status-Line.
    #[error("malformed start line")]
    BadStartLine,
    /// The start line or a header field is not valid UTF-8.
    #[error("start line or header section is not valid UTF-8")]
    NotUtf8,
    /// A header field line is malformed.
    #[error("malformed header field on line {line}")]
    BadHeader {
        /// 1-based line number within the message (the start line is line 1).
        line: usize,
    },
    /// A mandatory header is missing.
    #[error("missing mandatory header {name}")]
    MissingHeader {
        /// Canonical name of the missing header.
        name: &'static str,
    },
    /// A mandatory header is present but its value cannot be understood.
    #[error("malformed {name} header")]
    BadHeaderValue {
        /// Canonical name of the header.
        name: &'static str,
    },
    /// A header of which a message may carry only one appears more than once.
    #[error("more than one {name} header")]
    DuplicateHeader {
        /// Canonical name of the header.
        name: &'static str,
    },
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CseqMethodMismatch,
    /// The body is shorter than the declared Content-Length.
    #[error("Content-Length {declared} but body has {actual} bytes")]
    ContentLengthMismatch {
        /// Value of the Content-Length header.
        declared: u64,
        /// Bytes actually present after the header section.
        actual: usize,
    },
    /// The Request-URI is well-formed but not a `sip:` or `sips:` URI (RFC 3261 §8.2.2.1:
    /// answered 416). rsip cannot hold other schemes faithfully: for a `tel:` URI it fails,
    /// and for an unknown scheme it reads the scheme on into the headers.
    #[error("unsupported Request-URI scheme")]
    UnsupportedUriScheme,
    /// The request method is a well-formed token but not one we recognize (methods are
    /// case-sensitive: `invite` is not `INVITE`). Answered 501 (RFC 3261 §21.5.2) with
    /// [`ALLOW`].
    #[error("unknown request method")]
    UnknownMethod,
    /// The request names a SIP version other than 2.0 (`SIP/3.0`). Answered 505 (RFC 3261
    /// §21.5.6; RFC 4475's `badvers`).
    #[error("SIP version not supported")]
    VersionNotSupported,
    /// rsip rejected the canonical rebuild of the message (for example an unknown method or
    /// a malformed Request-URI).
    #[error("syntax error: {0}")]
    Syntax(SyntaxError),
}

impl From<rsip::Error> for ParseError {
    fn from(e: rsip::Error) -> Self {
        ParseError::Syntax(SyntaxError(e))
    }
}

/// rsip's complaint about a message, safe to log: `Display` and `Debug` name only its kind
/// (and a missing header's name), because rsip's own text quotes the rest of the input: the
/// Request-URI and From/To numbers, `Authorization` headers with digest responses.
#[derive(Clone, PartialEq, Eq)]
pub struct SyntaxError(rsip::Error);

impl SyntaxError {
    /// rsip's error, input excerpts included: never log it.
    pub fn detail(&self) -> &rsip::Error {
        &self.0
    }

    /// The kind of problem, without any of the input.
    pub fn kind(&self) -> &'static str {
        match &self.0 {
            rsip::Error::MissingHeader(_) => "missing header",
            rsip::Error::InvalidParam(_) => "invalid header parameter",
            rsip::Error::ParseError(_) => "unparseable part",
            rsip::Error::TokenizeError(_) => "cannot tokenize",
            rsip::Error::Utf8Error(_) => "invalid UTF-8",
            rsip::Error::Unexpected(_) => "unexpected",
        }
    }
}

impl From<rsip::Error> for SyntaxError {
    fn from(e: rsip::Error) -> Self {
        SyntaxError(e)
    }
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            // A header name rsip itself asked for, not input.
            rsip::Error::MissingHeader(name)
                if name.len() <= 32
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                write!(f, "missing header {name}")
            }
            _ => f.write_str(self.kind()),
        }
    }
}

impl std::fmt::Debug for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyntaxError({self})")
    }
}

impl ParseError {
    /// A short, CRLF-free text suitable for a reason phrase.
    pub fn short_reason(&self) -> String {
        match self {
            ParseError::TooLarge { .. } => "Message Too Large".into(),
            ParseError::Empty => "Empty Message".into(),
            ParseError::TooManyHeaders { .. } => "Too Many Headers".into(),
            ParseError::HeaderTooLong { .. } => "Header Too Long".into(),
            ParseError::Truncated => "Truncated Message".into(),
            ParseError::BadStartLine => "Malformed Start Line".into(),
            ParseError::NotUtf8 => "Invalid UTF-8".into(),
            ParseError::BadHeader { .. } => "Malformed Header".into(),
            ParseError::MissingHeader { name } => format!("Missing {name}"),
            ParseError::BadHeaderValue { name } => format!("Malformed {name}"),
            ParseError::DuplicateHeader { name } => format!("Duplicate {name}"),
            ParseError::CseqMethodMismatch => "CSeq Method Mismatch".into(),
            ParseError::ContentLengthMismatch { .. } => "Content-Length Mismatch".into(),
            ParseError::UnsupportedUriScheme => "Unsupported URI Scheme".into(),
            ParseError::UnknownMethod => "Not Implemented".into(),
            ParseError::VersionNotSupported => "Version Not Supported".into(),
            ParseError::Syntax(_) => "Syntax Error".into(),
        }
    }
}

/// Canonical long name for a compact header form (RFC 3261 §7.3.3 and extensions).
fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'f' => "From",
        b't' => "To",
        b'v' => "Via",
        b'm' => "Contact",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'k' => "Supported",
        b'x' => "Session-Expires",
        b'e' => "Content-Encoding",
        b's' => "Subject",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        _ => return None,
    })
}

/// A control character other than HTAB (RFC 5234 `CTL`), never valid outside a body.
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// One header field after unfolding: canonical name and trimmed value.
struct RawHeader<'a> {
    name: &'a str,
    value: String,
}

/// Lines of `data` split on LF (CR stripped), with their byte offsets past the LF.
fn next_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(pos..)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, pos + nl + 1))
}

enum StartLine {
    Request { method: Method },
    Response,
}

fn check_start_line(line: &str) -> Result<StartLine, ParseError> {
    if line.bytes().any(|b| b == b'\t' || is_control(b)) || line.len() > MAX_HEADER_LINE {
        return Err(ParseError::BadStartLine);
    }
    let mut parts = line.splitn(3, ' ');
    let (a, b, c) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => return Err(ParseError::BadStartLine),
    };
    if a.eq_ignore_ascii_case("SIP/2.0") {
        let code_ok = b.len() == 3
            && b.bytes().all(|d| d.is_ascii_digit())
            && (b'1'..=b'6').contains(&b.as_bytes()[0]);
        if !code_ok {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response);
    }
    if a.is_empty() || !a.bytes().all(is_token_byte) || b.is_empty() || b.contains(' ') {
        return Err(ParseError::BadStartLine);
    }
    // RFC 3261 §8.2: the version, then the method (§8.2.1), then the Request-URI's
    // scheme (§8.2.2.1), each with its own answer.
    if !c.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if other_sip_version(c) {
            ParseError::VersionNotSupported
        } else {
            ParseError::BadStartLine
        });
    }
    if !grammar::uri(b) {
        return Err(ParseError::BadStartLine);
    }
    // rsip compares methods case-insensitively; SIP methods are case-sensitive.
    let method = match Method::from_str(a) {
        Ok(m) if m.to_string() == a => m,
        _ => return Err(ParseError::UnknownMethod),
    };
    let scheme = b.split(':').next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Err(ParseError::UnsupportedUriScheme);
    }
    Ok(StartLine::Request { method })
}

/// `SIP/<digits>.<digits>` (RFC 3261 §7.1 `SIP-Version`), any version.
fn other_sip_version(v: &str) -> bool {
    let Some(num) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .map(|_| &v[4..])
    else {
        return false;
    };
    let Some((major, minor)) = num.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|d| d.is_ascii_digit());
    digits(major) && digits(minor)
}

/// The option tags the gateway implements (RFC 3261 §19.2): a request that requires any
/// other gets 420 (see [`unsupported_required`]). `timer`: RFC 4028 session timers.
pub const SUPPORTED: &[&str] = &["timer"];

/// The methods the gateway serves, for `Allow` (RFC 3261 §20.5) in 200 to OPTIONS, 405 and
/// 501.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

/// Parses a CSeq value `"<number> <METHOD>"`.
fn parse_cseq(value: &str) -> Option<(u32, Method)> {
    let mut it = value.split_ascii_whitespace();
    let num = it.next()?;
    let method = it.next()?;
    if it.next().is_some() || num.len() > 10 || !num.bytes().all(|d| d.is_ascii_digit()) {
        return None;
    }
    let num: u32 = num.parse().ok()?;
    let m = Method::from_str(method).ok()?;
    (m.to_string() == method).then_some((num, m))
}

/// Parse one whole SIP message (a UDP datagram or one framed stream message).
///
/// Enforces [`MAX_MESSAGE_SIZE`], [`MAX_HEADERS`] and [`MAX_HEADER_LINE`] before rsip sees the
/// bytes; requires Via, From, To, Call-ID and CSeq; for requests the CSeq method must equal the
/// request method. A body longer than Content-Length is truncated to it (RFC 3261 §18.3), a
/// shorter one is an error; without Content-Length the body is the rest of the input. Leading
/// blank lines are skipped (RFC 3261 §7.5), folded header lines are unfolded and compact header
/// names are expanded. Never panics on any input.
pub fn parse(data: &[u8]) -> Result<SipMessage, ParseError> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge {
            size: data.len(),
            max: MAX_MESSAGE_SIZE,
        });
    }
    // Skip leading CRLFs (keep-alives and sloppy senders).
    let mut pos = 0;
    while pos < data.len() && (data[pos] == b'\r' || data[pos] == b'\n') {
        pos += 1;
    }
    if pos == data.len() {
        return Err(ParseError::Empty);
    }
    let (start, mut pos) = next_line(data, pos).ok_or(ParseError::Truncated)?;
    let start = std::str::from_utf8(start).map_err(|_| ParseError::NotUtf8)?;
    let kind = check_start_line(start)?;

    let mut headers: Vec<RawHeader<'_>> = Vec::new();
    let mut line_no = 1;
    let body_start = loop {
        let (line, next) = next_line(data, pos).ok_or(ParseError::Truncated)?;
        line_no += 1;
        pos = next;
        if line.is_empty() {
            break pos;
        }
        if line.len() > MAX_HEADER_LINE {
            return Err(ParseError::HeaderTooLong {
                len: line.len(),
                max: MAX_HEADER_LINE,
            });
        }
        let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
        // No control character but HTAB in a header field (RFC 3261 §25.1): what we accept
        // we can also write (see [`write`]).
        if line.bytes().any(is_control) {
            return Err(ParseError::BadHeader { line: line_no });
        }
        if line.starts_with([' ', '\t']) {
            // Continuation of the previous header field (RFC 3261 §7.3.1).
            let prev = headers
                .last_mut()
                .ok_or(ParseError::BadHeader { line: line_no })?;
            let cont = line.trim();
            if !cont.is_empty() {
                if !prev.value.is_empty() {
                    prev.value.push(' ');
                }
                prev.value.push_str(cont);
            }
            let len = prev.name.len() + 2 + prev.value.len();
            if len > MAX_HEADER_LINE {
                return Err(ParseError::HeaderTooLong {
                    len,
                    max: MAX_HEADER_LINE,
                });
            }
            continue;
        }
        let colon = line
            .find(':')
            .ok_or(ParseError::BadHeader { line: line_no })?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ParseError::BadHeader { line: line_no });
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders { max: MAX_HEADERS });
        }
        let name = expand_compact(name).unwrap_or(name);
        let value = line[colon + 1..].trim_matches([' ', '\t']).to_string();
        headers.push(RawHeader { name, value });
    };

    let find = |n: &str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(n));
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        match find(name) {
            None => return Err(ParseError::MissingHeader { name }),
            Some(h) if h.value.is_empty() => return Err(ParseError::BadHeaderValue { name }),
            Some(_) => {}
        }
    }
    // The headers the gateway interprets must be exactly understood (docs/decisions.md
    // §15.1): well-formed, and the single ones single.
    for h in &headers {
        grammar::check(h.name, &h.value).map_err(|name| ParseError::BadHeaderValue { name })?;
    }
    for name in grammar::SINGLE {
        if headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .nth(1)
            .is_some()
        {
            return Err(ParseError::DuplicateHeader { name });
        }
    }
    let cseq = find("CSeq").map(|h| h.value.as_str()).unwrap_or_default();
    let (_, cseq_method) = parse_cseq(cseq).ok_or(ParseError::BadHeaderValue { name: "CSeq" })?;
    if let StartLine::Request { method } = &kind {
        if *method != cseq_method {
            return Err(ParseError::CseqMethodMismatch);
        }
    }

    let available = data.len() - body_start;
    let mut declared: Option<u64> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Content-Length"))
    {
        let v = h.value.as_str();
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|d| d.is_ascii_digit()) {
            return Err(ParseError::BadHeaderValue {
                name: "Content-Length",
            });
        }
        let n: u64 = v.parse().map_err(|_| ParseError::BadHeaderValue {
            name: "Content-Length",
        })?;
        if declared.is_some_and(|d| d != n) {
            return Err(ParseError::BadHeaderValue {
                name: "Content-Length",
            });
        }
        declared = Some(n);
    }
    let body_len = match declared {
        Some(d) if d > available as u64 => {
            return Err(ParseError::ContentLengthMismatch {
                declared: d,
                actual: available,
            })
        }
        // d <= available, so it fits in usize.
        Some(d) => d as usize,
        None => available,
    };
    let body = &data[body_start..body_start + body_len];

    // Canonical rebuild for rsip: CRLF line ends, unfolded, long names, one space after ':'.
    let mut canon = Vec::with_capacity(data.len() + 64);
    canon.extend_from_slice(start.as_bytes());
    canon.extend_from_slice(b"\r\n");
    for h in &headers {
        canon.extend_from_slice(h.name.as_bytes());
        canon.extend_from_slice(b": ");
        canon.extend_from_slice(h.value.as_bytes());
        canon.extend_from_slice(b"\r\n");
    }
    canon.extend_from_slice(b"\r\n");
    canon.extend_from_slice(body);
    let mut msg = SipMessage::try_from(&canon[..])?;
    // rsip splits the body itself; make sure it is exactly ours (binary-safe).
    *msg.body_mut() = body.to_vec();
    Ok(msg)
}

/// Builds a `400 Bad Request` (`416 Unsupported URI Scheme` for
/// [`ParseError::UnsupportedUriScheme`], `501 Not Implemented` for
/// [`ParseError::UnknownMethod`], `505 Version Not Supported` for
/// [`ParseError::VersionNotSupported`]) for input that failed [`parse`] but still looks like a request
/// (start line `METHOD uri SIP/2.0`, method not ACK) carrying well-formed Via, From, To,
/// Call-ID and CSeq lines that can be copied. Returns `None` otherwise: the message is dropped silently
/// (RFC 3261 §16.3, §18.1.2).
pub fn bad_request(data: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    let data = &data[..data.len().min(MAX_MESSAGE_SIZE)];
    let mut pos = 0;
    while pos < data.len() && (data[pos] == b'\r' || data[pos] == b'\n') {
        pos += 1;
    }
    let (start, mut pos) = next_line(data, pos)?;
    let start = std::str::from_utf8(start).ok()?;
    let mut parts = start.split(' ');
    let method = parts.next()?;
    let _uri = parts.next().filter(|u| !u.is_empty())?;
    let version = parts.next()?;
    let version_ok = version.eq_ignore_ascii_case("SIP/2.0")
        || (matches!(err, ParseError::VersionNotSupported) && other_sip_version(version));
    if parts.next().is_some()
        || !version_ok
        || method.is_empty()
        || !method.bytes().all(is_token_byte)
        || method.eq_ignore_ascii_case("ACK")
    {
        return None;
    }
    let mut vias: Vec<&str> = Vec::new();
    let mut from = None;
    let mut to = None;
    let mut call_id = None;
    let mut cseq = None;
    let mut count = 0;
    while let Some((line, next)) = next_line(data, pos) {
        pos = next;
        count += 1;
        if line.is_empty() || count > MAX_HEADERS * 2 {
            break;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if line.len() > MAX_HEADER_LINE
            || line.starts_with([' ', '\t'])
            || line.bytes().any(is_control)
        {
            continue;
        }
        let Some(colon) = line.find(':') else {
            continue;
        };
        let name = line[..colon].trim();
        let name = expand_compact(name).unwrap_or(name);
        let value = line[colon + 1..].trim();
        if value.is_empty() {
            continue;
        }
        if name.eq_ignore_ascii_case("Via") {
            if vias.len() < MAX_HEADERS {
                vias.push(value);
            }
        } else if name.eq_ignore_ascii_case("From") {
            from.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("To") {
            to.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("Call-ID") {
            call_id.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("CSeq") {
            cseq.get_or_insert(value);
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    // What we echo must be well-formed itself: a 400 never carries a header we could not
    // parse exactly (no usable Via: nowhere to send it, RFC 3261 §18.2.2).
    if vias.is_empty()
        || !vias.iter().all(|v| grammar::via(v))
        || !grammar::from_to(from)
        || !grammar::from_to(to)
        || !grammar::call_id(call_id)
        || !cseq_ok(cseq, method, err)
    {
        return None;
    }
    // RFC 3261 §8.2.2.1: an unsupported Request-URI scheme is 416, the rest 400.
    let mut out = match err {
        ParseError::UnsupportedUriScheme => "SIP/2.0 416 Unsupported URI Scheme\r\n".to_string(),
        ParseError::UnknownMethod => format!("SIP/2.0 501 Not Implemented\r\nAllow: {ALLOW}\r\n"),
        ParseError::VersionNotSupported => "SIP/2.0 505 Version Not Supported\r\n".to_string(),
        _ => format!("SIP/2.0 400 Bad Request ({})\r\n", err.short_reason()),
    };
    for v in vias {
        out.push_str("Via: ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("From: ");
    out.push_str(from);
    out.push_str("\r\nTo: ");
    out.push_str(to);
    if param_value(to, "tag").is_none() {
        out.push_str(";tag=");
        out.push_str(&new_tag());
    }
    out.push_str("\r\nCall-ID: ");
    out.push_str(call_id);
    out.push_str("\r\nCSeq: ");
    out.push_str(cseq);
    out.push_str("\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// Whether the CSeq of a refused request can be echoed: a method we know (RFC 3261 §20.16),
/// or for [`ParseError::UnknownMethod`] the request's own method token.
fn cseq_ok(cseq: &str, method: &str, err: &ParseError) -> bool {
    if parse_cseq(cseq).is_some() {
        return true;
    }
    if !matches!(err, ParseError::UnknownMethod) {
        return false;
    }
    let mut it = cseq.split_ascii_whitespace();
    let (Some(num), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    num.len() <= 10
        && num.bytes().all(|d| d.is_ascii_digit())
        && num.parse::<u32>().is_ok()
        && m == method
}

/// Standard reason phrase for a status code (RFC 3261 §21 and common extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Splits a header value into its parts outside `<...>` and quotes, returning the value of
/// parameter `name` (case-insensitive) from the `;`-separated parameters, if present.
pub(crate) fn param_value(value: &str, name: &str) -> Option<String> {
    // Only parameters after the closing '>' (if any) belong to the header, not the URI.
    let tail = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    // Stop at a comma: a second header value follows.
    let tail = tail.split(',').next().unwrap_or("");
    for p in tail.split(';').skip(1) {
        let (k, v) = match p.find('=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, ""),
        };
        if k.trim().eq_ignore_ascii_case(name) {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// Value of the first Via header value (up to the first comma outside quotes).
fn first_via_value(value: &str) -> &str {
    value.split(',').next().unwrap_or("").trim()
}

/// The sent-by (`host[:port]`) of a Via header value, lowercased.
pub(crate) fn via_sent_by(value: &str) -> Option<String> {
    let v = first_via_value(value);
    let after_proto = v.split_once(char::is_whitespace)?.1.trim_start();
    let sent_by = after_proto.split(';').next()?.trim();
    (!sent_by.is_empty()).then(|| sent_by.to_ascii_lowercase())
}

fn header_name(h: &Header) -> String {
    match h {
        Header::Other(name, _) => expand_compact(name).unwrap_or(name).to_string(),
        _ => {
            let s = h.to_string();
            s.split(':').next().unwrap_or("").trim().to_string()
        }
    }
}

fn header_raw_value(h: &Header) -> String {
    match h {
        Header::Other(_, v) => v.trim().to_string(),
        _ => {
            let s = h.to_string();
            s.split_once(':')
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        }
    }
}

/// Convenience accessors for the headers that transactions and dialogs need.
/// Implemented for [`rsip::Request`], [`rsip::Response`] and [`rsip::SipMessage`].
pub trait MessageExt {
    /// The Call-ID value.
    fn call_id(&self) -> Option<String>;
    /// The `tag` parameter of From.
    #[allow(clippy::wrong_self_convention)]
    fn from_tag(&self) -> Option<String>;
    /// The `tag` parameter of To.
    fn to_tag(&self) -> Option<String>;
    /// CSeq number and method.
    fn cseq(&self) -> Option<(u32, Method)>;
    /// The `branch` parameter of the topmost Via.
    fn top_via_branch(&self) -> Option<String>;
    /// First header with this name, case-insensitive, including compact forms for the
    /// standard ones (i,f,t,v,m,l,c,k,x=Session-Expires), value trimmed.
    fn header_value(&self, name: &str) -> Option<String>;
    /// The Content-Type value.
    fn content_type(&self) -> Option<String>;
}

impl<T: HasHeaders> MessageExt for T {
    fn call_id(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::CallId(c) => Some(c.value().trim().to_string()),
            _ => None,
        })
    }

    fn from_tag(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::From(f) => param_value(f.value(), "tag"),
            _ => None,
        })
    }

    fn to_tag(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::To(t) => param_value(t.value(), "tag"),
            _ => None,
        })
    }

    fn cseq(&self) -> Option<(u32, Method)> {
        self.headers().iter().find_map(|h| match h {
            Header::CSeq(_) => parse_cseq(&header_raw_value(h)),
            _ => None,
        })
    }

    fn top_via_branch(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::Via(_) => param_value(first_via_value(&header_raw_value(h)), "branch"),
            _ => None,
        })
    }

    fn header_value(&self, name: &str) -> Option<String> {
        let name = expand_compact(name).unwrap_or(name);
        self.headers()
            .iter()
            .find(|h| header_name(h).eq_ignore_ascii_case(name))
            .map(header_raw_value)
    }

    fn content_type(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::ContentType(_) => Some(header_raw_value(h)),
            _ => None,
        })
    }
}

/// The option tags a request's `Require` headers name that are not in `supported`
/// (RFC 3261 §8.2.2.3: answered 420 with these in `Unsupported`). Compared without regard
/// to case; each listed once, in the order given.
pub fn unsupported_required(req: &Request, supported: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in req.headers.iter() {
        if !header_name(h).eq_ignore_ascii_case("Require") {
            continue;
        }
        for tag in header_raw_value(h).split(',').map(str::trim) {
            if tag.is_empty()
                || supported.iter().any(|s| s.eq_ignore_ascii_case(tag))
                || out.iter().any(|o| o.eq_ignore_ascii_case(tag))
            {
                continue;
            }
            out.push(tag.to_string());
        }
    }
    out
}

/// First Via header value of a message (its topmost Via), as a string.
pub(crate) fn top_via_value<T: HasHeaders>(msg: &T) -> Option<String> {
    msg.headers().iter().find_map(|h| match h {
        Header::Via(_) => Some(first_via_value(&header_raw_value(h)).to_string()),
        _ => None,
    })
}

/// A response to `req` with status `code`: copies all Via, From, To (adding `;tag=to_tag`
/// when To has no tag and `to_tag` is given), Call-ID and CSeq (RFC 3261 §8.2.6); standard
/// reason phrase, Content-Length 0, no body.
pub fn make_response(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(_) => {
                let mut v = header_raw_value(h);
                if let (Some(tag), None) = (to_tag, param_value(&v, "tag")) {
                    v.push_str(";tag=");
                    v.push_str(tag);
                }
                headers.push(Header::To(rsip::headers::To::new(v)));
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

fn copy_dialog_headers(invite: &Request, to: Header, method: Method) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(Header::Via(rsip::headers::Via::new(first_via_value(
            &header_raw_value(via),
        ))));
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for h in invite.headers.iter() {
        if let Header::From(_) | Header::CallId(_) | Header::Route(_) = h {
            headers.push(h.clone());
        }
    }
    headers.push(to);
    let seq = invite.cseq().map(|(n, _)| n).unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{seq} {method}"
    ))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// CANCEL for a sent INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, top Via
/// (same branch) and Route headers; CSeq with the INVITE's number and method CANCEL;
/// Max-Forwards 70.
pub fn make_cancel(invite: &Request) -> Request {
    let to = invite
        .headers
        .iter()
        .find(|h| matches!(h, Header::To(_)))
        .cloned()
        .unwrap_or_else(|| Header::To(rsip::headers::To::new(invite.uri.to_string())));
    copy_dialog_headers(invite, to, Method::Cancel)
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, top Via (same
/// branch), From, Call-ID and Route headers as the INVITE, To from the response (with its
/// tag), CSeq with the INVITE's number and method ACK.
pub fn make_non2xx_ack(invite: &Request, response: &Response) -> Request {
    let to = response
        .headers
        .iter()
        .chain(invite.headers.iter())
        .find(|h| matches!(h, Header::To(_)))
        .cloned()
        .unwrap_or_else(|| Header::To(rsip::headers::To::new(invite.uri.to_string())));
    copy_dialog_headers(invite, to, Method::Ack)
}

fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new RFC 3261 branch: the magic cookie `z9hG4bK` followed by 16 random alphanumerics.
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_string(16))
}

/// A new From/To tag of 10 random alphanumerics.
pub fn new_tag() -> String {
    random_string(10)
}

/// A new Call-ID: 20 random alphanumerics `@host`.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{host}", random_string(20))
}

#[cfg(test)]
mod tests {
    #[test]
    fn required_extensions_we_lack_are_listed_once() {
        let raw =
            "OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                   From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
                   CSeq: 1 OPTIONS\r\nRequire: 100rel, Timer\r\nRequire: foo,100REL\r\n\
                   Content-Length: 0\r\n\r\n";
        let SipMessage::Request(req) = parse(raw.as_bytes()).unwrap() else {
            panic!("a request")
        };
        assert_eq!(unsupported_required(&req, SUPPORTED), vec!["100rel", "foo"]);
        assert!(unsupported_required(&req, &["timer", "100rel", "foo"]).is_empty());
    }

    use super::*;

    #[test]
    fn syntax_errors_never_quote_the_message() {
        // rsip's own error text quotes the input: numbers and the digest response.
        let secret = "response=\"6629fae49393a05397450978507c4ef1\"";
        let mut hit = 0;
        let mut quoted = 0;
        for uri in [
            // Well-formed by RFC 3261 (our grammar passes them), not for rsip. (A `tel:`
            // Request-URI never reaches rsip: UnsupportedUriScheme, which quotes nothing.)
            "sip:+4930123456789@[2001:db8::10]:5070",
            "sip:+4930123456789@host;maddr=[zz]",
            "sip:+4930123456789@host;a=b?c=d",
        ] {
            let raw = format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                 From: <sip:+4420795550123@a>;tag=1\r\nTo: <sip:+4930123456789@b>\r\n\
                 Call-ID: c\r\nCSeq: 1 INVITE\r\n\
                 Authorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"{uri}\", {secret}\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let Err(e @ ParseError::Syntax(_)) = parse(raw.as_bytes()) else {
                continue;
            };
            hit += 1;
            let ParseError::Syntax(inner) = &e else {
                unreachable!()
            };
            let detail = inner.detail().to_string();
            if detail.contains("6629fae4") {
                quoted += 1;
            }
            for shown in [e.to_string(), format!("{e:?}"), inner.kind().to_string()] {
                for leak in ["4930123456789", "4420795550123", "6629fae4", "Digest"] {
                    assert!(
                        !shown.contains(leak),
                        "{leak} in {shown:?} (rsip said {detail:?})"
                    );
                }
            }
        }
        assert_eq!(hit, 3, "not every input reached rsip's errors");
        assert!(
            quoted > 0,
            "rsip no longer quotes its input: the test proves nothing"
        );
        // A missing header's name is kept: it is rsip's word, not input.
        let e = SyntaxError::from(rsip::Error::MissingHeader("Via".into()));
        assert_eq!(e.to_string(), "missing header Via");
        let e = SyntaxError::from(rsip::Error::MissingHeader("To: <sip:123@x>".into()));
        assert_eq!(e.to_string(), "missing header");
        let e = SyntaxError::from(rsip::Error::TokenizeError("sip:4930123456789@x".into()));
        assert_eq!(
            format!("{e} {e:?}"),
            "cannot tokenize SyntaxError(cannot tokenize)"
        );
    }

    #[test]
    fn params_and_sent_by() {
        assert_eq!(
            param_value("\"A;tag=x\" <sip:a@b;tag=no>;tag=yes", "tag").as_deref(),
            Some("yes")
        );
        assert_eq!(param_value("sip:a@b;tag=1", "TAG").as_deref(), Some("1"));
        assert_eq!(param_value("<sip:a@b;tag=1>", "tag"), None);
        assert_eq!(
            via_sent_by("SIP/2.0/UDP Host.Example:5060 ;branch=z9hG4bK1").as_deref(),
            Some("host.example:5060")
        );
        assert_eq!(via_sent_by("garbage"), None);
    }

    #[test]
    fn ids_have_the_right_shape() {
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK") && b.len() >= 23);
        assert!(new_tag().len() >= 8);
        assert!(new_call_id("h.example").ends_with("@h.example"));
        assert_ne!(new_branch(), new_branch());
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(487), "Request Terminated");
        assert_eq!(reason_phrase(499), "Client Error");
    }
}
