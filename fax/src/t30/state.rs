//! The T.30 procedure core (T.30 §5, flow charts of Figure 5-2): shared
//! state, the timers of T.30 §5.4.3 and dispatch of received frames. The
//! transmitter and receiver procedures are `impl Core` blocks in `send.rs`
//! and `recv.rs`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::t38::types::{Ifp, Indicator};

use super::frames::{decode_ident, encode_ident, Dis, Fcf, Frame, Modems, ScanTime};
use super::link::{RxAssembler, RxEvent, TxLine};
use super::recv::Receiver;
use super::send::Sender;
use super::{Coding, FaxError, FaxEvent, FaxOutcome, Phase, Role, TerminalConfig, MAX_PAGES};

/// T1: time to identify the far end (T.30 §5.4.3, 35 ± 5 s).
pub(super) const T1: Duration = Duration::from_secs(35);
/// T2: command wait (6 ± 1 s).
pub(super) const T2: Duration = Duration::from_secs(6);
/// T4: response wait (3 s ± 15 %).
pub(super) const T4: Duration = Duration::from_secs(3);
/// T5: ECM receiver-not-ready limit (60 ± 5 s).
pub(super) const T5: Duration = Duration::from_secs(60);
/// A command is sent at most this many times in a row (1 + 3 repeats).
pub(super) const MAX_SENDS: u32 = 4;
/// CNG cadence: 0.5 s on, 3 s off (T.30 §4).
const CNG_PERIOD: Duration = Duration::from_millis(3_500);
const CNG_ON: Duration = Duration::from_millis(500);
/// CED: 2.6–4 s of 2100 Hz after 0.2 s of silence (T.30 §4).
const CED_ON: Duration = Duration::from_millis(3_000);
const CED_SILENCE: Duration = Duration::from_millis(200);
/// No packets for this long ends a TCF whose sig-end was lost.
pub(super) const TCF_IDLE: Duration = Duration::from_millis(1_500);
/// No packets for this long ends a non-ECM page whose sig-end was lost.
pub(super) const IMAGE_IDLE: Duration = Duration::from_secs(5);

/// Where the procedure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
    /// Waiting for DIS: the calling side, or the transmitter after EOM. T1.
    WaitDis,
    /// Sent (CSI) DIS as the called side, or (CIG) DTC as a polling caller;
    /// waiting for the far end's command. T4 repeats (T1 bounds DIS).
    SentDis,
    /// Receiver: DCS received, TCF expected.
    RxTcf,
    /// Receiver: waiting for DCS (after FTT, RTN or a lost TCF). T2.
    RxWaitCmd,
    /// Receiver: message phase (non-ECM page or ECM blocks) and its
    /// post-message command. T2, extended while signals arrive.
    RxImage,
    /// Receiver: EOP confirmed, waiting for DCN. T2.
    RxPostEop,
    /// Transmitter: DCS and TCF sent, waiting for CFR/FTT. T4.
    TxWaitCfr,
    /// Transmitter: MPS/EOM/EOP sent after a non-ECM page. T4.
    TxWaitPostPage,
    /// Transmitter: an ECM command sent. T4 (and T5 after RNR).
    TxWaitEcm(EcmCmd),
    /// Finished; only draining the line.
    Done,
}

/// The ECM command awaiting a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EcmCmd {
    /// PPS-Q.
    Pps,
    /// CTC.
    Ctc,
    /// EOR-Q.
    Eor,
    /// RR (after RNR).
    Rr,
}

#[derive(Debug)]
pub(super) struct Core {
    pub(super) now: Instant,
    pub(super) cfg: TerminalConfig,
    pub(super) line: TxLine,
    rx: RxAssembler,
    out: VecDeque<Ifp>,
    events: VecDeque<FaxEvent>,
    pub(super) st: St,
    phase: Option<Phase>,
    /// We received DIS (not DTC): the X bit of everything we send.
    pub(super) dis_received: bool,
    pub(super) t1: Option<Instant>,
    /// T2 or T4, depending on the state.
    pub(super) t_resp: Option<Instant>,
    t_resp_len: Duration,
    pub(super) t5: Option<Instant>,
    cng_at: Option<Instant>,
    /// High-speed receive inactivity (lost sig-end).
    pub(super) hs_idle: Option<Instant>,
    /// Times the current command has been sent.
    pub(super) tries: u32,
    pub(super) last_cmd: Vec<Frame>,
    pub(super) last_resp: Vec<Frame>,
    pub(super) remote_ident: Option<String>,
    pub(super) pages_done: u32,
    pub(super) bit_rate: u32,
    pub(super) ecm_used: bool,
    pub(super) send: Option<Sender>,
    pub(super) recv: Receiver,
}

impl Core {
    pub(super) fn new(now: Instant, mut cfg: TerminalConfig) -> Core {
        let role = std::mem::replace(&mut cfg.role, Role::Receive);
        let o = &cfg.options;
        let line = TxLine::new(now, o.paced, o.chunk_octets, o.v21_preamble);
        let mut core = Core {
            now,
            line,
            rx: RxAssembler::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            st: St::WaitDis,
            phase: None,
            dis_received: false,
            t1: None,
            t_resp: None,
            t_resp_len: T4,
            t5: None,
            cng_at: None,
            hs_idle: None,
            tries: 0,
            last_cmd: Vec::new(),
            last_resp: Vec::new(),
            remote_ident: None,
            pages_done: 0,
            bit_rate: 0,
            ecm_used: false,
            send: None,
            recv: Receiver::default(),
            cfg,
        };
        if let Role::Send { pages } = role {
            if let Err(reason) = core.validate(&pages) {
                core.finish(Some(FaxError::InvalidDocument { reason }), false);
                core.flush();
                return core;
            }
            core.send = Some(Sender::new(pages));
        }
        core.set_phase(Phase::A);
        core.t1 = Some(now + T1);
        if core.cfg.calling {
            core.line
                .send_tone(now, Indicator::Cng, CED_SILENCE, CNG_ON);
            core.cng_at = Some(now + CNG_PERIOD);
            core.st = St::WaitDis;
        } else {
            core.line
                .send_tone(now, Indicator::Ced, CED_SILENCE, CED_ON);
            core.send_dis();
        }
        core.flush();
        core
    }

    fn validate(&self, pages: &[super::PageOut]) -> Result<(), &'static str> {
        if pages.is_empty() {
            return Err("no pages");
        }
        if pages.len() > MAX_PAGES {
            return Err("more than 200 pages");
        }
        for p in pages {
            if p.data.is_empty() {
                return Err("empty page");
            }
            if p.data.len() > self.cfg.options.max_page_octets {
                return Err("page larger than max_page_octets");
            }
            if !matches!(p.width_px, 1728 | 2048 | 2432) {
                return Err("width must be 1728, 2048 or 2432 pels");
            }
            if p.coding == Coding::Mmr && !self.cfg.ecm {
                return Err("MMR pages need ECM");
            }
        }
        Ok(())
    }

    // ---- driver interface -------------------------------------------------

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        self.flush();
    }

    fn flush(&mut self) {
        self.line.release(self.now, &mut self.out, &mut self.events);
    }

    pub(super) fn handle_ifp(&mut self, now: Instant, ifp: Ifp) {
        self.advance(now);
        if self.st == St::Done {
            return;
        }
        let mut evs = Vec::new();
        self.rx.on_ifp(ifp, &mut evs);
        for ev in evs {
            if self.st == St::Done {
                break;
            }
            self.on_rx(ev);
        }
        self.flush();
    }

    pub(super) fn handle_missing(&mut self, now: Instant) {
        self.advance(now);
        if self.st == St::Done {
            return;
        }
        let mut evs = Vec::new();
        self.rx.on_gap(&mut evs);
        for ev in evs {
            self.on_rx(ev);
        }
        self.flush();
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        // Each step can arm new timers; a handful of rounds is plenty.
        for _ in 0..8 {
            if !self.fire_one() {
                break;
            }
            self.flush();
        }
        self.flush();
    }

    pub(super) fn poll_transmit(&mut self) -> Option<Ifp> {
        self.out.pop_front()
    }

    pub(super) fn poll_event(&mut self) -> Option<FaxEvent> {
        self.events.pop_front()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let line = self.line.next_due();
        if self.st == St::Done {
            return line;
        }
        [
            line,
            self.cng_at,
            self.hs_idle,
            self.t5,
            self.t_resp,
            self.t1,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn abort(&mut self, now: Instant) {
        self.advance(now);
        if self.st != St::Done {
            self.line.abandon(self.now);
            self.finish(Some(FaxError::Aborted), true);
        }
        self.flush();
    }

    pub(super) fn is_done(&self) -> bool {
        self.st == St::Done
    }

    // ---- timers -----------------------------------------------------------

    fn fire_one(&mut self) -> bool {
        let now = self.now;
        if self.st == St::Done {
            return false;
        }
        if self.cng_at.is_some_and(|t| t <= now) {
            self.cng_at = None;
            if self.st == St::WaitDis && self.phase == Some(Phase::A) {
                self.line
                    .send_tone(now, Indicator::Cng, Duration::ZERO, CNG_ON);
                self.cng_at = Some(now + CNG_PERIOD);
            }
            return true;
        }
        if self.hs_idle.is_some_and(|t| t <= now) {
            self.hs_idle = None;
            self.on_image_end();
            return true;
        }
        if self.t5.is_some_and(|t| t <= now) {
            self.t5 = None;
            self.finish(Some(FaxError::ReceiverNotReady), true);
            return true;
        }
        if self.t_resp.is_some_and(|t| t <= now) {
            self.t_resp = None;
            self.on_t2_t4();
            return true;
        }
        if self.t1.is_some_and(|t| t <= now) {
            self.t1 = None;
            let dcn = self.st == St::SentDis;
            self.finish(Some(FaxError::NoAnswer { waited: T1 }), dcn);
            return true;
        }
        false
    }

    /// T2/T4 expiry, by state.
    fn on_t2_t4(&mut self) {
        match self.st {
            St::SentDis => {
                // DIS repeats until T1; a polling DTC has MAX_SENDS.
                if self.cfg.calling && self.tries >= MAX_SENDS {
                    self.no_response();
                } else {
                    self.tries += 1;
                    let frames = self.last_cmd.clone();
                    self.line.send_v21(self.now, &frames);
                    self.arm(T4);
                }
            }
            St::RxTcf => {
                self.st = St::RxWaitCmd;
                self.arm(T2);
            }
            St::RxWaitCmd | St::RxImage => {
                let phase = self.phase.unwrap_or(Phase::B);
                self.finish(Some(FaxError::CommandTimeout { phase }), true);
            }
            // EOP was confirmed; the far end just never sent DCN.
            St::RxPostEop => self.finish(None, false),
            St::TxWaitCfr | St::TxWaitPostPage | St::TxWaitEcm(_) => self.repeat_command(),
            St::WaitDis | St::Done => {}
        }
    }

    /// Gives up on the current command.
    pub(super) fn no_response(&mut self) {
        let command = self.last_cmd.last().map_or(Fcf::Dcs, |f| f.fcf);
        let tries = self.tries;
        self.finish(Some(FaxError::NoResponse { command, tries }), true);
    }

    /// Arms T2/T4 to run from the end of what we are sending.
    pub(super) fn arm(&mut self, len: Duration) {
        self.t_resp = Some(self.line.idle_at(self.now) + len);
        self.t_resp_len = len;
    }

    /// Far-end activity: T2/T4 restart (T.30 §5.4.3: reset on flags).
    fn activity(&mut self) {
        if let Some(t) = self.t_resp {
            self.t_resp = Some(t.max(self.now + self.t_resp_len));
        }
    }

    // ---- output helpers ---------------------------------------------------

    pub(super) fn emit(&mut self, ev: FaxEvent) {
        self.line.event(self.now, ev);
    }

    pub(super) fn set_phase(&mut self, p: Phase) {
        if self.phase != Some(p) {
            self.phase = Some(p);
            self.emit(FaxEvent::Phase(p));
        }
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase.unwrap_or(Phase::A)
    }

    /// A final frame with our X bit.
    pub(super) fn frame(&self, fcf: Fcf, fif: Vec<u8>) -> Frame {
        Frame {
            fcf,
            x: self.dis_received,
            last: true,
            fif,
        }
    }

    /// An identity frame (CSI/TSI/CIG), or nothing if we have no identity.
    pub(super) fn ident_frame(&self, fcf: Fcf) -> Option<Frame> {
        if self.cfg.ident.trim().is_empty() {
            return None;
        }
        let mut f = self.frame(fcf, encode_ident(&self.cfg.ident));
        f.last = false;
        Some(f)
    }

    /// Sends a command and waits T4 for the response.
    pub(super) fn send_command(&mut self, frames: Vec<Frame>, st: St) {
        self.line.send_v21(self.now, &frames);
        self.last_cmd = frames;
        self.st = st;
        self.tries = 1;
        self.arm(T4);
    }

    /// Sends a response and waits T2 for the next command.
    pub(super) fn send_response(&mut self, frames: Vec<Frame>, st: St) {
        self.line.send_v21(self.now, &frames);
        self.last_resp = frames;
        self.st = st;
        self.arm(T2);
    }

    /// Sends the last response again (the far end repeated its command).
    pub(super) fn repeat_response(&mut self) {
        let frames = self.last_resp.clone();
        if !frames.is_empty() {
            self.line.send_v21(self.now, &frames);
        }
        self.arm(T2);
    }

    /// Our DIS (or DTC) capabilities.
    pub(super) fn local_dis(&self) -> Dis {
        let o = &self.cfg.options;
        let sending = self.send.is_some();
        Dis {
            t38: false,
            ready_to_transmit: sending,
            can_receive: !sending,
            modems: Modems::up_to(self.cfg.max_rate),
            fine: true,
            mr: o.rx_mr,
            max_width_px: 1728,
            b4_length: false,
            unlimited_length: true,
            scan: ScanTime {
                standard_ms: 0,
                fine_ms: 0,
            },
            ecm: self.cfg.ecm,
            mmr: o.rx_mmr && self.cfg.ecm,
        }
    }

    /// Phase B as the called side: (CSI) DIS, repeated every T4 until T1.
    pub(super) fn send_dis(&mut self) {
        self.set_phase(Phase::B);
        let mut frames: Vec<Frame> = self.ident_frame(Fcf::Csi).into_iter().collect();
        frames.push(self.frame(Fcf::Dis, self.local_dis().encode()));
        self.send_command(frames, St::SentDis);
    }

    /// Ends the call: optional DCN, phase E, then the outcome once the line
    /// has sent everything.
    pub(super) fn finish(&mut self, error: Option<FaxError>, dcn: bool) {
        if self.st == St::Done {
            return;
        }
        // A page taken with ECM frames missing (EOR) is not a clean transfer.
        let error = error.or(self
            .recv
            .incomplete
            .map(|page| FaxError::EcmRetriesExhausted { page }));
        if dcn {
            let f = self.frame(Fcf::Dcn, Vec::new());
            self.line.send_v21(self.now, &[f]);
        }
        self.set_phase(Phase::E);
        let outcome = FaxOutcome {
            ok: error.is_none(),
            error,
            pages: self.pages_done,
            bit_rate: self.bit_rate,
            ecm: self.ecm_used,
            remote_ident: self.remote_ident.clone(),
        };
        self.emit(FaxEvent::Completed(outcome));
        self.st = St::Done;
        self.t1 = None;
        self.t_resp = None;
        self.t5 = None;
        self.cng_at = None;
        self.hs_idle = None;
    }

    // ---- receive dispatch -------------------------------------------------

    fn on_rx(&mut self, ev: RxEvent) {
        match ev {
            RxEvent::Indicator(ind) => {
                if !matches!(ind, Indicator::NoSignal | Indicator::Cng) {
                    self.cng_at = None;
                }
                if ind != Indicator::NoSignal {
                    self.activity();
                }
                if ind == Indicator::V21Preamble {
                    self.far_end_talks();
                }
                if is_training(ind) {
                    self.on_training();
                }
            }
            RxEvent::Frame { octets, ok } => {
                self.cng_at = None;
                self.activity();
                self.far_end_talks();
                if !ok {
                    return;
                }
                if let Some(f) = decode_frame(&octets) {
                    self.on_frame(f);
                }
            }
            RxEvent::Image(data) => {
                self.activity();
                self.on_image(&data);
            }
            RxEvent::ImageEnd => {
                self.hs_idle = None;
                self.on_image_end();
            }
            RxEvent::ImageGap => self.on_image_gap(),
        }
    }

    /// V.21 from the far end while we wait for its response: a repeat of
    /// our command that has not started yet would only collide with it.
    fn far_end_talks(&mut self) {
        if matches!(
            self.st,
            St::SentDis | St::TxWaitCfr | St::TxWaitPostPage | St::TxWaitEcm(_)
        ) && self.line.cancel_unstarted(self.now)
        {
            self.arm(T4);
        }
    }

    fn on_frame(&mut self, f: Frame) {
        match f.fcf {
            Fcf::Csi | Fcf::Tsi | Fcf::Cig => {
                let id = decode_ident(&f.fif);
                if !id.is_empty() {
                    self.remote_ident = Some(id);
                }
            }
            Fcf::Fcd | Fcf::Rcp => self.on_ecm_frame(&f),
            _ if !f.last => {}
            Fcf::Dcn => self.on_dcn(),
            Fcf::Crp => self.on_crp(),
            _ => {
                if self.send.is_some() {
                    self.tx_final(f);
                } else {
                    self.rx_final(f);
                }
            }
        }
    }

    fn on_dcn(&mut self) {
        self.line.abandon(self.now);
        if self.st == St::RxPostEop {
            self.finish(None, false);
        } else if let Some((page, tries)) = self.rejected_page() {
            // spandsp 0.0.6 hangs up when we retrain after RTN to EOP.
            self.finish(Some(FaxError::PageRejected { page, tries }), false);
        } else {
            let phase = self.phase();
            self.finish(Some(FaxError::RemoteDisconnected { phase }), false);
        }
    }

    /// CRP: the far end did not understand our last command or response.
    fn on_crp(&mut self) {
        match self.st {
            St::TxWaitCfr | St::TxWaitPostPage | St::TxWaitEcm(_) => self.repeat_command(),
            St::SentDis => {
                let frames = self.last_cmd.clone();
                self.line.send_v21(self.now, &frames);
                self.arm(T4);
            }
            St::RxWaitCmd | St::RxImage | St::RxPostEop => self.repeat_response(),
            St::WaitDis | St::RxTcf | St::Done => {}
        }
    }
}

/// Decodes a received frame. T.38 carries no FCS, so a frame whose sender
/// abandoned it mid-way (spandsp flushes its HDLC queue on a state change)
/// arrives glued to the next one: `FF C8 C1 FF C8 DF` is an aborted DCS
/// then DCN. If the whole does not make sense, the last frame header inside
/// it starts the frame we keep.
fn decode_frame(octets: &[u8]) -> Option<Frame> {
    let sane = |f: &Frame| match f.fcf {
        Fcf::Unknown(_) => false,
        Fcf::Dis | Fcf::Dtc => Dis::decode(&f.fif).is_ok(),
        Fcf::Dcs => super::frames::Dcs::decode(&f.fif).is_ok(),
        _ => true,
    };
    let whole = Frame::decode(octets).ok();
    if whole.as_ref().is_some_and(sane) {
        return whole;
    }
    octets
        .windows(2)
        .enumerate()
        .skip(1)
        .rev()
        .find(|(_, w)| matches!(w, [0xFF, 0xC0 | 0xC8]))
        .map(|(i, _)| i)
        .and_then(|start| octets.get(start..))
        .and_then(|rest| Frame::decode(rest).ok())
        .filter(sane)
        .or(whole)
}

fn is_training(ind: Indicator) -> bool {
    !matches!(
        ind,
        Indicator::NoSignal
            | Indicator::Cng
            | Indicator::Ced
            | Indicator::V21Preamble
            | Indicator::V8Ansam
            | Indicator::V8Signal
            | Indicator::V34CntlChannel1200
            | Indicator::V34CcRetrain
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glued_frames_resynchronise() {
        // Aborted DCS, then DCN (seen from spandsp 0.0.6 on a collision).
        let f = decode_frame(&[0xFF, 0xC8, 0xC1, 0xFF, 0xC8, 0xDF]).expect("frame");
        assert_eq!(f.fcf, Fcf::Dcn);
        let f = decode_frame(&[0xFF, 0xC8, 0xFF, 0xC8, 0xDF]).expect("frame");
        assert_eq!(f.fcf, Fcf::Dcn);
        // A sane frame is taken whole even if its FIF holds a header pattern.
        let ppr = [0xFF, 0xC8, 0x3D, 0xFF, 0xC8, 0x31];
        assert_eq!(decode_frame(&ppr).expect("frame").fcf, Fcf::Ppr);
        assert!(decode_frame(&[0x12, 0x34]).is_none());
        assert_eq!(
            decode_frame(&[0xFF, 0xC8, 0x99]).expect("frame").fcf,
            Fcf::Unknown(0x99)
        );
    }
}
