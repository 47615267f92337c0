//! Building the messages of the B2BUA's two legs (RFC 3261 §8.1.1, §13):
//! the outbound INVITE toward a trunk, responses toward the caller, and the
//! SDP rewriting that anchors media on the gateway (RFC 3264).

use std::net::IpAddr;

use rsip::{Header, Method};
use switchboard_sip::message::{make_response, MessageExt};
use switchboard_sip::sdp::{AudioInfo, SdpError, SessionDescription};
use switchboard_sip::transport::Transport;

/// Headers carried across the B2BUA from one leg to the other (session
/// timers, RFC 4028, and the caller's identity hints).
const PASS_THROUGH: &[&str] = &["Session-Expires", "Min-SE", "Supported", "Require"];

/// An SDP body rewritten to point at the gateway, plus the audio stream it
/// described (where the sender wants to receive).
pub struct Anchored {
    /// The rewritten body.
    pub body: Vec<u8>,
    /// The audio stream of the original, if any.
    pub audio: Option<AudioInfo>,
}

/// Why an SDP body could not be anchored (this module's error).
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The body is not UTF-8.
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    /// The SDP did not parse.
    #[error(transparent)]
    Sdp(#[from] SdpError),
}

/// Rewrite `body` so its media points at `ip:port`.
pub fn anchor(body: &[u8], ip: IpAddr, port: u16) -> Result<Anchored, AnchorError> {
    let text = std::str::from_utf8(body).map_err(|_| AnchorError::NotUtf8)?;
    let mut sdp = SessionDescription::parse(text)?;
    let audio = sdp.audio();
    sdp.anchor(ip, &[port]);
    Ok(Anchored {
        body: sdp.to_string().into_bytes(),
        audio,
    })
}

/// True when an SDP's audio is on hold: sendonly or inactive (RFC 3264 §8.4), or an
/// unspecified address (RFC 2543 hold), or a disabled stream.
pub fn on_hold(audio: &AudioInfo) -> bool {
    use switchboard_sip::sdp::Direction;
    audio.port == 0
        || audio.addr.to_canonical().is_unspecified()
        || matches!(audio.direction, Direction::SendOnly | Direction::Inactive)
}

/// True when the message carries an SDP body.
pub fn has_sdp<M: MessageExt>(msg: &M, body: &[u8]) -> bool {
    !body.is_empty()
        && msg
            .content_type()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"))
}

/// Copy the pass-through headers of `from` into `to`.
pub fn copy_pass_through<M: MessageExt>(from: &M, to: &mut rsip::Headers) {
    for name in PASS_THROUGH {
        if let Some(v) = from.header_value(name) {
            to.push(Header::Other((*name).to_string(), v));
        }
    }
}

/// Parameters of the INVITE toward the callee.
pub struct OutboundInvite<'a> {
    /// Request-URI.
    pub uri: &'a str,
    /// Calling number (user part of From).
    pub src: &'a str,
    /// Domain for From.
    pub from_domain: &'a str,
    /// Our From tag.
    pub from_tag: &'a str,
    /// New Call-ID of the B leg.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Via branch.
    pub branch: &'a str,
    /// Via sent-by.
    pub via_host: &'a str,
    /// Transport to the trunk.
    pub transport: Transport,
    /// Our Contact URI.
    pub contact: &'a str,
    /// Max-Forwards to put (already decremented).
    pub max_forwards: u32,
    /// User-Agent header value.
    pub user_agent: &'a str,
    /// Anchored SDP offer.
    pub body: Vec<u8>,
}

/// An INVITE toward a trunk: the B leg's (with the pass-through headers of
/// the caller's INVITE `original`) or one the gateway places itself.
pub fn outbound_invite(
    p: OutboundInvite<'_>,
    original: Option<&rsip::Request>,
) -> Result<rsip::Request, rsip::Error> {
    let mut headers = rsip::Headers::default();
    headers.push(Header::Via(
        format!(
            "SIP/2.0/{} {};branch={};rport",
            p.transport.as_str(),
            p.via_host,
            p.branch
        )
        .into(),
    ));
    headers.push(Header::MaxForwards(p.max_forwards.to_string().into()));
    headers.push(Header::From(
        format!("<sip:{}@{}>;tag={}", p.src, p.from_domain, p.from_tag).into(),
    ));
    headers.push(Header::To(format!("<{}>", p.uri).into()));
    headers.push(Header::CallId(p.call_id.into()));
    headers.push(Header::CSeq(format!("{} INVITE", p.cseq).into()));
    headers.push(Header::Contact(format!("<{}>", p.contact).into()));
    headers.push(Header::Allow(
        "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO".into(),
    ));
    headers.push(Header::UserAgent(p.user_agent.into()));
    if let Some(original) = original {
        copy_pass_through(original, &mut headers);
    }
    if !p.body.is_empty() {
        headers.push(Header::ContentType("application/sdp".into()));
    }
    Ok(rsip::Request {
        method: Method::Invite,
        uri: rsip::Uri::try_from(p.uri)?,
        version: rsip::Version::V2,
        headers,
        body: p.body,
    })
}

/// A response on the A leg, with our Contact and optional SDP.
pub fn response_to(
    req: &rsip::Request,
    code: u16,
    tag: Option<&str>,
    contact: Option<&str>,
    sdp: Option<Vec<u8>>,
) -> rsip::Response {
    let mut resp = make_response(req, code, tag);
    if let Some(c) = contact {
        resp.headers.push(Header::Contact(format!("<{c}>").into()));
    }
    if let Some(body) = sdp {
        resp.headers
            .push(Header::ContentType("application/sdp".into()));
        resp.body = body;
    }
    resp
}

/// Extract the user part of the Request-URI (the dialed number).
pub fn dialed(req: &rsip::Request) -> Option<String> {
    req.uri
        .auth
        .as_ref()
        .map(|a| a.user.clone())
        .filter(|u| !u.is_empty() && u.len() <= 64)
}

/// The calling number: user part of the From URI.
pub fn calling(req: &rsip::Request) -> String {
    use rsip::prelude::*;
    req.from_header()
        .ok()
        .and_then(|f| f.typed().ok())
        .and_then(|f| f.uri.auth.map(|a| a.user))
        .filter(|u| u.len() <= 64)
        .unwrap_or_else(|| "anonymous".to_string())
}

/// Max-Forwards of a request (70 when absent).
pub fn max_forwards(req: &rsip::Request) -> u32 {
    req.header_value("Max-Forwards")
        .and_then(|v| v.parse().ok())
        .unwrap_or(70)
}

/// Session-Expires delta seconds of a message, if any (RFC 4028 §4).
pub fn session_expires<M: MessageExt>(msg: &M) -> Option<u32> {
    msg.header_value("Session-Expires")
        .and_then(|v| v.split(';').next().and_then(|s| s.trim().parse().ok()))
        .filter(|s| *s >= 90)
}

/// The INVITE `invite` again with digest credentials answering the challenge
/// in `resp` (401 or 407): new branch, CSeq + 1, the previous credentials
/// replaced (RFC 3261 §22.2). `None` when `resp` carries no usable challenge.
pub fn with_credentials(
    invite: &rsip::Request,
    resp: &rsip::Response,
    user: &str,
    password: &str,
    via_host: &str,
    transport: Transport,
) -> Option<rsip::Request> {
    use switchboard_sip::digest::{self, Challenge};
    let proxy = resp.status_code.code() == 407;
    let header = if proxy {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    let ch = resp
        .header_value(header)
        .and_then(|v| Challenge::parse(&v).ok())?;
    let mut invite = invite.clone();
    let cseq = invite.cseq().map(|c| c.0).unwrap_or(1) + 1;
    let branch = switchboard_sip::message::new_branch();
    let uri = invite.uri.to_string();
    let cnonce = switchboard_sip::message::new_tag();
    let value = digest::authorization(&ch, user, password, "INVITE", &uri, 1, &cnonce);
    let via = Header::Via(
        format!(
            "SIP/2.0/{} {};branch={};rport",
            transport.as_str(),
            via_host,
            branch
        )
        .into(),
    );
    let kept: Vec<Header> = invite
        .headers
        .iter()
        .filter(|h| {
            !matches!(
                h,
                Header::Via(_)
                    | Header::CSeq(_)
                    | Header::Authorization(_)
                    | Header::ProxyAuthorization(_)
            )
        })
        .cloned()
        .collect();
    invite.headers = rsip::Headers::default();
    invite.headers.push(via);
    invite.headers.extend(kept);
    invite
        .headers
        .push(Header::CSeq(format!("{cseq} INVITE").into()));
    invite.headers.push(if proxy {
        Header::ProxyAuthorization(value.into())
    } else {
        Header::Authorization(value.into())
    });
    Some(invite)
}
