//! Robustness: arbitrary IFP sequences, arbitrary timing and corrupted
//! traffic must never panic, must keep memory bounded and must end.

use std::time::{Duration, Instant};

use crate::t38::types::{DataType, Field, FieldType, Ifp, Indicator};

use super::frames::{Fcf, Frame};
use super::tests::{cfg, two_pages, Mode, Net, Rng};
use super::*;

const INDICATORS: [Indicator; 23] = [
    Indicator::NoSignal,
    Indicator::Cng,
    Indicator::Ced,
    Indicator::V21Preamble,
    Indicator::V27_2400Training,
    Indicator::V27_4800Training,
    Indicator::V29_7200Training,
    Indicator::V29_9600Training,
    Indicator::V17_7200ShortTraining,
    Indicator::V17_7200LongTraining,
    Indicator::V17_9600ShortTraining,
    Indicator::V17_9600LongTraining,
    Indicator::V17_12000ShortTraining,
    Indicator::V17_12000LongTraining,
    Indicator::V17_14400ShortTraining,
    Indicator::V17_14400LongTraining,
    Indicator::V8Ansam,
    Indicator::V8Signal,
    Indicator::V34CntlChannel1200,
    Indicator::V34PriChannel,
    Indicator::V34CcRetrain,
    Indicator::V33_12000Training,
    Indicator::V33_14400Training,
];

const DATA_TYPES: [DataType; 15] = [
    DataType::V21,
    DataType::V27_2400,
    DataType::V27_4800,
    DataType::V29_7200,
    DataType::V29_9600,
    DataType::V17_7200,
    DataType::V17_9600,
    DataType::V17_12000,
    DataType::V17_14400,
    DataType::V8,
    DataType::V34PriRate,
    DataType::V34Cc1200,
    DataType::V34PriCh,
    DataType::V33_12000,
    DataType::V33_14400,
];

const FIELDS: [FieldType; 12] = [
    FieldType::HdlcData,
    FieldType::HdlcSigEnd,
    FieldType::HdlcFcsOk,
    FieldType::HdlcFcsBad,
    FieldType::HdlcFcsOkSigEnd,
    FieldType::HdlcFcsBadSigEnd,
    FieldType::T4NonEcmData,
    FieldType::T4NonEcmSigEnd,
    FieldType::CmMessage,
    FieldType::JmMessage,
    FieldType::CiMessage,
    FieldType::V34Rate,
];

const FCFS: [Fcf; 24] = [
    Fcf::Dis,
    Fcf::Dtc,
    Fcf::Dcs,
    Fcf::Csi,
    Fcf::Tsi,
    Fcf::Cig,
    Fcf::Nsf,
    Fcf::Cfr,
    Fcf::Ftt,
    Fcf::Mps,
    Fcf::Eop,
    Fcf::Eom,
    Fcf::PriMps,
    Fcf::Mcf,
    Fcf::Rtn,
    Fcf::Rtp,
    Fcf::Pps,
    Fcf::Ppr,
    Fcf::Ctc,
    Fcf::Ctr,
    Fcf::Eor,
    Fcf::Rnr,
    Fcf::Rr,
    Fcf::Fcd,
];

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

/// A T.30-looking frame with random contents.
fn frame_octets(rng: &mut Rng) -> Vec<u8> {
    let fcf = if rng.chance(0.9) {
        pick(rng, &FCFS)
    } else {
        Fcf::Unknown(rng.next() as u8)
    };
    let len = match rng.below(4) {
        0 => 0,
        1 => 4,
        2 => 32,
        _ => rng.below(300) as usize,
    };
    let fif = rng.bytes(len);
    let mut f = Frame::new(fcf, fif);
    f.x = rng.chance(0.5);
    f.last = rng.chance(0.7);
    f.encode()
}

fn arb_ifp(rng: &mut Rng) -> Ifp {
    if rng.chance(0.3) {
        return Ifp::Indicator(pick(rng, &INDICATORS));
    }
    let fields = (0..rng.below(4))
        .map(|_| {
            let kind = pick(rng, &FIELDS);
            let data = match rng.below(5) {
                0 => Vec::new(),
                1 => vec![0; rng.below(3_000) as usize],
                2 | 3 => frame_octets(rng),
                _ => {
                    let n = rng.below(600) as usize;
                    rng.bytes(n)
                }
            };
            Field { kind, data }
        })
        .collect();
    Ifp::Data {
        kind: pick(rng, &DATA_TYPES),
        fields,
    }
}

fn fuzz_config(rng: &mut Rng, round: u64) -> TerminalConfig {
    let calling = round.is_multiple_of(2);
    let ecm = round % 4 < 2;
    let role = if round % 8 < 4 {
        Role::Receive
    } else {
        Role::Send {
            pages: two_pages(rng, 700, round.is_multiple_of(3)),
        }
    };
    let mut c = cfg(calling, ecm, role);
    c.options.max_page_octets = 50_000;
    c
}

/// Drives one terminal to its end with no input.
fn drain(t: &mut T38Terminal, mut now: Instant) -> bool {
    for _ in 0..10_000 {
        let Some(next) = t.poll_timeout() else { break };
        now = now.max(next);
        t.handle_timeout(now);
        while t.poll_transmit().is_some() {}
        while t.poll_event().is_some() {}
    }
    t.is_done() && t.poll_timeout().is_none()
}

#[test]
fn arbitrary_packets_never_panic() {
    let t0 = Instant::now();
    let mut rng = Rng::new(99);
    let mut started = 0;
    // T30_FUZZ_ROUNDS=5000 cargo test --release fuzz  for a longer run.
    let rounds: u64 = std::env::var("T30_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    for round in 0..rounds {
        let mut t = T38Terminal::new(t0, fuzz_config(&mut rng, round));
        let mut now = t0;
        for _ in 0..2_000 {
            match rng.below(40) {
                0..=29 => t.handle_ifp(now, arb_ifp(&mut rng)),
                30 => t.handle_missing(now),
                31 => t.set_page_quality(rng.chance(0.5)),
                32 if rng.chance(0.01) => t.abort(now),
                _ => {
                    let max = if rng.chance(0.9) { 400 } else { 5_000 };
                    now += Duration::from_millis(rng.below(max));
                    t.handle_timeout(now);
                }
            }
            let mut sent = 0;
            while t.poll_transmit().is_some() {
                sent += 1;
                assert!(sent < 200_000, "runaway transmit queue");
            }
            while let Some(ev) = t.poll_event() {
                if let FaxEvent::PageReceived { data, .. } = ev {
                    assert!(data.len() <= 50_000);
                }
            }
            let _ = t.rx_page_data();
            if t.is_done() {
                // Whatever happened, it ends on its own; then start afresh.
                assert!(drain(&mut t, now), "round {round} never ended");
                started += 1;
                t = T38Terminal::new(now, fuzz_config(&mut rng, round + started));
            }
        }
        assert!(drain(&mut t, now), "round {round} never ended");
    }
    assert!(
        started > rounds,
        "fuzzing restarted only {started} terminals"
    );
}

#[test]
fn corrupted_traffic_always_terminates() {
    for seed in 0..12u64 {
        let mut rng = Rng::new(seed);
        let ecm = seed % 2 == 0;
        let pages = two_pages(&mut rng, 3_000, seed % 3 == 0);
        let mut flip = Rng::new(seed + 1_000);
        let mut net = Net::new(
            cfg(true, ecm, Role::Send { pages }),
            cfg(false, ecm, Role::Receive),
            Mode::Raw {
                loss: 0.05,
                dup: 0.05,
            },
            seed,
        )
        .mangle(move |_, p| {
            if let Ifp::Data { fields, .. } = p {
                for f in fields.iter_mut() {
                    if !f.data.is_empty() && flip.chance(0.15) {
                        let i = flip.below(f.data.len() as u64) as usize;
                        f.data[i] ^= 1 << flip.below(8);
                    }
                }
            }
            true
        });
        net.run(Duration::from_secs(3_600));
        let (a, b) = (net.outcome(0), net.outcome(1));
        assert!(a.ok || a.error.is_some());
        assert!(b.ok || b.error.is_some());
    }
}
