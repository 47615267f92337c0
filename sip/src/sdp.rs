//! SDP session descriptions (RFC 4566) and the offer/answer model (RFC 3264).
//!
//! [`SessionDescription`] keeps every line, in order, so attributes it does not understand
//! round-trip untouched; `o=`, `c=`, `m=` and the direction and `rtpmap` attributes are read on
//! demand. Parsing bounds the text ([`MAX_SDP_LEN`]), the line count ([`MAX_LINES`]) and the media
//! count ([`MAX_MEDIA`]), accepts LF or CRLF line ends, and checks the syntax of the lines the
//! gateway relies on. [`SessionDescription::anchor`] rewrites addresses and ports so media flows
//! through the B2BUA; [`answer`] and [`offer`] build the gateway's own G.711 descriptions with
//! RFC 4733 telephone-events.

use std::fmt;
use std::net::IpAddr;

/// Longest SDP body accepted.
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// Most lines accepted.
pub const MAX_LINES: usize = 256;
/// Most `m=` sections accepted.
pub const MAX_MEDIA: usize = 16;

/// Why an SDP body was rejected or no answer could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body exceeds [`MAX_SDP_LEN`].
    #[error("SDP of {len} bytes exceeds {max}")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_LINES`] lines.
    #[error("SDP has more than {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_MEDIA`] media sections.
    #[error("SDP has more than {max} media sections")]
    TooManyMedia {
        /// The limit.
        max: usize,
    },
    /// A malformed line (1-based line number).
    #[error("SDP syntax error on line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The offer has no usable audio stream.
    #[error("SDP offer has no audio stream")]
    NoAudio,
    /// The offered audio has no codec (PCMU/PCMA over RTP/AVP) in common with the gateway.
    #[error("no codec in common with the SDP offer")]
    NoCommonCodec,
    /// The offer has no `m=image … udptl t38` stream.
    #[error("SDP offer has no T.38 stream")]
    NoT38,
}

/// Media direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name (`sendrecv`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction an answerer uses for an offered direction (RFC 3264 §6.1).
    pub fn answer(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What the gateway needs to know about the first audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// Connection address (media-level `c=` overrides session-level).
    pub addr: IpAddr,
    /// RTP port.
    pub port: u16,
    /// Payload types, in the `m=` line's order of preference.
    pub payload_types: Vec<u8>,
    /// Encoding names (`"PCMU"`, `"PCMA"`, `"telephone-event"`), index-aligned with
    /// `payload_types`: from `a=rtpmap`, else the RFC 3551 static name, else empty.
    pub codecs: Vec<String>,
    /// Payload type of `telephone-event/8000`, if offered.
    pub telephone_event: Option<u8>,
    /// Media direction (media-level attribute overrides session-level).
    pub direction: Direction,
}

/// One `x=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    kind: u8,
    value: String,
}

/// A parsed `m=` line.
struct MediaLine<'a> {
    media: &'a str,
    port: u16,
    proto: &'a str,
    fmts: Vec<&'a str>,
}

/// An SDP session description that keeps all lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    lines: Vec<Line>,
}

impl SessionDescription {
    /// Parses an SDP body (LF or CRLF line ends), bounded by [`MAX_SDP_LEN`], [`MAX_LINES`]
    /// and [`MAX_MEDIA`]. Blank lines are skipped; `v=` must come first; `o=`, `c=` and `m=`
    /// lines are checked.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge {
                len: text.len(),
                max: MAX_SDP_LEN,
            });
        }
        let mut lines = Vec::new();
        let mut media = 0;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.trim().is_empty() {
                continue;
            }
            if lines.len() >= MAX_LINES {
                return Err(SdpError::TooManyLines { max: MAX_LINES });
            }
            let b = raw.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
                return Err(syntax(n, "expected <letter>=<value>"));
            }
            let line = Line {
                kind: b[0],
                value: raw[2..].to_owned(),
            };
            if lines.is_empty() && (line.kind != b'v' || line.value.trim() != "0") {
                return Err(syntax(n, "first line must be v=0"));
            }
            match line.kind {
                b'o' => {
                    parse_origin(&line.value).ok_or(syntax(n, "bad o= line"))?;
                }
                b'c' => {
                    parse_connection(&line.value).ok_or(syntax(n, "bad c= line"))?;
                }
                b'm' => {
                    parse_media(&line.value).ok_or(syntax(n, "bad m= line"))?;
                    media += 1;
                    if media > MAX_MEDIA {
                        return Err(SdpError::TooManyMedia { max: MAX_MEDIA });
                    }
                }
                _ => {}
            }
            lines.push(line);
        }
        if lines.is_empty() {
            return Err(syntax(1, "empty SDP"));
        }
        Ok(SessionDescription { lines })
    }

    /// Number of `m=` sections.
    pub fn media_count(&self) -> usize {
        self.lines.iter().filter(|l| l.kind == b'm').count()
    }

    /// Index of the first line of each media section (its `m=` line).
    fn media_starts(&self) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&i| self.lines[i].kind == b'm')
            .collect()
    }

    /// Line index range of media section starting at `start`.
    fn section(&self, start: usize) -> std::ops::Range<usize> {
        let end = (start + 1..self.lines.len())
            .find(|&i| self.lines[i].kind == b'm')
            .unwrap_or(self.lines.len());
        start..end
    }

    /// Lines before the first `m=`.
    fn session_lines(&self) -> &[Line] {
        let end = self
            .lines
            .iter()
            .position(|l| l.kind == b'm')
            .unwrap_or(self.lines.len());
        &self.lines[..end]
    }

    /// Connection address for a media section: media-level `c=`, else session-level.
    fn connection_addr(&self, section: std::ops::Range<usize>) -> Option<IpAddr> {
        let c = self.lines[section]
            .iter()
            .find(|l| l.kind == b'c')
            .or_else(|| self.session_lines().iter().find(|l| l.kind == b'c'))?;
        parse_connection(&c.value)?.1.parse().ok()
    }

    fn direction(&self, section: std::ops::Range<usize>) -> Direction {
        let find = |lines: &[Line]| {
            lines
                .iter()
                .filter(|l| l.kind == b'a')
                .find_map(|l| Direction::parse(l.value.trim()))
        };
        find(&self.lines[section])
            .or_else(|| find(self.session_lines()))
            .unwrap_or_default()
    }

    /// Address and port of the first audio stream with a non-zero port (media-level `c=`
    /// overrides session-level), its payload types, encoding names, the telephone-event payload
    /// type if any, and direction (default sendrecv).
    pub fn audio(&self) -> Option<AudioInfo> {
        let start = self.media_starts().into_iter().find(|&i| {
            parse_media(&self.lines[i].value).is_some_and(|m| m.media == "audio" && m.port != 0)
        })?;
        let m = parse_media(&self.lines[start].value)?;
        let section = self.section(start);
        let addr = self.connection_addr(section.clone())?;
        let payload_types: Vec<u8> = m.fmts.iter().filter_map(|f| f.parse().ok()).collect();
        let codecs: Vec<String> = payload_types
            .iter()
            .map(|&pt| {
                self.rtpmap(section.clone(), pt)
                    .map(|(name, _)| name.to_owned())
                    .or_else(|| static_name(pt).map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        let telephone_event = payload_types.iter().copied().find(|&pt| {
            self.rtpmap(section.clone(), pt)
                .is_some_and(|(n, rate)| n.eq_ignore_ascii_case("telephone-event") && rate == 8000)
        });
        Some(AudioInfo {
            addr,
            port: m.port,
            payload_types,
            codecs,
            telephone_event,
            direction: self.direction(section),
        })
    }

    /// `(encoding name, clock rate)` from `a=rtpmap:<pt>` in a media section.
    fn rtpmap(&self, section: std::ops::Range<usize>, pt: u8) -> Option<(&str, u32)> {
        self.lines[section].iter().find_map(|l| {
            if l.kind != b'a' {
                return None;
            }
            let rest = l.value.strip_prefix("rtpmap:")?;
            let (p, enc) = rest.split_once(' ')?;
            if p.trim().parse::<u8>().ok()? != pt {
                return None;
            }
            let mut parts = enc.trim().split('/');
            let name = parts.next()?;
            let rate = parts.next()?.parse().ok()?;
            Some((name, rate))
        })
    }

    /// Address and port of the first `m=image <port> udptl t38` stream, if any.
    pub fn image(&self) -> Option<(IpAddr, u16)> {
        self.media_starts().into_iter().find_map(|i| {
            let m = parse_media(&self.lines[i].value)?;
            let t38 = m.media == "image"
                && m.proto.eq_ignore_ascii_case("udptl")
                && m.fmts.iter().any(|f| f.eq_ignore_ascii_case("t38"));
            if !t38 {
                return None;
            }
            Some((self.connection_addr(self.section(i))?, m.port))
        })
    }

    /// Attributes (`a=name:value` or `a=name`) of the first T.38 image stream, in order.
    pub fn image_attributes(&self) -> Vec<(String, Option<String>)> {
        let Some(start) = self.image_start() else {
            return Vec::new();
        };
        self.lines[self.section(start)]
            .iter()
            .filter(|l| l.kind == b'a')
            .map(|l| match l.value.split_once(':') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (l.value.trim().to_string(), None),
            })
            .collect()
    }

    fn image_start(&self) -> Option<usize> {
        self.media_starts().into_iter().find(|&i| {
            parse_media(&self.lines[i].value).is_some_and(|m| {
                m.media == "image"
                    && m.port != 0
                    && m.proto.eq_ignore_ascii_case("udptl")
                    && m.fmts.iter().any(|f| f.eq_ignore_ascii_case("t38"))
            })
        })
    }

    /// Media anchoring for a B2BUA: sets every `c=` to `addr`, the port of m-line `i` to
    /// `ports[i]` (missing entries and rejected streams with port 0 stay as they are), the
    /// `o=` address to `addr` with the session version incremented, and `a=rtcp` lines of
    /// re-ported streams to the new port + 1 (and `addr`, if they carried an address).
    pub fn anchor(&mut self, addr: IpAddr, ports: &[u16]) {
        let ip = match addr {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        let mut media_index: Option<usize> = None;
        let mut new_port: Option<u16> = None;
        for line in &mut self.lines {
            match line.kind {
                b'c' => line.value = format!("IN {ip} {addr}"),
                b'o' => {
                    if let Some(o) = parse_origin(&line.value) {
                        line.value =
                            format!("{} {} {} IN {ip} {addr}", o.0, o.1, o.2.wrapping_add(1));
                    }
                }
                b'm' => {
                    let idx = media_index.map_or(0, |i| i + 1);
                    media_index = Some(idx);
                    new_port = None;
                    if let (Some(&p), Some(m)) = (ports.get(idx), parse_media(&line.value)) {
                        if m.port != 0 {
                            new_port = Some(p);
                            line.value = set_media_port(&line.value, p);
                        }
                    }
                }
                b'a' => {
                    if let (Some(p), Some(rest)) = (new_port, line.value.strip_prefix("rtcp:")) {
                        let has_addr = rest.split_whitespace().count() >= 4;
                        let rtcp = p.wrapping_add(1);
                        line.value = if has_addr {
                            format!("rtcp:{rtcp} IN {ip} {addr}")
                        } else {
                            format!("rtcp:{rtcp}")
                        };
                    }
                }
                _ => {}
            }
        }
    }

    fn push(&mut self, kind: u8, value: impl Into<String>) {
        self.lines.push(Line {
            kind,
            value: value.into(),
        });
    }
}

impl fmt::Display for SessionDescription {
    /// Writes every line with CRLF line ends.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            write!(f, "{}={}\r\n", char::from(l.kind), l.value)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Self, SdpError> {
        Self::parse(s)
    }
}

fn syntax(line: usize, reason: &'static str) -> SdpError {
    SdpError::Syntax { line, reason }
}

/// RFC 3551 static audio payload type names.
fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        8 => "PCMA",
        9 => "G722",
        13 => "CN",
        18 => "G729",
        _ => return None,
    })
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`.
fn parse_origin(v: &str) -> Option<(&str, &str, u64)> {
    let t: Vec<&str> = v.split_whitespace().collect();
    if t.len() != 6 || t[3] != "IN" {
        return None;
    }
    t[1].parse::<u64>().ok()?;
    Some((t[0], t[1], t[2].parse().ok()?))
}

/// `c=IN <IP4|IP6> <address>[/ttl[/n]]` -> (addrtype, address without suffix).
fn parse_connection(v: &str) -> Option<(&str, &str)> {
    let t: Vec<&str> = v.split_whitespace().collect();
    if t.len() != 3 || t[0] != "IN" || !(t[1] == "IP4" || t[1] == "IP6") {
        return None;
    }
    let addr = t[2].split('/').next()?;
    (!addr.is_empty()).then_some((t[1], addr))
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media(v: &str) -> Option<MediaLine<'_>> {
    let mut t = v.split_whitespace();
    let media = t.next()?;
    let port = t.next()?.split('/').next()?.parse().ok()?;
    let proto = t.next()?;
    let fmts: Vec<&str> = t.collect();
    if fmts.is_empty() {
        return None;
    }
    Some(MediaLine {
        media,
        port,
        proto,
        fmts,
    })
}

/// Replaces the port of an `m=` value, keeping any `/count`.
fn set_media_port(v: &str, port: u16) -> String {
    let mut t: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
    if let Some(p) = t.get_mut(1) {
        *p = match p.split_once('/') {
            Some((_, count)) => format!("{port}/{count}"),
            None => port.to_string(),
        };
    }
    t.join(" ")
}

fn session_header(addr: IpAddr, session_id: u64) -> SessionDescription {
    session_header_v(addr, session_id, session_id)
}

/// Session lines with an explicit `o=` version (it must grow with every new
/// offer or answer in a session, RFC 3264 §8).
fn session_header_v(addr: IpAddr, session_id: u64, version: u64) -> SessionDescription {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut sd = SessionDescription { lines: Vec::new() };
    sd.push(b'v', "0");
    sd.push(
        b'o',
        format!("switchboard {session_id} {version} IN {ip} {addr}"),
    );
    sd.push(b's', "switchboard");
    sd.push(b'c', format!("IN {ip} {addr}"));
    sd.push(b't', "0 0");
    sd
}

/// Builds the gateway's answer as UAS (RFC 3264 §6): the first offered PCMU/PCMA payload type
/// on the first audio stream, telephone-event kept if offered (with its fmtp), the answering
/// direction (offer sendonly -> answer recvonly), our `addr`/`port` and `session_id`. Every other
/// offered stream is rejected with port 0, keeping the m-line count and order.
///
/// `Err(NoAudio)` or `Err(NoCommonCodec)` -> the caller sends 488.
pub fn answer(
    offer: &SessionDescription,
    addr: IpAddr,
    port: u16,
    session_id: u64,
) -> Result<SessionDescription, SdpError> {
    let audio = offer.audio().ok_or(SdpError::NoAudio)?;
    let starts = offer.media_starts();
    let audio_start = starts
        .iter()
        .copied()
        .find(|&i| {
            parse_media(&offer.lines[i].value).is_some_and(|m| m.media == "audio" && m.port != 0)
        })
        .ok_or(SdpError::NoAudio)?;
    let audio_m = parse_media(&offer.lines[audio_start].value).ok_or(SdpError::NoAudio)?;
    if !audio_m.proto.eq_ignore_ascii_case("RTP/AVP") {
        return Err(SdpError::NoCommonCodec);
    }
    let section = offer.section(audio_start);
    let (pt, name) = audio
        .payload_types
        .iter()
        .zip(&audio.codecs)
        .find(|(&pt, name)| {
            (name.as_str() == "PCMU" || name.as_str() == "PCMA")
                && offer
                    .rtpmap(section.clone(), pt)
                    .is_none_or(|(_, rate)| rate == 8000)
        })
        .map(|(&pt, name)| (pt, name.clone()))
        .ok_or(SdpError::NoCommonCodec)?;

    let mut sd = session_header(addr, session_id);
    for &start in &starts {
        let Some(m) = parse_media(&offer.lines[start].value) else {
            continue;
        };
        if start != audio_start {
            sd.push(
                b'm',
                format!("{} 0 {} {}", m.media, m.proto, m.fmts.join(" ")),
            );
            continue;
        }
        let mut fmts = pt.to_string();
        if let Some(te) = audio.telephone_event {
            fmts.push_str(&format!(" {te}"));
        }
        sd.push(b'm', format!("audio {port} RTP/AVP {fmts}"));
        sd.push(b'a', format!("rtpmap:{pt} {name}/8000"));
        if let Some(te) = audio.telephone_event {
            sd.push(b'a', format!("rtpmap:{te} telephone-event/8000"));
            let prefix = format!("fmtp:{te} ");
            let events = offer.lines[section.clone()]
                .iter()
                .filter(|l| l.kind == b'a')
                .find_map(|l| l.value.strip_prefix(&prefix))
                .map_or("0-16".to_owned(), |v| v.trim().to_owned());
            sd.push(b'a', format!("fmtp:{te} {events}"));
        }
        sd.push(b'a', "ptime:20");
        sd.push(b'a', audio.direction.answer().as_str());
    }
    Ok(sd)
}

/// A T.38 offer (RFC 3362, T.38 Annex D): one `m=image <port> udptl t38`
/// stream with the given `a=` attribute values (e.g. `T38FaxVersion:0`).
pub fn image_offer(
    addr: IpAddr,
    port: u16,
    session_id: u64,
    version: u64,
    attributes: &[String],
) -> SessionDescription {
    let mut sd = session_header_v(addr, session_id, version);
    sd.push(b'm', format!("image {port} udptl t38"));
    for a in attributes {
        sd.push(b'a', a.clone());
    }
    sd
}

/// Answer a T.38 offer: the first offered image stream is accepted at our
/// `port` with `attributes`; every other stream is rejected with port 0,
/// keeping the m-line count and order (RFC 3264 §6).
pub fn image_answer(
    offer: &SessionDescription,
    addr: IpAddr,
    port: u16,
    session_id: u64,
    version: u64,
    attributes: &[String],
) -> Result<SessionDescription, SdpError> {
    let image = offer.image_start().ok_or(SdpError::NoT38)?;
    let mut sd = session_header_v(addr, session_id, version);
    for start in offer.media_starts() {
        let Some(m) = parse_media(&offer.lines[start].value) else {
            continue;
        };
        if start == image {
            sd.push(b'm', format!("image {port} udptl t38"));
            for a in attributes {
                sd.push(b'a', a.clone());
            }
        } else {
            sd.push(
                b'm',
                format!("{} 0 {} {}", m.media, m.proto, m.fmts.join(" ")),
            );
        }
    }
    Ok(sd)
}

/// A fresh offer: PCMU, PCMA and telephone-event/8000 (PT 101, events 0-16), ptime 20,
/// sendrecv, at `addr`/`port`.
pub fn offer(addr: IpAddr, port: u16, session_id: u64) -> SessionDescription {
    offer_v(addr, port, session_id, session_id)
}

/// [`offer`] with an explicit `o=` version (for a re-offer in the same session).
pub fn offer_v(addr: IpAddr, port: u16, session_id: u64, version: u64) -> SessionDescription {
    let mut sd = session_header_v(addr, session_id, version);
    sd.push(b'm', format!("audio {port} RTP/AVP 0 8 101"));
    sd.push(b'a', "rtpmap:0 PCMU/8000");
    sd.push(b'a', "rtpmap:8 PCMA/8000");
    sd.push(b'a', "rtpmap:101 telephone-event/8000");
    sd.push(b'a', "fmtp:101 0-16");
    sd.push(b'a', "ptime:20");
    sd.push(b'a', "sendrecv");
    sd
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4566 §5 example, verbatim (LF line ends).
    const RFC4566: &str = "v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
c=IN IP4 224.2.17.12/127
t=2873397496 2873404696
a=recvonly
m=audio 49170 RTP/AVP 0
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
";

    // RFC 3264 §10.1 offer, with the host names replaced by documentation addresses.
    const RFC3264_OFFER: &str = "v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r
s=\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 49170 RTP/AVP 0 8 97\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:97 iLBC/8000\r
m=video 51372 RTP/AVP 31 32\r
a=rtpmap:31 H261/90000\r
a=rtpmap:32 MPV/90000\r
";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc4566_round_trip_and_audio() {
        let sd = SessionDescription::parse(RFC4566).unwrap();
        assert_eq!(sd.to_string(), RFC4566.replace('\n', "\r\n"));
        assert_eq!(sd.media_count(), 2);
        let a = sd.audio().unwrap();
        assert_eq!(a.addr, ip("224.2.17.12"));
        assert_eq!(a.port, 49170);
        assert_eq!(a.payload_types, vec![0]);
        assert_eq!(a.codecs, vec!["PCMU"]);
        assert_eq!(a.telephone_event, None);
        assert_eq!(a.direction, Direction::RecvOnly);
        assert_eq!(sd.image(), None);
    }

    #[test]
    fn rfc3264_answer() {
        let offer_sd = SessionDescription::parse(RFC3264_OFFER).unwrap();
        assert_eq!(offer_sd.to_string(), RFC3264_OFFER);
        let a = offer_sd.audio().unwrap();
        assert_eq!(a.codecs, vec!["PCMU", "PCMA", "iLBC"]);
        let ans = answer(&offer_sd, ip("203.0.113.5"), 30000, 42).unwrap();
        assert_eq!(
            ans.to_string(),
            "v=0\r\no=switchboard 42 42 IN IP4 203.0.113.5\r\ns=switchboard\r\n\
             c=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n\
             a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n\
             m=video 0 RTP/AVP 31 32\r\n"
        );
        // The answer parses back.
        let back = SessionDescription::parse(&ans.to_string()).unwrap();
        assert_eq!(back.media_count(), 2);
        assert_eq!(back.audio().unwrap().port, 30000);
    }

    #[test]
    fn answer_prefers_offer_order_and_keeps_dtmf() {
        let o = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n\
                 m=audio 4000 RTP/AVP 18 8 0 96\na=rtpmap:96 telephone-event/8000\n\
                 a=fmtp:96 0-15\na=sendonly\n";
        let sd = SessionDescription::parse(o).unwrap();
        let a = sd.audio().unwrap();
        assert_eq!(a.codecs, vec!["G729", "PCMA", "PCMU", "telephone-event"]);
        assert_eq!(a.telephone_event, Some(96));
        assert_eq!(a.direction, Direction::SendOnly);
        let ans = answer(&sd, ip("2001:db8::1"), 5000, 7).unwrap();
        let text = ans.to_string();
        assert!(text.contains("c=IN IP6 2001:db8::1\r\n"));
        assert!(text.contains("m=audio 5000 RTP/AVP 8 96\r\n"));
        assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(text.contains("a=fmtp:96 0-15\r\n"));
        assert!(text.contains("a=recvonly\r\n"));
        let back = ans.audio().unwrap();
        assert_eq!(back.direction, Direction::RecvOnly);
        assert_eq!(back.telephone_event, Some(96));
    }

    #[test]
    fn answer_errors() {
        let no_common = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\n\
                         t=0 0\nm=audio 4000 RTP/AVP 18 97\na=rtpmap:97 opus/48000/2\n";
        let sd = SessionDescription::parse(no_common).unwrap();
        assert_eq!(
            answer(&sd, ip("192.0.2.1"), 1, 1),
            Err(SdpError::NoCommonCodec)
        );
        let srtp = no_common.replace("RTP/AVP 18 97", "RTP/SAVP 0");
        let sd = SessionDescription::parse(&srtp).unwrap();
        assert_eq!(
            answer(&sd, ip("192.0.2.1"), 1, 1),
            Err(SdpError::NoCommonCodec)
        );
        let video = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\n\
                     t=0 0\nm=video 4000 RTP/AVP 31\n";
        let sd = SessionDescription::parse(video).unwrap();
        assert_eq!(answer(&sd, ip("192.0.2.1"), 1, 1), Err(SdpError::NoAudio));
    }

    #[test]
    fn offer_shape() {
        let sd = offer(ip("192.0.2.7"), 10000, 99);
        assert_eq!(
            sd.to_string(),
            "v=0\r\no=switchboard 99 99 IN IP4 192.0.2.7\r\ns=switchboard\r\n\
             c=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        let a = sd.audio().unwrap();
        assert_eq!(a.payload_types, vec![0, 8, 101]);
        assert_eq!(a.telephone_event, Some(101));
    }

    #[test]
    fn anchor_rewrites_addresses_ports_and_rtcp() {
        let text = "v=0\r\no=- 10 5 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    a=x-unknown:keep me\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n\
                    a=rtcp:4001 IN IP4 10.0.0.2\r\nm=video 0 RTP/AVP 31\r\n\
                    m=image 6000 udptl t38\r\na=rtcp:6001\r\na=T38FaxVersion:0\r\n";
        let mut sd = SessionDescription::parse(text).unwrap();
        assert_eq!(sd.image(), Some((ip("10.0.0.1"), 6000)));
        sd.anchor(ip("203.0.113.9"), &[20000, 20002, 20004]);
        assert_eq!(
            sd.to_string(),
            "v=0\r\no=- 10 6 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
             a=x-unknown:keep me\r\nm=audio 20000 RTP/AVP 0\r\nc=IN IP4 203.0.113.9\r\n\
             a=rtcp:20001 IN IP4 203.0.113.9\r\nm=video 0 RTP/AVP 31\r\n\
             m=image 20004 udptl t38\r\na=rtcp:20005\r\na=T38FaxVersion:0\r\n"
        );
        assert_eq!(sd.image(), Some((ip("203.0.113.9"), 20004)));
        // Shorter port list: later streams keep their ports.
        sd.anchor(ip("2001:db8::9"), &[30000]);
        let a = sd.audio().unwrap();
        assert_eq!((a.addr, a.port), (ip("2001:db8::9"), 30000));
        assert_eq!(sd.image(), Some((ip("2001:db8::9"), 20004)));
        assert!(sd.to_string().contains("o=- 10 7 IN IP6 2001:db8::9\r\n"));
    }

    #[test]
    fn truncated_and_mutated_input_never_panics() {
        let text =
            RFC3264_OFFER.to_owned() + "m=image 6000 udptl t38\r\na=rtcp:6001 IN IP4 1.2.3.4\r\n";
        for i in 0..text.len() {
            for candidate in [&text[..i], &text[i..]] {
                if let Ok(mut sd) = SessionDescription::parse(candidate) {
                    let _ = sd.audio();
                    let _ = sd.image();
                    let _ = answer(&sd, "192.0.2.1".parse().unwrap(), 1, 1);
                    sd.anchor("192.0.2.1".parse().unwrap(), &[1, 2, 3]);
                    let _ = sd.to_string();
                }
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            SessionDescription::parse(&"a".repeat(MAX_SDP_LEN + 1)),
            Err(SdpError::TooLarge { .. })
        ));
        let many = format!("v=0\n{}", "a=x\n".repeat(MAX_LINES));
        assert_eq!(
            SessionDescription::parse(&many),
            Err(SdpError::TooManyLines { max: MAX_LINES })
        );
        let media = format!("v=0\n{}", "m=audio 1 RTP/AVP 0\n".repeat(MAX_MEDIA + 1));
        assert_eq!(
            SessionDescription::parse(&media),
            Err(SdpError::TooManyMedia { max: MAX_MEDIA })
        );
        for (bad, line) in [
            ("o=- 1 1 IN IP4 1.2.3.4\n", 1),
            ("v=0\nbogus\n", 2),
            ("v=0\nc=IN IP4\n", 2),
            ("v=0\nc=XX IP4 1.2.3.4\n", 2),
            ("v=0\no=- x 1 IN IP4 1.2.3.4\n", 2),
            ("v=0\nm=audio 70000 RTP/AVP 0\n", 2),
            ("v=0\nm=audio 4000 RTP/AVP\n", 2),
            ("v=0\n\nM=audio 1 RTP/AVP 0\n", 3),
            ("", 1),
        ] {
            assert!(
                matches!(SessionDescription::parse(bad), Err(SdpError::Syntax { line: l, .. }) if l == line),
                "{bad:?}"
            );
        }
        // A host name in c= parses but yields no audio address.
        let host = "v=0\nc=IN IP4 host.example\nm=audio 1 RTP/AVP 0\n";
        assert_eq!(SessionDescription::parse(host).unwrap().audio(), None);
    }

    #[test]
    fn t38_offer_and_answer() {
        let attrs = vec![
            "T38FaxVersion:0".to_string(),
            "T38MaxBitRate:14400".to_string(),
        ];
        let offer = image_offer(ip("192.0.2.1"), 4000, 7, 8, &attrs);
        let text = offer.to_string();
        assert!(
            text.contains("o=switchboard 7 8 IN IP4 192.0.2.1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\n"),
            "{text}"
        );
        let parsed = SessionDescription::parse(&text).unwrap();
        assert_eq!(parsed.image(), Some((ip("192.0.2.1"), 4000)));
        assert_eq!(
            parsed.image_attributes()[1],
            ("T38MaxBitRate".to_string(), Some("14400".to_string()))
        );
        // An offer with audio and image: the answer keeps both lines, audio rejected.
        let both = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\nm=image 5002 udptl t38\r\na=T38FaxVersion:3\r\n",
        )
        .unwrap();
        let ans = image_answer(&both, ip("192.0.2.1"), 4000, 7, 9, &attrs)
            .unwrap()
            .to_string();
        assert!(
            ans.contains("m=audio 0 RTP/AVP 0\r\nm=image 4000 udptl t38\r\n"),
            "{ans}"
        );
        // No image stream: 488 territory.
        let audio = SessionDescription::parse(RFC3264_OFFER).unwrap();
        assert_eq!(
            image_answer(&audio, ip("192.0.2.1"), 4000, 7, 9, &attrs).unwrap_err(),
            SdpError::NoT38
        );
        assert!(audio.image_attributes().is_empty());
    }
}
