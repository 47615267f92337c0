//! The receiving terminal's procedure (T.30 §5.2 flow charts, receiver
//! side; ECM per T.30 Annex A.4): answer DCS after judging TCF (CFR/FTT),
//! collect the message, answer post-message commands (MCF/RTN) and PPS
//! (MCF/PPR), CTC (CTR), EOR (ERR). Repeated commands whose response was
//! lost get the same response again without counting a page twice.

use super::ecm::EcmRx;
use super::frames::{decode_eor, encode_ppr, Dcs, Dis, Fcf, Frame, FrameError, Pps, Rate};
use super::state::{Core, St, IMAGE_IDLE, T1, T2, TCF_IDLE};
use super::{FaxError, FaxEvent, Incompatibility, Phase, Refusal, MAX_PAGES};

/// Longest run of zero octets in the TCF (T.30 asks for a
/// period of zeros; we accept 0.5 s of the 1.5 s sent, to survive packet
/// loss on the T.38 path).
#[derive(Debug, Default, Clone)]
struct Tcf {
    run: usize,
    best: usize,
    total: usize,
}

impl Tcf {
    fn feed(&mut self, data: &[u8]) {
        for &o in data {
            self.total += 1;
            if o == 0 {
                self.run += 1;
                self.best = self.best.max(self.run);
            } else {
                self.run = 0;
            }
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Receiver {
    /// The DCS in force.
    dcs: Option<Dcs>,
    tcf: Tcf,
    /// Non-ECM page being received.
    image: Vec<u8>,
    /// Transport gaps reported during this non-ECM page.
    gaps: u32,
    /// An image signal (training or data) arrived since our last response.
    activity: bool,
    ended_notified: bool,
    quality_bad: bool,
    ecm: EcmRx,
    ecm_page: Vec<u8>,
    ecm_missing: u32,
    /// DCS frames with a rate we do not implement, in a row.
    bad_dcs: u32,
    /// (page, block) of the last PPS answered MCF.
    last_confirmed: Option<(u8, u8)>,
    /// Post-message command (or PPS/EOR) answered last.
    last_answered: Option<Fcf>,
    pages: u32,
    /// First page accepted with ECM frames missing (EOR/ERR).
    pub(super) incomplete: Option<u32>,
}

impl Core {
    pub(super) fn set_page_quality(&mut self, bad: bool) {
        self.recv.quality_bad = bad;
    }

    pub(super) fn rx_page_data(&self) -> Option<&[u8]> {
        let non_ecm = self.recv.dcs.as_ref().is_some_and(|d| !d.ecm);
        (self.send.is_none() && non_ecm && !self.recv.image.is_empty())
            .then_some(&self.recv.image[..])
    }

    fn rx_ecm(&self) -> bool {
        self.recv.dcs.as_ref().is_some_and(|d| d.ecm)
    }

    /// A final frame while we are (or will be) the receiver.
    pub(super) fn rx_final(&mut self, f: Frame) {
        match f.fcf {
            Fcf::Dis if self.st == St::WaitDis => self.rx_on_dis(&f),
            Fcf::Dcs => self.rx_on_dcs(&f),
            q if q.is_post_message() => self.rx_on_post_message(q.without_pri()),
            Fcf::Pps => self.rx_on_pps(&f),
            Fcf::Eor => self.rx_on_eor(&f),
            Fcf::Ctc if self.st == St::RxImage && self.rx_ecm() => {
                if let (Ok(rate), Some(d)) = (Rate::decode_bits(&f.fif), self.recv.dcs.as_mut()) {
                    d.rate = rate;
                    self.bit_rate = rate.bps();
                }
                let ctr = self.frame(Fcf::Ctr, Vec::new());
                self.send_response(vec![ctr], St::RxImage);
            }
            // We never send RNR, so RR just wants our last answer again.
            Fcf::Rr if matches!(self.st, St::RxImage | St::RxPostEop) => self.repeat_response(),
            _ => {}
        }
    }

    /// Calling side that wants to receive: poll with (CIG) DTC if the far
    /// end has a document (DIS bit 9).
    fn rx_on_dis(&mut self, f: &Frame) {
        let Ok(dis) = Dis::decode(&f.fif) else {
            return;
        };
        self.dis_received = true;
        self.t1 = None;
        self.set_phase(Phase::B);
        if !dis.ready_to_transmit {
            let reason = Refusal::NothingToSend;
            self.finish(Some(FaxError::RemoteRefused { reason }), true);
            return;
        }
        let mut frames: Vec<Frame> = self.ident_frame(Fcf::Cig).into_iter().collect();
        frames.push(self.frame(Fcf::Dtc, self.local_dis().encode()));
        self.send_command(frames, St::SentDis);
    }

    fn rx_on_dcs(&mut self, f: &Frame) {
        // After EOP/MCF too: a sender that missed our MCF and retrains is
        // better served than ignored (the page may then arrive twice).
        if !matches!(
            self.st,
            St::SentDis | St::RxTcf | St::RxWaitCmd | St::RxImage | St::RxPostEop
        ) {
            return;
        }
        let dcs = match Dcs::decode(&f.fif) {
            Ok(d) => d,
            // Once may be a damaged frame (T.38 has no FCS); twice is meant.
            Err(FrameError::UnsupportedRate { code }) => {
                self.recv.bad_dcs += 1;
                if self.recv.bad_dcs >= 2 {
                    let what = Incompatibility::Modem(code);
                    self.finish(Some(FaxError::Incompatible { what }), true);
                }
                return;
            }
            Err(_) => return,
        };
        self.t1 = None;
        self.set_phase(Phase::B);
        self.recv.bad_dcs = 0;
        self.recv.dcs = Some(dcs);
        self.recv.tcf = Tcf::default();
        // A restart: whatever partial page we had is void.
        self.recv.image.clear();
        self.recv.ecm = EcmRx::default();
        self.recv.ecm_page.clear();
        self.recv.ecm_missing = 0;
        self.recv.last_answered = None;
        self.hs_idle = None;
        self.st = St::RxTcf;
        self.arm(T2);
    }

    pub(super) fn on_training(&mut self) {
        if self.send.is_none() && self.st == St::RxImage {
            self.recv.activity = true;
        }
    }

    pub(super) fn on_image(&mut self, data: &[u8]) {
        if self.send.is_some() {
            return;
        }
        match self.st {
            St::RxTcf => {
                self.recv.tcf.feed(data);
                self.hs_idle = Some(self.now + TCF_IDLE);
            }
            St::RxImage if !self.rx_ecm() => {
                self.recv.activity = true;
                let max = self.cfg.options.max_page_octets;
                if self.recv.image.len() + data.len() > max {
                    let page = self.recv.pages + 1;
                    self.finish(Some(FaxError::PageTooLarge { page, max }), true);
                    return;
                }
                self.recv.image.extend_from_slice(data);
                self.hs_idle = Some(self.now + IMAGE_IDLE);
            }
            _ => {}
        }
    }

    pub(super) fn on_image_gap(&mut self) {
        if self.send.is_none() && self.st == St::RxImage {
            self.recv.gaps += 1;
        }
    }

    pub(super) fn on_image_end(&mut self) {
        if self.send.is_some() {
            return;
        }
        match self.st {
            St::RxTcf if self.recv.tcf.total > 0 => self.judge_tcf(),
            St::RxImage
                if !self.rx_ecm() && !self.recv.image.is_empty() && !self.recv.ended_notified =>
            {
                self.recv.ended_notified = true;
                let ev = FaxEvent::ImageEnded {
                    n: self.recv.pages + 1,
                    octets: self.recv.image.len(),
                };
                self.emit(ev);
            }
            _ => {}
        }
    }

    fn judge_tcf(&mut self) {
        let Some(dcs) = self.recv.dcs.clone() else {
            return;
        };
        self.hs_idle = None;
        let need = (dcs.rate.bps() / 16) as usize;
        if self.recv.tcf.best < need {
            let ftt = self.frame(Fcf::Ftt, Vec::new());
            self.send_response(vec![ftt], St::RxWaitCmd);
            return;
        }
        self.bit_rate = dcs.rate.bps();
        self.ecm_used = dcs.ecm;
        self.emit(FaxEvent::Negotiated {
            rate: dcs.rate.bps(),
            ecm: dcs.ecm,
            fine: dcs.fine,
            coding: dcs.coding,
            remote_ident: self.remote_ident.clone(),
        });
        let cfr = self.frame(Fcf::Cfr, Vec::new());
        self.send_response(vec![cfr], St::RxImage);
        self.set_phase(Phase::C);
        self.new_page_state();
    }

    fn new_page_state(&mut self) {
        let r = &mut self.recv;
        r.image.clear();
        r.gaps = 0;
        r.activity = false;
        r.ended_notified = false;
        r.quality_bad = false;
    }

    /// The command is the one we answered last and nothing new came in
    /// between: our response was lost, say it again.
    fn is_repeat(&self, q: Fcf) -> bool {
        self.recv.last_answered == Some(q) && !self.recv.activity
    }

    fn rx_on_post_message(&mut self, q: Fcf) {
        if self.rx_ecm() {
            return;
        }
        let answered = matches!(
            self.st,
            St::RxImage | St::RxWaitCmd | St::RxPostEop | St::SentDis
        );
        if answered && self.is_repeat(q) {
            self.repeat_response();
            return;
        }
        if self.st != St::RxImage {
            return;
        }
        self.set_phase(Phase::D);
        self.hs_idle = None;
        let good = !self.recv.image.is_empty() && !self.recv.quality_bad;
        self.recv.last_answered = Some(q);
        if !good {
            self.new_page_state();
            let rtn = self.frame(Fcf::Rtn, Vec::new());
            self.send_response(vec![rtn], St::RxWaitCmd);
            return;
        }
        let data = std::mem::take(&mut self.recv.image);
        let gaps = self.recv.gaps;
        if !self.page_received(data, gaps) {
            return;
        }
        self.new_page_state();
        self.confirm(q, Fcf::Mcf);
    }

    /// Counts and reports a page; false if that was one too many.
    fn page_received(&mut self, data: Vec<u8>, missing: u32) -> bool {
        if self.recv.pages as usize >= MAX_PAGES {
            self.finish(Some(FaxError::TooManyPages { max: MAX_PAGES }), true);
            return false;
        }
        self.recv.pages += 1;
        self.pages_done = self.recv.pages;
        if missing > 0 && self.rx_ecm() {
            self.recv.incomplete.get_or_insert(self.recv.pages);
        }
        let Some(dcs) = self.recv.dcs.clone() else {
            return true;
        };
        self.emit(FaxEvent::PageReceived {
            n: self.recv.pages,
            data,
            fine: dcs.fine,
            coding: dcs.coding,
            width_px: dcs.width_px,
            missing,
        });
        true
    }

    /// Answers `resp` (MCF/ERR) to a completed page's post-message command
    /// and moves on: MPS → next page, EOM → phase B (DIS again), EOP → wait
    /// for DCN.
    fn confirm(&mut self, q: Fcf, resp: Fcf) {
        let frame = self.frame(resp, Vec::new());
        match q {
            Fcf::Eop => {
                self.send_response(vec![frame], St::RxPostEop);
            }
            Fcf::Eom => {
                self.send_response(vec![frame], St::RxImage);
                self.send_dis_again();
            }
            _ => {
                self.send_response(vec![frame], St::RxImage);
                self.set_phase(Phase::C);
            }
        }
    }

    /// After EOM/MCF the procedure returns to phase B (T.30 §5.2, Figure
    /// 5-2 node B): the called receiver sends its DIS again; a polling caller
    /// waits for the far end's DIS and polls again.
    fn send_dis_again(&mut self) {
        if self.cfg.calling {
            self.set_phase(Phase::B);
            self.st = St::WaitDis;
            self.t_resp = None;
        } else {
            self.send_dis();
        }
        self.t1 = Some(self.now + T1);
    }

    pub(super) fn on_ecm_frame(&mut self, f: &Frame) {
        if self.send.is_some() || self.st != St::RxImage || !self.rx_ecm() {
            return;
        }
        if f.fcf == Fcf::Fcd && self.recv.ecm.store(&f.fif) {
            self.recv.activity = true;
        }
    }

    fn rx_on_pps(&mut self, f: &Frame) {
        if !self.rx_ecm() {
            return;
        }
        let Ok(pps) = Pps::decode(&f.fif) else {
            return;
        };
        let repeat = !self.recv.activity && self.recv.last_confirmed == Some((pps.page, pps.block));
        if repeat && matches!(self.st, St::RxImage | St::RxPostEop | St::SentDis) {
            self.repeat_response();
            return;
        }
        if self.st != St::RxImage {
            return;
        }
        self.set_phase(Phase::D);
        self.recv.activity = false;
        self.recv.ecm.note_count(pps.frames);
        let missing = self.recv.ecm.missing();
        if missing.is_empty() {
            self.block_done(pps, Fcf::Mcf);
        } else {
            self.recv.last_answered = Some(Fcf::Pps);
            let ppr = self.frame(Fcf::Ppr, encode_ppr(missing));
            self.send_response(vec![ppr], St::RxImage);
        }
    }

    /// EOR-Q: the sender gives up on the missing frames; take what we have.
    fn rx_on_eor(&mut self, f: &Frame) {
        if !self.rx_ecm() {
            return;
        }
        if self.is_repeat(Fcf::Eor) && matches!(self.st, St::RxImage | St::RxPostEop | St::SentDis)
        {
            self.repeat_response();
            return;
        }
        if self.st != St::RxImage {
            return;
        }
        let pps = Pps {
            q: decode_eor(&f.fif),
            page: 0,
            block: 0,
            frames: 1,
        };
        self.recv.activity = false;
        self.block_done(pps, Fcf::Err);
        self.recv.last_confirmed = None;
        self.recv.last_answered = Some(Fcf::Eor);
    }

    fn block_done(&mut self, pps: Pps, resp: Fcf) {
        let (data, missing) = self.recv.ecm.take();
        let max = self.cfg.options.max_page_octets;
        if self.recv.ecm_page.len() + data.len() > max {
            let page = self.recv.pages + 1;
            self.finish(Some(FaxError::PageTooLarge { page, max }), true);
            return;
        }
        self.recv.ecm_page.extend_from_slice(&data);
        self.recv.ecm_missing += missing;
        self.recv.last_confirmed = Some((pps.page, pps.block));
        self.recv.last_answered = Some(Fcf::Pps);
        match pps.q.map(Fcf::without_pri) {
            None => {
                let frame = self.frame(resp, Vec::new());
                self.send_response(vec![frame], St::RxImage);
                self.set_phase(Phase::C);
            }
            Some(q) => {
                let data = std::mem::take(&mut self.recv.ecm_page);
                let missing = std::mem::take(&mut self.recv.ecm_missing);
                if self.page_received(data, missing) {
                    self.confirm(q, resp);
                }
            }
        }
    }
}
