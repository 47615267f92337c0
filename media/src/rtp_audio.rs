//! RTP packetisation of G.711 audio (RFC 3550 §5.1, RFC 3551 §4.5.14: PCMU payload type 0,
//! PCMA payload type 8, 8000 Hz clock, one byte per sample) and of RFC 4733 telephone events.
//!
//! [`AudioPacketizer`] owns one outgoing stream: SSRC, sequence number and media clock. It sets
//! the marker bit on the first packet of each talkspurt (RFC 3551 §4.1), which is the first
//! packet of the stream and the first one after [`AudioPacketizer::skip`] (silence not sent) or
//! [`AudioPacketizer::start_talkspurt`]. Telephone-event packets share the sequence space.
//! [`parse`] reads a packet with bounds checks (CSRC list, header extension, padding) and
//! [`AudioDepacketizer`] sorts a received stream into decoded audio, telephone events and
//! comfort noise.

use super::dtmf::{DtmfError, TelephoneEvent};
use super::g711::Law;

/// Fixed RTP header length.
pub const HEADER_LEN: usize = 12;
/// Payload type of PCMU (RFC 3551).
pub const PT_PCMU: u8 = 0;
/// Payload type of PCMA (RFC 3551).
pub const PT_PCMA: u8 = 8;
/// Payload type of comfort noise (RFC 3389).
pub const PT_CN: u8 = 13;
/// Largest G.711 payload accepted: 120 ms at 8 kHz.
pub const MAX_AUDIO_PAYLOAD: usize = 960;

/// Why a packet was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpAudioError {
    /// The RTP header is malformed (the shared parser's verdict).
    #[error(transparent)]
    Header(#[from] crate::rtp::RtpError),
    /// A payload type this stream was not set up for.
    #[error("unexpected RTP payload type {payload_type}")]
    UnexpectedPayloadType {
        /// The payload type found.
        payload_type: u8,
    },
    /// An audio packet with no payload.
    #[error("empty RTP audio payload")]
    EmptyPayload,
    /// An audio payload larger than [`MAX_AUDIO_PAYLOAD`].
    #[error("RTP audio payload of {len} bytes exceeds {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A malformed telephone-event payload.
    #[error("bad telephone-event payload: {0}")]
    Event(#[from] DtmfError),
}

/// The fields of an RTP header this module reads and writes (no CSRCs or extensions are
/// written; on receipt they are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte header and `payload` to `out`.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN + payload.len());
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
    }
}

/// A parsed RTP packet borrowing its payload (padding removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header fields.
    pub header: RtpHeader,
    /// The payload.
    pub payload: &'a [u8],
}

/// Parses an RTP packet (RFC 3550 §5.1), skipping CSRCs and a header extension and removing
/// padding; every length is checked against the datagram.
pub fn parse(packet: &[u8]) -> Result<RtpPacket<'_>, RtpAudioError> {
    let (info, payload) = crate::rtp::parse(packet)?;
    Ok(RtpPacket {
        header: RtpHeader {
            marker: info.marker,
            payload_type: info.payload_type,
            sequence: info.sequence,
            timestamp: info.timestamp,
            ssrc: info.ssrc,
        },
        payload,
    })
}

/// The static payload type of a G.711 law.
pub fn payload_type(law: Law) -> u8 {
    match law {
        Law::Mu => PT_PCMU,
        Law::A => PT_PCMA,
    }
}

/// The G.711 law of a static payload type (0 or 8).
pub fn law_for_payload_type(payload_type: u8) -> Option<Law> {
    match payload_type {
        PT_PCMU => Some(Law::Mu),
        PT_PCMA => Some(Law::A),
        _ => None,
    }
}

/// Builds the packets of one outgoing G.711 stream.
#[derive(Debug, Clone)]
pub struct AudioPacketizer {
    law: Law,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    talkspurt_start: bool,
    scratch: Vec<u8>,
}

impl AudioPacketizer {
    /// A stream with the given SSRC and initial sequence number and timestamp (RFC 3550 asks
    /// for random initial values; the caller draws them).
    pub fn new(law: Law, ssrc: u32, first_sequence: u16, first_timestamp: u32) -> Self {
        AudioPacketizer {
            law,
            ssrc,
            sequence: first_sequence,
            timestamp: first_timestamp,
            talkspurt_start: true,
            scratch: Vec::new(),
        }
    }

    /// The law in use.
    pub fn law(&self) -> Law {
        self.law
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The media timestamp of the next audio packet (also the start timestamp for an event).
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Encodes 8 kHz `pcm` (160 samples for 20 ms) and appends one packet to `out`.
    pub fn packetize(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        self.law.encode(pcm, &mut payload);
        self.packetize_encoded(&payload, out);
        self.scratch = payload;
    }

    /// Appends one packet carrying already-encoded G.711 `payload` to `out`.
    pub fn packetize_encoded(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let header = RtpHeader {
            marker: std::mem::take(&mut self.talkspurt_start),
            payload_type: payload_type(self.law),
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        header.write(payload, out);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
    }

    /// Advances the media clock by `samples` not sent (silence suppression, or the duration
    /// of a telephone event); the next audio packet starts a talkspurt.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.talkspurt_start = true;
    }

    /// Marks the next audio packet as the start of a talkspurt.
    pub fn start_talkspurt(&mut self) {
        self.talkspurt_start = true;
    }

    /// Appends a telephone-event packet (dynamic `payload_type`, RTP timestamp of the event
    /// start) to `out`, using the next sequence number. The media clock is not advanced.
    pub fn event_packet(
        &mut self,
        payload_type: u8,
        event_timestamp: u32,
        marker: bool,
        event: &TelephoneEvent,
        out: &mut Vec<u8>,
    ) {
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp: event_timestamp,
            ssrc: self.ssrc,
        };
        header.write(&event.to_bytes(), out);
        self.sequence = self.sequence.wrapping_add(1);
    }
}

/// Decoded audio of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// The packet's header.
    pub header: RtpHeader,
    /// 8 kHz PCM16 samples, one per payload byte.
    pub samples: Vec<i16>,
}

/// What a received packet carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Depacketized {
    /// G.711 audio, decoded.
    Audio(AudioFrame),
    /// A telephone event (feed it to a [`DtmfDetector`](super::dtmf::DtmfDetector)).
    Event {
        /// The packet's header.
        header: RtpHeader,
        /// The event block.
        event: TelephoneEvent,
    },
    /// Comfort noise (RFC 3389); the payload is not interpreted.
    ComfortNoise {
        /// The packet's header.
        header: RtpHeader,
    },
}

/// Sorts the packets of one received stream: the negotiated G.711 payload type, an optional
/// telephone-event payload type and comfort noise; anything else is an error.
#[derive(Debug, Clone, Copy)]
pub struct AudioDepacketizer {
    law: Law,
    event_payload_type: Option<u8>,
}

impl AudioDepacketizer {
    /// A depacketizer for `law` audio and, if negotiated, telephone events.
    pub fn new(law: Law, event_payload_type: Option<u8>) -> Self {
        AudioDepacketizer {
            law,
            event_payload_type,
        }
    }

    /// Parses and classifies one packet, decoding audio.
    pub fn depacketize(&self, packet: &[u8]) -> Result<Depacketized, RtpAudioError> {
        let RtpPacket { header, payload } = parse(packet)?;
        let pt = header.payload_type;
        if pt == payload_type(self.law) {
            if payload.is_empty() {
                return Err(RtpAudioError::EmptyPayload);
            }
            if payload.len() > MAX_AUDIO_PAYLOAD {
                return Err(RtpAudioError::PayloadTooLarge {
                    len: payload.len(),
                    max: MAX_AUDIO_PAYLOAD,
                });
            }
            let mut samples = Vec::with_capacity(payload.len());
            self.law.decode(payload, &mut samples);
            Ok(Depacketized::Audio(AudioFrame { header, samples }))
        } else if Some(pt) == self.event_payload_type {
            let event = TelephoneEvent::parse(payload)?;
            Ok(Depacketized::Event { header, event })
        } else if pt == PT_CN {
            Ok(Depacketized::ComfortNoise { header })
        } else {
            Err(RtpAudioError::UnexpectedPayloadType { payload_type: pt })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpError;

    #[test]
    fn golden_pcmu_packet() {
        let mut p = AudioPacketizer::new(Law::Mu, 0xDEAD_BEEF, 0x1234, 0x0001_0000);
        let mut out = Vec::new();
        p.packetize(&[0i16; 160], &mut out);
        assert_eq!(out.len(), HEADER_LEN + 160);
        assert_eq!(
            &out[..12],
            &[0x80, 0x80, 0x12, 0x34, 0x00, 0x01, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF]
        );
        assert!(out[12..].iter().all(|&b| b == 0xFF));
        out.clear();
        p.packetize(&[0i16; 160], &mut out);
        // No marker, sequence +1, timestamp +160.
        assert_eq!(&out[..8], &[0x80, 0x00, 0x12, 0x35, 0x00, 0x01, 0x00, 0xA0]);
        assert_eq!(p.next_sequence(), 0x1236);
        assert_eq!(p.timestamp(), 0x0001_0140);
    }

    #[test]
    fn talkspurts_and_wrap() {
        let mut p = AudioPacketizer::new(Law::A, 1, u16::MAX, u32::MAX - 100);
        let mut out = Vec::new();
        p.packetize(&[0i16; 160], &mut out);
        let first = parse(&out).unwrap();
        assert!(first.header.marker);
        assert_eq!(first.header.payload_type, PT_PCMA);
        assert!(first.payload.iter().all(|&b| b == 0xD5));
        p.skip(320);
        out.clear();
        p.packetize(&[0i16; 160], &mut out);
        let second = parse(&out).unwrap();
        assert!(second.header.marker);
        assert_eq!(second.header.sequence, 0);
        assert_eq!(second.header.timestamp, (u32::MAX - 100).wrapping_add(480));
        p.start_talkspurt();
        out.clear();
        p.packetize_encoded(&[0xD5; 80], &mut out);
        assert!(parse(&out).unwrap().header.marker);
        assert_eq!(p.timestamp(), (u32::MAX - 100).wrapping_add(720));
        assert_eq!((p.law(), p.ssrc()), (Law::A, 1));
    }

    #[test]
    fn round_trip_audio_and_events() {
        let mut p = AudioPacketizer::new(Law::Mu, 42, 10, 0);
        let pcm: Vec<i16> = (0..160).map(|i| (i * 100 - 8000) as i16).collect();
        let mut pkt = Vec::new();
        p.packetize(&pcm, &mut pkt);
        let d = AudioDepacketizer::new(Law::Mu, Some(101));
        let Depacketized::Audio(frame) = d.depacketize(&pkt).unwrap() else {
            panic!("expected audio")
        };
        assert_eq!(frame.samples.len(), 160);
        for (a, b) in frame.samples.iter().zip(&pcm) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 256);
        }
        let ev = TelephoneEvent {
            event: 1,
            end: false,
            volume: 10,
            duration: 160,
        };
        pkt.clear();
        let start = p.timestamp();
        p.event_packet(101, start, true, &ev, &mut pkt);
        assert_eq!(p.next_sequence(), 12);
        assert_eq!(p.timestamp(), start);
        match d.depacketize(&pkt).unwrap() {
            Depacketized::Event { header, event } => {
                assert!(header.marker);
                assert_eq!(header.timestamp, start);
                assert_eq!(event, ev);
            }
            other => panic!("expected event, got {other:?}"),
        }
        let cn = [0x80, 13, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 40];
        assert!(matches!(
            d.depacketize(&cn),
            Ok(Depacketized::ComfortNoise { .. })
        ));
        let pcma = [0x80, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 0xD5];
        assert_eq!(
            d.depacketize(&pcma),
            Err(RtpAudioError::UnexpectedPayloadType { payload_type: 8 })
        );
        let bad_event = [0x80, 101, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 1, 2];
        assert_eq!(
            d.depacketize(&bad_event),
            Err(RtpAudioError::Event(DtmfError::TooShort { len: 2 }))
        );
        let empty = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42];
        assert_eq!(d.depacketize(&empty), Err(RtpAudioError::EmptyPayload));
        let mut big = empty.to_vec();
        big.resize(HEADER_LEN + MAX_AUDIO_PAYLOAD + 1, 0xFF);
        assert!(matches!(
            d.depacketize(&big),
            Err(RtpAudioError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn parse_csrc_extension_padding() {
        // V=2, P=1, X=1, CC=1; PT 0; one CSRC; extension of 1 word; 2 payload bytes; 2 padding.
        let pkt = [
            0xB1, 0x00, 0x00, 0x07, 0, 0, 0, 9, 0, 0, 0, 1, // fixed
            0, 0, 0, 2, // CSRC
            0xBE, 0xDE, 0x00, 0x01, 1, 2, 3, 4, // extension
            0xAA, 0xBB, // payload
            0x00, 0x02, // padding
        ];
        let p = parse(&pkt).unwrap();
        assert_eq!(p.payload, &[0xAA, 0xBB]);
        assert_eq!(p.header.sequence, 7);
        assert_eq!(p.header.timestamp, 9);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse(&[0x80; 5]),
            Err(RtpAudioError::Header(RtpError::TooShort { len: 5 }))
        );
        let mut h = [0u8; 12];
        h[0] = 0x40;
        assert_eq!(
            parse(&h),
            Err(RtpAudioError::Header(RtpError::BadVersion { version: 1 }))
        );
        h[0] = 0x80;
        h[1] = 200;
        assert_eq!(
            parse(&h),
            Err(RtpAudioError::Header(RtpError::Rtcp { packet_type: 200 }))
        );
        h[1] = 0;
        h[0] = 0x82; // two CSRCs missing
        assert_eq!(
            parse(&h),
            Err(RtpAudioError::Header(RtpError::Truncated {
                header_len: 20,
                len: 12
            }))
        );
        h[0] = 0x90; // extension header missing
        assert!(matches!(
            parse(&h),
            Err(RtpAudioError::Header(RtpError::Truncated { .. }))
        ));
        let mut ext = h.to_vec();
        ext.extend_from_slice(&[0, 0, 0xFF, 0xFF]); // extension claims 65535 words
        assert!(matches!(
            parse(&ext),
            Err(RtpAudioError::Header(RtpError::Truncated { .. }))
        ));
        let mut pad = [0u8; 14];
        pad[0] = 0xA0;
        pad[13] = 0;
        assert_eq!(
            parse(&pad),
            Err(RtpAudioError::Header(RtpError::BadPadding { padding: 0 }))
        );
        pad[13] = 3;
        assert_eq!(
            parse(&pad),
            Err(RtpAudioError::Header(RtpError::BadPadding { padding: 3 }))
        );
        pad[13] = 2;
        assert_eq!(parse(&pad).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn payload_type_mapping() {
        assert_eq!(payload_type(Law::Mu), 0);
        assert_eq!(payload_type(Law::A), 8);
        assert_eq!(law_for_payload_type(0), Some(Law::Mu));
        assert_eq!(law_for_payload_type(8), Some(Law::A));
        assert_eq!(law_for_payload_type(9), None);
    }
}
