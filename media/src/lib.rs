//! `switchboard-media`: the sans-IO audio media cores, the pieces between RTP (RFC 3550) on the
//! trunk side and the WebSocket media streams (Twilio Media Streams, Exotel AgentStream) and
//! ESP32 PCM16 over MQTT on the app/device side. SIP signalling is in `switchboard-sip`; fax
//! (T.38, T.30) in `switchboard-fax`.
//!
//! - [`rtp`]: RTP receive statistics and RTP/RTCP demultiplexing (RFC 3550, RFC 5761).
//! - [`g711`]: ITU-T G.711 µ-law and A-law codecs (table-driven decode) and PCM16 byte helpers.
//! - [`resample`]: 8 / 16 / 24 kHz PCM16 conversion with a stateful polyphase FIR.
//! - [`jitter`]: a playout buffer toward RTP (bursty input, one 20 ms frame per tick, marks)
//!   and an RTP reorder buffer toward the app (sequence order, loss concealment).
//! - [`rtp_audio`]: RTP packetize/depacketize for PCMU/PCMA at 8 kHz (RFC 3550, RFC 3551).
//! - [`dtmf`]: RFC 4733 telephone-event payloads, a digit detector and a packet generator.
//! - [`streams`]: the Twilio and Exotel WebSocket JSON messages: outbound builders and a
//!   strict, bounded inbound parser whose errors carry a metrics reason and a close code.
//! - [`latch`]: strict symmetric RTP, which source a media socket accepts (NAT rules).
//! - [`target`]: where an SDP may point the gateway's media (no loopback, multicast, own ports).
//!
//! Nothing here reads the clock, spawns or does I/O: time is passed in.

pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod latch;
pub mod resample;
pub mod rtp;
pub mod rtp_audio;
pub mod streams;
pub mod target;
#[cfg(test)]
mod test_rng;

/// Randomised robustness: 20,000 mutated and random inputs through every parser and state
/// machine of this module must not panic (no dependencies: a xorshift generator).
#[cfg(test)]
mod no_panic {
    use std::time::{Duration, Instant};

    use super::dtmf::{DtmfDetector, TelephoneEvent};
    use super::g711::Law;
    use super::jitter::{PlayoutBuffer, PlayoutConfig, ReorderBuffer, ReorderConfig};
    use super::resample::SampleRate;
    use super::rtp_audio::{self, AudioDepacketizer};
    use super::streams::{Dialect, Limits, MediaFormat, StreamReader};

    const ITERATIONS: usize = 20_000;
    const SID: &str = "MZ42";

    use crate::test_rng::XorShift;

    fn seeds() -> Vec<String> {
        // 320 zero bytes: one valid Exotel PCM16 chunk.
        let pcm = "A".repeat(426) + "AA==";
        vec![
            r#"{"event":"media","streamSid":"MZ42","media":{"payload":"//////////8="}}"#.into(),
            r#"{"event":"mark","streamSid":"MZ42","mark":{"name":"done"}}"#.into(),
            r#"{"event":"clear","streamSid":"MZ42"}"#.into(),
            format!(
                r#"{{"event":"media","stream_sid":"MZ42","media":{{"chunk":1,"timestamp":"20","payload":"{pcm}"}}}}"#
            ),
            r#"{"event":"mark","stream_sid":"MZ42","mark":{"name":"x"}}"#.into(),
            r#"{"event":"clear","streamSid":"MZ42","sequence_number":"9"}"#.into(),
            r#"{"event":"start","streamSid":"MZ42","start":{}}"#.into(),
        ]
    }

    /// Characters that tend to reach interesting parser states.
    const SPICE: &[u8] = b"{}[]\":,\\ 0123456789-+.eEtrufalsn/=AZaz\xc3\xa9\x00\x7f";

    #[test]
    fn parsers_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut readers = [
            StreamReader::new(
                Dialect::Twilio,
                MediaFormat::Mulaw8k,
                SID,
                Limits::default(),
            ),
            StreamReader::new(
                Dialect::Exotel,
                MediaFormat::Pcm16(SampleRate::Hz8000),
                SID,
                Limits::default(),
            ),
        ];
        let depack = AudioDepacketizer::new(Law::Mu, Some(101));
        let seeds = seeds();
        let mut accepted = 0usize;
        for i in 0..ITERATIONS {
            let frame = if i % 5 == 0 {
                rng.bytes(200)
            } else {
                let seed = &seeds[rng.below(seeds.len())];
                rng.mutate(seed.as_bytes(), SPICE)
            };
            let text = String::from_utf8_lossy(&frame);
            for reader in &mut readers {
                if reader.read_text(&text).is_ok() {
                    accepted += 1;
                }
            }
            let _ = TelephoneEvent::parse(&frame);
            let mut packet = rng.bytes(64);
            if let Some(first) = packet.first_mut() {
                *first = 0x80 | (*first & 0x3F);
            }
            let pick = rng.below(6);
            if let Some(second) = packet.get_mut(1) {
                *second = [0, 8, 13, 101, 0x80 | 101, *second][pick];
            }
            let _ = rtp_audio::parse(&packet);
            let _ = depack.depacketize(&packet);
        }
        // The mutations keep a fair share of messages valid, so deep paths are reached.
        assert!(accepted > ITERATIONS / 10, "only {accepted} accepted");
    }

    #[test]
    fn state_machines_never_panic() {
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let t0 = Instant::now();
        let mut det = DtmfDetector::new(8000);
        let mut reorder = ReorderBuffer::new(ReorderConfig::default());
        let mut playout = PlayoutBuffer::new(PlayoutConfig::default()).unwrap_or_else(|e| {
            panic!("default config rejected: {e}");
        });
        let mut base_seq: u16 = rng.next() as u16;
        for i in 0..ITERATIONS {
            let now = t0 + Duration::from_millis(i as u64 * 5);
            let ev = TelephoneEvent {
                event: rng.below(20) as u8,
                end: rng.below(3) == 0,
                volume: rng.byte(),
                duration: rng.next() as u16,
            };
            det.on_packet(now, (rng.below(4) as u32) * 800 + i as u32 / 50 * 800, &ev);
            det.handle_timeout(now);
            while det.poll_event().is_some() {}
            // Mostly nearby sequence numbers, sometimes far jumps.
            let seq = if rng.below(50) == 0 {
                rng.next() as u16
            } else {
                base_seq.wrapping_add(rng.below(8) as u16).wrapping_sub(2)
            };
            base_seq = base_seq.wrapping_add(1);
            reorder.push(now, seq, u32::from(seq) * 160, vec![1; rng.below(200)]);
            while reorder.pop(now).is_some() {}
            match rng.below(10) {
                0 => {
                    let _ = playout.clear();
                }
                1 => {
                    let _ = playout.push_mark(format!("m{i}"));
                }
                _ => playout.push(now, &vec![7; rng.below(700)]),
            }
            let frame = playout.pull(now);
            assert_eq!(frame.samples.len(), 160);
        }
    }
}

/// The pieces composed the way the gateway uses them, app → RTP → app.
#[cfg(test)]
mod pipeline {
    use std::time::{Duration, Instant};

    use base64::Engine;

    use super::g711::{pcm16le_decode, pcm16le_encode, Law};
    use super::jitter::{FrameKind, PlayoutBuffer, PlayoutConfig, ReorderBuffer, ReorderConfig};
    use super::resample::{Resampler, SampleRate};
    use super::rtp_audio::{AudioDepacketizer, AudioPacketizer, Depacketized};
    use super::streams::{AppMessage, Dialect, Limits, MediaFormat, StreamReader, StreamWriter};
    use super::streams::{StartInfo, Track};

    #[test]
    fn exotel_16k_app_through_rtp_and_back() {
        let t0 = Instant::now();
        let fmt = MediaFormat::Pcm16(SampleRate::Hz16000);
        let mut reader = StreamReader::new(Dialect::Exotel, fmt, "MZ1", Limits::default());
        let mut writer = StreamWriter::new(Dialect::Exotel, fmt, "MZ1");
        let mut down = Resampler::new(SampleRate::Hz16000, SampleRate::Hz8000);
        let mut up = Resampler::new(SampleRate::Hz8000, SampleRate::Hz16000);
        let mut playout = PlayoutBuffer::new(PlayoutConfig {
            max_depth_ms: 2000,
            prebuffer_ms: 0,
            ..PlayoutConfig::default()
        })
        .unwrap();
        let mut tx = AudioPacketizer::new(Law::Mu, 7, 100, 0);
        let rx = AudioDepacketizer::new(Law::Mu, Some(101));
        let mut reorder = ReorderBuffer::new(ReorderConfig::default());
        assert!(writer.start(&StartInfo::default()).contains("16000"));

        // The app sends 200 ms of a 500 Hz tone in one message, then a mark.
        let tone: Vec<i16> = (0..3200)
            .map(|i| (8000.0 * (i as f64 * 500.0 / 16000.0 * std::f64::consts::TAU).sin()) as i16)
            .collect();
        let mut bytes = Vec::new();
        pcm16le_encode(&tone, &mut bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let media =
            format!(r#"{{"event":"media","stream_sid":"MZ1","media":{{"payload":"{b64}"}}}}"#);
        let Ok(AppMessage::Media { payload }) = reader.read_text(&media) else {
            panic!("media rejected")
        };
        let mut pcm16k = Vec::new();
        pcm16le_decode(&payload, &mut pcm16k);
        let mut pcm8k = Vec::new();
        down.process(&pcm16k, &mut pcm8k);
        playout.push(t0, &pcm8k);
        let mark = r#"{"event":"mark","stream_sid":"MZ1","mark":{"name":"tone"}}"#;
        let Ok(AppMessage::Mark { name }) = reader.read_text(mark) else {
            panic!("mark rejected")
        };
        playout.push_mark(name).unwrap();

        // Ten ticks play the tone; packets cross in reverse pairs; the mark echoes on the last.
        let mut packets = Vec::new();
        let mut echoed = Vec::new();
        for tick in 0..11u64 {
            let now = t0 + Duration::from_millis(tick * 20);
            let frame = playout.pull(now);
            if frame.kind == FrameKind::Audio {
                let mut pkt = Vec::new();
                tx.packetize(&frame.samples, &mut pkt);
                packets.push(pkt);
            }
            echoed.extend(frame.marks.iter().map(|m| writer.mark(m)));
        }
        assert_eq!(packets.len(), 10);
        assert_eq!(echoed.len(), 1);
        for pair in packets.chunks(2).rev() {
            for pkt in pair.iter().rev() {
                let Ok(Depacketized::Audio(f)) = rx.depacketize(pkt) else {
                    panic!("not audio")
                };
                reorder.push(t0, f.header.sequence, f.header.timestamp, f.samples);
            }
        }
        let mut back = Vec::new();
        let mut sequences = Vec::new();
        for tick in 1..=20u64 {
            let now = t0 + Duration::from_millis(tick * 20);
            while let Some(f) = reorder.pop(now) {
                sequences.push(f.sequence);
                let mut wide = Vec::new();
                up.process(&f.samples, &mut wide);
                back.push(writer.media(Track::Inbound, u64::from(f.timestamp) / 8, &{
                    let mut b = Vec::new();
                    pcm16le_encode(&wide, &mut b);
                    b
                }));
            }
        }
        assert_eq!(sequences, (100..110).collect::<Vec<u16>>());
        assert_eq!(back.len(), 10);
        assert!(back[9].contains(r#""timestamp":"180""#));
    }
}
