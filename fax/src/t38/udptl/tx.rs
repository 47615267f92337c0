//! UDPTL sender (ITU-T T.38 §9.1): numbers outgoing IFP packets and adds the error recovery
//! the call negotiated: redundancy (the previous primaries again, newest first) or parity FEC.

use std::collections::VecDeque;

use super::{
    Recovery, UdptlError, UdptlPacket, DEFAULT_MAX_DATAGRAM, MAX_DATAGRAM_LIMIT, MAX_FEC_ENTRIES,
};

/// Deepest redundancy accepted (secondary IFP packets per datagram).
pub const MAX_REDUNDANCY_DEPTH: u8 = 8;
/// Most packets one FEC datagram may cover (`span × entries`).
pub const MAX_FEC_COVERAGE: usize = 32;
/// Smallest datagram bound accepted.
pub(crate) const MIN_DATAGRAM: usize = 16;

/// The error recovery a [`UdptlTx`] adds to each datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxErrorCorrection {
    /// Repeat the previous `depth` primaries (0 to 8; 0 sends none, i.e. no error recovery).
    Redundancy {
        /// Secondary packets per datagram.
        depth: u8,
    },
    /// Send `entries` parity entries, each the XOR of `span` earlier packets, interleaved so
    /// that together they cover the `span × entries` packets before this one.
    Fec {
        /// Packets per entry (`fec-npackets`), at least 1.
        span: u8,
        /// Entries per datagram, 1 to 16; `span × entries` at most 32.
        entries: u8,
    },
}

/// How a [`UdptlTx`] builds datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdptlTxConfig {
    /// The error recovery to add.
    pub error_correction: TxErrorCorrection,
    /// Largest datagram to send (the peer's `T38FaxMaxDatagram`, or the path MTU). Redundancy
    /// or FEC is reduced to fit; a primary that cannot fit alone is refused.
    pub max_datagram: usize,
    /// Sequence number of the first datagram (T.38 starts at 0).
    pub initial_seq: u16,
}

impl Default for UdptlTxConfig {
    fn default() -> Self {
        Self {
            error_correction: TxErrorCorrection::Redundancy { depth: 3 },
            max_datagram: DEFAULT_MAX_DATAGRAM,
            initial_seq: 0,
        }
    }
}

impl UdptlTxConfig {
    /// Checks every bound.
    pub fn validate(&self) -> Result<(), UdptlError> {
        if !(MIN_DATAGRAM..=MAX_DATAGRAM_LIMIT).contains(&self.max_datagram) {
            return Err(UdptlError::BadMaxDatagram {
                max: self.max_datagram,
            });
        }
        match self.error_correction {
            TxErrorCorrection::Redundancy { depth } if depth > MAX_REDUNDANCY_DEPTH => {
                Err(UdptlError::BadRedundancyDepth { depth })
            }
            TxErrorCorrection::Fec { span, entries }
                if span == 0
                    || entries == 0
                    || usize::from(entries) > MAX_FEC_ENTRIES
                    || usize::from(span) * usize::from(entries) > MAX_FEC_COVERAGE =>
            {
                Err(UdptlError::BadFecParameters { span, entries })
            }
            _ => Ok(()),
        }
    }

    /// Earlier primaries the sender must keep.
    fn history(&self) -> usize {
        match self.error_correction {
            TxErrorCorrection::Redundancy { depth } => usize::from(depth),
            TxErrorCorrection::Fec { span, entries } => usize::from(span) * usize::from(entries),
        }
    }
}

/// The sending side of a UDPTL stream.
#[derive(Debug, Clone)]
pub struct UdptlTx {
    config: UdptlTxConfig,
    next_seq: u16,
    /// Earlier primaries, newest (sequence number − 1) first.
    history: VecDeque<Vec<u8>>,
}

impl Default for UdptlTx {
    /// Redundancy depth 3, 1500-octet datagrams, starting at sequence number 0.
    fn default() -> Self {
        Self {
            config: UdptlTxConfig::default(),
            next_seq: 0,
            history: VecDeque::new(),
        }
    }
}

impl UdptlTx {
    /// A sender with `config`, which must be valid.
    pub fn new(config: UdptlTxConfig) -> Result<Self, UdptlError> {
        config.validate()?;
        Ok(Self {
            config,
            next_seq: config.initial_seq,
            history: VecDeque::with_capacity(config.history()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UdptlTxConfig {
        &self.config
    }

    /// The sequence number the next datagram will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Builds the next datagram around the encoded IFP packet `ifp`, appends it to `out` and
    /// returns its sequence number. On error (an empty packet, or one too large for
    /// `max_datagram` even alone) nothing is appended and the sequence number is not used.
    pub fn send(&mut self, ifp: &[u8], out: &mut Vec<u8>) -> Result<u16, UdptlError> {
        let packet = self.build(ifp)?;
        packet.encode_with_limit(self.config.max_datagram, out)?;
        self.commit(ifp);
        Ok(packet.seq)
    }

    /// Like [`UdptlTx::send`], but returns the packet instead of its encoding. The packet is
    /// counted as sent.
    pub fn next_packet(&mut self, ifp: &[u8]) -> Result<UdptlPacket, UdptlError> {
        let packet = self.build(ifp)?;
        self.commit(ifp);
        Ok(packet)
    }

    fn commit(&mut self, ifp: &[u8]) {
        let keep = self.config.history();
        if keep > 0 {
            self.history.push_front(ifp.to_vec());
            self.history.truncate(keep);
        }
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// The datagram for `ifp`, fitted to `max_datagram`, without changing any state.
    fn build(&self, ifp: &[u8]) -> Result<UdptlPacket, UdptlError> {
        if ifp.is_empty() {
            return Err(UdptlError::EmptyPrimary);
        }
        let max = self.config.max_datagram;
        let mut packet = UdptlPacket {
            seq: self.next_seq,
            primary: ifp.to_vec(),
            recovery: Recovery::Redundancy(Vec::new()),
        };
        match self.config.error_correction {
            TxErrorCorrection::Redundancy { depth } => {
                let mut take = usize::from(depth).min(self.history.len());
                loop {
                    let copies = self.history.iter().take(take).cloned().collect();
                    packet.recovery = Recovery::Redundancy(copies);
                    if packet.encoded_len() <= max {
                        return Ok(packet);
                    }
                    // Drop the oldest copy and try again.
                    if take == 0 {
                        break;
                    }
                    take -= 1;
                }
            }
            TxErrorCorrection::Fec { span, entries } => {
                let span_n = usize::from(span);
                // Wind up: at the start, cover only the packets that exist.
                let mut k = usize::from(entries).min(self.history.len() / span_n);
                loop {
                    packet.recovery = Recovery::Fec {
                        npackets: if k == 0 { 0 } else { span },
                        data: (0..k).map(|m| self.parity(span_n, k, m)).collect(),
                    };
                    if packet.encoded_len() <= max {
                        return Ok(packet);
                    }
                    if k == 0 {
                        break;
                    }
                    k -= 1;
                }
            }
        }
        Err(UdptlError::DatagramTooLarge {
            len: packet.encoded_len(),
            max,
        })
    }

    /// FEC entry `m` of `k`, each over `n` packets: the XOR of packets `seq - n·k + m + j·k`
    /// (`j` in `0..n`), zero-padded to the longest. Packet `seq - d` is `history[d - 1]`.
    fn parity(&self, n: usize, k: usize, m: usize) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for j in 0..n {
            let back = n * k - m - j * k; // 1 ..= n·k, since m < k
            let Some(p) = back.checked_sub(1).and_then(|i| self.history.get(i)) else {
                continue;
            };
            if out.len() < p.len() {
                out.resize(p.len(), 0);
            }
            for (o, b) in out.iter_mut().zip(p) {
                *o ^= b;
            }
        }
        out
    }
}
