//! SIP transports and stream framing (RFC 3261 §18, RFC 5626 §4.4.1).
//!
//! [`Transport`] names the transport a message travels over and [`Peer`] pairs it with the
//! remote socket address. [`StreamFramer`] is the sans-IO framer for SIP over TCP and TLS
//! (RFC 3261 §18.3): it cuts a byte stream into whole messages using Content-Length, skips the
//! CRLF keep-alives of RFC 5626 (and reports when a double-CRLF ping needs a single-CRLF pong),
//! and bounds the header block and the body so a peer cannot make it buffer without limit.

use bytes::{Bytes, BytesMut};

/// The transport protocol a SIP message is carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (unreliable: transactions retransmit).
    Udp,
    /// TCP (reliable, stream framed).
    Tcp,
    /// TLS over TCP (reliable, stream framed; `sips:` capable).
    Tls,
}

impl Transport {
    /// True for stream transports, where transactions do not retransmit (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The token used in the Via header: `"UDP"`, `"TCP"` or `"TLS"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Parses a transport token, case-insensitively (`"udp"`, `"TCP"`, `"Tls"`).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Some(Transport::Tls)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A remote SIP endpoint: socket address plus transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The remote socket address.
    pub addr: std::net::SocketAddr,
    /// The transport used to reach it.
    pub transport: Transport,
}

/// Largest header block (start line and headers, with the blank line) accepted on a stream.
pub const MAX_HEADER_LEN: usize = 16 * 1024;
/// Largest body (Content-Length) accepted on a stream.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Largest amount of unconsumed data the framer buffers.
pub const MAX_BUFFER_LEN: usize = MAX_HEADER_LEN + MAX_BODY_LEN + 16 * 1024;

/// Why a stream could not be framed. After any of these the connection should be closed:
/// the framer stays failed and keeps returning the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// No blank line ended the header block within the limit.
    #[error("SIP header block exceeds {max} bytes (have {len} without an end)")]
    HeaderTooLarge {
        /// Bytes buffered without finding the end of the headers.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Content-Length announces a body above the limit.
    #[error("SIP body of {len} bytes exceeds {max}")]
    BodyTooLarge {
        /// The announced Content-Length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message on a stream transport has no Content-Length (RFC 3261 §18.3 requires it).
    #[error("SIP message on a stream has no Content-Length")]
    MissingContentLength,
    /// Content-Length is not a decimal number, or appears twice with different values.
    #[error("SIP message has an invalid Content-Length")]
    BadContentLength,
    /// The caller pushed more data than the framer buffers without draining messages.
    #[error("stream buffer full: {len} bytes buffered, limit {max}")]
    BufferFull {
        /// Bytes that would have been buffered.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Sans-IO framing of SIP over a byte stream (RFC 3261 §18.3).
///
/// Skips CRLF keep-alives (an RFC 5626 double-CRLF ping makes [`take_pong`](Self::take_pong)
/// report that a CRLF pong is needed), finds the header end, requires Content-Length, and bounds
/// the header block ([`MAX_HEADER_LEN`]) and body ([`MAX_BODY_LEN`]). Violations are errors after
/// which the connection should be closed.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    /// Bytes of `buf` already searched for the header end without success.
    scanned: usize,
    /// Header length and body length of the message at the front, once known.
    pending: Option<(usize, usize)>,
    /// Consecutive CRLFs seen between messages.
    crlf_run: u8,
    pong: bool,
    failed: Option<FramingError>,
}

impl StreamFramer {
    /// A framer with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream. Fails (and stays failed) when the buffer would
    /// exceed [`MAX_BUFFER_LEN`]; call [`next_message`](Self::next_message) until it returns
    /// `None` after each push.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let len = self.buf.len().saturating_add(data.len());
        if len > MAX_BUFFER_LEN {
            return Err(self.fail(FramingError::BufferFull {
                len,
                max: MAX_BUFFER_LEN,
            }));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete message (header block and body), or `None` if more data is needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.pending.is_none() {
            self.skip_keepalives();
            if self.buf.is_empty() {
                return Ok(None);
            }
            let Some(header_len) = self.find_header_end() else {
                if self.buf.len() > MAX_HEADER_LEN {
                    return Err(self.fail(FramingError::HeaderTooLarge {
                        len: self.buf.len(),
                        max: MAX_HEADER_LEN,
                    }));
                }
                return Ok(None);
            };
            if header_len > MAX_HEADER_LEN {
                return Err(self.fail(FramingError::HeaderTooLarge {
                    len: header_len,
                    max: MAX_HEADER_LEN,
                }));
            }
            let body_len = match content_length(&self.buf[..header_len]) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(e)),
            };
            if body_len > MAX_BODY_LEN {
                return Err(self.fail(FramingError::BodyTooLarge {
                    len: body_len,
                    max: MAX_BODY_LEN,
                }));
            }
            self.pending = Some((header_len, body_len));
        }
        let Some((header_len, body_len)) = self.pending else {
            return Ok(None);
        };
        let total = header_len + body_len;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.pending = None;
        self.scanned = 0;
        Ok(Some(self.buf.split_to(total).freeze()))
    }

    /// True once after a CRLFCRLF keep-alive ping was seen: the caller sends a CRLF pong back.
    pub fn take_pong(&mut self) -> bool {
        std::mem::take(&mut self.pong)
    }

    /// Bytes buffered and not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.failed = Some(e.clone());
        e
    }

    /// Drops CRLFs between messages, counting pairs as RFC 5626 pings.
    fn skip_keepalives(&mut self) {
        loop {
            if self.buf.starts_with(b"\r\n") {
                let _ = self.buf.split_to(2);
                self.crlf_run += 1;
                if self.crlf_run >= 2 {
                    self.pong = true;
                    self.crlf_run = 0;
                }
            } else if self.buf.first() == Some(&b'\n') {
                // A bare LF keep-alive from a sloppy peer: skip it, it is not a ping.
                let _ = self.buf.split_to(1);
            } else {
                if !self.buf.is_empty() && self.buf[..] != b"\r"[..] {
                    self.crlf_run = 0;
                }
                return;
            }
        }
    }

    /// Length of the header block including the blank line, if it is complete.
    fn find_header_end(&mut self) -> Option<usize> {
        let limit = self.buf.len().min(MAX_HEADER_LEN + 4);
        let start = self.scanned.saturating_sub(3);
        let hay = &self.buf[start..limit];
        let mut i = 0;
        while i < hay.len() {
            if hay[i] == b'\n' {
                if hay[i + 1..].starts_with(b"\r\n") {
                    return Some(start + i + 3);
                }
                if hay[i + 1..].starts_with(b"\n") {
                    return Some(start + i + 2);
                }
            }
            i += 1;
        }
        self.scanned = limit;
        None
    }
}

/// When a stream connection must be closed for want of complete messages (the framing of
/// RFC 3261 §18.3 has no timer; this follows Kamailio's `tcp_msg_read_timeout` and
/// `tcp_connection_lifetime`). Sans-IO: the driver passes the time in.
///
/// Only a complete message (or an RFC 5626 double-CRLF keep-alive) moves the idle deadline;
/// bytes of an unfinished message never do, so a peer that trickles a byte at a time is closed
/// `message_timeout` after its message began. An inbound connection must deliver its first
/// message within `message_timeout` of being accepted.
#[derive(Debug, Clone)]
pub struct StreamDeadline {
    message_timeout: std::time::Duration,
    idle: std::time::Duration,
    /// The last complete message (or the moment the connection opened).
    last: std::time::Instant,
    /// When the message being received began, if one is under way.
    started: Option<std::time::Instant>,
    /// Inbound and nothing complete yet: the first message is due by `last + message_timeout`.
    awaiting_first: bool,
}

impl StreamDeadline {
    /// A connection we accepted at `now`: its first message is due within `message_timeout`.
    pub fn inbound(
        now: std::time::Instant,
        message_timeout: std::time::Duration,
        idle: std::time::Duration,
    ) -> Self {
        Self {
            message_timeout,
            idle,
            last: now,
            started: None,
            awaiting_first: true,
        }
    }

    /// A connection we opened at `now`: the peer may stay silent up to `idle`.
    pub fn outbound(
        now: std::time::Instant,
        message_timeout: std::time::Duration,
        idle: std::time::Duration,
    ) -> Self {
        Self {
            awaiting_first: false,
            ..Self::inbound(now, message_timeout, idle)
        }
    }

    /// A complete message (or a keep-alive ping) arrived at `now`.
    pub fn on_message(&mut self, now: std::time::Instant) {
        self.last = now;
        self.started = None;
        self.awaiting_first = false;
    }

    /// Bytes arrived at `now` and were framed; `partial` is true when an unfinished message
    /// remains buffered (see [`StreamFramer::buffered`]).
    pub fn on_data(&mut self, now: std::time::Instant, partial: bool) {
        if !partial {
            self.started = None;
        } else if self.started.is_none() {
            self.started = Some(now);
        }
    }

    /// When the connection must be closed unless a message completes first.
    pub fn deadline(&self) -> std::time::Instant {
        let idle = if self.awaiting_first {
            self.last + self.message_timeout
        } else {
            self.last + self.idle
        };
        match self.started {
            Some(s) => idle.min(s + self.message_timeout),
            None => idle,
        }
    }
}

/// Content-Length (or compact `l`) of a header block; folded lines are not headers.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    // Skip the start line.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        let n = value
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        match found {
            Some(prev) if prev != n => return Err(FramingError::BadContentLength),
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3261 §24.2 (F1), trimmed, with a Content-Length added for stream framing.
    const OPTIONS: &[u8] = b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n\
Via: SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n\
Max-Forwards: 70\r\n\
To: <sip:carol@chicago.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    fn with_body(body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\n\
             l: {}\r\n\r\n{}",
            body.len(),
            body
        )
        .into_bytes()
    }

    #[test]
    fn transport_tokens() {
        assert_eq!(Transport::parse("udp"), Some(Transport::Udp));
        assert_eq!(Transport::parse("TcP"), Some(Transport::Tcp));
        assert_eq!(Transport::parse("TLS"), Some(Transport::Tls));
        assert_eq!(Transport::parse("sctp"), None);
        assert_eq!(Transport::Tls.as_str(), "TLS");
        assert!(!Transport::Udp.is_reliable());
        assert!(Transport::Tcp.is_reliable());
    }

    #[test]
    fn frames_whole_and_split_messages() {
        let mut f = StreamFramer::new();
        let mut data = OPTIONS.to_vec();
        data.extend(with_body("hello"));
        // Feed byte by byte.
        let mut out = Vec::new();
        for b in &data {
            f.push(std::slice::from_ref(b)).unwrap();
            while let Some(m) = f.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][..], OPTIONS);
        assert!(out[1].ends_with(b"\r\n\r\nhello"));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn keepalive_ping_and_pong() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n").unwrap();
        assert_eq!(f.next_message().unwrap(), None);
        assert!(!f.take_pong());
        f.push(b"\r\n").unwrap();
        assert_eq!(f.next_message().unwrap(), None);
        assert!(f.take_pong());
        assert!(!f.take_pong());
        // A single CRLF (a pong from the peer) before a message is skipped silently.
        f.push(b"\r\n").unwrap();
        f.push(OPTIONS).unwrap();
        assert_eq!(f.next_message().unwrap().as_deref(), Some(OPTIONS));
        assert!(!f.take_pong());
    }

    #[test]
    fn missing_and_bad_content_length() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n").unwrap();
        assert_eq!(f.next_message(), Err(FramingError::MissingContentLength));
        // Sticky.
        assert_eq!(f.push(b"x"), Err(FramingError::MissingContentLength));

        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n")
            .unwrap();
        assert_eq!(f.next_message(), Err(FramingError::BadContentLength));

        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n")
            .unwrap();
        assert_eq!(f.next_message(), Err(FramingError::BadContentLength));
    }

    #[test]
    fn bounds() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 70000\r\n\r\n")
            .unwrap();
        assert_eq!(
            f.next_message(),
            Err(FramingError::BodyTooLarge {
                len: 70000,
                max: MAX_BODY_LEN
            })
        );

        let mut f = StreamFramer::new();
        let mut junk = b"OPTIONS sip:a SIP/2.0\r\n".to_vec();
        while junk.len() <= MAX_HEADER_LEN {
            junk.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        f.push(&junk).unwrap();
        assert!(matches!(
            f.next_message(),
            Err(FramingError::HeaderTooLarge { .. })
        ));

        let mut f = StreamFramer::new();
        assert!(matches!(
            f.push(&vec![b'a'; MAX_BUFFER_LEN + 1]),
            Err(FramingError::BufferFull { .. })
        ));
    }

    #[test]
    fn deadline_moves_only_with_complete_messages() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let (msg, idle) = (Duration::from_secs(20), Duration::from_secs(300));
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut d = StreamDeadline::inbound(t0, msg, idle);
        // A silent inbound connection: closed after the message timeout.
        assert_eq!(d.deadline(), s(20));
        // A byte every second of a message that never ends: the deadline stays put.
        let mut f = StreamFramer::new();
        for i in 0..15 {
            f.push(&OPTIONS[i..i + 1]).unwrap();
            assert_eq!(f.next_message().unwrap(), None);
            d.on_data(s(i as u64), f.buffered() > 0);
            assert_eq!(d.deadline(), s(20));
        }
        // The message completes: idle from now, a new message must finish in 20 s.
        f.push(&OPTIONS[15..]).unwrap();
        assert!(f.next_message().unwrap().is_some());
        d.on_message(s(16));
        d.on_data(s(16), f.buffered() > 0);
        assert_eq!(d.deadline(), s(316));
        f.push(b"INVITE sip:x SIP/2.0\r\n").unwrap();
        assert_eq!(f.next_message().unwrap(), None);
        d.on_data(s(100), f.buffered() > 0);
        assert_eq!(d.deadline(), s(120));
        d.on_data(s(110), true);
        assert_eq!(d.deadline(), s(120), "more bytes do not extend it");
        // Outbound: the peer may stay silent up to the idle time.
        let d = StreamDeadline::outbound(t0, msg, idle);
        assert_eq!(d.deadline(), s(300));
    }

    #[test]
    fn waits_for_body() {
        let mut f = StreamFramer::new();
        let m = with_body("0123456789");
        f.push(&m[..m.len() - 3]).unwrap();
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&m[m.len() - 3..]).unwrap();
        assert_eq!(f.next_message().unwrap().as_deref(), Some(&m[..]));
    }
}
