//! RTP receive statistics and RTP/RTCP demultiplexing (RFC 3550, RFC 5761).
//!
//! [`RtpStats`] follows the sequence-number bookkeeping of RFC 3550 Appendix A.1 and the loss
//! computation of Appendix A.3: it extends the 16-bit sequence number with a cycle count, accepts
//! reordering and small gaps, treats a large jump as a possible restart that is confirmed by the
//! next in-order packet, and treats a new SSRC as a restarted stream. Counts from earlier stream
//! epochs are kept, so `expected` and `lost` cover the whole call. [`is_rtcp`] tells RTCP from RTP
//! on a muxed port (RFC 5761 §4).

use rtp_rs::{RtpReader, RtpReaderError};

const RTP_SEQ_MOD: u32 = 1 << 16;
/// Largest forward jump still treated as loss rather than a restart (RFC 3550 A.1).
const MAX_DROPOUT: u32 = 3000;
/// Largest backward jump treated as reordering (RFC 3550 A.1).
const MAX_MISORDER: u32 = 100;

/// Why a datagram is not an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet too short: {len} bytes")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// Version field is not 2.
    #[error("unsupported RTP version {version}")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// CSRC list or header extension runs past the end of the datagram.
    #[error("RTP header of {header_len} bytes truncated to {len}")]
    Truncated {
        /// Header length the flags call for.
        header_len: usize,
        /// Datagram length.
        len: usize,
    },
    /// The padding count is zero or larger than the payload.
    #[error("invalid RTP padding length {padding}")]
    BadPadding {
        /// The padding count found.
        padding: u8,
    },
    /// The datagram is RTCP (RFC 5761 demultiplexing), not RTP.
    #[error("RTCP packet type {packet_type} where RTP was expected")]
    Rtcp {
        /// The RTCP packet type (200..=204).
        packet_type: u8,
    },
}

impl From<RtpReaderError> for RtpError {
    fn from(e: RtpReaderError) -> Self {
        match e {
            RtpReaderError::BufferTooShort(len) => RtpError::TooShort { len },
            RtpReaderError::UnsupportedVersion(version) => RtpError::BadVersion { version },
            RtpReaderError::HeadersTruncated {
                header_len,
                buffer_len,
            } => RtpError::Truncated {
                header_len,
                len: buffer_len,
            },
            RtpReaderError::PaddingLengthInvalid(padding) => RtpError::BadPadding { padding },
        }
    }
}

/// The header fields of one observed RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
}

/// Sequence state of one stream epoch (RFC 3550 A.1 `source`).
#[derive(Debug, Clone, Copy)]
struct SeqState {
    ssrc: u32,
    max_seq: u16,
    cycles: u64,
    base_seq: u16,
    bad_seq: u32,
    received: u64,
}

impl SeqState {
    fn new(ssrc: u32, seq: u16) -> Self {
        SeqState {
            ssrc,
            max_seq: seq,
            cycles: 0,
            base_seq: seq,
            bad_seq: RTP_SEQ_MOD + 1,
            received: 0,
        }
    }

    fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn expected(&self) -> u64 {
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }
}

/// Per-direction receive statistics (RFC 3550 A.1 and A.3).
///
/// Every valid RTP packet counts in [`packets`](Self::packets) and [`bytes`](Self::bytes);
/// [`expected`](Self::expected) and [`lost`](Self::lost) follow the extended highest sequence
/// number. Loss is cumulative over restarts and SSRC changes, and never negative (duplicates can
/// make "received" exceed "expected"; the loss then reads 0).
#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    packets: u64,
    bytes: u64,
    state: Option<SeqState>,
    /// Expected and received counts of finished epochs.
    prior_expected: u64,
    prior_received: u64,
}

impl RtpStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates one datagram as RTP and updates the statistics.
    ///
    /// Non-RTP input (including RTCP) is an error and leaves the statistics unchanged.
    pub fn observe(&mut self, packet: &[u8]) -> Result<RtpInfo, RtpError> {
        let (info, _) = parse(packet)?;
        self.packets += 1;
        self.bytes += packet.len() as u64;
        self.update_seq(info.ssrc, info.sequence);
        Ok(info)
    }

    fn restart(&mut self, ssrc: u32, seq: u16) -> &mut SeqState {
        if let Some(old) = self.state.take() {
            self.prior_expected += old.expected();
            self.prior_received += old.received;
        }
        self.state.insert(SeqState::new(ssrc, seq))
    }

    fn update_seq(&mut self, ssrc: u32, seq: u16) {
        let s = match self.state {
            Some(ref mut s) if s.ssrc == ssrc => s,
            _ => {
                let s = self.restart(ssrc, seq);
                s.received = 1;
                return;
            }
        };
        let udelta = u32::from(seq.wrapping_sub(s.max_seq));
        if udelta < MAX_DROPOUT {
            // In order, with permissible gap.
            if seq < s.max_seq {
                s.cycles += u64::from(RTP_SEQ_MOD);
            }
            s.max_seq = seq;
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            // A very large jump: a restarted sender if the next packet follows this one.
            if u32::from(seq) == s.bad_seq {
                let s = self.restart(ssrc, seq);
                s.received = 1;
                return;
            }
            s.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return;
        }
        // Otherwise a duplicate or reordered packet: counted, max unchanged.
        s.received += 1;
    }

    /// Valid RTP packets observed.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes of valid RTP packets observed (whole datagrams).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Packets expected from the sequence numbers (RFC 3550 A.3), over all stream epochs.
    pub fn expected(&self) -> u64 {
        self.prior_expected + self.state.map_or(0, |s| s.expected())
    }

    /// Packets expected but not received, never negative.
    pub fn lost(&self) -> u64 {
        let received = self.prior_received + self.state.map_or(0, |s| s.received);
        self.expected().saturating_sub(received)
    }

    /// Extended highest sequence number of the current stream (cycles and sequence), if any.
    pub fn extended_highest_sequence(&self) -> Option<u64> {
        self.state.map(|s| s.extended_max())
    }
}

/// Validates `packet` as RTP, not RTCP (RFC 3550 §5.1, RFC 5761 §4), and reads its header
/// fields and payload (CSRCs and a header extension skipped, padding removed).
pub fn parse(packet: &[u8]) -> Result<(RtpInfo, &[u8]), RtpError> {
    if is_rtcp(packet) {
        return Err(RtpError::Rtcp {
            packet_type: packet[1],
        });
    }
    let reader = RtpReader::new(packet)?;
    let info = RtpInfo {
        sequence: reader.sequence_number().into(),
        timestamp: reader.timestamp(),
        ssrc: reader.ssrc(),
        payload_type: reader.payload_type(),
        marker: reader.mark(),
    };
    Ok((info, reader.payload()))
}

/// True when the datagram is RTCP: version 2, at least 8 bytes, and packet type 200..=204
/// (SR, RR, SDES, BYE, APP) in the second byte (RFC 5761 §4 demultiplexing).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (200..=204).contains(&packet[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    #[test]
    fn parses_header_fields() {
        // V=2, M=1, PT=8, seq=0x1234, ts=0xdeadbeef, ssrc=0x01020304.
        let p = [
            0x80, 0x88, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xd5,
        ];
        let mut s = RtpStats::new();
        let i = s.observe(&p).unwrap();
        assert_eq!(
            i,
            RtpInfo {
                sequence: 0x1234,
                timestamp: 0xdead_beef,
                ssrc: 0x0102_0304,
                payload_type: 8,
                marker: true
            }
        );
        assert_eq!(
            (s.packets(), s.bytes(), s.expected(), s.lost()),
            (1, 13, 1, 0)
        );
    }

    #[test]
    fn rejects_non_rtp() {
        let mut s = RtpStats::new();
        assert_eq!(s.observe(&[0x80; 5]), Err(RtpError::TooShort { len: 5 }));
        let mut v1 = pkt(1, 1);
        v1[0] = 0x40;
        assert_eq!(s.observe(&v1), Err(RtpError::BadVersion { version: 1 }));
        // CSRC count 15 but no CSRCs.
        let mut trunc = pkt(1, 1);
        trunc[0] = 0x8f;
        trunc.truncate(20);
        assert!(matches!(s.observe(&trunc), Err(RtpError::Truncated { .. })));
        // An RTCP receiver report (RFC 3550 6.4.2) with no report blocks.
        let rr = [0x80, 201, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78];
        assert!(is_rtcp(&rr));
        assert_eq!(s.observe(&rr), Err(RtpError::Rtcp { packet_type: 201 }));
        assert_eq!(s.packets(), 0);
        assert!(!is_rtcp(&pkt(1, 1)));
        assert!(!is_rtcp(&[0x80, 200]));
    }

    #[test]
    fn counts_loss_and_reordering() {
        let mut s = RtpStats::new();
        for seq in [10u16, 11, 13, 12, 15, 16] {
            s.observe(&pkt(seq, 7)).unwrap();
        }
        assert_eq!(s.expected(), 7); // 10..=16
        assert_eq!(s.lost(), 1); // 14
                                 // A duplicate makes received exceed nothing negative.
        s.observe(&pkt(16, 7)).unwrap();
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn sequence_wraps() {
        let mut s = RtpStats::new();
        for seq in [65533u16, 65534, 65535, 0, 2] {
            s.observe(&pkt(seq, 7)).unwrap();
        }
        assert_eq!(s.extended_highest_sequence(), Some(65536 + 2));
        assert_eq!(s.expected(), 6);
        assert_eq!(s.lost(), 1);
    }

    #[test]
    fn restarted_stream_and_new_ssrc() {
        let mut s = RtpStats::new();
        for seq in 100u16..110 {
            s.observe(&pkt(seq, 7)).unwrap();
        }
        // A big jump: first packet is held as suspect, the second confirms a restart.
        s.observe(&pkt(40000, 7)).unwrap();
        assert_eq!(s.expected(), 10);
        s.observe(&pkt(40001, 7)).unwrap();
        assert_eq!(s.expected(), 10 + 1);
        s.observe(&pkt(40002, 7)).unwrap();
        assert_eq!((s.expected(), s.lost()), (12, 0));
        // New SSRC (e.g. after a re-INVITE to another media server).
        s.observe(&pkt(5, 9)).unwrap();
        s.observe(&pkt(7, 9)).unwrap();
        assert_eq!((s.expected(), s.lost()), (15, 1));
        assert_eq!(s.packets(), 15);
    }
}
