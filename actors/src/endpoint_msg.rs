//! The SIP endpoint's mailbox (RFC 3261 transports and transaction layer) as the actors
//! that use it see it: its messages, who owns a Call-ID, and its counters. Apart from the
//! endpoint actor (`endpoint`), so calls, trunks and the call supervisor can name it
//! without importing the actor, which names them.

use std::sync::Arc;

use bytes::Bytes;
use ractor::{ActorRef, RpcReplyPort};
use rsip::SipMessage;
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use tokio::sync::mpsc;

use crate::call_msg::CallMsg;
use crate::trunk_handle::TrunkMsg;

/// Who receives the transaction events of a Call-ID.
#[derive(Debug, Clone)]
pub enum Owner {
    /// A call actor (both legs' Call-IDs point at it).
    Call(ActorRef<CallMsg>),
    /// A trunk actor (its OPTIONS and REGISTER Call-IDs).
    Trunk(ActorRef<TrunkMsg>),
}

/// Counters for the status API and readiness.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointStatus {
    /// Transactions alive in the layer.
    pub transactions: usize,
    /// Call-IDs routed to owners.
    pub dialogs: usize,
    /// TCP connections open.
    pub tcp_connections: usize,
    /// TLS connections open.
    pub tls_connections: usize,
}

/// Messages of the endpoint actor.
#[derive(Debug)]
pub enum EndpointMsg {
    /// A parsed message from a transport driver.
    Inbound { peer: Peer, msg: SipMessage },
    /// Start a client transaction.
    SendRequest { peer: Peer, request: rsip::Request },
    /// Answer through a server transaction.
    SendResponse {
        key: TransactionKey,
        response: rsip::Response,
    },
    /// Send outside a transaction (ACK for 2xx).
    SendStateless { peer: Peer, msg: SipMessage },
    /// Route events for `call_id` to `owner`.
    Register { call_id: String, owner: Owner },
    /// Stop routing `call_id`.
    Unregister { call_id: String },
    /// A TCP or TLS connection is up: messages for `peer` go to `tx`.
    StreamUp { peer: Peer, tx: mpsc::Sender<Bytes> },
    /// The TCP or TLS connection to `peer` closed.
    StreamDown { peer: Peer },
    /// A connection to `peer` could not be opened (connect or TLS handshake failed): client
    /// transactions toward it fail at once instead of waiting for Timer B/F.
    StreamFailed { peer: Peer },
    /// Timer tick from the timer task.
    Tick,
    /// Status for the admin API.
    Status(RpcReplyPort<EndpointStatus>),
    /// A reloaded configuration (trusted sources, SIP users, limits).
    Reload(Arc<switchboard_config::Config>),
}

impl From<switchboard_call::SipOutput> for EndpointMsg {
    /// What a call core asks to send, as the endpoint's message.
    fn from(out: switchboard_call::SipOutput) -> Self {
        use switchboard_call::SipOutput;
        match out {
            SipOutput::Request { peer, request } => EndpointMsg::SendRequest { peer, request },
            SipOutput::Response { key, response } => EndpointMsg::SendResponse { key, response },
            SipOutput::Stateless { peer, request } => EndpointMsg::SendStateless {
                peer,
                msg: request.into(),
            },
        }
    }
}
