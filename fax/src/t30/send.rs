//! The transmitting terminal's procedure (T.30 §5.2 flow charts,
//! transmitter side; ECM per T.30 Annex A.4): DIS/DTC → (TSI) DCS + TCF,
//! fallback on FTT, the pages (non-ECM or ECM blocks), post-message
//! commands and their responses, RTN retrain and resend, PPR
//! retransmission with CTC/EOR after four PPRs, RR after RNR, and DCN.

use super::ecm::EcmTx;
use super::frames::{decode_ppr, encode_ctc, encode_eor, Dcs, Dis, Fcf, Frame, Modems, Rate};
use super::state::{Core, EcmCmd, St, MAX_SENDS, T1, T4, T5};
use super::{Coding, FaxError, FaxEvent, Incompatibility, PageOut, Phase, Refusal};

/// CTC rounds per block before EOR.
const MAX_CTC: u32 = 2;
/// PPRs per block before CTC/EOR (T.30 Annex A: four).
const PPR_LIMIT: u32 = 4;
/// Times one page may be restarted from phase B because the receiver
/// went back to DIS instead of answering our post-message command.
const MAX_RESTARTS: u32 = 3;

#[derive(Debug)]
pub(super) struct Sender {
    pages: Vec<PageOut>,
    /// Index of the page being sent.
    page: usize,
    fallback: Vec<Rate>,
    rate_idx: usize,
    dcs: Option<Dcs>,
    /// The receiver trained at this rate: short training is enough.
    trained: bool,
    rtn: u32,
    restarts: u32,
    /// MPS, EOM or EOP for the current page.
    post: Fcf,
    ecm: Option<EcmTx>,
}

impl Sender {
    pub(super) fn new(pages: Vec<PageOut>) -> Sender {
        Sender {
            pages,
            page: 0,
            fallback: Vec::new(),
            rate_idx: 0,
            dcs: None,
            trained: false,
            rtn: 0,
            restarts: 0,
            post: Fcf::Eop,
            ecm: None,
        }
    }

    fn rate(&self) -> Rate {
        self.fallback
            .get(self.rate_idx)
            .copied()
            .unwrap_or(Rate::V27_2400)
    }

    fn current(&self) -> Option<&PageOut> {
        self.pages.get(self.page)
    }

    /// MPS if the next page can follow with the same DCS, EOM if it needs
    /// a new one, EOP after the last (T.30 §5.3).
    fn post_command(&self) -> Fcf {
        match (self.pages.get(self.page), self.pages.get(self.page + 1)) {
            (Some(a), Some(b))
                if (a.fine, a.coding, a.width_px) == (b.fine, b.coding, b.width_px) =>
            {
                Fcf::Mps
            }
            (_, Some(_)) => Fcf::Eom,
            _ => Fcf::Eop,
        }
    }
}

/// The DCS for `page` given the far end's DIS/DTC.
fn choose_dcs(page: &PageOut, dis: &Dis, ecm_ok: bool, rate: Rate) -> Result<Dcs, Incompatibility> {
    let ecm = ecm_ok && dis.ecm;
    match page.coding {
        Coding::Mr if !dis.mr => return Err(Incompatibility::Coding(Coding::Mr)),
        Coding::Mmr if !ecm => return Err(Incompatibility::MmrWithoutEcm),
        Coding::Mmr if !dis.mmr => return Err(Incompatibility::Coding(Coding::Mmr)),
        _ => {}
    }
    if page.fine && !dis.fine {
        return Err(Incompatibility::Resolution);
    }
    if page.width_px > dis.max_width_px {
        return Err(Incompatibility::Width(page.width_px));
    }
    // Non-ECM: declare the receiver's minimum scan line time. The data is
    // opaque, so honouring it (fill bits) is up to whoever encoded it.
    let min_scan_ms = match (ecm, page.fine) {
        (true, _) => 0,
        (false, true) => dis.scan.fine_ms,
        (false, false) => dis.scan.standard_ms,
    };
    Ok(Dcs {
        rate,
        fine: page.fine,
        coding: page.coding,
        width_px: page.width_px,
        b4_length: false,
        unlimited_length: dis.unlimited_length,
        min_scan_ms,
        ecm,
        frame_64: false,
    })
}

impl Core {
    /// The page being retrained for after RTN, and how many RTNs it got.
    pub(super) fn rejected_page(&self) -> Option<(u32, u32)> {
        let s = self.send.as_ref()?;
        (s.rtn > 0).then_some((s.page as u32 + 1, s.rtn))
    }

    /// A final frame while we are the transmitter.
    pub(super) fn tx_final(&mut self, f: Frame) {
        match (self.st, f.fcf) {
            (St::WaitDis, Fcf::Dis) => {
                self.dis_received = true;
                self.tx_begin(&f);
            }
            (St::SentDis, Fcf::Dtc) => self.tx_begin(&f),
            (St::SentDis, Fcf::Dcs) => {
                let reason = Refusal::WantsToSend;
                self.finish(Some(FaxError::RemoteRefused { reason }), true);
            }
            // The receiver did not hear our DCS and repeats its DIS.
            (St::TxWaitCfr, Fcf::Dis) => self.repeat_command(),
            (St::TxWaitCfr, Fcf::Cfr) => self.tx_trained(),
            (St::TxWaitCfr, Fcf::Ftt) => self.tx_fall_back(),
            (St::TxWaitPostPage, Fcf::Mcf | Fcf::Pip) => self.tx_page_confirmed(false),
            (St::TxWaitPostPage, Fcf::Rtp) => self.tx_page_confirmed(true),
            (St::TxWaitPostPage, Fcf::Rtn | Fcf::Pin) => self.tx_rtn(),
            // The receiver missed our command and went back to phase B
            // (spandsp does after T2): train again and resend the page.
            (St::TxWaitPostPage | St::TxWaitEcm(_), Fcf::Dis) => self.tx_restart_page(),
            (St::TxWaitEcm(EcmCmd::Pps | EcmCmd::Rr), fcf) => self.tx_ecm_response(fcf, &f.fif),
            (St::TxWaitEcm(EcmCmd::Ctc), Fcf::Ctr) => {
                if let Some(s) = self.send.as_mut() {
                    s.trained = false;
                }
                self.tx_ecm_burst();
            }
            (St::TxWaitEcm(EcmCmd::Eor), Fcf::Err) => {
                let page = self.send.as_ref().map_or(0, |s| s.page as u32 + 1);
                self.finish(Some(FaxError::EcmRetriesExhausted { page }), true);
            }
            (St::TxWaitEcm(EcmCmd::Eor), Fcf::Rnr) => self.tx_rnr(),
            _ => {}
        }
    }

    /// DIS (or DTC when polled) received: choose parameters, start phase B.
    fn tx_begin(&mut self, f: &Frame) {
        let Ok(dis) = Dis::decode(&f.fif) else {
            return;
        };
        self.t1 = None;
        self.set_phase(Phase::B);
        if !dis.can_receive {
            let reason = Refusal::CannotReceive;
            self.finish(Some(FaxError::RemoteRefused { reason }), true);
            return;
        }
        let (ecm_ok, max) = (self.cfg.ecm, self.cfg.max_rate);
        let Some(s) = self.send.as_mut() else { return };
        s.fallback = Rate::fallback(dis.modems, Modems::up_to(max), max);
        s.rate_idx = 0;
        let rate = s.rate();
        let chosen = s
            .current()
            .map(|p| choose_dcs(p, &dis, ecm_ok, rate))
            .unwrap_or(Err(Incompatibility::Resolution));
        match chosen {
            Ok(dcs) => {
                s.dcs = Some(dcs);
                self.tx_send_dcs(true);
            }
            Err(what) => self.finish(Some(FaxError::Incompatible { what }), true),
        }
    }

    /// (TSI) DCS, then TCF at the current rate; T4 for CFR/FTT.
    fn tx_send_dcs(&mut self, first: bool) {
        let Some(s) = self.send.as_mut() else { return };
        let rate = s.rate();
        s.trained = false;
        let Some(dcs) = s.dcs.as_mut() else { return };
        dcs.rate = rate;
        let fif = dcs.encode();
        let mut frames: Vec<Frame> = self.ident_frame(Fcf::Tsi).into_iter().collect();
        frames.push(self.frame(Fcf::Dcs, fif));
        let tries = self.tries;
        self.send_command(frames, St::TxWaitCfr);
        if !first {
            self.tries = tries;
        }
        self.line.send_tcf(self.now, rate);
        self.arm(T4);
    }

    /// Sends the current command again after T4 (or CRP/repeated DIS),
    /// or gives up after [`MAX_SENDS`].
    pub(super) fn repeat_command(&mut self) {
        if self.tries >= MAX_SENDS {
            self.no_response();
            return;
        }
        self.tries += 1;
        if self.st == St::TxWaitCfr {
            self.tx_send_dcs(false);
        } else {
            let frames = self.last_cmd.clone();
            self.line.send_v21(self.now, &frames);
            self.arm(T4);
        }
    }

    fn tx_trained(&mut self) {
        let remote_ident = self.remote_ident.clone();
        let Some(s) = self.send.as_mut() else { return };
        s.trained = true;
        let Some(dcs) = s.dcs.clone() else { return };
        self.bit_rate = dcs.rate.bps();
        self.ecm_used = dcs.ecm;
        self.emit(FaxEvent::Negotiated {
            rate: dcs.rate.bps(),
            ecm: dcs.ecm,
            fine: dcs.fine,
            coding: dcs.coding,
            remote_ident,
        });
        self.tx_page();
    }

    fn tx_fall_back(&mut self) {
        let Some(s) = self.send.as_mut() else { return };
        if s.rate_idx + 1 >= s.fallback.len() {
            let rate = s.rate().bps();
            self.finish(Some(FaxError::TrainingFailed { rate }), true);
            return;
        }
        s.rate_idx += 1;
        self.tx_send_dcs(true);
    }

    /// Phase C for the current page, then its post-message command.
    fn tx_page(&mut self) {
        let Some(s) = self.send.as_mut() else { return };
        s.post = s.post_command();
        if s.dcs.as_ref().is_some_and(|d| d.ecm) {
            s.ecm = Some(EcmTx::new(s.current().map_or(0, |p| p.data.len())));
            self.set_phase(Phase::C);
            self.tx_ecm_burst();
            return;
        }
        self.set_phase(Phase::C);
        let now = self.now;
        let Some(s) = self.send.as_mut() else { return };
        let (rate, long, post) = (s.rate(), !s.trained, s.post);
        s.trained = true;
        if let Some(page) = s.pages.get(s.page) {
            self.line.image(now, rate, long, &page.data);
        }
        self.set_phase(Phase::D);
        let frame = self.frame(post, Vec::new());
        self.send_command(vec![frame], St::TxWaitPostPage);
    }

    fn tx_restart_page(&mut self) {
        let Some(s) = self.send.as_mut() else { return };
        s.restarts += 1;
        if s.restarts > MAX_RESTARTS {
            self.no_response();
            return;
        }
        s.ecm = None;
        self.set_phase(Phase::B);
        self.tx_send_dcs(true);
    }

    fn tx_page_confirmed(&mut self, retrain: bool) {
        self.pages_done += 1;
        self.emit(FaxEvent::PageSent { n: self.pages_done });
        let Some(s) = self.send.as_mut() else { return };
        s.rtn = 0;
        s.restarts = 0;
        s.ecm = None;
        match s.post {
            Fcf::Mps => {
                s.page += 1;
                // RTP: the receiver wants training again before the next page.
                if retrain {
                    self.tx_send_dcs(true);
                } else {
                    self.tx_page();
                }
            }
            Fcf::Eom => {
                s.page += 1;
                // Back to phase B, where the called side sends DIS: the
                // receiver normally, or we ourselves when we were polled.
                self.t1 = Some(self.now + T1);
                if self.cfg.calling {
                    self.set_phase(Phase::B);
                    self.st = St::WaitDis;
                    self.t_resp = None;
                } else {
                    self.send_dis();
                }
            }
            _ => self.finish(None, true),
        }
    }

    fn tx_rtn(&mut self) {
        let max = self.cfg.options.max_rtn;
        let Some(s) = self.send.as_mut() else { return };
        s.rtn += 1;
        if s.rtn > max {
            let (page, tries) = (s.page as u32 + 1, s.rtn);
            self.finish(Some(FaxError::PageRejected { page, tries }), true);
            return;
        }
        // Retrain (DCS/TCF at the same rate), then the same page again.
        self.tx_send_dcs(true);
    }

    /// One ECM burst: pending FCD frames + RCP, then PPS-Q.
    fn tx_ecm_burst(&mut self) {
        let x = self.dis_received;
        let Some(s) = self.send.as_mut() else { return };
        let (rate, long, post, page_no) = (s.rate(), !s.trained, s.post, s.page as u32);
        let (Some(ecm), Some(page)) = (s.ecm.as_ref(), s.pages.get(s.page)) else {
            return;
        };
        let frames = ecm.burst(&page.data, x);
        let q = ecm.is_last_block().then_some(post);
        let pps = ecm.pps(q, page_no).encode(x);
        s.trained = true;
        self.line.send_fast_hdlc(self.now, rate, long, &frames);
        self.set_phase(Phase::D);
        let frame = self.frame(Fcf::Pps, pps);
        self.send_command(vec![frame], St::TxWaitEcm(EcmCmd::Pps));
    }

    /// The response to PPS (or to RR after RNR).
    fn tx_ecm_response(&mut self, fcf: Fcf, fif: &[u8]) {
        match fcf {
            Fcf::Mcf | Fcf::Pip => {
                self.t5 = None;
                let more = self
                    .send
                    .as_mut()
                    .and_then(|s| s.ecm.as_mut())
                    .is_some_and(EcmTx::next_block);
                if more {
                    self.set_phase(Phase::C);
                    self.tx_ecm_burst();
                } else {
                    self.tx_page_confirmed(false);
                }
            }
            Fcf::Ppr => {
                self.t5 = None;
                self.tx_ppr(&decode_ppr(fif));
            }
            Fcf::Rnr => self.tx_rnr(),
            Fcf::Pin => {
                let page = self.send.as_ref().map_or(0, |s| s.page as u32 + 1);
                self.finish(Some(FaxError::PageRejected { page, tries: 1 }), true);
            }
            _ => {}
        }
    }

    fn tx_ppr(&mut self, missing: &[usize]) {
        let x = self.dis_received;
        let Some(s) = self.send.as_mut() else { return };
        let post = s.post;
        let can_fall_back = s.rate_idx + 1 < s.fallback.len();
        let Some(ecm) = s.ecm.as_mut() else { return };
        ecm.apply_ppr(missing);
        ecm.ppr_count += 1;
        if ecm.ppr_count < PPR_LIMIT {
            self.set_phase(Phase::C);
            self.tx_ecm_burst();
            return;
        }
        ecm.ppr_count = 0;
        if ecm.ctc_count < MAX_CTC {
            // Continue to correct, one rate lower if there is one.
            ecm.ctc_count += 1;
            if can_fall_back {
                s.rate_idx += 1;
            }
            let rate = s.rate();
            if let Some(d) = s.dcs.as_mut() {
                d.rate = rate;
            }
            self.bit_rate = rate.bps();
            let ctc = self.frame(Fcf::Ctc, encode_ctc(rate));
            self.send_command(vec![ctc], St::TxWaitEcm(EcmCmd::Ctc));
        } else {
            let q = ecm.is_last_block().then_some(post);
            let eor = self.frame(Fcf::Eor, encode_eor(q, x));
            self.send_command(vec![eor], St::TxWaitEcm(EcmCmd::Eor));
        }
    }

    /// RNR: ask again with RR until T5.
    fn tx_rnr(&mut self) {
        if self.t5.is_none() {
            self.t5 = Some(self.now + T5);
        }
        let rr = self.frame(Fcf::Rr, Vec::new());
        let st = match self.st {
            St::TxWaitEcm(EcmCmd::Eor) => St::TxWaitEcm(EcmCmd::Eor),
            _ => St::TxWaitEcm(EcmCmd::Rr),
        };
        self.send_command(vec![rr], st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t30::frames::ScanTime;

    fn dis() -> Dis {
        Dis {
            t38: false,
            ready_to_transmit: false,
            can_receive: true,
            modems: Modems::up_to(14_400),
            fine: false,
            mr: false,
            max_width_px: 1728,
            b4_length: false,
            unlimited_length: false,
            scan: ScanTime {
                standard_ms: 20,
                fine_ms: 10,
            },
            ecm: true,
            mmr: false,
        }
    }

    fn page(fine: bool, coding: Coding, width_px: u32) -> PageOut {
        PageOut {
            data: vec![0; 10],
            fine,
            coding,
            width_px,
        }
    }

    #[test]
    fn dcs_choice_checks_capabilities() {
        let r = Rate::V17_14400;
        let d = choose_dcs(&page(false, Coding::Mh, 1728), &dis(), false, r).expect("ok");
        assert_eq!((d.ecm, d.min_scan_ms), (false, 20));
        let d = choose_dcs(&page(false, Coding::Mh, 1728), &dis(), true, r).expect("ok");
        assert_eq!((d.ecm, d.min_scan_ms), (true, 0));
        assert_eq!(
            choose_dcs(&page(true, Coding::Mh, 1728), &dis(), true, r),
            Err(Incompatibility::Resolution)
        );
        assert_eq!(
            choose_dcs(&page(false, Coding::Mr, 1728), &dis(), true, r),
            Err(Incompatibility::Coding(Coding::Mr))
        );
        assert_eq!(
            choose_dcs(&page(false, Coding::Mmr, 1728), &dis(), false, r),
            Err(Incompatibility::MmrWithoutEcm)
        );
        assert_eq!(
            choose_dcs(&page(false, Coding::Mh, 2048), &dis(), true, r),
            Err(Incompatibility::Width(2048))
        );
        let fine = Dis {
            fine: true,
            ..dis()
        };
        let d = choose_dcs(&page(true, Coding::Mh, 1728), &fine, false, r).expect("ok");
        assert_eq!(d.min_scan_ms, 10);
    }

    #[test]
    fn post_command_follows_page_parameters() {
        let mut s = Sender::new(vec![
            page(false, Coding::Mh, 1728),
            page(false, Coding::Mh, 1728),
            page(true, Coding::Mh, 1728),
        ]);
        assert_eq!(s.post_command(), Fcf::Mps);
        s.page = 1;
        assert_eq!(s.post_command(), Fcf::Eom);
        s.page = 2;
        assert_eq!(s.post_command(), Fcf::Eop);
    }
}
