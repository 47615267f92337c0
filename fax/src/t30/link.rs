//! The T.38 face of the terminal (ITU-T T.38, as a "T.38 terminal"): T.30
//! signals become paced IFP packets, and received IFP packets become T.30
//! events (frames, image octets, end of signal).
//!
//! Transmission is scheduled on a virtual line: every packet gets a release
//! time and occupies the line for as long as the modem it stands for would
//! (V.21 at 300 bit/s for control frames, the image modem for TCF and page
//! data), so a peer T.38 gateway can play it out in real time. Nothing here
//! reads a clock; the caller passes `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::t38::types::{DataType, Field, FieldType, Ifp, Indicator};

use super::frames::{Frame, Rate, MAX_FRAME_OCTETS};
use super::FaxEvent;

/// Silence between the end of one signal and the start of the next
/// (T.30 §5.4: 75 ± 20 ms).
pub(super) const TURNAROUND: Duration = Duration::from_millis(75);
/// V.21 control channel speed.
const V21_BPS: u32 = 300;
/// No-signal indicators closing each burst, and their spacing.
const TAIL_REPEATS: usize = 3;
const TAIL_SPACING: Duration = Duration::from_millis(20);

/// Something scheduled on the line.
#[derive(Debug)]
pub(super) enum TxItem {
    /// A packet for the peer.
    Ifp(Ifp),
    /// An event for the application, released when the line gets there.
    Event(FaxEvent),
}

/// The paced transmit queue.
#[derive(Debug)]
pub(super) struct TxLine {
    queue: VecDeque<(Instant, TxItem)>,
    free_at: Instant,
    paced: bool,
    chunk: usize,
    preamble: Duration,
}

impl TxLine {
    pub(super) fn new(now: Instant, paced: bool, chunk: usize, preamble: Duration) -> TxLine {
        TxLine {
            queue: VecDeque::new(),
            free_at: now,
            paced,
            chunk: chunk.clamp(16, 4096),
            preamble,
        }
    }

    /// When everything queued so far has been sent.
    pub(super) fn idle_at(&self, now: Instant) -> Instant {
        self.free_at.max(now)
    }

    /// True while packets are waiting for their release time.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn time(&self, bits: u64, bps: u32) -> Duration {
        if !self.paced || bps == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(bits.saturating_mul(1_000_000) / u64::from(bps))
    }

    fn push(&mut self, now: Instant, item: TxItem, busy: Duration) {
        let at = self.idle_at(now);
        self.queue.push_back((at, item));
        self.free_at = at + busy;
    }

    fn gap(&mut self, now: Instant, d: Duration) {
        if self.paced {
            self.free_at = self.idle_at(now) + d;
        }
    }

    fn ifp(&mut self, now: Instant, ifp: Ifp, busy: Duration) {
        self.push(now, TxItem::Ifp(ifp), busy);
    }

    fn data(
        &mut self,
        now: Instant,
        kind: DataType,
        field: FieldType,
        data: Vec<u8>,
        busy: Duration,
    ) {
        let fields = vec![Field { kind: field, data }];
        self.ifp(now, Ifp::Data { kind, fields }, busy);
    }

    /// Ends a signal: no-signal, sent three times 20 ms apart. Receivers
    /// ignore repeated indicators (T.38), but the extra packets carry
    /// the end of the burst in their UDPTL redundancy, so losing the last
    /// datagrams of a burst no longer stalls the far end until our next
    /// transmission.
    fn tail(&mut self, now: Instant) {
        for i in 0..TAIL_REPEATS {
            let gap = if i + 1 < TAIL_REPEATS {
                TAIL_SPACING
            } else {
                Duration::ZERO
            };
            let gap = if self.paced { gap } else { Duration::ZERO };
            self.ifp(now, Ifp::Indicator(Indicator::NoSignal), gap);
        }
    }

    /// Queues an application event at the current end of the line.
    pub(super) fn event(&mut self, now: Instant, ev: FaxEvent) {
        self.push(now, TxItem::Event(ev), Duration::ZERO);
    }

    /// Moves everything due at `now` to the outputs.
    pub(super) fn release(
        &mut self,
        now: Instant,
        out: &mut VecDeque<Ifp>,
        events: &mut VecDeque<FaxEvent>,
    ) {
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            match self.queue.pop_front() {
                Some((_, TxItem::Ifp(p))) => out.push_back(p),
                Some((_, TxItem::Event(e))) => events.push_back(e),
                None => break,
            }
        }
    }

    /// Release time of the next queued item.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// Drops unsent packets (the peer hung up); queued events are kept and
    /// released at once.
    pub(super) fn abandon(&mut self, now: Instant) {
        let events: Vec<_> = self
            .queue
            .drain(..)
            .filter_map(|(_, item)| match item {
                TxItem::Event(e) => Some((now, TxItem::Event(e))),
                TxItem::Ifp(_) => None,
            })
            .collect();
        self.queue.extend(events);
        self.free_at = now;
    }

    /// The far end started talking while a repeat of ours waits to go out:
    /// if no burst is in progress (the next packet would open a V.21
    /// transmission), drop the pending packets rather than talk over it.
    /// Returns whether anything was dropped.
    pub(super) fn cancel_unstarted(&mut self, now: Instant) -> bool {
        let next = self.queue.iter().find_map(|(_, item)| match item {
            TxItem::Ifp(Ifp::Indicator(Indicator::NoSignal)) | TxItem::Event(_) => None,
            TxItem::Ifp(p) => Some(p),
        });
        if next != Some(&Ifp::Indicator(Indicator::V21Preamble)) {
            return false;
        }
        self.abandon(now);
        true
    }

    /// A tone indicator (CNG, CED) lasting `tone`, preceded by `silence`.
    pub(super) fn send_tone(
        &mut self,
        now: Instant,
        tone: Indicator,
        silence: Duration,
        dur: Duration,
    ) {
        self.ifp(now, Ifp::Indicator(Indicator::NoSignal), Duration::ZERO);
        self.gap(now, silence);
        let dur = if self.paced { dur } else { Duration::ZERO };
        self.ifp(now, Ifp::Indicator(tone), dur);
    }

    /// One V.21 transmission (T.30 §5.3): turnaround silence, preamble,
    /// the frames (`hdlc-data` then `hdlc-fcs-OK`, the last one
    /// `hdlc-fcs-OK-sig-end`), then no-signal.
    pub(super) fn send_v21(&mut self, now: Instant, frames: &[Frame]) {
        self.gap(now, TURNAROUND);
        let preamble = if self.paced {
            self.preamble
        } else {
            Duration::ZERO
        };
        self.ifp(now, Ifp::Indicator(Indicator::V21Preamble), preamble);
        self.hdlc_frames(now, DataType::V21, V21_BPS, frames);
    }

    fn hdlc_frames(&mut self, now: Instant, kind: DataType, bps: u32, frames: &[Frame]) {
        let n = frames.len();
        for (i, f) in frames.iter().enumerate() {
            let octets = f.encode();
            // Body plus worst-case-ish bit stuffing (1 in 62 bits).
            let bits = (octets.len() as u64) * 8;
            let busy = self.time(bits + bits / 62, bps);
            self.data(now, kind, FieldType::HdlcData, octets, busy);
            let end = if i + 1 == n {
                FieldType::HdlcFcsOkSigEnd
            } else {
                FieldType::HdlcFcsOk
            };
            // FCS plus closing flag.
            let busy = self.time(24, bps);
            self.data(now, kind, end, Vec::new(), busy);
        }
        self.tail(now);
    }

    fn training(&mut self, now: Instant, rate: Rate, long: bool) {
        self.gap(now, TURNAROUND);
        let busy = if self.paced {
            Duration::from_millis(rate.training_ms(long))
        } else {
            Duration::ZERO
        };
        self.ifp(now, Ifp::Indicator(rate.training(long)), busy);
    }

    /// TCF ("training check", T.30 §5.3): long training, then 1.5 s
    /// of zeros at `rate`, in `t4-non-ecm-data` chunks.
    pub(super) fn send_tcf(&mut self, now: Instant, rate: Rate) {
        let octets = (rate.bps() as usize) * 3 / 16;
        self.image(now, rate, true, &vec![0u8; octets]);
    }

    /// A non-ECM image (T.4 octets as given), paced at `rate`.
    pub(super) fn image(&mut self, now: Instant, rate: Rate, long: bool, data: &[u8]) {
        self.training(now, rate, long);
        let kind = rate.data_type();
        for chunk in data.chunks(self.chunk) {
            let busy = self.time(chunk.len() as u64 * 8, rate.bps());
            self.data(now, kind, FieldType::T4NonEcmData, chunk.to_vec(), busy);
        }
        self.data(
            now,
            kind,
            FieldType::T4NonEcmSigEnd,
            Vec::new(),
            Duration::ZERO,
        );
        self.tail(now);
    }

    /// HDLC frames at the image rate (ECM phase C, T.30 Annex A).
    pub(super) fn send_fast_hdlc(
        &mut self,
        now: Instant,
        rate: Rate,
        long: bool,
        frames: &[Frame],
    ) {
        self.training(now, rate, long);
        // T.4 Annex A: flags for at least 200 ms before the first frame.
        self.gap(now, Duration::from_millis(200));
        self.hdlc_frames(now, rate.data_type(), rate.bps(), frames);
    }
}

/// What a received packet meant for T.30.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RxEvent {
    /// A new indicator (repeats are dropped, as T.38 asks).
    Indicator(Indicator),
    /// A complete HDLC frame and whether its FCS (and our reassembly) was good.
    Frame {
        /// address, control, FCF, FIF.
        octets: Vec<u8>,
        /// FCS good and nothing lost.
        ok: bool,
    },
    /// Non-ECM octets (TCF or page).
    Image(Vec<u8>),
    /// The non-ECM signal ended (sig-end, no-signal or another signal).
    ImageEnd,
    /// Packets were lost in the middle of a non-ECM signal.
    ImageGap,
}

/// Reassembles HDLC frames and non-ECM signals from IFP fields.
#[derive(Debug, Default)]
pub(super) struct RxAssembler {
    buf: Vec<u8>,
    /// The frame being assembled is damaged (too long, or packets lost).
    overflow: bool,
    /// Packets were lost while no frame was open: the next `hdlc-data`
    /// is only trusted if it starts with a frame header.
    gap: bool,
    last_ind: Option<Indicator>,
    in_image: bool,
}

impl RxAssembler {
    fn end_image(&mut self, out: &mut Vec<RxEvent>) {
        if self.in_image {
            self.in_image = false;
            out.push(RxEvent::ImageEnd);
        }
    }

    fn append(&mut self, data: &[u8]) {
        if self.buf.len() + data.len() > MAX_FRAME_OCTETS {
            self.overflow = true;
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// The transport lost packets here (UDPTL sequence gap it could not
    /// repair): the frame being assembled is damaged, as is the next one
    /// if its start went missing (like spandsp's `rx_data_missing`).
    pub(super) fn on_gap(&mut self, out: &mut Vec<RxEvent>) {
        if self.buf.is_empty() {
            self.gap = true;
        } else {
            self.overflow = true;
        }
        if self.in_image {
            out.push(RxEvent::ImageGap);
        }
    }

    /// Interprets one IFP packet. Tolerates what spandsp tolerates: repeated
    /// indicators and end fields, data inside FCS fields, HDLC with no
    /// preceding indicator, missing sig-end.
    pub(super) fn on_ifp(&mut self, ifp: Ifp, out: &mut Vec<RxEvent>) {
        match ifp {
            Ifp::Indicator(ind) => {
                if self.last_ind == Some(ind) {
                    return;
                }
                self.last_ind = Some(ind);
                self.buf.clear();
                self.overflow = false;
                self.gap = false;
                self.end_image(out);
                out.push(RxEvent::Indicator(ind));
            }
            Ifp::Data { fields, .. } => {
                for f in fields {
                    self.on_field(f, out);
                }
            }
        }
    }

    fn on_field(&mut self, f: Field, out: &mut Vec<RxEvent>) {
        match f.kind {
            FieldType::HdlcData => {
                self.end_image(out);
                self.last_ind = None;
                // A new frame header while a frame is still open: the open
                // frame lost its FCS field. Drop it rather than glue the two.
                let header = matches!(f.data.as_slice(), [0xFF, 0xC0 | 0xC8, ..]);
                if !self.buf.is_empty() && header {
                    self.buf.clear();
                    self.overflow = false;
                }
                if std::mem::take(&mut self.gap) && self.buf.is_empty() && !header {
                    self.overflow = true;
                }
                self.append(&f.data);
            }
            FieldType::HdlcFcsOk
            | FieldType::HdlcFcsBad
            | FieldType::HdlcFcsOkSigEnd
            | FieldType::HdlcFcsBadSigEnd => {
                self.append(&f.data);
                if !self.buf.is_empty() {
                    let good = matches!(f.kind, FieldType::HdlcFcsOk | FieldType::HdlcFcsOkSigEnd);
                    out.push(RxEvent::Frame {
                        octets: std::mem::take(&mut self.buf),
                        ok: good && !self.overflow,
                    });
                }
                self.overflow = false;
                if matches!(
                    f.kind,
                    FieldType::HdlcFcsOkSigEnd | FieldType::HdlcFcsBadSigEnd
                ) {
                    self.last_ind = Some(Indicator::NoSignal);
                }
            }
            FieldType::HdlcSigEnd => {
                self.buf.clear();
                self.overflow = false;
                self.last_ind = Some(Indicator::NoSignal);
            }
            FieldType::T4NonEcmData => {
                self.in_image = true;
                self.last_ind = None;
                if !f.data.is_empty() {
                    out.push(RxEvent::Image(f.data));
                }
            }
            FieldType::T4NonEcmSigEnd => {
                if !f.data.is_empty() {
                    self.in_image = true;
                    out.push(RxEvent::Image(f.data));
                }
                self.end_image(out);
                self.last_ind = Some(Indicator::NoSignal);
            }
            FieldType::CmMessage
            | FieldType::JmMessage
            | FieldType::CiMessage
            | FieldType::V34Rate => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t30::frames::Fcf;

    fn field(kind: FieldType, data: &[u8]) -> Ifp {
        Ifp::Data {
            kind: DataType::V21,
            fields: vec![Field {
                kind,
                data: data.to_vec(),
            }],
        }
    }

    #[test]
    fn v21_transmission_shape_and_pacing() {
        let t0 = Instant::now();
        let mut line = TxLine::new(t0, true, 256, Duration::from_secs(1));
        line.send_v21(t0, &[Frame::new(Fcf::Mcf, vec![])]);
        let (mut out, mut ev) = (VecDeque::new(), VecDeque::new());
        line.release(t0, &mut out, &mut ev);
        assert!(out.is_empty(), "75 ms turnaround first");
        line.release(t0 + Duration::from_millis(75), &mut out, &mut ev);
        assert_eq!(
            out.pop_front(),
            Some(Ifp::Indicator(Indicator::V21Preamble))
        );
        assert!(out.is_empty());
        line.release(t0 + Duration::from_millis(1075), &mut out, &mut ev);
        assert_eq!(
            out.pop_front(),
            Some(field(FieldType::HdlcData, &[0xFF, 0xC8, 0x31]))
        );
        // 3 octets at 300 bit/s = 80 ms.
        line.release(t0 + Duration::from_millis(1154), &mut out, &mut ev);
        assert!(out.is_empty());
        line.release(t0 + Duration::from_millis(1156), &mut out, &mut ev);
        assert_eq!(
            out.pop_front(),
            Some(field(FieldType::HdlcFcsOkSigEnd, &[]))
        );
        line.release(t0 + Duration::from_secs(2), &mut out, &mut ev);
        for _ in 0..3 {
            assert_eq!(out.pop_front(), Some(Ifp::Indicator(Indicator::NoSignal)));
        }
        assert!(line.is_empty());
    }

    #[test]
    fn only_unstarted_v21_bursts_are_cancelled() {
        let t0 = Instant::now();
        let mut line = TxLine::new(t0, true, 256, Duration::from_secs(1));
        line.send_v21(t0, &[Frame::new(Fcf::Mcf, vec![])]);
        assert!(line.cancel_unstarted(t0));
        assert!(line.is_empty());
        assert_eq!(line.idle_at(t0), t0);
        let (mut out, mut ev) = (VecDeque::new(), VecDeque::new());
        line.send_v21(t0, &[Frame::new(Fcf::Mcf, vec![])]);
        line.release(t0 + Duration::from_millis(100), &mut out, &mut ev);
        assert!(!line.cancel_unstarted(t0), "burst in progress");
        line.send_tcf(t0, Rate::V27_2400);
        line.release(t0 + Duration::from_secs(2), &mut out, &mut ev);
        assert!(!line.cancel_unstarted(t0), "not a V.21 burst");
    }

    #[test]
    fn tcf_is_one_and_a_half_seconds_of_zeros() {
        let t0 = Instant::now();
        let mut line = TxLine::new(t0, true, 512, Duration::from_secs(1));
        line.send_tcf(t0, Rate::V29_9600);
        let end = line.idle_at(t0);
        let ms = end.duration_since(t0).as_millis();
        assert!((1865..1875).contains(&ms), "{ms}");
        let (mut out, mut ev) = (VecDeque::new(), VecDeque::new());
        line.release(end, &mut out, &mut ev);
        let zeros: usize = out
            .iter()
            .filter_map(|p| match p {
                Ifp::Data { kind, fields } => {
                    assert_eq!(*kind, DataType::V29_9600);
                    Some(fields.iter().map(|f| f.data.len()).sum::<usize>())
                }
                _ => None,
            })
            .sum();
        assert_eq!(zeros, 1800);
        assert_eq!(
            out.front(),
            Some(&Ifp::Indicator(Indicator::V29_9600Training))
        );
    }

    #[test]
    fn assembler_joins_chunks_and_filters_repeats() {
        let mut rx = RxAssembler::default();
        let mut ev = Vec::new();
        rx.on_ifp(Ifp::Indicator(Indicator::V21Preamble), &mut ev);
        rx.on_ifp(Ifp::Indicator(Indicator::V21Preamble), &mut ev);
        for o in [0xFF, 0xC8, 0x31] {
            rx.on_ifp(field(FieldType::HdlcData, &[o]), &mut ev);
        }
        rx.on_ifp(field(FieldType::HdlcFcsOkSigEnd, &[]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcFcsOkSigEnd, &[]), &mut ev);
        rx.on_ifp(Ifp::Indicator(Indicator::NoSignal), &mut ev);
        assert_eq!(
            ev,
            vec![
                RxEvent::Indicator(Indicator::V21Preamble),
                RxEvent::Frame {
                    octets: vec![0xFF, 0xC8, 0x31],
                    ok: true
                },
            ]
        );
    }

    #[test]
    fn assembler_image_and_overflow() {
        let mut rx = RxAssembler::default();
        let mut ev = Vec::new();
        rx.on_ifp(field(FieldType::T4NonEcmData, &[1, 2]), &mut ev);
        rx.on_ifp(field(FieldType::T4NonEcmSigEnd, &[3]), &mut ev);
        rx.on_ifp(field(FieldType::T4NonEcmSigEnd, &[]), &mut ev);
        assert_eq!(
            ev,
            vec![
                RxEvent::Image(vec![1, 2]),
                RxEvent::Image(vec![3]),
                RxEvent::ImageEnd
            ]
        );
        ev.clear();
        rx.on_ifp(field(FieldType::HdlcData, &[0xFF; 200]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcData, &[0xFF; 200]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcFcsOk, &[]), &mut ev);
        assert_eq!(
            ev,
            vec![RxEvent::Frame {
                octets: vec![0xFF; 200],
                ok: false
            }]
        );
    }

    #[test]
    fn assembler_drops_frames_hit_by_loss() {
        let mut rx = RxAssembler::default();
        let mut ev = Vec::new();
        // FCS of the first frame lost: the next header starts a new frame.
        rx.on_ifp(
            field(FieldType::HdlcData, &[0xFF, 0xC0, 0x60, 0x00, 1, 2]),
            &mut ev,
        );
        rx.on_ifp(field(FieldType::HdlcData, &[0xFF, 0xC0, 0x61]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcFcsOk, &[]), &mut ev);
        assert_eq!(
            ev,
            vec![RxEvent::Frame {
                octets: vec![0xFF, 0xC0, 0x61],
                ok: true
            }]
        );
        ev.clear();
        // A reported gap spoils the frame in progress...
        rx.on_ifp(field(FieldType::HdlcData, &[0xFF, 0xC0]), &mut ev);
        rx.on_gap(&mut ev);
        rx.on_ifp(field(FieldType::HdlcData, &[0x60, 0x80, 9]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcFcsOk, &[]), &mut ev);
        // ...and a frame that starts mid-way after one, but not a clean start.
        rx.on_gap(&mut ev);
        rx.on_ifp(field(FieldType::HdlcData, &[0x60, 0x80, 9]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcFcsOk, &[]), &mut ev);
        rx.on_gap(&mut ev);
        rx.on_ifp(field(FieldType::HdlcData, &[0xFF, 0xC8, 0x31]), &mut ev);
        rx.on_ifp(field(FieldType::HdlcFcsOk, &[]), &mut ev);
        rx.on_ifp(field(FieldType::T4NonEcmData, &[1]), &mut ev);
        rx.on_gap(&mut ev);
        assert_eq!(
            ev,
            vec![
                RxEvent::Frame {
                    octets: vec![0xFF, 0xC0, 0x60, 0x80, 9],
                    ok: false
                },
                RxEvent::Frame {
                    octets: vec![0x60, 0x80, 9],
                    ok: false
                },
                RxEvent::Frame {
                    octets: vec![0xFF, 0xC8, 0x31],
                    ok: true
                },
                RxEvent::Image(vec![1]),
                RxEvent::ImageGap
            ]
        );
    }
}
