//! UDPTL receiver (ITU-T T.38 §9.1): puts IFP packets back in sequence.
//!
//! Datagrams may arrive in any order, lost or duplicated. [`UdptlRx`] extends the 16-bit
//! sequence number (so 65535 → 0 is just the next packet), keeps what arrived ahead of a gap in a
//! bounded reorder window, fills gaps from the secondary packets of later datagrams or from FEC
//! parity when exactly one packet of a parity group is missing, and hands out each IFP packet
//! once, in order. A gap that nothing has filled by the time a packet `window` places later is
//! known (or by [`UdptlRx::flush`]) is given up and counted as lost.
//!
//! A datagram far (more than 2000) from the stream is held as a possible restart of the far
//! end's numbering; if the next datagram follows it, the stream restarts there, otherwise the
//! datagram is dropped as stray.

use std::collections::{BTreeMap, VecDeque};

use super::tx::MIN_DATAGRAM;
use super::{Recovery, UdptlError, UdptlPacket, DEFAULT_MAX_DATAGRAM, MAX_DATAGRAM_LIMIT};

/// Default reorder window, in packets.
pub const DEFAULT_WINDOW: usize = 32;
/// Largest reorder window accepted.
pub const MAX_WINDOW: usize = 1024;
/// Delivered packets kept so that FEC parity can still use them.
const HISTORY: u64 = 64;
/// Distance from the stream beyond which a datagram is a possible restart.
const RESTART_DISTANCE: u64 = 2000;
/// Extended sequence number given to the first datagram's 16-bit one (one cycle up, so that
/// earlier packets of the first cycle stay representable).
const FIRST_CYCLE: u64 = 1 << 16;

/// How a [`UdptlRx`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdptlRxConfig {
    /// Packets kept ahead of a gap before it is given up (1 to 1024).
    pub window: usize,
    /// Largest datagram accepted (our own `T38FaxMaxDatagram`).
    pub max_datagram: usize,
}

impl Default for UdptlRxConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

/// Where a delivered IFP packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxSource {
    /// Its own datagram's primary.
    Primary,
    /// A secondary (redundant) copy in a later datagram.
    Redundancy,
    /// Rebuilt from FEC parity. It is as long as the longest packet of its parity group, so it
    /// may end in zero padding: decode it with [`crate::t38::ifp::decode_prefix`].
    Fec,
}

/// One IFP packet handed out by [`UdptlRx`], in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxIfp {
    /// Its UDPTL sequence number.
    pub seq: u16,
    /// The encoded IFP packet.
    pub ifp: Vec<u8>,
    /// Where it came from.
    pub source: RxSource,
}

/// Counters of a [`UdptlRx`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Datagrams decoded.
    pub received: u64,
    /// Datagrams refused as malformed or too large.
    pub malformed: u64,
    /// IFP packets handed out.
    pub delivered: u64,
    /// Of those, packets rebuilt from redundancy or FEC.
    pub recovered: u64,
    /// Of those, packets rebuilt from FEC.
    pub recovered_fec: u64,
    /// Datagrams whose primary had already been received (or rebuilt), as far as the last 64
    /// packets handed out are remembered.
    pub duplicates: u64,
    /// Datagrams whose primary came after its place had been given up, or older than the
    /// remembered history.
    pub late: u64,
    /// Sequence numbers given up.
    pub lost: u64,
    /// Datagrams dropped as far from the stream.
    pub stray: u64,
    /// Restarts of the far end's numbering.
    pub restarts: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    data: Vec<u8>,
    source: RxSource,
}

#[derive(Debug, Clone)]
struct FecBlock {
    npackets: u64,
    entries: Vec<Vec<u8>>,
}

/// The receiving side of a UDPTL stream.
#[derive(Debug, Clone)]
pub struct UdptlRx {
    config: UdptlRxConfig,
    started: bool,
    /// Extended sequence number of the next packet to hand out.
    next: u64,
    /// Highest extended sequence number known.
    highest: u64,
    /// Packets waiting (`>= next`) and recently delivered ones (`< next`, for FEC).
    slots: BTreeMap<u64, Slot>,
    /// FEC parity by the extended sequence number of the datagram that carried it.
    fec: BTreeMap<u64, FecBlock>,
    ready: VecDeque<RxIfp>,
    stats: RxStats,
    /// A datagram far from the stream: a restart if the next one follows it.
    candidate: Option<UdptlPacket>,
}

impl Default for UdptlRx {
    fn default() -> Self {
        Self::with_config(UdptlRxConfig::default())
    }
}

impl UdptlRx {
    /// A receiver with `config`, which must be valid.
    pub fn new(config: UdptlRxConfig) -> Result<Self, UdptlError> {
        if !(1..=MAX_WINDOW).contains(&config.window) {
            return Err(UdptlError::BadWindow {
                window: config.window,
            });
        }
        if !(MIN_DATAGRAM..=MAX_DATAGRAM_LIMIT).contains(&config.max_datagram) {
            return Err(UdptlError::BadMaxDatagram {
                max: config.max_datagram,
            });
        }
        Ok(Self::with_config(config))
    }

    fn with_config(config: UdptlRxConfig) -> Self {
        Self {
            config,
            started: false,
            next: 0,
            highest: 0,
            slots: BTreeMap::new(),
            fec: BTreeMap::new(),
            ready: VecDeque::new(),
            stats: RxStats::default(),
            candidate: None,
        }
    }

    /// Takes one received datagram. A malformed one is counted and returned as an error; the
    /// stream is unaffected.
    pub fn push(&mut self, datagram: &[u8]) -> Result<(), UdptlError> {
        match UdptlPacket::decode_with_limit(datagram, self.config.max_datagram) {
            Ok(packet) => {
                self.push_packet(packet);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// Takes one datagram that was already decoded.
    pub fn push_packet(&mut self, packet: UdptlPacket) {
        self.stats.received += 1;
        if !self.started {
            self.begin(&packet);
            self.insert(packet);
            self.settle();
            return;
        }
        let ext = self.extend(packet.seq);
        if ext.abs_diff(self.highest + 1) > RESTART_DISTANCE {
            match self.candidate.take() {
                Some(first) if first.seq.wrapping_add(1) == packet.seq => {
                    // The far end renumbered: finish the old stream, start a new one.
                    self.flush();
                    self.slots.clear();
                    self.fec.clear();
                    self.stats.restarts += 1;
                    self.begin(&first);
                    self.insert(first);
                    self.insert(packet);
                    self.settle();
                }
                previous => {
                    if previous.is_some() {
                        self.stats.stray += 1;
                    }
                    self.candidate = Some(packet);
                }
            }
            return;
        }
        if self.candidate.take().is_some() {
            self.stats.stray += 1;
        }
        self.insert(packet);
        self.settle();
    }

    /// The next IFP packet in sequence, if one is ready.
    pub fn pop(&mut self) -> Option<RxIfp> {
        self.ready.pop_front()
    }

    /// IFP packets ready to [`UdptlRx::pop`].
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Gives up every gap and makes everything received so far ready (end of the stream, or a
    /// timeout decided by the caller).
    pub fn flush(&mut self) {
        if self.started {
            self.repair_fec();
            while self.next <= self.highest {
                self.deliver_or_skip();
            }
            self.prune();
        }
        if self.candidate.take().is_some() {
            self.stats.stray += 1;
        }
    }

    /// All counters.
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// Datagrams decoded.
    pub fn received(&self) -> u64 {
        self.stats.received
    }

    /// IFP packets rebuilt from redundancy or FEC and handed out.
    pub fn recovered(&self) -> u64 {
        self.stats.recovered
    }

    /// Datagrams whose primary had already been received.
    pub fn duplicates(&self) -> u64 {
        self.stats.duplicates
    }

    /// Sequence numbers given up.
    pub fn lost(&self) -> u64 {
        self.stats.lost
    }

    /// Starts the stream at `packet`, including the earlier packets its redundancy carries.
    fn begin(&mut self, packet: &UdptlPacket) {
        self.started = true;
        self.highest = FIRST_CYCLE + u64::from(packet.seq);
        let earlier = match &packet.recovery {
            Recovery::Redundancy(copies) => copies.iter().take_while(|c| !c.is_empty()).count(),
            Recovery::Fec { .. } => 0,
        };
        self.next = self.highest - earlier as u64;
    }

    /// The extended sequence number nearest to the highest one known.
    fn extend(&self, seq: u16) -> u64 {
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        (self.highest as i64 + delta) as u64
    }

    fn insert(&mut self, packet: UdptlPacket) {
        let ext = self.extend(packet.seq);
        self.highest = self.highest.max(ext);
        self.place(ext, packet.primary, RxSource::Primary);
        match packet.recovery {
            Recovery::Redundancy(copies) => {
                for (back, copy) in (1u64..).zip(copies) {
                    if !copy.is_empty() {
                        self.place(ext - back, copy, RxSource::Redundancy);
                    }
                }
            }
            Recovery::Fec { npackets, data } => {
                let npackets = u64::from(npackets);
                if npackets > 0 && !data.is_empty() && npackets * data.len() as u64 <= HISTORY {
                    self.fec.insert(
                        ext,
                        FecBlock {
                            npackets,
                            entries: data,
                        },
                    );
                }
            }
        }
    }

    fn place(&mut self, ext: u64, data: Vec<u8>, source: RxSource) {
        let primary = source == RxSource::Primary;
        if ext < self.next {
            if primary {
                if self.slots.contains_key(&ext) {
                    self.stats.duplicates += 1;
                } else {
                    self.stats.late += 1;
                }
            }
            return;
        }
        match self.slots.get_mut(&ext) {
            Some(slot) if primary => {
                if slot.source == RxSource::Primary {
                    self.stats.duplicates += 1;
                } else {
                    *slot = Slot { data, source };
                }
            }
            Some(_) => {}
            None => {
                self.slots.insert(ext, Slot { data, source });
            }
        }
    }

    /// Repairs what FEC can, hands out what is in order, gives up gaps left behind the window.
    fn settle(&mut self) {
        self.repair_fec();
        let window = self.config.window as u64;
        loop {
            if self.slots.contains_key(&self.next) || self.highest >= self.next + window {
                self.deliver_or_skip();
            } else {
                break;
            }
        }
        self.prune();
    }

    /// Hands out the packet at `next`, or counts it lost; then moves on.
    fn deliver_or_skip(&mut self) {
        match self.slots.get(&self.next) {
            Some(slot) => {
                self.stats.delivered += 1;
                match slot.source {
                    RxSource::Primary => {}
                    RxSource::Redundancy => self.stats.recovered += 1,
                    RxSource::Fec => {
                        self.stats.recovered += 1;
                        self.stats.recovered_fec += 1;
                    }
                }
                self.ready.push_back(RxIfp {
                    seq: self.next as u16,
                    ifp: slot.data.clone(),
                    source: slot.source,
                });
            }
            None => self.stats.lost += 1,
        }
        self.next += 1;
    }

    /// Drops history FEC can no longer use, and parity that covers only the past.
    fn prune(&mut self) {
        let keep_from = self.next.saturating_sub(HISTORY);
        self.slots = self.slots.split_off(&keep_from);
        // Parity carried by datagram `p` covers packets before `p` only.
        self.fec = self.fec.split_off(&(self.next + 1));
    }

    /// Rebuilds every missing packet that is the only one missing from a parity group.
    fn repair_fec(&mut self) {
        loop {
            let mut rebuilt: Vec<(u64, Vec<u8>)> = Vec::new();
            for (&p, block) in &self.fec {
                let n = block.npackets;
                let k = block.entries.len() as u64;
                for (m, entry) in (0u64..).zip(&block.entries) {
                    let Some(first) = (p + m).checked_sub(n * k) else {
                        continue;
                    };
                    let group = (0..n).map(|j| first + j * k);
                    let mut missing = group.clone().filter(|c| !self.slots.contains_key(c));
                    let (Some(target), None) = (missing.next(), missing.next()) else {
                        continue;
                    };
                    if target < self.next || rebuilt.iter().any(|(t, _)| *t == target) {
                        continue;
                    }
                    let mut data = entry.clone();
                    for slot in group.filter_map(|c| self.slots.get(&c)) {
                        for (d, b) in data.iter_mut().zip(&slot.data) {
                            *d ^= b;
                        }
                    }
                    rebuilt.push((target, data));
                }
            }
            if rebuilt.is_empty() {
                return;
            }
            for (target, data) in rebuilt {
                self.slots.insert(
                    target,
                    Slot {
                        data,
                        source: RxSource::Fec,
                    },
                );
            }
        }
    }
}
