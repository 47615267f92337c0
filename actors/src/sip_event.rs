//! What the SIP endpoint hands the owner of a Call-ID (a call or a trunk): the events of
//! its RFC 3261 transactions (§17), already matched to a transaction by the endpoint.
//! A leaf: the call and trunk mailboxes carry it, and the endpoint's mailbox names them.

use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

/// A transaction event for an owner.
#[derive(Debug, Clone)]
pub enum SipEvent {
    /// A request: `key` is its server transaction (None for ACK to a 2xx).
    Request {
        key: Option<TransactionKey>,
        request: rsip::Request,
        peer: Peer,
    },
    /// The caller cancelled the INVITE of server transaction `invite`.
    Cancelled { invite: TransactionKey },
    /// A response to a request we sent (or a stray 2xx retransmission).
    Response { response: rsip::Response },
    /// The client transaction with this branch timed out (Timer B/F).
    Timeout { branch: String },
}
