//! A call as the rest of the gateway sees it: its id, its mailbox (SIP events per RFC 3261
//! §17, orders, the ledger's answers), its phase, the snapshot it publishes for the admin API
//! and crash teardown, and the route the supervisor decided for it. Apart from the call
//! actors (`call`, `ua`), so the endpoint, the call supervisor's mailbox, devices, fax jobs
//! and the journal can name a call without importing the actors that name them.

use std::sync::Arc;

use serde::Serialize;
use switchboard_call::{CallFailure, HangupCause};
use switchboard_config::{RouteConfig, TrunkConfig};
use switchboard_storage::Disposition;

use crate::ledger::Reservation;
use crate::media::{MediaSnapshot, RelayStats, Side};
use crate::sip_event::SipEvent;

/// A call's id: 16 hex digits, also the CDR id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl CallId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(format!("{:016x}", rand::random::<u64>()))
    }
}

impl CallId {
    /// The id of this call's reservation (pending transfer) in the ledger.
    pub fn pending_id(&self) -> String {
        format!("call:{self}")
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Messages of a call actor.
#[derive(Debug)]
pub enum CallMsg {
    /// A SIP transaction event for one of our Call-IDs.
    Sip(SipEvent),
    /// Our single timer fired (generation).
    Timer(u64),
    /// Hang up on operator request.
    Hangup,
    /// Hang up with this cause (an app or device went away).
    End(HangupCause),
    /// Answer a call that is ringing for a local target (a device took the call).
    Answer,
    /// Refuse a call that is ringing for a local target, with this SIP status.
    Reject(u16),
    /// What the credits ledger answered (admission, reservation).
    Charge(ChargeEvent),
    /// Test hook: panic on purpose, so supervision can be exercised.
    Crash,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// INVITE sent to the trunk, nothing back yet.
    Trying,
    /// The callee is ringing (or early media).
    Ringing,
    /// Answered.
    Answered,
    /// Being torn down.
    Ending,
}

/// One leg as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    /// Which leg.
    pub side: Side,
    /// Its Call-ID.
    pub call_id: String,
    /// Signalling peer.
    pub peer: String,
    /// Transport.
    pub transport: &'static str,
    /// Our media port facing it.
    pub rtp_port: Option<u16>,
    /// Where we send its media (from SDP, before latching).
    pub remote_media: Option<String>,
}

/// Everything the supervisor needs to show a call and to tear it down if
/// the actor crashes.
#[derive(Debug, Clone, Serialize)]
pub struct CallSnapshot {
    /// Call id.
    pub id: CallId,
    /// Phase.
    pub state: Phase,
    /// Calling number.
    pub src: String,
    /// Dialed number.
    pub dst: String,
    /// Start (RFC 3339).
    pub start: String,
    /// Answer time (RFC 3339).
    pub answer: Option<String>,
    /// Inbound trunk.
    pub trunk_in: Option<String>,
    /// Outbound trunk.
    pub trunk_out: Option<String>,
    /// Negotiated audio codec.
    pub codec: Option<String>,
    /// Both legs.
    pub legs: Vec<LegView>,
    /// Media counters (filled when read).
    pub media: MediaSnapshot,
    /// Who pays and at what price, for a rated call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<ChargeView>,
    #[serde(skip)]
    pub(crate) start_ms: u64,
    #[serde(skip)]
    pub(crate) answer_ms: Option<u64>,
    #[serde(skip)]
    pub(crate) stats: Option<Arc<RelayStats>>,
    #[serde(skip)]
    pub(crate) teardown: Teardown,
}

impl CallSnapshot {
    /// Seconds since the call started (`now_ms` in Unix ms), as a CDR's `duration` would be.
    pub fn duration_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.start_ms) / 1000
    }

    /// Seconds since the call was answered, as a CDR's `billsec` would be (0 before).
    pub fn billsec(&self, now_ms: u64) -> u64 {
        self.answer_ms
            .map_or(0, |a| now_ms.saturating_sub(a) / 1000)
    }

    /// The CDR of this call ending at `end` (ms since the epoch, from the call's clock).
    pub(crate) fn cdr_at(
        &self,
        end: u64,
        disposition: Disposition,
        cause: &str,
        code: Option<u16>,
    ) -> switchboard_storage::Cdr {
        switchboard_storage::Cdr {
            v: 1,
            id: self.id.0.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
            start: switchboard_storage::rfc3339(self.start_ms),
            answer: self.answer_ms.map(switchboard_storage::rfc3339),
            end: switchboard_storage::rfc3339(end),
            duration: end.saturating_sub(self.start_ms) / 1000,
            billsec: self
                .answer_ms
                .map(|a| end.saturating_sub(a) / 1000)
                .unwrap_or(0),
            disposition,
            hangup_cause: cause.to_string(),
            sip_code: code,
            trunk_in: self.trunk_in.clone(),
            trunk_out: self.trunk_out.clone(),
            codec: self.codec.clone(),
            end_unix_ms: end,
            account: None,
            cost: None,
        }
    }
}

/// What it takes to end both legs from outside the actor: the core's snapshot, kept by the
/// supervisor for crash cleanup (one-leg calls fill the A or B side only).
pub(crate) use switchboard_call::Teardown;

/// Where the supervisor decided a call goes (once, in its new-call path).
#[derive(Debug, Clone)]
pub enum Routing {
    /// Out through a trunk that is configured and up.
    Trunk {
        /// The matching route.
        route: Box<RouteConfig>,
        /// Its trunk.
        trunk: Box<TrunkConfig>,
        /// The number to dial (the route's rewrite applied).
        number: String,
    },
    /// Refused before dialling (no route, unknown trunk, trunk down).
    Refused(CallFailure),
}

/// What the ledger told a call.
#[derive(Debug)]
pub enum ChargeEvent {
    /// Admission: `Ok` to dial, or why not (its `status()` is what the caller gets).
    Admitted(Result<(), CallFailure>),
    /// The reservation made on answer, or why it was refused.
    Reserved(Result<Reservation, HangupCause>),
}

/// The charging part of a call as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChargeView {
    /// The account charged.
    pub account: String,
    /// Credit units per minute.
    pub price_per_minute: u64,
}
