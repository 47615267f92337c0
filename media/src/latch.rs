//! Strict symmetric RTP: which source a media socket accepts (RFC 4961 symmetric RTP, hardened
//! the way rtpengine's `strict-source` and Asterisk's `strictrtp` are).
//!
//! A [`Latch`] decides, for each datagram arriving on one of a call's media ports, whether it
//! comes from the call's peer. It latches to the first source whose IP is one the call's
//! signalling vouches for: the SDP's `c=` address or the SIP peer's address. A source on any
//! other IP is latched only when the SDP address is private or unroutable ([`is_nat_address`]:
//! the peer is behind NAT and cannot know its public address). Sources rank: the exact SDP
//! address first, then a vouched-for IP on another port, then (NAT only) any IP; during the
//! first [`LEARN_PACKETS`] packets of a latch, a better-ranked source takes it over.
//! Once latched (and past those packets), only that exact source (IP and port) is accepted;
//! everything else is [`Verdict::Foreign`], to be dropped and counted. A new SDP address
//! re-arms the latch; the same address again (a session refresh) keeps it.
//!
//! Pure state on addresses: no clock, no sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Packets accepted from a latch during which a better-ranked source (the exact SDP address, or
/// a vouched-for IP over a NAT-learnt one) may still take it over.
pub const LEARN_PACKETS: u32 = 16;

/// How well the signalling vouches for a source.
const RANK_NAT: u8 = 0;
const RANK_IP: u8 = 1;
const RANK_EXACT: u8 = 2;

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the call's peer: use it (and answer to [`Latch::destination`]).
    Accept,
    /// From someone else: drop it and count it.
    Foreign,
}

/// The source-address state of one media socket (one side of a call, RTP or RTCP or UDPTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latch {
    /// Where the SDP says the peer receives (`None`: on hold or not known yet).
    sdp: Option<SocketAddr>,
    /// The SIP peer's IP (the signalling source).
    signalling: Option<IpAddr>,
    /// The source latched to.
    latched: Option<SocketAddr>,
    /// How the latched source was vouched for (`RANK_*`).
    rank: u8,
    /// Packets accepted since the latch (saturating).
    accepted: u32,
}

impl Latch {
    /// A latch for a peer whose SDP names `sdp` and whose SIP messages come from `signalling`.
    pub fn new(sdp: Option<SocketAddr>, signalling: Option<IpAddr>) -> Self {
        Self {
            sdp,
            signalling,
            latched: None,
            rank: RANK_NAT,
            accepted: 0,
        }
    }

    /// A new SDP address for the peer. A different address forgets the latch (the next
    /// packets latch again by the same rules); the same address keeps it.
    pub fn rearm(&mut self, sdp: Option<SocketAddr>) {
        if sdp == self.sdp {
            return;
        }
        self.sdp = sdp;
        self.latched = None;
        self.rank = RANK_NAT;
        self.accepted = 0;
    }

    /// The IP the peer's SIP messages come from.
    pub fn set_signalling(&mut self, ip: Option<IpAddr>) {
        self.signalling = ip;
    }

    /// Judge a datagram from `from`, latching when the rules allow.
    pub fn on_packet(&mut self, from: SocketAddr) -> Verdict {
        match self.decide(from) {
            Decision::Keep => {
                self.accepted = self.accepted.saturating_add(1);
                Verdict::Accept
            }
            Decision::Latch(rank) => {
                self.latched = Some(from);
                self.rank = rank;
                self.accepted = 1;
                Verdict::Accept
            }
            Decision::Drop => Verdict::Foreign,
        }
    }

    /// What [`Latch::on_packet`] would answer, without changing anything: to check a datagram
    /// before it is parsed, and latch only once it proved well-formed.
    pub fn check(&self, from: SocketAddr) -> Verdict {
        match self.decide(from) {
            Decision::Drop => Verdict::Foreign,
            Decision::Keep | Decision::Latch(_) => Verdict::Accept,
        }
    }

    fn decide(&self, from: SocketAddr) -> Decision {
        match (self.latched, self.rank(from)) {
            (Some(l), _) if l == from => Decision::Keep,
            (Some(_), Some(r)) if r > self.rank && self.accepted < LEARN_PACKETS => {
                Decision::Latch(r)
            }
            (Some(_), _) | (None, None) => Decision::Drop,
            (None, Some(r)) => Decision::Latch(r),
        }
    }

    /// How the signalling vouches for `from`; `None`: not at all.
    fn rank(&self, from: SocketAddr) -> Option<u8> {
        let ip = canonical(from.ip());
        let sdp = self.sdp.map(|a| (canonical(a.ip()), a.port()));
        if sdp == Some((ip, from.port())) {
            Some(RANK_EXACT)
        } else if sdp.is_some_and(|(s, _)| s == ip)
            || self.signalling.is_some_and(|s| canonical(s) == ip)
        {
            Some(RANK_IP)
        } else if self.behind_nat() {
            Some(RANK_NAT)
        } else {
            None
        }
    }

    /// Where to send the peer's media: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp)
    }

    /// The source latched to, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// The SDP address cannot be the peer's public one.
    fn behind_nat(&self) -> bool {
        self.sdp.is_some_and(|a| is_nat_address(a.ip()))
    }
}

/// What a datagram does to the latch.
enum Decision {
    /// From the latched source.
    Keep,
    /// (Re)latch to the source, vouched for this well.
    Latch(u8),
    /// Not the peer.
    Drop,
}

/// An IPv4-mapped IPv6 address as IPv4; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A private or unroutable address a peer behind NAT puts in its SDP: RFC 1918, shared address
/// space (RFC 6598, 100.64/10), IPv4 and IPv6 link-local, IPv6 unique local (fc00::/7).
/// Loopback is not one of them: a peer naming loopback is on this host, never behind NAT.
pub fn is_nat_address(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// True for 0.0.0.0 and :: (and the IPv4-mapped 0.0.0.0).
pub fn is_unspecified(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4 == Ipv4Addr::UNSPECIFIED,
        IpAddr::V6(v6) => v6 == Ipv6Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_sdp_latches_only_to_its_ip_and_then_only_that_source() {
        let mut l = Latch::new(Some(sa("203.0.113.5:4000")), Some(ip("198.51.100.1")));
        // A stranger first: dropped, no latch.
        assert_eq!(l.on_packet(sa("192.0.2.66:4000")), Verdict::Foreign);
        assert_eq!(l.latched(), None);
        assert_eq!(l.destination(), Some(sa("203.0.113.5:4000")));
        // The SDP's IP from another port (a NAT that keeps the IP): latched.
        assert_eq!(l.on_packet(sa("203.0.113.5:5002")), Verdict::Accept);
        assert_eq!(l.destination(), Some(sa("203.0.113.5:5002")));
        // After the latch: the signalling IP on another port and strangers are out.
        assert_eq!(l.on_packet(sa("198.51.100.1:4000")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("192.0.2.66:4000")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("203.0.113.5:5002")), Verdict::Accept);
        // Past the first packets, even the exact SDP address cannot take the latch.
        for _ in 0..LEARN_PACKETS {
            assert_eq!(l.on_packet(sa("203.0.113.5:5002")), Verdict::Accept);
        }
        assert_eq!(l.on_packet(sa("203.0.113.5:4000")), Verdict::Foreign);
        assert_eq!(l.latched(), Some(sa("203.0.113.5:5002")));
    }

    #[test]
    fn the_exact_sdp_address_takes_over_early_and_then_holds() {
        let mut l = Latch::new(Some(sa("127.0.0.1:6000")), Some(ip("127.0.0.1")));
        // Someone else on the peer's own host gets in first...
        assert_eq!(l.on_packet(sa("127.0.0.1:40000")), Verdict::Accept);
        // ...and loses the latch to the address the SDP names, which then keeps it.
        assert_eq!(l.on_packet(sa("127.0.0.1:6000")), Verdict::Accept);
        assert_eq!(l.latched(), Some(sa("127.0.0.1:6000")));
        assert_eq!(l.on_packet(sa("127.0.0.1:40000")), Verdict::Foreign);
    }

    #[test]
    fn check_does_not_latch() {
        let mut l = Latch::new(Some(sa("203.0.113.5:4000")), None);
        assert_eq!(l.check(sa("203.0.113.5:4000")), Verdict::Accept);
        assert_eq!(l.check(sa("192.0.2.66:4000")), Verdict::Foreign);
        assert_eq!(l.latched(), None);
        assert_eq!(l.on_packet(sa("203.0.113.5:4000")), Verdict::Accept);
        assert_eq!(l.check(sa("203.0.113.5:4001")), Verdict::Foreign);
    }

    #[test]
    fn signalling_ip_is_vouched_for() {
        let mut l = Latch::new(Some(sa("203.0.113.5:4000")), Some(ip("198.51.100.1")));
        assert_eq!(l.on_packet(sa("198.51.100.1:7078")), Verdict::Accept);
        assert_eq!(l.destination(), Some(sa("198.51.100.1:7078")));
        // The SDP's IP on another port ranks no better: out.
        assert_eq!(l.on_packet(sa("203.0.113.5:4002")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("192.0.2.66:7078")), Verdict::Foreign);
    }

    #[test]
    fn private_sdp_learns_a_foreign_source_but_the_vouched_peer_takes_over_early() {
        let mut l = Latch::new(Some(sa("192.168.1.20:4000")), Some(ip("198.51.100.1")));
        // Behind NAT: the first source is learnt even though its IP is foreign.
        assert_eq!(l.on_packet(sa("192.0.2.66:9999")), Verdict::Accept);
        assert_eq!(l.latched(), Some(sa("192.0.2.66:9999")));
        // The signalling IP shows up within the first packets: it wins.
        assert_eq!(l.on_packet(sa("198.51.100.1:31000")), Verdict::Accept);
        assert_eq!(l.latched(), Some(sa("198.51.100.1:31000")));
        // Now strict: the learnt source is out.
        assert_eq!(l.on_packet(sa("192.0.2.66:9999")), Verdict::Foreign);
    }

    #[test]
    fn a_learnt_latch_is_fixed_after_the_first_packets() {
        let mut l = Latch::new(Some(sa("10.0.0.7:4000")), Some(ip("198.51.100.1")));
        let peer = sa("198.51.100.200:40000");
        for _ in 0..LEARN_PACKETS {
            assert_eq!(l.on_packet(peer), Verdict::Accept);
        }
        assert_eq!(l.on_packet(sa("198.51.100.1:4000")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("10.0.0.7:4000")), Verdict::Foreign);
        assert_eq!(l.latched(), Some(peer));
    }

    #[test]
    fn a_vouched_latch_never_yields_to_a_worse_source() {
        let mut l = Latch::new(Some(sa("10.0.0.7:4000")), Some(ip("198.51.100.1")));
        assert_eq!(l.on_packet(sa("198.51.100.1:4000")), Verdict::Accept);
        // NAT-ranked sources (any IP) cannot take over a vouched latch, even early.
        assert_eq!(l.on_packet(sa("192.0.2.66:4000")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("10.0.0.7:4001")), Verdict::Foreign);
    }

    #[test]
    fn loopback_is_strict_not_nat() {
        let mut l = Latch::new(Some(sa("127.0.0.1:6000")), Some(ip("127.0.0.1")));
        assert_eq!(l.on_packet(sa("127.0.0.2:6000")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("127.0.0.1:6000")), Verdict::Accept);
        assert_eq!(l.on_packet(sa("127.0.0.2:6000")), Verdict::Foreign);
    }

    #[test]
    fn unknown_sdp_accepts_only_the_signalling_ip() {
        let mut l = Latch::new(None, Some(ip("198.51.100.1")));
        assert_eq!(l.on_packet(sa("192.0.2.66:4000")), Verdict::Foreign);
        assert_eq!(l.destination(), None);
        assert_eq!(l.on_packet(sa("198.51.100.1:4000")), Verdict::Accept);
        let mut none = Latch::new(None, None);
        assert_eq!(none.on_packet(sa("198.51.100.1:4000")), Verdict::Foreign);
    }

    #[test]
    fn new_sdp_rearms_same_sdp_keeps() {
        let mut l = Latch::new(Some(sa("203.0.113.5:4000")), None);
        assert_eq!(l.on_packet(sa("203.0.113.5:4000")), Verdict::Accept);
        l.rearm(Some(sa("203.0.113.5:4000")));
        assert_eq!(l.latched(), Some(sa("203.0.113.5:4000")));
        // Moved to another host: the old one is now foreign, the new one latches.
        l.rearm(Some(sa("203.0.113.9:4100")));
        assert_eq!(l.latched(), None);
        assert_eq!(l.destination(), Some(sa("203.0.113.9:4100")));
        assert_eq!(l.on_packet(sa("203.0.113.5:4000")), Verdict::Foreign);
        assert_eq!(l.on_packet(sa("203.0.113.9:4100")), Verdict::Accept);
        // Hold: nowhere to send.
        l.rearm(None);
        assert_eq!(l.destination(), None);
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_sdp() {
        let mut l = Latch::new(Some(sa("203.0.113.5:4000")), None);
        assert_eq!(
            l.on_packet(sa("[::ffff:203.0.113.5]:4000")),
            Verdict::Accept
        );
    }

    #[test]
    fn nat_address_classes() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(is_nat_address(ip(a)), "{a}");
        }
        for a in [
            "127.0.0.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "::1",
            "0.0.0.0",
        ] {
            assert!(!is_nat_address(ip(a)), "{a}");
        }
        assert!(is_unspecified(ip("0.0.0.0")));
        assert!(is_unspecified(ip("::")));
        assert!(!is_unspecified(ip("127.0.0.1")));
    }
}
