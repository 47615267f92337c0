//! UDPTL, the UDP transport of T.38 IFP packets (ITU-T T.38 §9.1 and Annex D, the
//! `UDPTLPacket` ASN.1), encoded with ALIGNED PER (ITU-T X.691):
//!
//! ```text
//! UDPTLPacket ::= SEQUENCE {
//!     seq-number          INTEGER (0..65535),          -- two octets
//!     primary-ifp-packet  TYPE-IDENTIFIER.&Type(IFPPacket),   -- open type: length + octets
//!     error-recovery      CHOICE {                     -- one bit, then padding
//!         secondary-ifp-packets  SEQUENCE OF TYPE-IDENTIFIER.&Type(IFPPacket),
//!         fec-info  SEQUENCE {
//!             fec-npackets  INTEGER,                   -- length + two's complement
//!             fec-data      SEQUENCE OF OCTET STRING } } }
//! ```
//!
//! [`UdptlPacket`] is one datagram; [`UdptlTx`] numbers outgoing IFP packets and adds
//! redundancy (the previous primaries, newest first) or parity FEC; [`UdptlRx`] turns datagrams
//! received in any order, lost or duplicated back into the IFP sequence, each packet once, in
//! order. Everything is sans-IO: bytes in, bytes out, no clock and no socket.

mod rx;
mod tx;

pub use rx::{RxIfp, RxSource, RxStats, UdptlRx, UdptlRxConfig};
pub use tx::{TxErrorCorrection, UdptlTx, UdptlTxConfig};

use super::per::{BitReader, BitWriter, Length, PerError};

/// Default bound on a UDPTL datagram (an Ethernet MTU).
pub const DEFAULT_MAX_DATAGRAM: usize = 1500;
/// Largest datagram bound that may be configured.
pub const MAX_DATAGRAM_LIMIT: usize = 65535;
/// Most secondary IFP packets accepted in one datagram.
pub const MAX_SECONDARY: usize = 16;
/// Most FEC entries accepted in one datagram.
pub const MAX_FEC_ENTRIES: usize = 16;

/// Why a UDPTL datagram could not be decoded or built, or a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdptlError {
    /// The datagram ended in the middle of a value.
    #[error("UDPTL datagram truncated")]
    Truncated,
    /// A length determinant is malformed.
    #[error("malformed length in UDPTL datagram")]
    BadLength,
    /// The datagram is (or would be) larger than the bound.
    #[error("UDPTL datagram of {len} octets exceeds {max}")]
    DatagramTooLarge {
        /// The size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// More secondary IFP packets than [`MAX_SECONDARY`].
    #[error("{count} secondary IFP packets, more than {max}")]
    TooManySecondary {
        /// Packets in the datagram.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// More FEC entries than [`MAX_FEC_ENTRIES`].
    #[error("{count} FEC entries, more than {max}")]
    TooManyFecEntries {
        /// Entries in the datagram.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// `fec-npackets` is not an integer in `0..=255`.
    #[error("invalid fec-npackets")]
    BadFecPackets,
    /// The primary IFP packet is empty.
    #[error("empty primary IFP packet")]
    EmptyPrimary,
    /// Octets left after the datagram's last value.
    #[error("{extra} trailing octet(s) after the UDPTL packet")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A redundancy depth above 8.
    #[error("redundancy depth {depth} is above 8")]
    BadRedundancyDepth {
        /// The depth asked for.
        depth: u8,
    },
    /// FEC parameters out of range (span 1 or more, entries 1 to 16, span × entries ≤ 32).
    #[error("FEC span {span} with {entries} entries is not supported")]
    BadFecParameters {
        /// Packets covered by each entry.
        span: u8,
        /// Entries per datagram.
        entries: u8,
    },
    /// A datagram bound that is too small to be useful or above [`MAX_DATAGRAM_LIMIT`].
    #[error("datagram bound {max} is outside 16..=65535")]
    BadMaxDatagram {
        /// The bound asked for.
        max: usize,
    },
    /// A receive window outside `1..=1024`.
    #[error("reorder window {window} is outside 1..=1024")]
    BadWindow {
        /// The window asked for.
        window: usize,
    },
}

impl From<PerError> for UdptlError {
    fn from(e: PerError) -> Self {
        match e {
            PerError::Truncated => UdptlError::Truncated,
            PerError::BadLength => UdptlError::BadLength,
            // Every octet string is bounded by the datagram it sits in, so an over-long one
            // can only be a truncated datagram.
            PerError::TooLong { .. } => UdptlError::Truncated,
        }
    }
}

/// The `error-recovery` part of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// `secondary-ifp-packets`: copies of the previous primaries, newest (sequence number − 1)
    /// first. Empty entries are placeholders some senders use and carry nothing.
    Redundancy(Vec<Vec<u8>>),
    /// `fec-info`: parity over earlier packets. With `n = npackets` and `k = data.len()`, entry
    /// `m` is the XOR (zero-padded to the longest) of the packets `seq - n·k + m + j·k` for
    /// `j` in `0..n`, the interleaving Asterisk and spandsp use.
    Fec {
        /// `fec-npackets`: packets covered by each entry.
        npackets: u8,
        /// `fec-data`: the parity entries.
        data: Vec<Vec<u8>>,
    },
}

/// One UDPTL datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdptlPacket {
    /// `seq-number`.
    pub seq: u16,
    /// `primary-ifp-packet`: the encoded IFP packet (see [`super::ifp`]).
    pub primary: Vec<u8>,
    /// `error-recovery`.
    pub recovery: Recovery,
}

impl UdptlPacket {
    /// Decodes a datagram of at most [`DEFAULT_MAX_DATAGRAM`] octets.
    pub fn decode(buf: &[u8]) -> Result<Self, UdptlError> {
        Self::decode_with_limit(buf, DEFAULT_MAX_DATAGRAM)
    }

    /// Decodes a datagram of at most `max_datagram` octets. The datagram must be exactly one
    /// `UDPTLPacket`, and may hold at most [`MAX_SECONDARY`] secondaries or
    /// [`MAX_FEC_ENTRIES`] FEC entries.
    pub fn decode_with_limit(buf: &[u8], max_datagram: usize) -> Result<Self, UdptlError> {
        if buf.len() > max_datagram {
            return Err(UdptlError::DatagramTooLarge {
                len: buf.len(),
                max: max_datagram,
            });
        }
        let mut r = BitReader::new(buf);
        let seq = r.bits(16)? as u16;
        let primary = r.octet_string(buf.len())?;
        if primary.is_empty() {
            return Err(UdptlError::EmptyPrimary);
        }
        let recovery = if r.bit()? {
            // fec-npackets: an unconstrained INTEGER, i.e. an octet count and two's complement.
            let n = match r.length()? {
                Length::Complete(n @ 1..=4) => n,
                _ => return Err(UdptlError::BadFecPackets),
            };
            let digits = r.octets(n)?;
            if digits.first().is_some_and(|&b| b & 0x80 != 0) {
                return Err(UdptlError::BadFecPackets); // negative
            }
            let value = digits
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            let npackets = u8::try_from(value).map_err(|_| UdptlError::BadFecPackets)?;
            let count = sequence_count(&mut r)?;
            if count > MAX_FEC_ENTRIES {
                return Err(UdptlError::TooManyFecEntries {
                    count,
                    max: MAX_FEC_ENTRIES,
                });
            }
            let mut data = Vec::with_capacity(count);
            for _ in 0..count {
                data.push(r.octet_string(buf.len())?);
            }
            Recovery::Fec { npackets, data }
        } else {
            let count = sequence_count(&mut r)?;
            if count > MAX_SECONDARY {
                return Err(UdptlError::TooManySecondary {
                    count,
                    max: MAX_SECONDARY,
                });
            }
            let mut packets = Vec::with_capacity(count);
            for _ in 0..count {
                packets.push(r.octet_string(buf.len())?);
            }
            Recovery::Redundancy(packets)
        };
        r.align();
        match r.remaining() {
            0 => Ok(Self {
                seq,
                primary,
                recovery,
            }),
            extra => Err(UdptlError::TrailingBytes { extra }),
        }
    }

    /// Appends the datagram to `out`, refusing one larger than [`DEFAULT_MAX_DATAGRAM`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), UdptlError> {
        self.encode_with_limit(DEFAULT_MAX_DATAGRAM, out)
    }

    /// Appends the datagram to `out`, refusing one larger than `max_datagram` octets or with more
    /// secondaries or FEC entries than the decoder accepts. On error nothing is appended.
    pub fn encode_with_limit(
        &self,
        max_datagram: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), UdptlError> {
        if self.primary.is_empty() {
            return Err(UdptlError::EmptyPrimary);
        }
        match &self.recovery {
            Recovery::Redundancy(packets) if packets.len() > MAX_SECONDARY => {
                return Err(UdptlError::TooManySecondary {
                    count: packets.len(),
                    max: MAX_SECONDARY,
                })
            }
            Recovery::Fec { data, .. } if data.len() > MAX_FEC_ENTRIES => {
                return Err(UdptlError::TooManyFecEntries {
                    count: data.len(),
                    max: MAX_FEC_ENTRIES,
                })
            }
            _ => {}
        }
        let len = self.encoded_len();
        if len > max_datagram {
            return Err(UdptlError::DatagramTooLarge {
                len,
                max: max_datagram,
            });
        }
        let mut w = BitWriter::new(out);
        w.bits(u32::from(self.seq), 16);
        w.octet_string(&self.primary);
        match &self.recovery {
            Recovery::Redundancy(packets) => {
                w.bit(false);
                w.length(packets.len());
                for p in packets {
                    w.octet_string(p);
                }
            }
            Recovery::Fec { npackets, data } => {
                w.bit(true);
                if *npackets < 0x80 {
                    w.length(1);
                    w.octets(&[*npackets]);
                } else {
                    w.length(2);
                    w.octets(&[0, *npackets]);
                }
                w.length(data.len());
                for d in data {
                    w.octet_string(d);
                }
            }
        }
        w.align();
        Ok(())
    }

    /// Encodes into a new vector (see [`UdptlPacket::encode_with_limit`]).
    pub fn to_bytes(&self, max_datagram: usize) -> Result<Vec<u8>, UdptlError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_with_limit(max_datagram, &mut out)?;
        Ok(out)
    }

    /// The size of the encoding, in octets.
    pub fn encoded_len(&self) -> usize {
        let parts = match &self.recovery {
            Recovery::Redundancy(packets) => {
                packets.iter().map(|p| octet_string_len(p.len())).sum()
            }
            Recovery::Fec { npackets, data } => {
                let n = if *npackets < 0x80 { 2 } else { 3 };
                n + data
                    .iter()
                    .map(|d| octet_string_len(d.len()))
                    .sum::<usize>()
            }
        };
        let count = match &self.recovery {
            Recovery::Redundancy(packets) => packets.len(),
            Recovery::Fec { data, .. } => data.len(),
        };
        2 + octet_string_len(self.primary.len()) + 1 + length_len(count) + parts
    }
}

/// The length determinant of a SEQUENCE OF; a fragmented one means 16K items or more.
fn sequence_count(r: &mut BitReader<'_>) -> Result<usize, UdptlError> {
    Ok(match r.length()? {
        Length::Complete(n) | Length::Fragment(n) => n,
    })
}

/// Octets taken by a complete length determinant for `n` < 16384.
fn length_len(n: usize) -> usize {
    if n < 0x80 {
        1
    } else {
        2
    }
}

/// Octets taken by a length-prefixed octet string of `n` octets, fragments included.
pub(crate) fn octet_string_len(n: usize) -> usize {
    let unit = super::per::FRAGMENT_UNIT;
    let full = n / (4 * unit);
    let rest = n % (4 * unit);
    let mut len = n + full;
    if rest >= unit {
        len += 1; // one more fragment header, for 1 to 3 units
        len += length_len(rest % unit);
    } else {
        len += length_len(rest);
    }
    len
}

#[cfg(test)]
mod tests;
