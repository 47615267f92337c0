//! What every call shares: configuration, the actors it talks to, the media
//! port pool and the CDR writer. Only channels, `Arc<Config>` and the store are
//! shared, as the design asks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ractor::ActorRef;
use switchboard_config::Config;

use crate::cdr::CdrSink;
use crate::endpoint_msg::EndpointMsg;
use crate::media::PortPool;
pub use crate::sip_contact::{contact_uri, sip_transport};
use crate::supervisor_msg::SupervisorMsg;
pub use crate::trunk_handle::TrunkHandle;

/// Shared by every call actor.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The SIP endpoint.
    pub endpoint: ActorRef<EndpointMsg>,
    /// The call supervisor.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// RTP ports.
    pub ports: Arc<PortPool>,
    /// Where finished calls' CDRs go.
    pub cdrs: CdrSink,
    /// The call journal: answered calls, so a crash does not lose them (issue 12).
    pub journal: crate::journal::JournalSink,
    /// Trunks by name.
    pub trunks: HashMap<String, TrunkHandle>,
    /// Our SIP address as peers should reach it (Via, Contact).
    pub sip_addr: SocketAddr,
    /// Our SIP over TLS address as peers should reach it (Contact over TLS), when
    /// `[sip] tls_listen` is set.
    pub sip_tls_addr: Option<SocketAddr>,
    /// Address put in SDP for anchored media.
    pub media_ip: IpAddr,
    /// Live media streams (app, fork and ingest).
    pub streams: Arc<crate::audio::Streams>,
    /// The credits ledger, for rated calls (None: calls are never rated, e.g. in unit tests).
    pub ledger: Option<ActorRef<crate::ledger::LedgerMsg>>,
    /// The drain flag: set, new calls and originations are refused (issue 12).
    pub drain: Arc<crate::drain::Drain>,
    /// Where call control reads time (issue 13).
    pub clock: crate::clock::SharedClock,
}

impl crate::media::OwnAddresses for CallContext {
    fn config(&self) -> &Config {
        &self.config
    }
    fn media_ip(&self) -> IpAddr {
        self.media_ip
    }
    fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }
}

impl CallContext {
    /// `host:port` for Via sent-by over `transport`: the TLS listener's address for TLS
    /// (when there is one), `sip_addr` otherwise.
    pub fn via_host(&self, transport: switchboard_sip::transport::Transport) -> String {
        match (transport, self.sip_tls_addr) {
            (switchboard_sip::transport::Transport::Tls, Some(tls)) => tls.to_string(),
            _ => self.sip_addr.to_string(),
        }
    }

    /// Our Contact URI for `transport`.
    pub fn contact(&self, transport: switchboard_sip::transport::Transport) -> String {
        contact_uri(transport, self.sip_addr, self.sip_tls_addr)
    }
}

/// Mask a phone number for logs: keep the first 4 and last 2 characters.
pub fn mask_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let mut out = String::with_capacity(chars.len());
    for (i, c) in chars.iter().enumerate() {
        if i < 4 || i >= chars.len() - 2 {
            out.push(*c);
        } else {
            out.push('*');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask_number;

    #[test]
    fn masks_numbers() {
        assert_eq!(mask_number("+441234567890"), "+441*******90");
        assert_eq!(mask_number("1234"), "****");
        assert_eq!(mask_number(""), "");
    }
}
