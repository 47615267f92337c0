//! What goes into and out of [`crate::EndpointCore`] (RFC 3261 §12–§15 for the one
//! dialog, RFC 3264 offer/answer, RFC 3362 and T.38 Annex D for the fax switch): the
//! owner's settings and commands and the events it acts on.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_sip::sdp::AudioInfo;
use switchboard_sip::transport::Peer;

use crate::leg::Credentials;
use crate::outcome::{CallFailure, HangupCause};

/// What the call does with its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    /// Fax: audio first, then T.38 (ours by re-INVITE, or the far end's).
    Fax,
    /// G.711 audio for the owner's listener; T.38 offers are refused (488).
    Audio {
        /// Inbound: ring (180) and wait for [`EndpointCommand::Answer`].
        ring_first: bool,
    },
}

/// The far end's `T38Fax*` attributes answered with ours (the owner's T.38 parameter
/// negotiation, T.38 Annex D).
pub type T38Answerer = Box<dyn Fn(&[(String, Option<String>)]) -> Vec<String> + Send + Sync>;

/// The fax settings of a one-leg call.
pub struct FaxConfig {
    /// `[fax] t38_switch_timeout_secs`: when we offer T.38 ourselves after answer.
    pub switch_after: Duration,
    /// How long after answer T.38 must be up.
    pub deadline: Duration,
    /// The attribute values (without `a=`) of our T.38 offer.
    pub offer: Vec<String>,
    /// Our answer to the far end's T.38 attributes.
    pub answer: T38Answerer,
}

impl std::fmt::Debug for FaxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaxConfig")
            .field("switch_after", &self.switch_after)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The one-leg call's settings.
#[derive(Debug)]
pub struct EndpointConfig {
    /// Fax or audio.
    pub mode: EndpointMode,
    /// The timing settings every call has (its `no_answer` is, for an inbound call that
    /// rings, the ring timeout).
    pub timing: crate::CallConfig,
    /// Our media address in SDP.
    pub media_ip: std::net::IpAddr,
    /// The SDP session id (`o=`), random per call.
    pub sdp_session: u64,
    /// The T.38 settings (fax mode).
    pub fax: Option<FaxConfig>,
}

/// What to dial once the owner has routed and admitted the call and allocated its port.
#[derive(Debug, Clone)]
pub struct EndpointDial {
    /// The trunk's signalling address.
    pub peer: Peer,
    /// Via sent-by toward the trunk.
    pub via_host: String,
    /// Our Contact toward the trunk.
    pub contact: String,
    /// The INVITE's Request-URI (`sip:number@trunk`).
    pub uri: String,
    /// Our calling number.
    pub src: String,
    /// From domain.
    pub from_domain: String,
    /// The Call-ID.
    pub call_id: String,
    /// User-Agent.
    pub user_agent: String,
    /// The trunk's digest credentials.
    pub credentials: Option<Credentials>,
    /// Our media port.
    pub port: u16,
}

/// A command from the owner.
#[derive(Debug, Clone)]
pub enum EndpointCommand {
    /// Outbound, routed and admitted: send the INVITE.
    Dial(Box<EndpointDial>),
    /// The call cannot be placed; `status` is the SIP status recorded with it (if any).
    Fail {
        /// Why.
        failure: CallFailure,
        /// The status for the CDR and the fax job's text.
        status: Option<u16>,
    },
    /// Inbound: answer now on our media `port` (`None`: no port left, 503).
    Answer {
        /// Our media port.
        port: Option<u16>,
    },
    /// Inbound, ringing: refuse with this status (300-699).
    Reject(u16),
    /// Hang up (BYE when answered, CANCEL or 480 before).
    Hangup(HangupCause),
    /// Offer T.38 now (fax mode, answered, still audio).
    SwitchT38,
    /// The ledger's reservation on answer: how long the credit lasts, or why refused.
    Reserved(Result<Duration, HangupCause>),
}

/// Why the T.38 switch failed (for the owner's counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T38Failure {
    /// The far end refused it.
    Refused,
    /// Our re-INVITE or the T.38 deadline timed out.
    Timeout,
}

/// Something the owner acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointEvent {
    /// Inbound: the offer is acceptable; answer with [`EndpointCommand::Answer`] now.
    AnswerNow,
    /// The far end rings (the first provisional, if above 100).
    Ringing,
    /// The call is answered (reserve credit, journal, tell the listener).
    Answered,
    /// Audio is negotiated (on answer, and again when a re-INVITE changes it): `info` is
    /// our answer's (or the far end's) stream, its first codec PCMU or PCMA.
    Audio {
        /// Where the far end wants RTP (`None`: on hold or refused).
        remote: Option<SocketAddr>,
        /// The stream.
        info: AudioInfo,
    },
    /// T.38 is negotiated (again, if `renegotiated`): UDPTL goes to `remote`.
    T38 {
        /// Where the far end wants UDPTL.
        remote: SocketAddr,
        /// The far end's `T38Fax*` attributes.
        attributes: Vec<(String, Option<String>)>,
        /// T.38 was already up.
        renegotiated: bool,
    },
    /// We offer T.38 by re-INVITE.
    OfferingT38,
    /// The T.38 switch failed.
    T38Failed(T38Failure),
    /// An SDP address was refused by the media policy.
    MediaRefused,
    /// The trunk did not answer our INVITE at all (Timer B before any provisional).
    TrunkUnreachable,
    /// The far end sent nothing for `[media] rtp_timeout_secs`.
    RtpTimeout,
    /// The credit reservation ran out.
    CreditExhausted,
}

/// What to do next.
#[derive(Debug, Clone)]
pub enum EndpointOutput {
    /// SIP to send.
    Sip(crate::leg::SipOutput),
    /// An event.
    Event(EndpointEvent),
}
