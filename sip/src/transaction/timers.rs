//! Transaction timers of RFC 3261 §17 (Table 4 of §A) and RFC 6026 §8 (Timers L and M).

use std::time::Duration;

/// The transaction timers, named as in RFC 3261 §A and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval (unreliable transports), doubles each time.
    A,
    /// INVITE client transaction timeout (64*T1).
    B,
    /// Wait time for response retransmissions in client INVITE Completed.
    D,
    /// Non-INVITE request retransmit interval (unreliable), doubles up to T2.
    E,
    /// Non-INVITE client transaction timeout (64*T1).
    F,
    /// INVITE final response retransmit interval (doubles up to T2). Also used by the layer
    /// for the 2xx retransmissions of RFC 3261 §13.3.1.4 while in Accepted.
    G,
    /// Wait time for ACK receipt (64*T1).
    H,
    /// Wait time for ACK retransmissions (T4 unreliable, 0 reliable).
    I,
    /// Wait time for non-INVITE request retransmissions (64*T1 unreliable, 0 reliable).
    J,
    /// Wait time for non-INVITE response retransmissions (T4 unreliable, 0 reliable).
    K,
    /// Server INVITE Accepted: wait time for retransmitted INVITEs / the ACK (64*T1).
    L,
    /// Client INVITE Accepted: wait time for retransmitted 2xx responses (64*T1).
    M,
}

impl Timer {
    /// Number of distinct timers.
    pub(crate) const COUNT: usize = 12;

    /// Dense index, for per-transaction deadline tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The base timer values of RFC 3261 §17.1.1.1 and §17.1.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s over unreliable transports, zero over reliable ones.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32)
        }
    }

    /// Timers I and K: T4 over unreliable transports, zero over reliable ones.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: 64*T1 over unreliable transports, zero over reliable ones.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }
}
