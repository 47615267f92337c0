//! Sans-IO call control (RFC 3261 transaction user, RFC 3264 offer/answer, RFC 4028 session
//! timers): typed outcomes, the call timers, the UAC and UAS legs and the B2BUA
//! [`CallCore`] built from them, and the one-leg [`EndpointCore`] (fax, app, device
//! calls) built from the same legs.
//!
//! Like the transaction layer under it, nothing here reads a clock, opens a socket or
//! spawns: time comes in as a `now: Instant` argument, SIP events come in already matched
//! to transactions, and everything to do goes out through `poll_output`. The actor that
//! owns a core keeps the sockets, the RTP relay, the ledger, the journal and the CDR.

pub mod faxcode;
pub mod outcome;
pub mod timer;

pub use faxcode::FaxCode;
pub use outcome::{CallFailure, Disposition, HangupCause, Outcome};
pub use timer::{Timer, TimerTable};

pub mod api;
pub mod build;
pub mod core;
pub mod endpoint;
pub mod leg;

pub use crate::core::{
    CallConfig, CallCore, Command, Dial, Event, MediaCtl, MediaPolicy, MediaRefused, Output, Phase,
    Side, Teardown,
};
pub use endpoint::{
    EndpointCommand, EndpointConfig, EndpointCore, EndpointDial, EndpointEvent, EndpointMode,
    EndpointOutput, FaxConfig, T38Answerer, T38Failure,
};
pub use leg::{Credentials, Leg, LegError, SipEvent, SipOutput, UacEvent, UacLeg, UasLeg};

#[cfg(test)]
mod tests;
