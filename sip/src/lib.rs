//! Sans-IO SIP cores for switchboard: messages (RFC 3261, via rsip), transactions, dialogs
//! (RFC 3261 §12), digest authentication (RFC 2617, RFC 7616, RFC 8760), SDP offer/answer
//! (RFC 4566, RFC 3264) and stream framing (RFC 3261 §18.3).
//! No tokio, no clock, no sockets: drivers feed bytes and time in and take bytes out.
//!
//! Call media (RTP, G.711, jitter buffers, DTMF, stream messages) lives in `switchboard-media`;
//! fax (T.38, T.30, T.4, TIFF) in `switchboard-fax`.

pub mod dialog;
pub mod digest;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod transport;

pub use rsip;
