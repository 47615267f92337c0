//! The call supervisor's mailbox: new INVITEs from the endpoint (RFC 3261 §17.2.1, 100
//! Trying already sent), snapshots from calls, orders from the admin API, and calls the
//! gateway places itself (fax jobs, devices, ingest). Apart from the supervisor (`supervisor`),
//! which spawns the call actors, so those actors and everything that places calls can name
//! its mailbox without importing it.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

use crate::call_msg::{CallId, CallMsg, CallSnapshot};
use crate::endpoint_msg::EndpointMsg;
use crate::ua_event::{Listener, UaMode};

/// Messages of the call supervisor.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// A new INVITE (the endpoint already sent 100 Trying).
    NewCall {
        /// The endpoint, for answering when no call can be started.
        endpoint: ActorRef<EndpointMsg>,
        /// The INVITE's server transaction.
        key: TransactionKey,
        /// The INVITE.
        request: rsip::Request,
        /// Where it came from.
        peer: Peer,
        /// The `[[sip_user]]` whose digest credentials the endpoint verified on this INVITE
        /// (`None` for trunk and trusted sources): who pays, never From (issue 11).
        user: Option<String>,
    },
    /// A call's latest snapshot.
    Update(Box<CallSnapshot>),
    /// All live calls.
    List(RpcReplyPort<Vec<CallSnapshot>>),
    /// One call.
    Get(CallId, RpcReplyPort<Option<CallSnapshot>>),
    /// Hang a call up; false when unknown.
    Hangup(CallId, RpcReplyPort<bool>),
    /// Pass a message to a call (answer, reject or end it for a local target).
    Tell(CallId, CallMsg),
    /// A reloaded configuration for calls started from now on; running calls keep theirs.
    Reload(Arc<switchboard_config::Config>),
    /// How many calls are live (started, ringing, answered or ending).
    Count(RpcReplyPort<usize>),
    /// Hang up every live call with this cause (the drain deadline: `shutdown`).
    EndAll(switchboard_call::HangupCause),
    /// Test hook: make a call actor panic; false when unknown.
    Crash(CallId, RpcReplyPort<bool>),
    /// Place a call of our own (a fax job's); false when none can start now.
    Originate {
        /// The call's id.
        id: CallId,
        /// Number to dial (routed by `[[route]]`).
        to: String,
        /// Our calling number.
        src: String,
        /// Who hears about the call.
        listener: Listener,
        /// Fax or audio.
        mode: UaMode,
        /// Whether the call started.
        reply: RpcReplyPort<bool>,
    },
}
