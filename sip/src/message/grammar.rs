//! Strict checks of the header fields the gateway interprets (RFC 3261 §25.1, RFC 4028 §4,
//! RFC 3966 for `tel:`), shared by [`parse`](super::parse), [`bad_request`](super::bad_request)
//! and the writer, so that what we accept, echo or forward is exactly what we understood
//! (docs/decisions.md §15.1).
//!
//! Values reach these checks unfolded (continuation lines joined by one space) and trimmed.
//! Linear white space is allowed where the grammar has `SWS`/`LWS` (around `/`, `;`, `=`,
//! `,`, `:` in sent-by), nowhere else. Every function is a linear scan and never panics.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A byte cursor over one header value.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn new(s: &'a str) -> Self {
        Cur {
            s: s.as_bytes(),
            i: 0,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    /// Skips optional white space; true if any was skipped.
    fn sws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// `SWS b SWS`.
    fn sep(&mut self, b: u8) -> bool {
        let save = self.i;
        self.sws();
        if self.eat(b) {
            self.sws();
            true
        } else {
            self.i = save;
            false
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn token(&mut self) -> Option<&'a [u8]> {
        let t = self.take_while(is_token);
        (!t.is_empty()).then_some(t)
    }
    /// `quoted-string`: `"` *(qdtext / `\` char) `"`; any UTF-8 text but CTLs.
    fn quoted(&mut self) -> bool {
        if !self.eat(b'"') {
            return false;
        }
        loop {
            match self.peek() {
                None => return false,
                Some(b'"') => {
                    self.i += 1;
                    return true;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) if !is_ctl(c) || c == b'\t' => self.i += 1,
                        _ => return false,
                    }
                }
                Some(c) if is_ctl(c) && c != b'\t' => return false,
                Some(_) => self.i += 1,
            }
        }
    }
    /// `gen-value = token / host / quoted-string`.
    fn gen_value(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'[') => {
                let start = self.i;
                let Some(end) = self.s[start..].iter().position(|&b| b == b']') else {
                    return false;
                };
                self.i = start + end + 1;
                ipv6_ref(&self.s[start..self.i])
            }
            // A token, or an unbracketed IPv6address (`received`, RFC 3261 §20.42).
            _ => {
                let v = self.take_while(|b| is_token(b) || b == b':');
                !v.is_empty()
                    && (!v.contains(&b':')
                        || std::str::from_utf8(v).is_ok_and(|a| a.parse::<Ipv6Addr>().is_ok()))
            }
        }
    }
    /// `*( SEMI generic-param )`, each `token [ EQUAL gen-value ]`.
    fn params(&mut self) -> bool {
        while self.sep(b';') {
            if self.token().is_none() {
                return false;
            }
            if self.sep(b'=') && !self.gen_value() {
                return false;
            }
        }
        true
    }
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// RFC 3261 `token` character.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks a run of URI characters where `%` must start a `%HEX HEX` escape.
fn uri_chars(s: &[u8], extra: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            c if is_unreserved(c) || extra.contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

fn ipv6_ref(s: &[u8]) -> bool {
    s.len() > 2
        && s[0] == b'['
        && s[s.len() - 1] == b']'
        && std::str::from_utf8(&s[1..s.len() - 1]).is_ok_and(|a| a.parse::<Ipv6Addr>().is_ok())
}

/// `host = hostname / IPv4address / IPv6reference`.
fn host(s: &[u8]) -> bool {
    if s.first() == Some(&b'[') {
        return ipv6_ref(s);
    }
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    if s.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return std::str::from_utf8(s).is_ok_and(|a| a.parse::<Ipv4Addr>().is_ok());
    }
    let s = s.strip_suffix(b".").unwrap_or(s);
    s.split(|&b| b == b'.').all(|label| {
        !label.is_empty()
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && label[0] != b'-'
            && label[label.len() - 1] != b'-'
    })
}

/// `port = 1*DIGIT`, at most 65535.
fn port(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 5
        && s.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(s).is_ok_and(|p| p.parse::<u16>().is_ok())
}

/// `hostport = host [ ":" port ]` (no white space).
fn hostport(s: &[u8]) -> bool {
    let (h, p) = if s.first() == Some(&b'[') {
        match s.iter().position(|&b| b == b']') {
            Some(e) => (&s[..=e], &s[e + 1..]),
            None => return false,
        }
    } else {
        match s.iter().position(|&b| b == b':') {
            Some(c) => (&s[..c], &s[c..]),
            None => (s, &s[s.len()..]),
        }
    };
    host(h)
        && match p {
            [] => true,
            [b':', rest @ ..] => port(rest),
            _ => false,
        }
}

/// A `SIP-URI` / `SIPS-URI` after the scheme's colon (RFC 3261 §19.1.1, §25.1).
fn sip_uri_rest(s: &[u8]) -> bool {
    // '@' may appear only once, ending the userinfo: neither uri-parameters nor headers
    // may carry it unescaped.
    let (userinfo, rest) = match s.iter().position(|&b| b == b'@') {
        Some(at) => (Some(&s[..at]), &s[at + 1..]),
        None => (None, s),
    };
    if let Some(ui) = userinfo {
        let (user, password) = match ui.iter().position(|&b| b == b':') {
            Some(c) => (&ui[..c], Some(&ui[c + 1..])),
            None => (ui, None),
        };
        if user.is_empty() || !uri_chars(user, b"&=+$,;?/") {
            return false;
        }
        if password.is_some_and(|p| !uri_chars(p, b"&=+$,")) {
            return false;
        }
    }
    let end_hp = rest
        .iter()
        .position(|&b| b == b';' || b == b'?')
        .unwrap_or(rest.len());
    if !hostport(&rest[..end_hp]) {
        return false;
    }
    let mut tail = &rest[end_hp..];
    let headers_at = tail.iter().position(|&b| b == b'?');
    let params = &tail[..headers_at.unwrap_or(tail.len())];
    for p in params.split(|&b| b == b';').skip(1) {
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(e) => (&p[..e], Some(&p[e + 1..])),
            None => (p, None),
        };
        if name.is_empty() || !uri_chars(name, b"[]/:&+$") {
            return false;
        }
        if value.is_some_and(|v| v.is_empty() || !uri_chars(v, b"[]/:&+$")) {
            return false;
        }
    }
    if let Some(q) = headers_at {
        tail = &tail[q + 1..];
        for h in tail.split(|&b| b == b'&') {
            let Some(e) = h.iter().position(|&b| b == b'=') else {
                return false;
            };
            if e == 0 || !uri_chars(&h[..e], b"[]/?:+$") || !uri_chars(&h[e + 1..], b"[]/?:+$") {
                return false;
            }
        }
    }
    true
}

/// A URI as the gateway understands it: `sip:`/`sips:` by RFC 3261's grammar, `tel:` by
/// RFC 3966's characters, any other `absoluteURI` as scheme and URI characters.
pub(crate) fn uri(s: &str) -> bool {
    let s = s.as_bytes();
    let Some(colon) = s.iter().position(|&b| b == b':') else {
        return false;
    };
    let (scheme, rest) = (&s[..colon], &s[colon + 1..]);
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
        || rest.is_empty()
    {
        return false;
    }
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        sip_uri_rest(rest)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        rest[0] != b';' && uri_chars(rest, b"+#;=/:&$,[]")
    } else {
        uri_chars(rest, b";/?:@&=+$,[]#")
    }
}

/// `( name-addr / addr-spec )` at the cursor; with `need_angle`, only `name-addr`.
/// An `addr-spec` without brackets ends at white space, `;` or `,` (RFC 3261 §20.10).
fn address(c: &mut Cur<'_>, need_angle: bool) -> bool {
    c.sws();
    let save = c.i;
    // display-name = *(token LWS) / quoted-string
    if c.peek() == Some(b'"') {
        if !c.quoted() {
            return false;
        }
        c.sws();
    } else {
        while c.token().is_some() {
            let before_ws = c.i;
            if !c.sws() {
                // A token not followed by LWS: either an addr-spec or junk.
                c.i = before_ws;
                break;
            }
        }
    }
    if c.eat(b'<') {
        let start = c.i;
        let Some(len) = c.s[start..].iter().position(|&b| b == b'>') else {
            return false;
        };
        c.i = start + len + 1;
        return std::str::from_utf8(&c.s[start..start + len]).is_ok_and(uri);
    }
    if need_angle {
        return false;
    }
    c.i = save;
    let spec = c.take_while(|b| !matches!(b, b' ' | b'\t' | b';' | b',' | b'<' | b'>' | b'"'));
    !spec.is_empty() && !spec.contains(&b'?') && std::str::from_utf8(spec).is_ok_and(uri)
}

/// `From` / `To`: one address and its parameters.
pub(crate) fn from_to(v: &str) -> bool {
    let mut c = Cur::new(v);
    if !(address(&mut c, false) && c.params()) {
        return false;
    }
    c.sws();
    c.done()
}

/// A comma-separated list of items, each checked by `item`.
fn list(v: &str, item: impl Fn(&mut Cur<'_>) -> bool) -> bool {
    let mut c = Cur::new(v);
    loop {
        if !item(&mut c) {
            return false;
        }
        c.sws();
        if c.done() {
            return true;
        }
        if !c.eat(b',') {
            return false;
        }
    }
}

/// `Contact`: `*` or a list of addresses with parameters.
pub(crate) fn contact(v: &str) -> bool {
    v == "*" || list(v, |c| address(c, false) && c.params())
}

/// `Route` / `Record-Route`: a list of `name-addr` with parameters.
pub(crate) fn route(v: &str) -> bool {
    list(v, |c| address(c, true) && c.params())
}

/// `Via`: a list of `sent-protocol LWS sent-by *( SEMI via-params )`, protocol `SIP/2.0`.
pub(crate) fn via(v: &str) -> bool {
    list(v, |c| {
        c.sws();
        let Some(name) = c.token() else { return false };
        if !c.sep(b'/') || c.token() != Some(b"2.0") || !c.sep(b'/') || c.token().is_none() {
            return false;
        }
        if !name.eq_ignore_ascii_case(b"SIP") || !c.sws() {
            return false;
        }
        let start = c.i;
        let h = if c.peek() == Some(b'[') {
            let Some(e) = c.s[start..].iter().position(|&b| b == b']') else {
                return false;
            };
            c.i = start + e + 1;
            &c.s[start..c.i]
        } else {
            c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !host(h) {
            return false;
        }
        if c.sep(b':') && !port(c.take_while(|b| b.is_ascii_digit())) {
            return false;
        }
        c.params()
    })
}

/// `Call-ID = word [ "@" word ]`.
pub(crate) fn call_id(v: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| is_token(b) || b"()<>:\\\"/[]?{}".contains(&b))
    };
    match v.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(v),
    }
}

/// `Max-Forwards = 1*DIGIT`, a value in 0..=255 (RFC 3261 §8.1.1.6).
pub(crate) fn max_forwards(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 10
        && v.bytes().all(|b| b.is_ascii_digit())
        && v.parse::<u32>().is_ok_and(|n| n <= 255)
}

/// `Content-Type = m-type SLASH m-subtype *( SEMI m-parameter )`.
pub(crate) fn content_type(v: &str) -> bool {
    let mut c = Cur::new(v);
    c.token().is_some() && c.sep(b'/') && c.token().is_some() && c.params() && c.done()
}

/// `Session-Expires` / `Min-SE`: `delta-seconds *( SEMI param )` (RFC 4028 §4).
pub(crate) fn delta_with_params(v: &str) -> bool {
    let mut c = Cur::new(v);
    let d = c.take_while(|b| b.is_ascii_digit());
    !d.is_empty() && d.len() <= 10 && c.params() && c.done()
}

/// `Supported` (may be empty) / `Require`: a list of option tags.
pub(crate) fn option_tags(v: &str, may_be_empty: bool) -> bool {
    if v.is_empty() {
        return may_be_empty;
    }
    list(v, |c| {
        c.sws();
        c.token().is_some()
    })
}

/// Headers of which a message may carry only one.
pub(crate) const SINGLE: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Type",
    "Session-Expires",
    "Min-SE",
];

/// A check of one header value.
type Check = fn(&str) -> bool;

/// Checks one header field the gateway interprets; `Err(canonical name)` when its value is
/// malformed. Headers the gateway does not interpret pass (they are kept as opaque text).
/// `name` may be compact or any case.
pub(crate) fn check(name: &str, value: &str) -> Result<(), &'static str> {
    let name = super::expand_compact(name).unwrap_or(name);
    let table: [(&'static str, Check); 14] = [
        ("Via", via),
        ("From", from_to),
        ("To", from_to),
        ("Call-ID", call_id),
        ("CSeq", |v| super::parse_cseq(v).is_some()),
        ("Contact", contact),
        ("Route", route),
        ("Record-Route", route),
        ("Max-Forwards", max_forwards),
        ("Content-Type", content_type),
        ("Session-Expires", delta_with_params),
        ("Min-SE", delta_with_params),
        ("Supported", |v| option_tags(v, true)),
        ("Require", |v| option_tags(v, false)),
    ];
    match table.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        Some((n, f)) if !f(value) => Err(n),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_values() {
        for ok in [
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=192.0.2.9",
            "SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
            "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK1;received=[2001:db8::9]",
            "SIP/2.0/UDP [2001:db8::9]:5060;received=2001:db8::9;rport=5060",
            "SIP/2.0/TLS h.example.com:5061",
            "sip/2.0/ws h.example.com;maddr=239.255.255.1;ttl=15",
        ] {
            assert!(via(ok), "{ok}");
        }
        for bad in [
            "garbage here",
            ";;;",
            "SIP/2.0/UD0.2.(;branchKlf",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h:99999",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP h;branch=\"x",
            "SIP/2.0/UDP h,",
            "SIP/2.0/UDP h x",
            "SIP/2.0/UDP [zz::1]",
            "SIP/2.0/UDP h;=x",
            "SIP/2.0/UDP h;received=1:2:3",
        ] {
            assert!(!via(bad), "{bad}");
        }
    }

    #[test]
    fn address_values() {
        for ok in [
            "Alice <sip:alice@atlanta.com>;tag=1928301774",
            "<sip:alice@atlanta.com>",
            "sip:alice@atlanta.com;tag=1",
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>  ;  tag = 98asjd8",
            "<tel:+1-201-555-0123>;tag=t",
            "<sip:7042;phone-context=pbx.example.com@gw.example.com;user=phone>;tag=pc1",
            "<sip:[2001:db8::9:1]>;tag=2398",
            "\"\" <sip:a@b>",
            "<sip:I%20have%20spaces@example.net>;tag=1234",
        ] {
            assert!(from_to(ok), "{ok}");
        }
        for bad in [
            "<sip:a@e:user@st.example.com",
            "\"Mr. J. User <sip:j.user@example.com>",
            "<sip:a@b",
            "sip:a@b>",
            "Alice<sip:a@b> x",
            "<5",
            "<sip:a@b;tag=1>junk",
            "sip:a@b?x=y",
            "<sip:a%zz@b>",
            "<sip:a@b c>",
            "<>",
            "<sip:a@b>;tag=\"x",
        ] {
            assert!(!from_to(bad), "{bad}");
        }
        assert!(contact("*"));
        assert!(contact("<sip:a@b>;expires=60, \"B\" <sip:b@c>;q=0.5"));
        assert!(contact("sip:a@192.0.2.1:5060"));
        assert!(!contact("<sip:a@b>,"));
        assert!(route(
            "<sip:p1.example.com;lr>, <sip:p2.example.com;lr;transport=tcp>"
        ));
        assert!(!route("sip:p1.example.com;lr"));
    }

    #[test]
    fn scalar_values() {
        assert!(call_id("a84b4c76e66710@pc33.atlanta.com"));
        assert!(!call_id("a b"));
        assert!(!call_id("a@b@c"));
        assert!(max_forwards("0068") && max_forwards("0") && max_forwards("255"));
        assert!(!max_forwards("256") && !max_forwards("-1") && !max_forwards("7 0"));
        assert!(content_type("application/sdp"));
        assert!(content_type("multipart/mixed;boundary=unique-boundary-1"));
        assert!(!content_type("application"));
        assert!(delta_with_params("1800;refresher=uac") && !delta_with_params("x"));
        assert!(option_tags("", true) && !option_tags("", false));
        assert!(option_tags("timer, 100rel", false) && !option_tags("timer,,", false));
        assert_eq!(check("v", "garbage"), Err("Via"));
        assert_eq!(check("X-Anything", "garbage <"), Ok(()));
    }
}
