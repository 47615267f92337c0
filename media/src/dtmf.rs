//! DTMF over RTP: the RFC 4733 telephone-event payload (obsoletes RFC 2833).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! One event is many packets sharing the RTP timestamp of the event's start: the first has the
//! RTP marker bit set, updates carry the growing duration (in timestamp units), and the final
//! packet has the E bit and is sent three times (§2.5.1.4). Events longer than 0xFFFF units are
//! split into segments whose timestamps advance by the previous segment's duration (§2.5.2.3).
//! [`DtmfDetector`] turns that packet stream into exactly one [`DigitEvent`] per event, also when
//! the end packets are lost (the next event or a timeout closes it); [`generate`] produces the
//! packet sequence for sending a digit. Event codes 0–15 are the DTMF digits `0-9 * # A-D`
//! (§3.2); other codes (e.g. RFC 4734 fax tones) are reported with no digit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an event may go without packets before the detector reports it as ended.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_millis(500);
/// Detected events kept until polled; older ones are dropped beyond this.
const MAX_QUEUED_EVENTS: usize = 64;

/// Why a telephone-event payload or request is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is shorter than one 4-byte event block.
    #[error("telephone-event payload too short: {len} bytes")]
    TooShort {
        /// Payload length.
        len: usize,
    },
    /// The payload is not a whole number of 4-byte blocks.
    #[error("telephone-event payload of {len} bytes is not a multiple of 4")]
    BadLength {
        /// Payload length.
        len: usize,
    },
    /// The character is not a DTMF digit (`0-9 * # A-D`).
    #[error("not a DTMF digit: {digit:?}")]
    UnknownDigit {
        /// The character given.
        digit: char,
    },
    /// The requested duration does not fit one event segment (or is zero).
    #[error("DTMF duration of {duration_ms} ms is out of range (1..={max_ms} ms)")]
    BadDuration {
        /// The requested duration.
        duration_ms: u32,
        /// The largest duration that fits at this clock rate.
        max_ms: u32,
    },
    /// The packet interval or clock rate is zero.
    #[error("DTMF packet interval and clock rate must be non-zero")]
    BadTiming,
}

/// Maps an RFC 4733 event code to its DTMF digit.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Maps a DTMF digit (`0-9 * # A-D`, letters in either case) to its RFC 4733 event code.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// One telephone-event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are DTMF digits).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in −dBm0 (0..=63; larger is quieter). Only the low 6 bits are sent.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Size of one event block.
    pub const LEN: usize = 4;

    /// Parses a telephone-event payload. A payload may hold several blocks (§2.5.1.5);
    /// the first, which the RTP timestamp refers to, is returned. The R bit is ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort { len: payload.len() });
        };
        if !payload.len().is_multiple_of(Self::LEN) {
            return Err(DtmfError::BadLength { len: payload.len() });
        }
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4 wire bytes (R bit zero).
    pub fn to_bytes(&self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3F);
        [self.event, flags, d0, d1]
    }

    /// Appends the 4 wire bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The DTMF digit, if the event code is one.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// One detected event: what a stream's `dtmf` message reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitEvent {
    /// The event code.
    pub event: u8,
    /// The digit, for codes 0–15.
    pub digit: Option<char>,
    /// RTP timestamp of the event's start (of its first segment).
    pub timestamp: u32,
    /// Total duration in RTP timestamp units (all segments).
    pub duration: u32,
    /// Total duration in milliseconds at the detector's clock rate.
    pub duration_ms: u32,
    /// Volume of the last packet seen (−dBm0).
    pub volume: u8,
    /// Whether an end packet was seen (false: closed by the next event or a timeout).
    pub end_seen: bool,
}

#[derive(Debug, Clone)]
struct Current {
    /// RTP timestamp of the current segment.
    timestamp: u32,
    /// RTP timestamp of the first segment.
    first_timestamp: u32,
    event: u8,
    volume: u8,
    /// Duration of earlier segments.
    base: u32,
    /// Largest duration seen in the current segment.
    segment: u16,
    reported: bool,
    last_seen: Instant,
}

/// Turns the telephone-event packets of one RTP stream into one [`DigitEvent`] per event.
///
/// Sans-IO: feed packets with [`on_packet`](Self::on_packet), call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout), and take
/// results from [`poll_event`](Self::poll_event).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    clock_rate: u32,
    timeout: Duration,
    current: Option<Current>,
    events: VecDeque<DigitEvent>,
}

impl DtmfDetector {
    /// A detector for a stream with the given RTP clock rate (8000 for telephone-event/8000).
    pub fn new(clock_rate: u32) -> Self {
        Self::with_timeout(clock_rate, DEFAULT_EVENT_TIMEOUT)
    }

    /// A detector that closes an event after `timeout` without packets.
    pub fn with_timeout(clock_rate: u32, timeout: Duration) -> Self {
        DtmfDetector {
            clock_rate: clock_rate.max(1),
            timeout,
            current: None,
            events: VecDeque::new(),
        }
    }

    /// Feeds one telephone-event packet: its RTP timestamp and parsed payload.
    pub fn on_packet(&mut self, now: Instant, rtp_timestamp: u32, ev: &TelephoneEvent) {
        if let Some(cur) = &mut self.current {
            let delta = rtp_timestamp.wrapping_sub(cur.timestamp) as i32;
            if delta == 0 && ev.event == cur.event {
                if !cur.reported {
                    cur.segment = cur.segment.max(ev.duration);
                    cur.volume = ev.volume;
                    cur.last_seen = now;
                    if ev.end {
                        self.report(true);
                    }
                }
                return;
            }
            if delta < 0 {
                // A straggler from an earlier event or segment.
                return;
            }
            let continues = !cur.reported
                && ev.event == cur.event
                && cur.segment == u16::MAX
                && delta as u32 == u32::from(u16::MAX);
            if continues {
                cur.base += u32::from(u16::MAX);
                cur.timestamp = rtp_timestamp;
                cur.segment = ev.duration;
                cur.volume = ev.volume;
                cur.last_seen = now;
                if ev.end {
                    self.report(true);
                }
                return;
            }
            if !cur.reported {
                self.report(false);
            }
        }
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            first_timestamp: rtp_timestamp,
            event: ev.event,
            volume: ev.volume,
            base: 0,
            segment: ev.duration,
            reported: false,
            last_seen: now,
        });
        if ev.end {
            self.report(true);
        }
    }

    fn report(&mut self, end_seen: bool) {
        let Some(cur) = &mut self.current else { return };
        cur.reported = true;
        let duration = cur.base + u32::from(cur.segment);
        let duration_ms = (u64::from(duration) * 1000 / u64::from(self.clock_rate)) as u32;
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(DigitEvent {
            event: cur.event,
            digit: event_to_digit(cur.event),
            timestamp: cur.first_timestamp,
            duration,
            duration_ms,
            volume: cur.volume,
            end_seen,
        });
    }

    /// Closes an event whose end packets never came, once `timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.report(false);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.current {
            Some(cur) if !cur.reported => Some(cur.last_seen + self.timeout),
            _ => None,
        }
    }

    /// The next detected event.
    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        self.events.pop_front()
    }
}

/// One packet of a generated event, to be sent `offset_ms` after the event starts with the
/// event's start timestamp as its RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// When to send it, relative to the first packet.
    pub offset_ms: u32,
    /// The RTP marker bit (set on the first packet only).
    pub marker: bool,
    /// The payload.
    pub event: TelephoneEvent,
}

/// Builds the packet sequence for sending `digit` for `duration_ms`: an update every
/// `interval_ms` (duration growing by one interval each, starting at one interval), then the
/// end packet three times, `interval_ms` apart. The caller sends them with one sequence number
/// each and the RTP timestamp of the event start, then advances its audio clock by
/// `duration_ms`.
pub fn generate(
    digit: char,
    duration_ms: u32,
    volume: u8,
    interval_ms: u32,
    clock_rate: u32,
) -> Result<Vec<DtmfPacket>, DtmfError> {
    let event = digit_to_event(digit).ok_or(DtmfError::UnknownDigit { digit })?;
    if interval_ms == 0 || clock_rate == 0 {
        return Err(DtmfError::BadTiming);
    }
    let max_ms = (u64::from(u16::MAX) * 1000 / u64::from(clock_rate)) as u32;
    if duration_ms == 0 || duration_ms > max_ms {
        return Err(DtmfError::BadDuration {
            duration_ms,
            max_ms,
        });
    }
    let units = |ms: u32| (u64::from(ms) * u64::from(clock_rate) / 1000).min(0xFFFF) as u16;
    let volume = volume & 0x3F;
    let mut packets = Vec::new();
    let mut offset = 0;
    while offset < duration_ms {
        packets.push(DtmfPacket {
            offset_ms: offset,
            marker: offset == 0,
            event: TelephoneEvent {
                event,
                end: false,
                volume,
                duration: units((offset + interval_ms).min(duration_ms)),
            },
        });
        offset += interval_ms;
    }
    for i in 0..3 {
        packets.push(DtmfPacket {
            offset_ms: duration_ms + i * interval_ms,
            marker: false,
            event: TelephoneEvent {
                event,
                end: true,
                volume,
                duration: units(duration_ms),
            },
        });
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn digits_map_both_ways() {
        let all = "0123456789*#ABCD";
        for (code, ch) in all.chars().enumerate() {
            assert_eq!(event_to_digit(code as u8), Some(ch));
            assert_eq!(digit_to_event(ch), Some(code as u8));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn payload_golden_bytes() {
        // Digit 5, end bit, volume 10, duration 800 (100 ms at 8 kHz).
        let bytes = [0x05, 0x8A, 0x03, 0x20];
        let ev = TelephoneEvent::parse(&bytes).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), bytes);
        assert_eq!(ev.digit(), Some('5'));
        // The R bit is ignored on receipt and never sent.
        let with_r = TelephoneEvent::parse(&[0x0B, 0x4A, 0x00, 0xA0]).unwrap();
        assert!(!with_r.end);
        assert_eq!(with_r.volume, 10);
        assert_eq!(with_r.to_bytes(), [0x0B, 0x0A, 0x00, 0xA0]);
        let mut out = Vec::new();
        with_r.write(&mut out);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn payload_errors() {
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::TooShort { len: 3 })
        );
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3, 4, 5]),
            Err(DtmfError::BadLength { len: 5 })
        );
        assert!(TelephoneEvent::parse(&[1, 0, 0, 1, 2, 0, 0, 1]).is_ok());
    }

    fn feed(det: &mut DtmfDetector, now: Instant, ts: u32, packets: &[DtmfPacket]) {
        for p in packets {
            det.on_packet(
                now + Duration::from_millis(u64::from(p.offset_ms)),
                ts,
                &p.event,
            );
        }
    }

    #[test]
    fn generated_sequence_is_one_digit() {
        let packets = generate('7', 120, 10, 20, 8000).unwrap();
        // 6 updates (20..120 ms) then 3 end packets.
        assert_eq!(packets.len(), 9);
        assert!(packets[0].marker && packets.iter().skip(1).all(|p| !p.marker));
        assert_eq!(packets[0].event.duration, 160);
        assert_eq!(packets[5].event.duration, 960);
        assert!(packets[6..]
            .iter()
            .all(|p| p.event.end && p.event.duration == 960));
        assert_eq!(packets[8].offset_ms, 160);
        let mut det = DtmfDetector::new(8000);
        feed(&mut det, t0(), 1000, &packets);
        let ev = det.poll_event().unwrap();
        assert_eq!(ev.digit, Some('7'));
        assert_eq!(ev.duration, 960);
        assert_eq!(ev.duration_ms, 120);
        assert_eq!(ev.timestamp, 1000);
        assert!(ev.end_seen);
        assert_eq!(det.poll_event(), None);
        assert_eq!(det.poll_timeout(), None);
    }

    #[test]
    fn generate_rejects_bad_input() {
        assert_eq!(
            generate('x', 100, 10, 20, 8000),
            Err(DtmfError::UnknownDigit { digit: 'x' })
        );
        assert!(matches!(
            generate('1', 0, 10, 20, 8000),
            Err(DtmfError::BadDuration { .. })
        ));
        assert!(matches!(
            generate('1', 9000, 10, 20, 8000),
            Err(DtmfError::BadDuration { max_ms: 8191, .. })
        ));
        assert_eq!(generate('1', 100, 10, 0, 8000), Err(DtmfError::BadTiming));
        // A duration that is not a multiple of the interval ends on the exact duration.
        let p = generate('#', 50, 70, 20, 8000).unwrap();
        assert_eq!(p[2].event.duration, 400);
        assert_eq!(p[2].event.volume, 70 & 0x3F);
    }

    #[test]
    fn lost_end_packets_close_on_next_event() {
        let mut det = DtmfDetector::new(8000);
        let now = t0();
        let first = generate('1', 100, 10, 20, 8000).unwrap();
        feed(&mut det, now, 0, &first[..5]); // no end packets
        assert_eq!(det.poll_event(), None);
        let second = generate('2', 100, 10, 20, 8000).unwrap();
        feed(&mut det, now, 2000, &second);
        let a = det.poll_event().unwrap();
        assert_eq!((a.digit, a.duration, a.end_seen), (Some('1'), 800, false));
        let b = det.poll_event().unwrap();
        assert_eq!((b.digit, b.end_seen), (Some('2'), true));
        assert_eq!(det.poll_event(), None);
    }

    #[test]
    fn lost_end_packets_close_on_timeout() {
        let mut det = DtmfDetector::new(8000);
        let now = t0();
        let p = generate('9', 100, 10, 20, 8000).unwrap();
        feed(&mut det, now, 5, &p[..3]);
        let deadline = det.poll_timeout().unwrap();
        det.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(det.poll_event(), None);
        det.handle_timeout(deadline);
        let ev = det.poll_event().unwrap();
        assert_eq!(
            (ev.digit, ev.duration, ev.end_seen),
            (Some('9'), 480, false)
        );
        // Late packets of the same event do not report it again.
        feed(&mut det, now, 5, &p[3..]);
        assert_eq!(det.poll_event(), None);
    }

    #[test]
    fn duplicates_reordering_and_stragglers() {
        let mut det = DtmfDetector::new(8000);
        let now = t0();
        let p = generate('*', 60, 10, 20, 8000).unwrap();
        // Updates out of order and duplicated, end packets before a late update.
        let order = [0usize, 2, 1, 1, 3, 4, 2, 5];
        for i in order {
            det.on_packet(now, 100, &p[i].event);
        }
        let ev = det.poll_event().unwrap();
        assert_eq!((ev.digit, ev.duration), (Some('*'), 480));
        assert_eq!(det.poll_event(), None);
        // A new event, then a straggler end packet of the previous one.
        let q = generate('0', 40, 10, 20, 8000).unwrap();
        feed(&mut det, now, 900, &q);
        det.on_packet(now, 100, &p[5].event);
        assert_eq!(det.poll_event().unwrap().digit, Some('0'));
        assert_eq!(det.poll_event(), None);
    }

    #[test]
    fn only_end_packet_received() {
        let mut det = DtmfDetector::new(8000);
        let p = generate('D', 100, 10, 20, 8000).unwrap();
        det.on_packet(t0(), 7, &p[6].event);
        let ev = det.poll_event().unwrap();
        assert_eq!((ev.digit, ev.duration, ev.end_seen), (Some('D'), 800, true));
    }

    #[test]
    fn timestamps_wrap_around() {
        let mut det = DtmfDetector::new(8000);
        let now = t0();
        let p = generate('3', 40, 10, 20, 8000).unwrap();
        feed(&mut det, now, u32::MAX - 100, &p);
        feed(&mut det, now, 300, &p);
        assert_eq!(det.poll_event().unwrap().timestamp, u32::MAX - 100);
        assert_eq!(det.poll_event().unwrap().timestamp, 300);
    }

    #[test]
    fn long_event_segments_are_one_digit() {
        let mut det = DtmfDetector::new(8000);
        let now = t0();
        let seg = |duration: u16, end: bool| TelephoneEvent {
            event: 4,
            end,
            volume: 10,
            duration,
        };
        det.on_packet(now, 1000, &seg(30000, false));
        det.on_packet(now, 1000, &seg(u16::MAX, false));
        det.on_packet(now, 1000 + 65535, &seg(8000, false));
        det.on_packet(now, 1000 + 65535, &seg(10000, true));
        let ev = det.poll_event().unwrap();
        assert_eq!(ev.duration, 65535 + 10000);
        assert_eq!(ev.timestamp, 1000);
        assert!(ev.end_seen);
        assert_eq!(det.poll_event(), None);
    }

    #[test]
    fn non_dtmf_events_are_reported_without_digit() {
        let mut det = DtmfDetector::new(8000);
        let ans = TelephoneEvent {
            event: 32,
            end: true,
            volume: 12,
            duration: 8000,
        };
        det.on_packet(t0(), 1, &ans);
        let ev = det.poll_event().unwrap();
        assert_eq!((ev.event, ev.digit, ev.duration_ms), (32, None, 1000));
    }
}
