//! T.38 fax relay (ITU-T Recommendation T.38, "Procedures for real-time Group 3 facsimile
//! communication over IP networks").
//!
//! - [`types`]: the IFP packet vocabulary (T.38 Annex A `IFPPacket`);
//! - [`ifp`]: its ASN.1 BASIC-ALIGNED PER encoding (ITU-T X.691), for T.38 version 0 and
//!   versions 1 and later, which differ in the `field-type` enumeration;
//! - [`udptl`]: the UDPTL transport (T.38 §9.1 and the `UDPTLPacket` ASN.1): datagram codec,
//!   sender with redundancy or parity FEC, and a receiver that restores order and recovers
//!   losses;
//! - [`params`]: the SDP attributes of a T.38 session (T.38 Annex D for SIP, the
//!   `T38Fax...` attributes also registered by RFC 3362 and RFC 4612) and their negotiation.
//!
//! Everything here is sans-IO: no clock, no socket.

pub mod ifp;
pub mod params;
mod per;
pub mod types;
pub mod udptl;

pub use ifp::IfpError;
pub use params::{ParamsError, RateManagement, T38Params, UdpEc};
pub use types::{DataType, Field, FieldType, Ifp, Indicator};
pub use udptl::{
    Recovery, RxIfp, RxSource, RxStats, TxErrorCorrection, UdptlError, UdptlPacket, UdptlRx,
    UdptlRxConfig, UdptlTx, UdptlTxConfig,
};
