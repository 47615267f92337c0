//! Connection caps for stream listeners (SIP over TCP/TLS, the admin HTTP API): at most
//! `total` connections at once and at most `per_source` from one source, an IPv6 source
//! counted by its /64 (one host usually holds a whole /64). A permit is taken at accept, before
//! any handshake, and given back when the connection's task drops it.
//!
//! The map holds one entry per source with at least one open connection, so it never grows
//! past `total` entries.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The listener holds its maximum of connections.
    #[error("connection limit reached")]
    Total,
    /// This source holds its maximum of connections.
    #[error("per-source connection limit reached")]
    PerSource,
}

impl Refused {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerSource => "per_source",
        }
    }
}

/// The source a connection is counted against: the IPv4 address, or the /64 of an IPv6 one
/// (an IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Caps on open connections, in total and per source.
#[derive(Debug)]
pub struct ConnLimiter {
    total: usize,
    per_source: usize,
    counts: Mutex<Counts>,
}

/// One open connection; dropping it frees its slot.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    source: IpAddr,
}

impl ConnLimiter {
    /// A limiter of `total` connections, `per_source` from one source.
    pub fn new(total: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_source,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A slot for a connection from `ip`, or why there is none.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let source = source_key(ip);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.total {
            return Err(Refused::Total);
        }
        let n = c.by_source.entry(source).or_insert(0);
        if *n >= self.per_source {
            return Err(Refused::PerSource);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnPermit {
            limiter: Arc::clone(self),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }

    /// Connections open now from the source of `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.by_source.get(&source_key(ip)).copied())
            .unwrap_or(0)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_source_and_in_total_and_frees_on_drop() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let _p2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).unwrap_err(), Refused::PerSource);
        let _p3 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).unwrap_err(), Refused::Total);
        drop(p1);
        assert_eq!(l.open(), 2);
        let _p4 = l.try_acquire(a).unwrap();
        assert_eq!(l.open_from(a), 2);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_v4_as_v4() {
        let l = ConnLimiter::new(10, 1);
        let _p = l.try_acquire("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            l.try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
                .unwrap_err(),
            Refused::PerSource
        );
        assert!(l.try_acquire("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _q = l.try_acquire("198.51.100.7".parse().unwrap()).unwrap();
        assert_eq!(
            l.try_acquire("::ffff:198.51.100.7".parse().unwrap())
                .unwrap_err(),
            Refused::PerSource
        );
        // Freed entries leave the map.
        drop(_q);
        assert_eq!(l.open_from("198.51.100.7".parse().unwrap()), 0);
    }
}
