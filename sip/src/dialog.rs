//! SIP dialogs (RFC 3261 §12).
//!
//! A [`Dialog`] holds the state a user agent keeps between requests of one call: Call-ID, the
//! local and remote tags and URIs, the CSeq counters, the remote target (from Contact) and the
//! route set (from Record-Route). It is created on the UAC side from the INVITE and a 1xx/2xx
//! with a To tag ([`Dialog::uac`], §12.1.2) or on the UAS side from the received INVITE
//! ([`Dialog::uas`], §12.1.1); it builds in-dialog requests and the ACK for a 2xx
//! (§12.2.1.1, §13.2.2.4), loose and strict routing included, and checks requests from the peer
//! (§12.2.2). Headers are read from rsip's untyped values with small bounded helpers, compact
//! header names (`i`, `f`, `t`, `m`) included.

use crate::transport::Transport;
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Uri};

/// Most Record-Route / Route entries accepted into a route set.
pub const MAX_ROUTES: usize = 32;

/// Why a dialog could not be created from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is absent.
    #[error("missing {name} header")]
    MissingHeader {
        /// Header name.
        name: &'static str,
    },
    /// The From (UAS side) or To (UAC side) header carries no tag.
    #[error("missing dialog tag")]
    MissingTag,
    /// The Contact header is not a single usable SIP URI.
    #[error("invalid Contact header")]
    BadContact,
    /// The CSeq header is not `<number> <method>`.
    #[error("invalid CSeq header")]
    BadCSeq,
    /// More than [`MAX_ROUTES`] Record-Route entries.
    #[error("more than {max} Record-Route entries")]
    TooManyRoutes {
        /// The limit.
        max: usize,
    },
}

/// The state of one dialog (RFC 3261 §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (From tag as UAC, To tag as UAS).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our From/To name-addr without the tag (other parameters kept).
    pub local_uri: String,
    /// The peer's From/To name-addr without the tag.
    pub remote_uri: String,
    /// Last CSeq number we used (the next request uses one more).
    pub local_cseq: u32,
    /// Last CSeq number received from the peer, if any.
    pub remote_cseq: Option<u32>,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Route header values in the order to send them.
    pub route_set: Vec<String>,
    /// The dialog was set up with a `sips:` Request-URI.
    pub secure: bool,
}

impl Dialog {
    /// UAC side: from the INVITE we sent and a 1xx (with To tag) or 2xx we received. Route set =
    /// Record-Route reversed; remote target = Contact of the response.
    pub fn uac(invite: &rsip::Request, response: &rsip::Response) -> Result<Self, DialogError> {
        let call_id = required(&invite.headers, "call-id", "Call-ID")?;
        let from = required(&invite.headers, "from", "From")?;
        let to = required(&response.headers, "to", "To")?;
        let (local_uri, local_tag) = split_tag(from);
        let (remote_uri, remote_tag) = split_tag(to);
        let mut route_set = route_values(&response.headers)?;
        route_set.reverse();
        Ok(Dialog {
            call_id: call_id.trim().to_owned(),
            local_tag: local_tag.ok_or(DialogError::MissingTag)?,
            remote_tag: remote_tag.ok_or(DialogError::MissingTag)?,
            local_uri,
            remote_uri,
            local_cseq: cseq(&invite.headers)?.0,
            remote_cseq: None,
            remote_target: contact(&response.headers)?,
            route_set,
            secure: is_sips(&invite.uri),
        })
    }

    /// UAS side: from a received INVITE and the To tag we chose. Route set = Record-Route in
    /// order; remote target = Contact of the request. Our CSeq starts at 0, so our first request
    /// uses 1.
    pub fn uas(invite: &rsip::Request, local_tag: &str) -> Result<Self, DialogError> {
        let call_id = required(&invite.headers, "call-id", "Call-ID")?;
        let from = required(&invite.headers, "from", "From")?;
        let to = required(&invite.headers, "to", "To")?;
        let (remote_uri, remote_tag) = split_tag(from);
        let (local_uri, _) = split_tag(to);
        Ok(Dialog {
            call_id: call_id.trim().to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: remote_tag.ok_or(DialogError::MissingTag)?,
            local_uri,
            remote_uri,
            local_cseq: 0,
            remote_cseq: Some(cseq(&invite.headers)?.0),
            remote_target: contact(&invite.headers)?,
            route_set: route_values(&invite.headers)?,
            secure: is_sips(&invite.uri),
        })
    }

    /// A new in-dialog request (BYE, re-INVITE, UPDATE, INFO, ...) with the next local CSeq,
    /// Request-URI = remote target, Route headers (RFC 3261 §12.2.1.1, strict routing handled),
    /// From/To with tags, Call-ID, Max-Forwards 70, Via
    /// `SIP/2.0/{transport} {via_host};branch={branch};rport`, Contact `<{contact}>` and
    /// Content-Length 0 (the caller may set a body and Content-Type afterwards).
    pub fn make_request(
        &mut self,
        method: Method,
        via_host: &str,
        transport: Transport,
        branch: &str,
        contact: &str,
    ) -> rsip::Request {
        self.local_cseq = self.local_cseq.wrapping_add(1);
        let cseq = self.local_cseq;
        self.build(method, cseq, via_host, transport, branch, contact)
    }

    /// ACK for a 2xx to an INVITE with CSeq number `cseq` (RFC 3261 §13.2.2.4): a new branch,
    /// the same CSeq number, method ACK; the local CSeq is not advanced.
    pub fn make_ack(
        &self,
        cseq: u32,
        via_host: &str,
        transport: Transport,
        branch: &str,
        contact: &str,
    ) -> rsip::Request {
        self.build(Method::Ack, cseq, via_host, transport, branch, contact)
    }

    /// An in-dialog request from the peer: checks its CSeq is higher than the last one (ACK and
    /// CANCEL may repeat it); `false` -> the caller answers 500. On success updates
    /// `remote_cseq` and, for the target-refresh requests INVITE and UPDATE, the remote target
    /// from Contact. The caller has already matched Call-ID and tags.
    pub fn accept_remote_request(&mut self, req: &rsip::Request) -> bool {
        let Ok((n, _)) = cseq(&req.headers) else {
            return false;
        };
        let repeatable = matches!(req.method, Method::Ack | Method::Cancel);
        if let Some(last) = self.remote_cseq {
            if n < last || (n == last && !repeatable) {
                return false;
            }
        }
        self.remote_cseq = Some(n);
        if matches!(req.method, Method::Invite | Method::Update) {
            if let Ok(target) = contact(&req.headers) {
                self.remote_target = target;
            }
        }
        true
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        via_host: &str,
        transport: Transport,
        branch: &str,
        contact: &str,
    ) -> rsip::Request {
        let (uri, routes) = self.request_target();
        let mut headers = Headers::default();
        headers.push(Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/{} {via_host};branch={branch};rport",
            transport.as_str()
        ))));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
        for r in routes {
            headers.push(Header::Route(rsip::headers::Route::new(r)));
        }
        headers.push(Header::From(rsip::headers::From::new(with_tag(
            &self.local_uri,
            &self.local_tag,
        ))));
        headers.push(Header::To(rsip::headers::To::new(with_tag(
            &self.remote_uri,
            &self.remote_tag,
        ))));
        headers.push(Header::CallId(rsip::headers::CallId::new(
            self.call_id.clone(),
        )));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{cseq} {method}"
        ))));
        let contact = if contact.starts_with('<') {
            contact.to_owned()
        } else {
            format!("<{contact}>")
        };
        headers.push(Header::Contact(rsip::headers::Contact::new(contact)));
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
            "0",
        )));
        rsip::Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    /// Request-URI and Route values (RFC 3261 §12.2.1.1): loose routing when the first route
    /// has `lr`, else strict routing (first route as Request-URI, remote target appended).
    fn request_target(&self) -> (Uri, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let (addr, _) = split_params(first);
        let uri_text = addr_spec(&addr);
        if has_lr(uri_text) {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        match Uri::try_from(uri_text) {
            Ok(uri) => {
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri, routes)
            }
            Err(_) => (self.remote_target.clone(), self.route_set.clone()),
        }
    }
}

fn is_sips(uri: &Uri) -> bool {
    matches!(uri.scheme, Some(rsip::Scheme::Sips))
}

/// Lowercase full name of a header, mapping RFC 3261 §7.3.3 compact forms.
fn canonical(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "i" => "call-id".into(),
        "f" => "from".into(),
        "t" => "to".into(),
        "m" => "contact".into(),
        _ => n,
    }
}

/// Values of all headers called `name` (lowercase full name), in message order.
fn values<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter_map(|h| {
            let (n, v): (&str, &str) = match h {
                Header::CallId(x) => ("call-id", x.value()),
                Header::From(x) => ("from", x.value()),
                Header::To(x) => ("to", x.value()),
                Header::CSeq(x) => ("cseq", x.value()),
                Header::Contact(x) => ("contact", x.value()),
                Header::RecordRoute(x) => ("record-route", x.value()),
                Header::Other(n, v) => return (canonical(n) == name).then_some(v.as_str()),
                _ => return None,
            };
            (n == name).then_some(v)
        })
        .collect()
}

fn required<'a>(
    headers: &'a Headers,
    name: &str,
    display: &'static str,
) -> Result<&'a str, DialogError> {
    values(headers, name)
        .into_iter()
        .next()
        .ok_or(DialogError::MissingHeader { name: display })
}

/// `(number, method)` of the CSeq header.
fn cseq(headers: &Headers) -> Result<(u32, String), DialogError> {
    let v = required(headers, "cseq", "CSeq")?;
    let mut it = v.split_whitespace();
    let n = it
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or(DialogError::BadCSeq)?;
    let m = it.next().ok_or(DialogError::BadCSeq)?;
    if it.next().is_some() {
        return Err(DialogError::BadCSeq);
    }
    Ok((n, m.to_owned()))
}

/// The URI of the first Contact value.
fn contact(headers: &Headers) -> Result<Uri, DialogError> {
    let v = required(headers, "contact", "Contact")?;
    let first = split_list(v)
        .into_iter()
        .next()
        .ok_or(DialogError::BadContact)?;
    let (addr, _) = split_params(first);
    let spec = addr_spec(&addr);
    if spec == "*" || spec.is_empty() {
        return Err(DialogError::BadContact);
    }
    let uri = Uri::try_from(spec).map_err(|_| DialogError::BadContact)?;
    match uri.scheme {
        Some(rsip::Scheme::Sip) | Some(rsip::Scheme::Sips) => Ok(uri),
        _ => Err(DialogError::BadContact),
    }
}

/// All Record-Route values, split on top-level commas, in message order.
fn route_values(headers: &Headers) -> Result<Vec<String>, DialogError> {
    let mut out = Vec::new();
    for v in values(headers, "record-route") {
        for r in split_list(v) {
            if out.len() >= MAX_ROUTES {
                return Err(DialogError::TooManyRoutes { max: MAX_ROUTES });
            }
            out.push(r.to_owned());
        }
    }
    Ok(out)
}

/// Splits a header value on commas outside quotes and angle brackets; trims; drops empties.
fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Splits a name-addr / addr-spec header value into the address part and the header
/// parameters (starting with `;`, or empty). Without angle brackets every `;` parameter is a
/// header parameter (RFC 3261 §20.10).
fn split_params(v: &str) -> (String, &str) {
    let v = v.trim();
    let mut quoted = false;
    let mut escaped = false;
    let mut angle_open = None;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle_open = Some(i),
            '>' if !quoted && angle_open.is_some() => {
                return (v[..=i].to_owned(), &v[i + 1..]);
            }
            ';' if !quoted && angle_open.is_none() => {
                return (v[..i].trim_end().to_owned(), &v[i..]);
            }
            _ => {}
        }
    }
    (v.to_owned(), "")
}

/// The URI inside `<...>`, or the whole trimmed value.
fn addr_spec(addr: &str) -> &str {
    match (addr.rfind('<'), addr.rfind('>')) {
        (Some(a), Some(b)) if a < b => addr[a + 1..b].trim(),
        _ => addr.trim(),
    }
}

/// Splits off the `tag` parameter: (name-addr with the other parameters, tag).
fn split_tag(v: &str) -> (String, Option<String>) {
    let (mut addr, params) = split_params(v);
    let mut tag = None;
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        if name.trim().eq_ignore_ascii_case("tag") {
            let value = value.trim();
            if !value.is_empty() {
                tag = Some(value.to_owned());
            }
        } else {
            addr.push(';');
            addr.push_str(p);
        }
    }
    (addr, tag)
}

fn with_tag(uri: &str, tag: &str) -> String {
    if tag.is_empty() {
        uri.to_owned()
    } else {
        format!("{uri};tag={tag}")
    }
}

/// True if a URI carries the `lr` parameter.
fn has_lr(uri: &str) -> bool {
    uri.split(';').skip(1).any(|p| {
        let name = p.split('=').next().unwrap_or("");
        name.trim().eq_ignore_ascii_case("lr")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3261 §24.2 F1 (Alice's INVITE) without its body.
    const F1_INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Length: 0\r\n\r\n";

    // RFC 3261 §24.2 F9 (Bob's 200 OK as Alice receives it) without its body.
    const F9_OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n\
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\r\n";

    fn req(s: &str) -> rsip::Request {
        rsip::Request::try_from(s).unwrap()
    }

    fn resp(s: &str) -> rsip::Response {
        rsip::Response::try_from(s).unwrap()
    }

    #[test]
    fn uac_from_rfc3261_flow() {
        let d = Dialog::uac(&req(F1_INVITE), &resp(F9_OK)).unwrap();
        assert_eq!(d.call_id, "a84b4c76e66710");
        assert_eq!(d.local_tag, "1928301774");
        assert_eq!(d.remote_tag, "a6c85cf");
        assert_eq!(d.local_uri, "Alice <sip:alice@atlanta.com>");
        assert_eq!(d.remote_uri, "Bob <sip:bob@biloxi.com>");
        assert_eq!(d.local_cseq, 314159);
        assert_eq!(d.remote_cseq, None);
        assert_eq!(d.remote_target.to_string(), "sip:bob@192.0.2.4");
        assert!(d.route_set.is_empty());
        assert!(!d.secure);

        let ack = d.make_ack(
            314159,
            "pc33.atlanta.com",
            Transport::Udp,
            "z9hG4bKnashds9",
            "sip:alice@pc33.atlanta.com",
        );
        // RFC 3261 §24.2 F11, plus our rport, Contact and Content-Length.
        assert_eq!(
            ack.to_string(),
            "ACK sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds9;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 ACK\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Length: 0\r\n\r\n"
        );
        assert_eq!(d.local_cseq, 314159);
    }

    #[test]
    fn uas_bye_matches_rfc3261_f13() {
        let mut d = Dialog::uas(&req(F1_INVITE), "a6c85cf").unwrap();
        assert_eq!(d.remote_tag, "1928301774");
        assert_eq!(d.local_uri, "Bob <sip:bob@biloxi.com>");
        assert_eq!(d.remote_cseq, Some(314159));
        assert_eq!(d.remote_target.to_string(), "sip:alice@pc33.atlanta.com");
        d.local_cseq = 230;
        let bye = d.make_request(
            Method::Bye,
            "192.0.2.4",
            Transport::Udp,
            "z9hG4bKnashds10",
            "sip:bob@192.0.2.4",
        );
        assert_eq!(d.local_cseq, 231);
        assert_eq!(
            bye.to_string(),
            "BYE sip:alice@pc33.atlanta.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10;rport\r\n\
Max-Forwards: 70\r\n\
From: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
To: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 231 BYE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\r\n"
        );
        // What we generate parses back.
        let back = rsip::Request::try_from(bye.to_string().as_str()).unwrap();
        assert_eq!(back.method, Method::Bye);
    }

    #[test]
    fn route_sets_loose_and_strict() {
        let invite = F1_INVITE.replace(
            "Contact:",
            "Record-Route: <sip:p2.example.com;lr>,<sip:p1.example.com;lr>\r\n\
             Record-Route: \"Edge, Proxy\" <sip:p0.example.com;lr>;x=1\r\nContact:",
        );
        // UAS: in order.
        let mut uas = Dialog::uas(&req(&invite), "t1").unwrap();
        assert_eq!(
            uas.route_set,
            vec![
                "<sip:p2.example.com;lr>",
                "<sip:p1.example.com;lr>",
                "\"Edge, Proxy\" <sip:p0.example.com;lr>;x=1"
            ]
        );
        let bye = uas.make_request(Method::Bye, "h", Transport::Tcp, "z9hG4bK1", "sip:me@h");
        assert_eq!(bye.uri.to_string(), "sip:alice@pc33.atlanta.com");
        let text = bye.to_string();
        assert!(text.contains("Via: SIP/2.0/TCP h;branch=z9hG4bK1;rport\r\n"));
        assert!(
            text.contains("Route: <sip:p2.example.com;lr>\r\nRoute: <sip:p1.example.com;lr>\r\n")
        );

        // UAC: reversed.
        let ok = F9_OK.replace(
            "Contact:",
            "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\nContact:",
        );
        let uac = Dialog::uac(&req(F1_INVITE), &resp(&ok)).unwrap();
        assert_eq!(
            uac.route_set,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );

        // Strict routing: first route becomes the Request-URI, remote target goes last.
        let ok = F9_OK.replace(
            "Contact:",
            "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com>\r\nContact:",
        );
        let mut strict = Dialog::uac(&req(F1_INVITE), &resp(&ok)).unwrap();
        let bye = strict.make_request(Method::Bye, "h", Transport::Udp, "z9hG4bK2", "sip:me@h");
        assert_eq!(bye.uri.to_string(), "sip:p1.example.com");
        assert!(bye
            .to_string()
            .contains("Route: <sip:p2.example.com;lr>\r\nRoute: <sip:bob@192.0.2.4>\r\n"));
        assert_eq!(strict.local_cseq, 314160);
    }

    #[test]
    fn compact_headers_and_sips() {
        let invite = "INVITE sips:bob@biloxi.com SIP/2.0\r\n\
v: SIP/2.0/TLS pc33.atlanta.com;branch=z9hG4bKx\r\n\
t: <sips:bob@biloxi.com>\r\n\
f: <sips:alice@atlanta.com>;tag=88;user=phone\r\n\
i: abc@def\r\n\
CSeq: 7 INVITE\r\n\
m: <sips:alice@192.0.2.1:5061;transport=tls>;expires=60\r\n\
l: 0\r\n\r\n";
        let d = Dialog::uas(&req(invite), "99").unwrap();
        assert_eq!(d.call_id, "abc@def");
        assert_eq!(d.remote_tag, "88");
        assert_eq!(d.remote_uri, "<sips:alice@atlanta.com>;user=phone");
        assert!(d.secure);
        assert_eq!(
            d.remote_target.to_string(),
            "sips:alice@192.0.2.1:5061;transport=TLS"
        );
    }

    #[test]
    fn remote_requests_and_target_refresh() {
        let mut d = Dialog::uas(&req(F1_INVITE), "a6c85cf").unwrap();
        let in_dialog = |method: &str, cseq: u32, contact: &str| {
            req(&format!(
                "{method} sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK{cseq}\r\n\
                 From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nTo: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
                 Call-ID: a84b4c76e66710\r\nCSeq: {cseq} {method}\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        // ACK for the INVITE repeats its CSeq.
        assert!(d.accept_remote_request(&in_dialog("ACK", 314159, "<sip:alice@pc33.atlanta.com>")));
        // A re-INVITE with a new Contact refreshes the target.
        assert!(d.accept_remote_request(&in_dialog("INVITE", 314160, "<sip:alice@192.0.2.99>")));
        assert_eq!(d.remote_target.to_string(), "sip:alice@192.0.2.99");
        // INFO does not refresh the target.
        assert!(d.accept_remote_request(&in_dialog("INFO", 314161, "<sip:alice@192.0.2.100>")));
        assert_eq!(d.remote_target.to_string(), "sip:alice@192.0.2.99");
        // Out of order and repeated CSeq are refused.
        assert!(!d.accept_remote_request(&in_dialog("INFO", 314161, "<sip:a@b>")));
        assert!(!d.accept_remote_request(&in_dialog("BYE", 5, "<sip:a@b>")));
        assert_eq!(d.remote_cseq, Some(314161));
        // UPDATE is a target refresh.
        assert!(d.accept_remote_request(&in_dialog("UPDATE", 314162, "<sip:alice@192.0.2.7>")));
        assert_eq!(d.remote_target.to_string(), "sip:alice@192.0.2.7");
    }

    #[test]
    fn errors() {
        assert_eq!(
            Dialog::uac(&req(F1_INVITE), &resp(&F9_OK.replace(";tag=a6c85cf", ""))),
            Err(DialogError::MissingTag)
        );
        assert_eq!(
            Dialog::uas(&req(&F1_INVITE.replace(";tag=1928301774", "")), "x"),
            Err(DialogError::MissingTag)
        );
        assert_eq!(
            Dialog::uas(
                &req(&F1_INVITE.replace("Call-ID: a84b4c76e66710\r\n", "")),
                "x"
            ),
            Err(DialogError::MissingHeader { name: "Call-ID" })
        );
        assert_eq!(
            Dialog::uas(
                &req(&F1_INVITE.replace("<sip:alice@pc33.atlanta.com>", "*")),
                "x"
            ),
            Err(DialogError::BadContact)
        );
        assert_eq!(
            Dialog::uas(
                &req(&F1_INVITE.replace("<sip:alice@pc33.atlanta.com>", "<mailto:a@b>")),
                "x"
            ),
            Err(DialogError::BadContact)
        );
        assert_eq!(
            Dialog::uas(
                &req(&F1_INVITE.replace("Contact: <sip:alice@pc33.atlanta.com>\r\n", "")),
                "x"
            ),
            Err(DialogError::MissingHeader { name: "Contact" })
        );
        let many = F1_INVITE.replace(
            "Contact:",
            &format!(
                "Record-Route: {}\r\nContact:",
                vec!["<sip:p;lr>"; MAX_ROUTES + 1].join(",")
            ),
        );
        assert_eq!(
            Dialog::uas(&req(&many), "x"),
            Err(DialogError::TooManyRoutes { max: MAX_ROUTES })
        );
    }
}
