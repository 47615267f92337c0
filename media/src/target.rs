//! Where an SDP may point the gateway's media (RFC 4566 `c=`, RFC 3264 hold).
//!
//! A peer's SDP tells the gateway where to send RTP or UDPTL. Taken as given it turns the
//! gateway into a packet cannon: at loopback services, at a multicast group, or back at its own
//! media ports (a relay loop). [`MediaPolicy::check`] sorts a `c=`/`m=` pair into a media
//! [`Target`], hold, or a [`TargetError`] the call answers with 488 (an offer) or ignores (an
//! answer). Pure: the caller gives the gateway's own addresses and ports.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use super::latch::is_unspecified;

/// Why an SDP media address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// 127.0.0.0/8 or ::1, and loopback is not allowed by the policy.
    #[error("media address {0} is loopback")]
    Loopback(IpAddr),
    /// A multicast group (224.0.0.0/4, ff00::/8).
    #[error("media address {0} is multicast")]
    Multicast(IpAddr),
    /// The limited broadcast address 255.255.255.255.
    #[error("media address {0} is broadcast")]
    Broadcast(IpAddr),
    /// One of the gateway's own addresses, on one of its own ports.
    #[error("media address {0} is the gateway's own")]
    Own(SocketAddr),
}

/// Where media for a stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Send here.
    Media(SocketAddr),
    /// Send nothing: port 0 or an unspecified address (RFC 3264 §8.4, RFC 2543 hold).
    Hold,
}

impl Target {
    /// The address to send to, if any.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Target::Media(a) => Some(a),
            Target::Hold => None,
        }
    }
}

/// The rules for SDP media addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaPolicy {
    /// Accept loopback addresses (tests and single-host labs); off in production.
    pub allow_loopback: bool,
    /// The gateway's own addresses (listen and advertised, SIP and media).
    pub own_ips: Vec<IpAddr>,
    /// The gateway's own ports on those addresses (the RTP range, the SIP listeners).
    pub own_ports: Vec<RangeInclusive<u16>>,
}

impl MediaPolicy {
    /// Judge the media address `ip`:`port` of one SDP stream.
    pub fn check(&self, ip: IpAddr, port: u16) -> Result<Target, TargetError> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if port == 0 || is_unspecified(ip) {
            return Ok(Target::Hold);
        }
        if ip.is_multicast() {
            return Err(TargetError::Multicast(ip));
        }
        if let IpAddr::V4(v4) = ip {
            if v4.is_broadcast() {
                return Err(TargetError::Broadcast(ip));
            }
        }
        let addr = SocketAddr::new(ip, port);
        if self.own_ips.contains(&ip) && self.own_ports.iter().any(|r| r.contains(&port)) {
            return Err(TargetError::Own(addr));
        }
        if ip.is_loopback() && !self.allow_loopback {
            return Err(TargetError::Loopback(ip));
        }
        Ok(Target::Media(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(allow_loopback: bool) -> MediaPolicy {
        MediaPolicy {
            allow_loopback,
            own_ips: vec![ip("203.0.113.1"), ip("127.0.0.1")],
            own_ports: vec![20000..=20999, 5060..=5060],
        }
    }

    #[test]
    fn ordinary_addresses_pass() {
        let p = policy(false);
        for a in ["198.51.100.7", "192.168.1.20", "10.0.0.1", "2001:db8::5"] {
            assert_eq!(
                p.check(ip(a), 4000),
                Ok(Target::Media(SocketAddr::new(ip(a), 4000))),
                "{a}"
            );
        }
        // Our own address on a port that is not ours: a peer on the same host.
        assert!(p.check(ip("203.0.113.1"), 7078).is_ok());
    }

    #[test]
    fn hold_is_not_a_target() {
        let p = policy(false);
        assert_eq!(p.check(ip("0.0.0.0"), 4000), Ok(Target::Hold));
        assert_eq!(p.check(ip("::"), 4000), Ok(Target::Hold));
        assert_eq!(p.check(ip("198.51.100.7"), 0), Ok(Target::Hold));
        assert_eq!(Target::Hold.addr(), None);
    }

    #[test]
    fn loopback_only_when_allowed() {
        assert_eq!(
            policy(false).check(ip("127.0.0.1"), 6000),
            Err(TargetError::Loopback(ip("127.0.0.1")))
        );
        assert_eq!(
            policy(false).check(ip("127.9.9.9"), 6000),
            Err(TargetError::Loopback(ip("127.9.9.9")))
        );
        assert_eq!(
            policy(false).check(ip("::1"), 6000),
            Err(TargetError::Loopback(ip("::1")))
        );
        assert!(policy(true).check(ip("127.0.0.1"), 6000).is_ok());
    }

    #[test]
    fn multicast_broadcast_and_our_own_ports_are_refused() {
        let p = policy(true);
        assert_eq!(
            p.check(ip("224.2.17.12"), 4000),
            Err(TargetError::Multicast(ip("224.2.17.12")))
        );
        assert_eq!(
            p.check(ip("ff02::1"), 4000),
            Err(TargetError::Multicast(ip("ff02::1")))
        );
        assert_eq!(
            p.check(ip("::ffff:239.1.1.1"), 4000),
            Err(TargetError::Multicast(ip("239.1.1.1")))
        );
        assert_eq!(
            p.check(ip("255.255.255.255"), 4000),
            Err(TargetError::Broadcast(ip("255.255.255.255")))
        );
        for port in [20000, 20001, 20999, 5060] {
            assert!(
                matches!(p.check(ip("203.0.113.1"), port), Err(TargetError::Own(_))),
                "{port}"
            );
            assert!(
                matches!(p.check(ip("127.0.0.1"), port), Err(TargetError::Own(_))),
                "{port}"
            );
        }
        // Loopback allowed does not open our own ports.
        assert!(p.check(ip("127.0.0.1"), 21000).is_ok());
    }
}
