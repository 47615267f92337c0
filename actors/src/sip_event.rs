//! What the SIP endpoint hands the owner of a Call-ID (a call or a trunk): the events of
//! its RFC 3261 transactions (§17), already matched to a transaction by the endpoint.
//! A leaf: the call and trunk mailboxes carry it, and the endpoint's mailbox names them.

/// A transaction event for an owner: the call core's own type, so a call hands it to its
/// core as is.
pub use switchboard_call::SipEvent;
