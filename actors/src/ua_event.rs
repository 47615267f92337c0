//! What a one-leg call (`UaCall`, RFC 3261 §12–15 with T.38 per RFC 3362) tells whoever it
//! is for: its events, its media mode, its outcome, and the listener that receives them.
//! Apart from the actor (`ua`), so the call supervisor's mailbox, fax jobs, devices and
//! apps can name them without importing the call; `ua` re-exports them.

use std::net::SocketAddr;
use std::sync::Arc;

use switchboard_call::{CallFailure, FaxCode, HangupCause, Outcome};

/// What happened on the call, for its listener.
#[derive(Debug, Clone)]
pub enum UaEvent {
    /// The far end is ringing (first 18x).
    Ringing,
    /// The call is answered.
    Answered,
    /// T.38 is negotiated: UDPTL datagrams go to `remote`. The UDPTL socket
    /// (our media port) is handed over with [`UaEvent::T38`]'s companion
    /// message; see [`T38Media`].
    T38(T38Media),
    /// Audio is negotiated (on answer, and again when a re-INVITE changes it).
    Audio(crate::audio::AudioMedia),
    /// The call is over.
    Ended(UaOutcome),
}

/// What a `UaCall` does with its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UaMode {
    /// Fax: audio first, then T.38.
    Fax,
    /// G.711 audio for the listener.
    Audio {
        /// Inbound: ring (180) and wait for [`CallMsg::Answer`] instead of answering at once.
        ring_first: bool,
    },
}

/// The negotiated T.38 media of a call.
#[derive(Debug, Clone)]
pub struct T38Media {
    /// Where the far end wants UDPTL.
    pub remote: SocketAddr,
    /// The IP the call's SIP comes from: UDPTL from it is accepted besides `remote`'s IP.
    pub peer_ip: Option<std::net::IpAddr>,
    /// Stamped by the session on every datagram accepted from the peer.
    pub activity: Arc<crate::media::Activity>,
    /// Our UDPTL port.
    pub local_port: u16,
    /// The far end's `T38Fax*` SDP attributes.
    pub attributes: Vec<(String, Option<String>)>,
    /// The socket, shared with the call (which keeps the port's lease).
    pub socket: Arc<tokio::net::UdpSocket>,
}

/// How the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaOutcome {
    /// Whether it was answered.
    pub answered: bool,
    /// Final SIP status of a failed attempt (or of the request that ended the call).
    pub code: Option<u16>,
    /// Why it ended.
    pub outcome: Outcome,
    /// The far end called us (we were the UAS).
    pub inbound: bool,
}

impl UaOutcome {
    /// An answered call ended by `cause` outside the call (a listener gone, a stream ended).
    pub fn ended(cause: HangupCause) -> Self {
        Self {
            answered: true,
            code: None,
            outcome: Outcome::Ended(cause),
            inbound: false,
        }
    }

    /// The CDR hang-up cause.
    pub fn cause(&self) -> &'static str {
        self.outcome.as_str()
    }

    /// The result code like Asterisk's FAXERROR when the call failed for a reason a fax
    /// job retries or reports (`BUSY`, `NO_ANSWER`, `CONGESTION`, `NO_ROUTE`,
    /// `T38_REFUSED`, `T38_DISABLED`, ...). An inbound call refused before answer has
    /// none, unless it was abandoned or not answered in time.
    pub fn error(&self) -> Option<FaxCode> {
        match self.outcome {
            Outcome::Ended(c) => c.fax_code(),
            Outcome::Failed(f @ (CallFailure::Abandoned(_) | CallFailure::NoAnswer { .. })) => {
                Some(f.fax_code())
            }
            Outcome::Failed(_) if self.inbound => None,
            Outcome::Failed(f) => Some(f.fax_code()),
        }
    }
}

/// Receives a call's events (called from the call actor; must not block).
#[derive(Clone)]
pub struct Listener(Arc<dyn Fn(UaEvent) + Send + Sync>);

impl Listener {
    /// A listener calling `f`.
    pub fn new(f: impl Fn(UaEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Deliver an event.
    pub fn emit(&self, ev: UaEvent) {
        (self.0)(ev);
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}
