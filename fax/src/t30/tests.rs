//! Scenario tests: two terminals over an in-memory network on a virtual
//! clock (no sleeps: time jumps to the next `poll_timeout` or delivery).
//! The network can lose and duplicate IFP packets, either raw (every IFP on
//! its own) or behind a UDPTL model (sequence numbers, in-order delivery,
//! redundancy recovering recent losses).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::t38::types::{DataType, FieldType, Ifp};

use super::frames::{Fcf, Frame};
use super::*;

/// xorshift64*: deterministic, dependency-free.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// How packets travel.
#[derive(Clone, Copy)]
pub(super) enum Mode {
    /// Every IFP on its own: lost with `loss`, duplicated with `dup`.
    Raw { loss: f64, dup: f64 },
    /// UDPTL: datagrams lost with `loss`, each carrying `redundancy` earlier
    /// IFPs; the receiver delivers in sequence, skipping what is gone.
    Udptl { loss: f64, redundancy: u64 },
}

type Mangle = Box<dyn FnMut(usize, &mut Ifp) -> bool>;
/// Packets in flight: (arrival, serial) → (to, [(UDPTL seq, IFP)]).
type InFlight = BTreeMap<(Instant, u64), (usize, Vec<(u64, Ifp)>)>;
type Hook = Box<dyn FnMut(usize, &FaxEvent, &mut T38Terminal, Instant)>;

pub(super) struct Net {
    t0: Instant,
    now: Instant,
    term: [T38Terminal; 2],
    rng: Rng,
    mode: Mode,
    latency: Duration,
    inflight: InFlight,
    serial: u64,
    seq: [u64; 2],
    history: [VecDeque<(u64, Ifp)>; 2],
    next_expected: [u64; 2],
    lost: [bool; 2],
    /// Tell receivers about unrepaired losses (as UDPTL sequence numbers do).
    pub(super) report_gaps: bool,
    pub(super) sent: [Vec<(Duration, Ifp)>; 2],
    pub(super) events: [Vec<FaxEvent>; 2],
    mangle: Option<Mangle>,
    hook: Option<Hook>,
}

pub(super) fn page(rng: &mut Rng, len: usize, fine: bool) -> PageOut {
    PageOut {
        data: rng.bytes(len),
        fine,
        coding: Coding::Mh,
        width_px: 1728,
    }
}

pub(super) fn cfg(calling: bool, ecm: bool, role: Role) -> TerminalConfig {
    TerminalConfig {
        calling,
        ident: if calling {
            "+1 555 0100"
        } else {
            "+44 20 7946 0000"
        }
        .to_string(),
        ecm,
        max_rate: 14_400,
        t38_version: 0,
        role,
        options: Options {
            chunk_octets: 512,
            ..Options::default()
        },
    }
}

impl Net {
    pub(super) fn new(a: TerminalConfig, b: TerminalConfig, mode: Mode, seed: u64) -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            term: [T38Terminal::new(t0, a), T38Terminal::new(t0, b)],
            rng: Rng::new(seed),
            mode,
            latency: Duration::from_millis(20),
            inflight: BTreeMap::new(),
            serial: 0,
            seq: [0; 2],
            history: [VecDeque::new(), VecDeque::new()],
            next_expected: [0; 2],
            lost: [false; 2],
            report_gaps: true,
            sent: [Vec::new(), Vec::new()],
            events: [Vec::new(), Vec::new()],
            mangle: None,
            hook: None,
        }
    }

    pub(super) fn mangle(mut self, f: impl FnMut(usize, &mut Ifp) -> bool + 'static) -> Net {
        self.mangle = Some(Box::new(f));
        self
    }

    pub(super) fn hook(
        mut self,
        f: impl FnMut(usize, &FaxEvent, &mut T38Terminal, Instant) + 'static,
    ) -> Net {
        self.hook = Some(Box::new(f));
        self
    }

    fn schedule(&mut self, to: usize, pkts: Vec<(u64, Ifp)>) {
        self.serial += 1;
        self.inflight
            .insert((self.now + self.latency, self.serial), (to, pkts));
    }

    fn transmit(&mut self, from: usize, mut p: Ifp) {
        self.sent[from].push((self.now - self.t0, p.clone()));
        if let Some(m) = self.mangle.as_mut() {
            if !m(from, &mut p) {
                return;
            }
        }
        let to = 1 - from;
        match self.mode {
            Mode::Raw { loss, dup } => {
                if self.rng.chance(loss) {
                    self.lost[to] = true;
                    return;
                }
                if self.rng.chance(dup) {
                    self.schedule(to, vec![(0, p.clone())]);
                }
                self.schedule(to, vec![(0, p)]);
            }
            Mode::Udptl { loss, redundancy } => {
                let seq = self.seq[from];
                self.seq[from] += 1;
                let h = &mut self.history[from];
                h.push_back((seq, p));
                while h.len() as u64 > redundancy + 1 {
                    h.pop_front();
                }
                let datagram: Vec<_> = h.iter().cloned().collect();
                if !self.rng.chance(loss) {
                    self.schedule(to, datagram);
                }
            }
        }
    }

    fn deliver(&mut self, to: usize, pkts: Vec<(u64, Ifp)>) {
        let udptl = matches!(self.mode, Mode::Udptl { .. });
        for (seq, p) in pkts {
            if udptl {
                if seq < self.next_expected[to] {
                    continue;
                }
                if seq > self.next_expected[to] {
                    self.lost[to] = true;
                }
                self.next_expected[to] = seq + 1;
            }
            if std::mem::take(&mut self.lost[to]) && self.report_gaps {
                self.term[to].handle_missing(self.now);
            }
            self.term[to].handle_ifp(self.now, p);
        }
    }

    fn pump(&mut self) {
        for side in 0..2 {
            while let Some(p) = self.term[side].poll_transmit() {
                self.transmit(side, p);
            }
            while let Some(ev) = self.term[side].poll_event() {
                if let Some(h) = self.hook.as_mut() {
                    h(side, &ev, &mut self.term[side], self.now);
                }
                self.events[side].push(ev);
            }
        }
    }

    /// Runs until both sides are done and quiet, or `limit` of virtual time.
    pub(super) fn run(&mut self, limit: Duration) -> &mut Net {
        for _ in 0..2_000_000 {
            self.pump();
            let next = [
                self.inflight.keys().next().map(|k| k.0),
                self.term[0].poll_timeout(),
                self.term[1].poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return self };
            assert!(next - self.t0 <= limit, "still running after {limit:?}");
            self.now = self.now.max(next);
            while let Some(entry) = self.inflight.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, pkts) = entry.remove();
                self.deliver(to, pkts);
            }
            for side in 0..2 {
                if self.term[side]
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.term[side].handle_timeout(self.now);
                }
            }
        }
        panic!("no progress");
    }

    pub(super) fn outcome(&self, side: usize) -> FaxOutcome {
        match self.events[side].last() {
            Some(FaxEvent::Completed(o)) => o.clone(),
            other => panic!("side {side} not completed: {other:?}"),
        }
    }

    pub(super) fn received(&self, side: usize) -> Vec<(Vec<u8>, bool, u32)> {
        self.events[side]
            .iter()
            .filter_map(|e| match e {
                FaxEvent::PageReceived {
                    data,
                    fine,
                    missing,
                    ..
                } => Some((data.clone(), *fine, *missing)),
                _ => None,
            })
            .collect()
    }

    /// FCFs of the control frames `side` sent.
    pub(super) fn fcfs(&self, side: usize) -> Vec<Fcf> {
        frames_in(&self.sent[side])
            .into_iter()
            .map(|f| f.fcf)
            .collect()
    }

    pub(super) fn term_done(&self) -> bool {
        self.term.iter().all(T38Terminal::is_done)
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

pub(super) fn frames_in(pkts: &[(Duration, Ifp)]) -> Vec<Frame> {
    pkts.iter()
        .filter_map(|(_, p)| match p {
            Ifp::Data { fields, .. } => fields
                .iter()
                .find(|f| f.kind == FieldType::HdlcData)
                .and_then(|f| Frame::decode(&f.data).ok()),
            Ifp::Indicator(_) => None,
        })
        .filter(|f| f.fcf != Fcf::Fcd && f.fcf != Fcf::Rcp)
        .collect()
}

pub(super) fn two_pages(rng: &mut Rng, len: usize, fine: bool) -> Vec<PageOut> {
    vec![page(rng, len, fine), page(rng, len / 2 + 7, fine)]
}

/// Sender calling, receiver called; checks both outcomes and the pages.
fn transfer(ecm: bool, fine: bool, mode: Mode, seed: u64, len: usize) -> Net {
    let mut rng = Rng::new(seed);
    let pages = two_pages(&mut rng, len, fine);
    let mut net = Net::new(
        cfg(
            true,
            ecm,
            Role::Send {
                pages: pages.clone(),
            },
        ),
        cfg(false, ecm, Role::Receive),
        mode,
        seed,
    );
    net.run(Duration::from_secs(1_800));
    let (tx, rx) = (net.outcome(0), net.outcome(1));
    assert!(tx.ok && rx.ok, "tx {tx:?}\nrx {rx:?}");
    assert_eq!((tx.pages, rx.pages, tx.ecm, rx.ecm), (2, 2, ecm, ecm));
    assert_eq!(tx.remote_ident.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(rx.remote_ident.as_deref(), Some("+1 555 0100"));
    let got = net.received(1);
    assert_eq!(got.len(), 2);
    for (g, p) in got.iter().zip(&pages) {
        assert_eq!(g.1, fine);
        assert_eq!(g.2, 0);
        if ecm || !matches!(mode, Mode::Raw { loss, dup } if loss > 0.0 || dup > 0.0) {
            assert!(g.0 == p.data, "page data differs");
        }
    }
    net
}

pub(super) const LOSSLESS: Mode = Mode::Raw {
    loss: 0.0,
    dup: 0.0,
};

#[test]
fn non_ecm_two_pages_standard_lossless() {
    let net = transfer(false, false, LOSSLESS, 1, 20_000);
    assert_eq!(net.outcome(0).bit_rate, 14_400);
    let tx = net.fcfs(0);
    assert_eq!(tx, vec![Fcf::Tsi, Fcf::Dcs, Fcf::Mps, Fcf::Eop, Fcf::Dcn]);
    let rx = net.fcfs(1);
    assert_eq!(rx, vec![Fcf::Csi, Fcf::Dis, Fcf::Cfr, Fcf::Mcf, Fcf::Mcf]);
    let phases: Vec<Phase> = net.events[0]
        .iter()
        .filter_map(|e| match e {
            FaxEvent::Phase(p) => Some(*p),
            _ => None,
        })
        .collect();
    use Phase::*;
    assert_eq!(phases, vec![A, B, C, D, C, D, E]);
}

#[test]
fn non_ecm_two_pages_fine_lossless() {
    transfer(false, true, LOSSLESS, 2, 30_000);
}

#[test]
fn ecm_two_pages_lossless_multi_block() {
    // 70 000 octets: two blocks (256 frames, then 18).
    let net = transfer(true, false, LOSSLESS, 3, 70_000);
    let pps: Vec<_> = frames_in(&net.sent[0])
        .into_iter()
        .filter(|f| f.fcf == Fcf::Pps)
        .collect();
    assert_eq!(pps.len(), 3);
    assert_eq!(pps[0].fif, vec![0x00, 0x00, 0x00, 0xFF]); // PPS-NULL p0 b0 256
    assert_eq!(pps[1].fif[..3], [0xF2, 0x00, 0x80]); // PPS-MPS (X=1) p0 b1
    assert_eq!(pps[2].fif[..2], [0xF4, 0x80]); // PPS-EOP p1
}

#[test]
fn ecm_two_pages_fine() {
    transfer(true, true, LOSSLESS, 4, 9_000);
}

#[test]
fn non_ecm_pacing_follows_the_modem_rate() {
    let net = transfer(false, false, LOSSLESS, 5, 36_000);
    let data: Vec<Duration> = net.sent[0]
        .iter()
        .filter(|(_, p)| {
            matches!(
                p,
                Ifp::Data {
                    kind: DataType::V17_14400,
                    ..
                }
            )
        })
        .map(|(t, _)| *t)
        .collect();
    // TCF (2700 octets) + 36 000 + 18 007 octets at 14 400 bit/s ≈ 31.5 s.
    let span = data.last().copied().unwrap_or_default() - data.first().copied().unwrap_or_default();
    assert!(span > Duration::from_secs(25), "{span:?}");
}

#[test]
fn ecm_survives_raw_loss_10_percent() {
    let mut ok = 0;
    for seed in 10..16 {
        let mut rng = Rng::new(seed);
        let pages = two_pages(&mut rng, 20_000, false);
        let mut net = Net::new(
            cfg(
                true,
                true,
                Role::Send {
                    pages: pages.clone(),
                },
            ),
            cfg(false, true, Role::Receive),
            Mode::Raw {
                loss: 0.1,
                dup: 0.0,
            },
            seed,
        );
        net.run(Duration::from_secs(3_600));
        let (tx, rx) = (net.outcome(0), net.outcome(1));
        if tx.ok {
            ok += 1;
            let got = net.received(1);
            assert_eq!(got.len(), 2);
            assert!(got[0].0 == pages[0].data && got[1].0 == pages[1].data);
        } else {
            assert!(tx.error.is_some(), "{tx:?} {rx:?}");
        }
    }
    assert!(ok >= 4, "only {ok}/6 calls survived 10 % raw loss");
}

#[test]
fn lossy_raw_30_percent_never_panics_or_corrupts_ecm() {
    for seed in 20..26 {
        let mut rng = Rng::new(seed);
        let pages = two_pages(&mut rng, 5_000, true);
        let mut net = Net::new(
            cfg(
                true,
                true,
                Role::Send {
                    pages: pages.clone(),
                },
            ),
            cfg(false, true, Role::Receive),
            Mode::Raw {
                loss: 0.3,
                dup: 0.05,
            },
            seed,
        );
        net.report_gaps = false;
        net.run(Duration::from_secs(3_600));
        let _ = (net.outcome(0), net.outcome(1));
        for (i, (data, _, _)) in net.received(1).iter().enumerate() {
            assert!(*data == pages[i].data, "ECM delivered a corrupt page");
        }
    }
}

#[test]
fn udptl_redundancy_makes_30_percent_loss_work() {
    for (ecm, seed) in [(false, 30), (true, 31), (false, 32), (true, 33)] {
        transfer(
            ecm,
            false,
            Mode::Udptl {
                loss: 0.3,
                redundancy: 3,
            },
            seed,
            12_000,
        );
    }
}

#[test]
fn udptl_10_percent_loss_without_redundancy_ecm() {
    transfer(
        true,
        false,
        Mode::Udptl {
            loss: 0.1,
            redundancy: 0,
        },
        40,
        12_000,
    );
}

#[test]
fn duplicated_packets_are_harmless() {
    let net = transfer(
        true,
        false,
        Mode::Raw {
            loss: 0.0,
            dup: 0.3,
        },
        50,
        15_000,
    );
    assert!(net.outcome(0).ok);
    // Non-ECM: duplicated image chunks change the data (there is no sequence
    // number at the IFP level), but the procedure completes.
    transfer(
        false,
        false,
        Mode::Raw {
            loss: 0.0,
            dup: 0.3,
        },
        51,
        15_000,
    );
}
