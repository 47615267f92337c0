//! Sans-IO SIP cores for switchboard: messages (RFC 3261, via rsip), transactions, dialogs
//! (RFC 3261 §12), digest authentication (RFC 2617, RFC 7616, RFC 8760), SDP offer/answer
//! (RFC 4566, RFC 3264), RTP statistics (RFC 3550), stream framing (RFC 3261 §18.3) and
//! T.38 fax transport: UDPTL, IFP and the SDP parameters (ITU-T T.38), and fax imaging (T.4/T.6
//! codecs, TIFF class F), and call media for apps and devices (G.711, resampling, jitter and
//! reorder buffers, RTP audio, RFC 4733 DTMF, Twilio/Exotel stream messages).
//! No tokio, no clock, no sockets: drivers feed bytes and time in and take bytes out.

pub mod dialog;
pub mod digest;
pub mod fax;
pub mod media;
pub mod message;
pub mod rtp;
pub mod sdp;
pub mod t38;
#[cfg(test)]
mod test_rng;
pub mod transaction;
pub mod transport;

pub use rsip;
