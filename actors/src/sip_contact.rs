//! How peers reach us over SIP: our Contact URI for a transport (RFC 3261 §8.1.1.8, with
//! `;transport=` per §19.1.1) and the SIP transport of a configured trunk. Used by calls
//! (through the call context) and by trunks, which need no call context for it.

use std::net::SocketAddr;

/// Our Contact URI for `transport`: `sip_addr` for UDP and TCP (with `;transport=tcp`),
/// the TLS listener's address for TLS (with `;transport=tls`; `sip_addr` when there is no
/// TLS listener).
pub fn contact_uri(
    transport: switchboard_sip::transport::Transport,
    sip_addr: SocketAddr,
    sip_tls_addr: Option<SocketAddr>,
) -> String {
    use switchboard_sip::transport::Transport as T;
    match transport {
        T::Udp => format!("sip:switchboard@{sip_addr}"),
        T::Tcp => format!("sip:switchboard@{sip_addr};transport=tcp"),
        T::Tls => format!(
            "sip:switchboard@{};transport=tls",
            sip_tls_addr.unwrap_or(sip_addr)
        ),
    }
}

/// The SIP transport for a configured trunk transport.
pub fn sip_transport(t: switchboard_config::Transport) -> switchboard_sip::transport::Transport {
    use switchboard_sip::transport::Transport as T;
    match t {
        switchboard_config::Transport::Udp => T::Udp,
        switchboard_config::Transport::Tcp => T::Tcp,
        switchboard_config::Transport::Tls => T::Tls,
    }
}

#[cfg(test)]
mod tests {
    use super::contact_uri;
    use switchboard_sip::transport::Transport;

    #[test]
    fn contact_names_the_transport_and_its_port() {
        let sip = "192.0.2.1:5060".parse().unwrap();
        let tls = Some("192.0.2.1:5061".parse().unwrap());
        assert_eq!(
            contact_uri(Transport::Udp, sip, tls),
            "sip:switchboard@192.0.2.1:5060"
        );
        assert_eq!(
            contact_uri(Transport::Tcp, sip, tls),
            "sip:switchboard@192.0.2.1:5060;transport=tcp"
        );
        assert_eq!(
            contact_uri(Transport::Tls, sip, tls),
            "sip:switchboard@192.0.2.1:5061;transport=tls"
        );
        assert_eq!(
            contact_uri(Transport::Tls, sip, None),
            "sip:switchboard@192.0.2.1:5060;transport=tls"
        );
    }
}
