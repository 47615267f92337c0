//! A trunk as calls and the admin API see it (RFC 3261 §10 registration, §11 OPTIONS
//! keepalive): its status, its mailbox, and the handle a call holds. Apart from the trunk
//! actor (`trunk`), which imports the endpoint, so the endpoint's mailbox can name a trunk's.

use ractor::ActorRef;
use serde::Serialize;
use tokio::sync::watch;

use crate::sip_event::SipEvent;

/// Reachability of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkState {
    /// Monitored, not answered or timed out yet.
    Unknown,
    /// Not monitored (`qualify` off): never probed, never marked down.
    Unmonitored,
    /// Answered the last probe.
    Up,
    /// Did not answer (OPTIONS or INVITE timed out).
    Down,
}

/// A trunk's status for calls, metrics and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct TrunkStatus {
    /// Trunk name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Transport.
    pub transport: &'static str,
    /// Reachability.
    pub state: TrunkState,
    /// Probed with OPTIONS (`qualify`).
    pub monitored: bool,
    /// The OPTIONS interval, in seconds, when monitored.
    pub keepalive_secs: Option<u64>,
    /// When the trunk last answered an OPTIONS (RFC 3339).
    pub last_reply: Option<String>,
    /// Registration state, when the trunk registers.
    pub registered: Option<bool>,
    /// Last state change (RFC 3339).
    pub last_change: Option<String>,
    /// Last error seen.
    pub last_error: Option<String>,
    /// Round-trip time of the last OPTIONS, in ms.
    pub rtt_ms: Option<u64>,
}

impl TrunkStatus {
    /// True when the trunk is known down.
    pub fn is_down(&self) -> bool {
        self.state == TrunkState::Down
    }
}

/// Messages of a trunk actor.
#[derive(Debug)]
pub enum TrunkMsg {
    /// SIP events for our Call-IDs.
    Sip(SipEvent),
    /// A call's INVITE to this trunk timed out.
    Unreachable,
    /// Once a second: check the keepalive and registration deadlines.
    Tick,
}

/// A trunk as calls see it: its actor and its live status.
#[derive(Debug, Clone)]
pub struct TrunkHandle {
    /// The trunk actor.
    pub actor: ActorRef<TrunkMsg>,
    /// Live status (up/down, registration).
    pub status: watch::Receiver<TrunkStatus>,
}
