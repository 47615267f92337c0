//! What goes into and out of [`crate::CallCore`] (RFC 3261 §6 B2BUA, RFC 3264 media):
//! the owner's commands and settings, the media and event outputs, and the teardown
//! snapshot the owner keeps for crash cleanup.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use switchboard_sip::dialog::Dialog;
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

use crate::leg::{Credentials, SipOutput};
use crate::outcome::{CallFailure, HangupCause};

/// Which leg: A faces the caller, B the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's leg (we are its UAS).
    A,
    /// The callee's leg (we are its UAC).
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Waiting for the route/admission, or INVITE sent and nothing back yet.
    Trying,
    /// The callee is ringing (or early media).
    Ringing,
    /// Answered.
    Answered,
    /// Being torn down.
    Ending,
}

/// The call's timing settings.
#[derive(Debug, Clone, Copy)]
pub struct CallConfig {
    /// `[sip] no_answer_timeout`.
    pub no_answer: Duration,
    /// SIP T1 (the ACK wait is 64·T1).
    pub t1: Duration,
    /// `[sip] max_call_secs`.
    pub max_call: Duration,
    /// `[media] rtp_timeout_secs`.
    pub rtp_timeout: Option<Duration>,
    /// How long an ending call waits for BYE answers and the INVITE's final.
    pub bye_guard: Duration,
    /// Digest retries toward the trunk.
    pub max_auth_tries: u8,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            no_answer: Duration::from_secs(60),
            t1: Duration::from_millis(500),
            max_call: Duration::from_secs(4 * 3600),
            rtp_timeout: None,
            bye_guard: Duration::from_secs(32),
            max_auth_tries: 2,
        }
    }
}

/// The media-address policy refused an SDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("media address refused by policy")]
pub struct MediaRefused;

/// The media-address policy: where to send a stream an SDP names (`Ok(None)`: hold), or
/// refused.
pub type MediaPolicy =
    Box<dyn Fn(IpAddr, u16) -> Result<Option<SocketAddr>, MediaRefused> + Send + Sync>;

/// What to dial once the owner has routed and admitted the call.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The trunk's signalling address.
    pub peer: Peer,
    /// Via sent-by toward the trunk.
    pub via_host: String,
    /// Our Contact toward the trunk.
    pub contact: String,
    /// The INVITE's Request-URI (`sip:number@trunk`).
    pub uri: String,
    /// From domain.
    pub from_domain: String,
    /// The B leg's Call-ID.
    pub call_id: String,
    /// User-Agent.
    pub user_agent: String,
    /// The trunk's digest credentials.
    pub credentials: Option<Credentials>,
    /// Our relay port facing A.
    pub port_a: u16,
    /// Our relay port facing B.
    pub port_b: u16,
}

/// A command from the owner.
#[derive(Debug, Clone)]
pub enum Command {
    /// Routed and admitted: anchor the media and send the INVITE.
    Dial(Box<Dial>),
    /// The call cannot be placed (no route, refused by the ledger, no ports...).
    Fail(CallFailure),
    /// Hang up (operator, drain, an app or device gone).
    Hangup(HangupCause),
    /// The ledger's reservation on answer: how long the credit lasts, or why refused.
    Reserved(Result<Duration, HangupCause>),
}

/// Media control for the owner's relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaCtl {
    /// Send `side`'s media to this address (`None`: nowhere, on hold or refused).
    Remote {
        /// Which leg.
        side: Side,
        /// Where.
        addr: Option<SocketAddr>,
    },
}

/// Something the owner acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The callee answered: reserve credit, journal, start the fork app, count it.
    Answered,
    /// The trunk did not answer our INVITE at all (Timer B before any provisional).
    TrunkUnreachable,
    /// An SDP address was refused by the media policy.
    MediaRefused(Side),
    /// The RTP check found neither side sending.
    RtpTimeout,
    /// The phase changed.
    Phase(Phase),
}

/// What to do next.
#[derive(Debug, Clone)]
pub enum Output {
    /// SIP to send on a leg.
    Sip(SipOutput),
    /// Media control.
    Media(MediaCtl),
    /// An event.
    Event(Event),
}

/// What it takes to end both legs from outside, if the owner dies.
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    /// The caller.
    pub a_peer: Option<Peer>,
    /// The caller's INVITE server transaction.
    pub a_key: Option<TransactionKey>,
    /// The caller's INVITE while it has no final response.
    pub a_invite: Option<rsip::Request>,
    /// Our To tag toward the caller.
    pub a_tag: String,
    /// The caller's dialog.
    pub a_dialog: Option<Dialog>,
    /// A final was sent to the caller.
    pub a_final_sent: bool,
    /// The callee.
    pub b_peer: Option<Peer>,
    /// Our INVITE while its transaction is open.
    pub b_invite: Option<rsip::Request>,
    /// The callee's confirmed dialog.
    pub b_dialog: Option<Dialog>,
    /// A provisional came back from the callee.
    pub b_provisional: bool,
    /// Both Call-IDs.
    pub call_ids: Vec<String>,
}
