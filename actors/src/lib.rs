//! Actors and supervisors of switchboard (ractor), and the tokio drivers that
//! move bytes for them: the SIP endpoint (RFC 3261 transports and the
//! transaction layer), one `Call` actor per call (B2BUA), the call supervisor,
//! one `Trunk` actor per trunk, the RTP relay (RFC 3550), the CDR writer, the
//! embedded MQTT broker (or the link to an external one) and one
//! `DeviceSession` per connected device.

pub mod audio;
pub mod billing;
pub mod broker_msg;
pub mod call;
pub mod call_msg;
pub mod cdr;
pub mod clock;
pub mod conn_limit;
pub mod context;
pub mod devices;
pub mod drain;
pub mod endpoint;
pub mod endpoint_msg;
pub mod fax;
pub mod gateway;
pub mod ingest;
pub mod journal;
pub mod ledger;
pub mod local;
pub mod media;
pub mod mqtt;
pub mod mqtt_external;
pub mod routing;
pub mod sip_contact;
pub mod sip_event;
pub mod sip_guard;
pub mod store_io;
pub mod supervisor;
pub mod supervisor_msg;
pub mod tariff;
pub mod timer;
pub mod tls;
pub mod trunk;
pub mod trunk_handle;
pub mod ua;
pub mod ua_event;

pub use call::{CallId, CallSnapshot};
pub use gateway::{Gateway, GatewayError};
