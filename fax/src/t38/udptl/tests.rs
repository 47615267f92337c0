//! Tests of the UDPTL codec, sender and receiver, and a randomized mutation run over UDPTL and
//! IFP decoding.

use super::*;
use crate::t38::ifp;
use crate::t38::types::{DataType, Field, FieldType, Ifp, Indicator};

/// xorshift64*: a small deterministic generator for the simulations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn redundancy(seq: u16, primary: &[u8], copies: &[&[u8]]) -> UdptlPacket {
    UdptlPacket {
        seq,
        primary: primary.to_vec(),
        recovery: Recovery::Redundancy(copies.iter().map(|c| c.to_vec()).collect()),
    }
}

fn golden(packet: &UdptlPacket, bytes: &[u8]) {
    let mut out = Vec::new();
    packet.encode(&mut out).expect("encodes");
    assert_eq!(out, bytes);
    assert_eq!(packet.encoded_len(), bytes.len());
    assert_eq!(UdptlPacket::decode(bytes).as_ref(), Ok(packet));
}

#[test]
fn golden_datagrams() {
    // seq 0x1234, primary `no-signal` (one octet 0x00), no secondaries: the shape of a
    // datagram Wireshark reads as a well-formed T.38 UDPTL packet.
    golden(
        &redundancy(0x1234, &[0x00], &[]),
        &[0x12, 0x34, 0x01, 0x00, 0x00, 0x00],
    );
    // seq 5, primary `cng`, then v21-preamble and no-signal as secondaries (newest first).
    golden(
        &redundancy(5, &[0x02], &[&[0x06], &[0x00]]),
        &[0x00, 0x05, 0x01, 0x02, 0x00, 0x02, 0x01, 0x06, 0x01, 0x00],
    );
    // FEC: choice bit set, fec-npackets 3 as a one-octet INTEGER, one entry of two octets.
    let fec = UdptlPacket {
        seq: 7,
        primary: vec![0x02],
        recovery: Recovery::Fec {
            npackets: 3,
            data: vec![vec![0xAA, 0xBB]],
        },
    };
    golden(
        &fec,
        &[
            0x00, 0x07, 0x01, 0x02, 0x80, 0x01, 0x03, 0x01, 0x02, 0xAA, 0xBB,
        ],
    );
    // fec-npackets 200 needs a leading zero octet to stay positive.
    let wide = UdptlPacket {
        seq: 0xFFFF,
        primary: vec![0x06],
        recovery: Recovery::Fec {
            npackets: 200,
            data: vec![],
        },
    };
    golden(
        &wide,
        &[0xFF, 0xFF, 0x01, 0x06, 0x80, 0x02, 0x00, 0xC8, 0x00],
    );
    // A real IFP packet as the primary: V.21 HDLC data with FCS OK, version 0.
    let hdlc = Ifp::Data {
        kind: DataType::V21,
        fields: vec![
            Field {
                kind: FieldType::HdlcData,
                data: vec![0xFF, 0x03],
            },
            Field {
                kind: FieldType::HdlcFcsOk,
                data: vec![],
            },
        ],
    };
    let ifp_bytes = ifp::to_bytes(&hdlc, 0).expect("encodes");
    assert_eq!(ifp_bytes, [0xC0, 0x02, 0x80, 0x00, 0x01, 0xFF, 0x03, 0x20]);
    let mut expect = vec![0x00, 0x09, 0x08];
    expect.extend_from_slice(&ifp_bytes);
    expect.extend_from_slice(&[0x00, 0x00]);
    golden(&redundancy(9, &ifp_bytes, &[]), &expect);
}

#[test]
fn long_primaries_use_two_octet_and_fragmented_lengths() {
    let p = redundancy(1, &[0x5A; 200], &[&[0x11; 130]]);
    let bytes = p.to_bytes(1500).expect("fits");
    assert_eq!(&bytes[2..4], &[0x80, 200]);
    assert_eq!(UdptlPacket::decode(&bytes), Ok(p));

    let big = redundancy(2, &[0x77; 20000], &[]);
    let bytes = big.to_bytes(MAX_DATAGRAM_LIMIT).expect("fits");
    assert_eq!(bytes.len(), big.encoded_len());
    assert_eq!(bytes[2], 0xC1, "one 16K fragment");
    assert_eq!(
        UdptlPacket::decode_with_limit(&bytes, MAX_DATAGRAM_LIMIT),
        Ok(big)
    );
    for n in [
        0usize, 1, 127, 128, 16383, 16384, 16385, 32768, 65535, 65536, 70000,
    ] {
        let mut out = Vec::new();
        crate::t38::per::BitWriter::new(&mut out).octet_string(&vec![0; n]);
        assert_eq!(super::octet_string_len(n), out.len(), "n={n}");
    }
}

#[test]
fn malformed_datagrams_are_errors() {
    let good = redundancy(5, &[0x02], &[&[0x06], &[0x00]])
        .to_bytes(1500)
        .expect("fits");
    for cut in 0..good.len() {
        assert!(UdptlPacket::decode(&good[..cut]).is_err(), "cut {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        UdptlPacket::decode(&trailing),
        Err(UdptlError::TrailingBytes { extra: 1 })
    );
    assert_eq!(
        UdptlPacket::decode(&[0, 1, 0, 0, 0]),
        Err(UdptlError::EmptyPrimary)
    );
    // 17 secondaries.
    let mut many = vec![0, 1, 1, 0x02, 0x00, 17];
    for _ in 0..17 {
        many.extend_from_slice(&[1, 0]);
    }
    assert_eq!(
        UdptlPacket::decode(&many),
        Err(UdptlError::TooManySecondary { count: 17, max: 16 })
    );
    assert_eq!(
        UdptlPacket::decode(&[0, 1, 1, 0x02, 0x80, 0x01, 0x03, 17]),
        Err(UdptlError::TooManyFecEntries { count: 17, max: 16 })
    );
    // fec-npackets: empty, negative, above 255.
    for bad in [&[0x00][..], &[0x01, 0x80], &[0x02, 0x01, 0x2C]] {
        let mut d = vec![0, 1, 1, 0x02, 0x80];
        d.extend_from_slice(bad);
        d.push(0);
        assert_eq!(
            UdptlPacket::decode(&d),
            Err(UdptlError::BadFecPackets),
            "{bad:?}"
        );
    }
    // A secondary whose length runs past the end.
    assert_eq!(
        UdptlPacket::decode(&[0, 1, 1, 0x02, 0x00, 1, 0x7F, 0]),
        Err(UdptlError::Truncated)
    );
    assert_eq!(
        UdptlPacket::decode(&[0, 1, 0xC5]),
        Err(UdptlError::BadLength)
    );
    assert_eq!(
        UdptlPacket::decode(&[0u8; 1501]),
        Err(UdptlError::DatagramTooLarge {
            len: 1501,
            max: 1500
        })
    );
}

#[test]
fn encode_bounds() {
    let mut out = vec![9];
    let p = redundancy(1, &[1; 1000], &[&[2; 600]]);
    assert!(matches!(
        p.encode(&mut out),
        Err(UdptlError::DatagramTooLarge { .. })
    ));
    let copies: Vec<&[u8]> = vec![&[1]; 17];
    assert!(matches!(
        redundancy(1, &[1], &copies).encode(&mut out),
        Err(UdptlError::TooManySecondary { .. })
    ));
    assert_eq!(
        redundancy(1, &[], &[]).encode(&mut out),
        Err(UdptlError::EmptyPrimary)
    );
    assert_eq!(out, [9], "nothing appended on error");
}

#[test]
fn tx_redundancy_winds_up_and_fits_the_datagram() {
    let mut tx = UdptlTx::default();
    let mut seen = Vec::new();
    for i in 0..6u8 {
        let p = tx.next_packet(&[i + 1]).expect("fits");
        assert_eq!(p.seq, u16::from(i));
        let Recovery::Redundancy(copies) = p.recovery else {
            panic!("redundancy expected");
        };
        let expect: Vec<Vec<u8>> = (0..i).rev().take(3).map(|j| vec![j + 1]).collect();
        assert_eq!(copies, expect);
        seen.push(copies.len());
    }
    assert_eq!(seen, [0, 1, 2, 3, 3, 3]);

    // With a 40-octet bound, three 10-octet copies do not fit next to a 10-octet primary.
    let config = UdptlTxConfig {
        max_datagram: 40,
        ..UdptlTxConfig::default()
    };
    let mut tx = UdptlTx::new(config).expect("valid");
    let mut out = Vec::new();
    for i in 0..5u8 {
        out.clear();
        tx.send(&[i; 10], &mut out).expect("fits");
        assert!(out.len() <= 40);
    }
    let p = UdptlPacket::decode(&out).expect("decodes");
    assert_eq!(
        p.recovery,
        Recovery::Redundancy(vec![vec![3; 10], vec![2; 10]])
    );
    // A primary that cannot fit alone is refused and does not use a sequence number.
    assert!(matches!(
        tx.send(&[0; 39], &mut out),
        Err(UdptlError::DatagramTooLarge { .. })
    ));
    assert_eq!(tx.next_seq(), 5);
    assert_eq!(tx.send(&[], &mut out), Err(UdptlError::EmptyPrimary));
}

#[test]
fn configurations_are_validated() {
    for depth in 0..=8 {
        let config = UdptlTxConfig {
            error_correction: TxErrorCorrection::Redundancy { depth },
            ..UdptlTxConfig::default()
        };
        assert!(UdptlTx::new(config).is_ok());
    }
    let bad = |error_correction| UdptlTxConfig {
        error_correction,
        ..UdptlTxConfig::default()
    };
    assert_eq!(
        UdptlTx::new(bad(TxErrorCorrection::Redundancy { depth: 9 })).err(),
        Some(UdptlError::BadRedundancyDepth { depth: 9 })
    );
    for (span, entries) in [(0, 1), (1, 0), (1, 17), (9, 4)] {
        assert_eq!(
            UdptlTx::new(bad(TxErrorCorrection::Fec { span, entries })).err(),
            Some(UdptlError::BadFecParameters { span, entries })
        );
    }
    let small = UdptlTxConfig {
        max_datagram: 8,
        ..UdptlTxConfig::default()
    };
    assert_eq!(
        UdptlTx::new(small).err(),
        Some(UdptlError::BadMaxDatagram { max: 8 })
    );
    for window in [0, 1025] {
        let config = UdptlRxConfig {
            window,
            ..UdptlRxConfig::default()
        };
        assert_eq!(
            UdptlRx::new(config).err(),
            Some(UdptlError::BadWindow { window })
        );
    }
}

/// A distinct, variable-length payload for packet `i`.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7) % 23;
    (0..len)
        .map(|j| (i as u8).wrapping_mul(31).wrapping_add(j as u8))
        .collect()
}

/// Sends `n` packets through `tx`, drops each with `loss_percent` (sparing the first and the
/// last four), delays the rest by up to `jitter` places, and returns the datagrams in arrival
/// order with the set of packets that arrived as a primary.
fn channel(
    tx: &mut UdptlTx,
    n: usize,
    loss_percent: u64,
    jitter: u64,
    rng: &mut Rng,
) -> (Vec<Vec<u8>>, Vec<bool>) {
    let mut arrivals = Vec::new();
    let mut arrived = vec![false; n];
    for (i, got) in arrived.iter_mut().enumerate() {
        let mut datagram = Vec::new();
        tx.send(&payload(i), &mut datagram).expect("fits");
        let spared = i == 0 || i + 4 >= n;
        if spared || !rng.chance(loss_percent) {
            let at = if i == 0 {
                0
            } else {
                i as u64 + rng.below(jitter + 1)
            };
            arrivals.push((at, i, datagram));
            *got = true;
        }
    }
    arrivals.sort_by_key(|&(at, i, _)| (at, i));
    (arrivals.into_iter().map(|(_, _, d)| d).collect(), arrived)
}

fn drain(rx: &mut UdptlRx) -> Vec<RxIfp> {
    std::iter::from_fn(|| rx.pop()).collect()
}

fn redundancy_run(loss_percent: u64, seed: u64) {
    const N: usize = 2000;
    const DEPTH: usize = 3;
    let mut rng = Rng(seed);
    let mut tx = UdptlTx::default();
    let (datagrams, arrived) = channel(&mut tx, N, loss_percent, 5, &mut rng);
    let mut rx = UdptlRx::default();
    for d in &datagrams {
        rx.push(d).expect("valid");
    }
    rx.flush();
    let delivered = drain(&mut rx);

    // Recoverable: arrived, or carried by one of the next DEPTH datagrams.
    let recoverable: Vec<usize> = (0..N)
        .filter(|&i| (i..=(i + DEPTH).min(N - 1)).any(|j| arrived[j]))
        .collect();
    let seqs: Vec<usize> = delivered.iter().map(|d| usize::from(d.seq)).collect();
    assert_eq!(
        seqs, recoverable,
        "exactly the recoverable packets, in order, once"
    );
    // A packet comes from its own primary only if that arrived; with reordering, a redundant
    // copy may also come first, and then the primary is a duplicate.
    let mut early_copies = 0;
    for d in &delivered {
        assert_eq!(d.ifp, payload(usize::from(d.seq)));
        let arrived = arrived[usize::from(d.seq)];
        assert!(arrived || d.source == RxSource::Redundancy);
        if arrived && d.source != RxSource::Primary {
            early_copies += 1;
        }
    }
    let stats = rx.stats();
    let missing = arrived.iter().filter(|a| !**a).count() as u64;
    assert_eq!(stats.delivered, recoverable.len() as u64);
    assert_eq!(stats.lost, (N - recoverable.len()) as u64);
    assert_eq!(rx.lost() + stats.delivered, N as u64);
    assert_eq!(stats.recovered, missing - stats.lost + early_copies);
    assert_eq!(stats.duplicates, early_copies);
    assert_eq!(stats.received, datagrams.len() as u64);
    assert_eq!((stats.late, stats.stray), (0, 0));
    assert!(missing > stats.lost && stats.lost > 0 || loss_percent < 20);

    // Everything again: all duplicates, nothing new.
    for d in &datagrams {
        rx.push(d).expect("valid");
    }
    rx.flush();
    assert!(rx.pop().is_none());
    // Recent ones are known duplicates; older ones are past the kept history and count as late.
    let stats = rx.stats();
    assert_eq!(
        stats.duplicates + stats.late,
        early_copies + datagrams.len() as u64
    );
    assert!(stats.duplicates > early_copies + 32);
}

#[test]
fn redundancy_recovers_ten_percent_loss_with_reordering() {
    redundancy_run(10, 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn redundancy_recovers_thirty_percent_loss_with_reordering() {
    redundancy_run(30, 0xD1B5_4A32_D192_ED03);
}

#[test]
fn sequence_numbers_wrap() {
    let config = UdptlTxConfig {
        initial_seq: 65530,
        ..UdptlTxConfig::default()
    };
    let mut tx = UdptlTx::new(config).expect("valid");
    let mut rx = UdptlRx::default();
    for i in 0..20usize {
        let mut d = Vec::new();
        tx.send(&payload(i), &mut d).expect("fits");
        // Lose 65534, 0 and 3: each comes back from the next datagram's redundancy.
        if [4usize, 6, 9].contains(&i) {
            continue;
        }
        rx.push(&d).expect("valid");
    }
    rx.flush();
    let got = drain(&mut rx);
    let seqs: Vec<u16> = got.iter().map(|d| d.seq).collect();
    let expect: Vec<u16> = (0..20u16).map(|i| 65530u16.wrapping_add(i)).collect();
    assert_eq!(seqs, expect);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.ifp, payload(i));
    }
    assert_eq!(rx.recovered(), 3);
    assert_eq!(rx.lost(), 0);
}

#[test]
fn duplicates_are_ignored_and_gaps_beyond_the_window_are_lost() {
    let mut tx = UdptlTx::new(UdptlTxConfig {
        error_correction: TxErrorCorrection::Redundancy { depth: 0 },
        ..UdptlTxConfig::default()
    })
    .expect("valid");
    let datagrams: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            let mut d = Vec::new();
            tx.send(&payload(i), &mut d).map(|_| d)
        })
        .collect::<Result<_, _>>()
        .expect("fits");
    let mut rx = UdptlRx::default();
    rx.push(&datagrams[0]).expect("valid");
    rx.push(&datagrams[0]).expect("valid");
    // Packet 1 is missing: 2..=32 wait behind it.
    for d in &datagrams[2..33] {
        rx.push(d).expect("valid");
    }
    assert_eq!(drain(&mut rx).len(), 1);
    // 33 is window (32) places past the gap: the gap is given up.
    rx.push(&datagrams[33]).expect("valid");
    let got = drain(&mut rx);
    assert_eq!(got.first().map(|d| d.seq), Some(2));
    assert_eq!(got.len(), 32);
    assert_eq!(rx.lost(), 1);
    // Packet 1 is now late, 5 a duplicate.
    rx.push(&datagrams[1]).expect("valid");
    rx.push(&datagrams[5]).expect("valid");
    assert!(rx.pop().is_none());
    let stats = rx.stats();
    assert_eq!((stats.duplicates, stats.late), (2, 1));
    // Malformed input is an error and changes nothing.
    assert!(rx.push(&[0xFF]).is_err());
    assert_eq!(rx.stats().malformed, 1);
}

#[test]
fn a_renumbered_stream_restarts() {
    let mut rx = UdptlRx::default();
    for (seq, ifp) in [(100u16, 1u8), (101, 2), (40000, 3), (40001, 4), (40002, 5)] {
        rx.push_packet(redundancy(seq, &[ifp], &[]));
    }
    let got: Vec<(u16, u8)> = drain(&mut rx)
        .iter()
        .map(|d| (d.seq, d.ifp.first().copied().unwrap_or(0)))
        .collect();
    assert_eq!(
        got,
        [(100, 1), (101, 2), (40000, 3), (40001, 4), (40002, 5)]
    );
    assert_eq!(rx.stats().restarts, 1);
    // A single stray datagram is dropped.
    rx.push_packet(redundancy(9, &[9], &[]));
    rx.push_packet(redundancy(40003, &[6], &[]));
    assert_eq!(drain(&mut rx).len(), 1);
    assert_eq!(rx.stats().stray, 1);
}

fn fec_tx(span: u8, entries: u8) -> UdptlTx {
    UdptlTx::new(UdptlTxConfig {
        error_correction: TxErrorCorrection::Fec { span, entries },
        ..UdptlTxConfig::default()
    })
    .expect("valid")
}

#[test]
fn fec_parity_layout_and_single_loss_repair() {
    let mut tx = fec_tx(3, 2);
    let packets: Vec<UdptlPacket> = (0..12)
        .map(|i| tx.next_packet(&payload(i)))
        .collect::<Result<_, _>>()
        .expect("fits");
    // Wind-up: no parity before `span` packets exist, then one entry, then two.
    let shapes: Vec<(u8, usize)> = packets
        .iter()
        .map(|p| match &p.recovery {
            Recovery::Fec { npackets, data } => (*npackets, data.len()),
            Recovery::Redundancy(_) => (255, 0),
        })
        .collect();
    assert_eq!(
        &shapes[..7],
        &[(0, 0), (0, 0), (0, 0), (3, 1), (3, 1), (3, 1), (3, 2)]
    );
    // Packet 10, entry 1 covers 10 - 6 + 1 + 2j = 5, 7, 9.
    let Recovery::Fec { data, .. } = &packets[10].recovery else {
        panic!("fec expected");
    };
    let mut expect = vec![
        0u8;
        [5, 7, 9]
            .iter()
            .map(|&i| payload(i).len())
            .max()
            .unwrap_or(0)
    ];
    for i in [5, 7, 9] {
        for (e, b) in expect.iter_mut().zip(payload(i)) {
            *e ^= b;
        }
    }
    assert_eq!(data.get(1), Some(&expect));

    // Lose packet 7 only: the parity of a later datagram rebuilds it.
    let mut rx = UdptlRx::default();
    for p in packets.iter().filter(|p| p.seq != 7) {
        rx.push(&p.to_bytes(1500).expect("fits")).expect("valid");
    }
    rx.flush();
    let got = drain(&mut rx);
    assert_eq!(got.len(), 12);
    let seven = &got[7];
    assert_eq!(seven.source, RxSource::Fec);
    assert!(seven.ifp.starts_with(&payload(7)));
    assert!(seven.ifp[payload(7).len()..].iter().all(|&b| b == 0));
    assert_eq!(rx.stats().recovered_fec, 1);
    assert_eq!(rx.lost(), 0);
}

#[test]
fn fec_recovers_random_loss() {
    const N: usize = 2000;
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut tx = fec_tx(3, 3);
    let (datagrams, arrived) = channel(&mut tx, N, 5, 3, &mut rng);
    let mut rx = UdptlRx::default();
    for d in &datagrams {
        rx.push(d).expect("valid");
    }
    rx.flush();
    let got = drain(&mut rx);
    let mut last = None;
    for d in &got {
        let seq = usize::from(d.seq);
        assert!(last < Some(seq), "in order, once");
        last = Some(seq);
        let want = payload(seq);
        assert!(d.ifp.starts_with(&want) && d.ifp[want.len()..].iter().all(|&b| b == 0));
        assert!(arrived[seq] || d.source == RxSource::Fec);
    }
    let stats = rx.stats();
    let missing = arrived.iter().filter(|a| !**a).count() as u64;
    assert_eq!(stats.delivered + stats.lost, N as u64);
    assert_eq!(stats.recovered + stats.lost, missing + stats.duplicates);
    assert!(
        stats.recovered_fec * 2 > missing,
        "most single losses repaired: {stats:?}"
    );
}

/// Valid datagrams carrying valid IFP packets, as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let ifps = [
        Ifp::Indicator(Indicator::Cng),
        Ifp::Indicator(Indicator::V8Signal),
        Ifp::Data {
            kind: DataType::V21,
            fields: vec![
                Field {
                    kind: FieldType::HdlcData,
                    data: vec![0xFF, 0x13, 0x80, 0x00, 0xEE],
                },
                Field {
                    kind: FieldType::HdlcFcsOkSigEnd,
                    data: vec![],
                },
            ],
        },
        Ifp::Data {
            kind: DataType::V17_14400,
            fields: vec![Field {
                kind: FieldType::T4NonEcmData,
                data: (0..=200).collect(),
            }],
        },
        Ifp::Data {
            kind: DataType::V34PriRate,
            fields: vec![Field {
                kind: FieldType::V34Rate,
                data: vec![],
            }],
        },
    ];
    let mut out = Vec::new();
    for version in [0u8, 3] {
        let encoded: Vec<Vec<u8>> = ifps
            .iter()
            .filter_map(|p| ifp::to_bytes(p, version).ok())
            .collect();
        let mut red = UdptlTx::default();
        let mut fec = fec_tx(2, 2);
        for p in encoded.iter().cycle().take(12) {
            let mut d = Vec::new();
            red.send(p, &mut d).expect("fits");
            out.push(d);
            let mut d = Vec::new();
            fec.send(p, &mut d).expect("fits");
            out.push(d);
        }
    }
    out
}

#[test]
fn mutated_datagrams_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0xFEED_FACE_CAFE_BEEF);
    let mut rx = UdptlRx::default();
    let mut decoded = 0;
    for _ in 0..20_000 {
        let mut d = seeds[rng.below(seeds.len() as u64) as usize].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(d.len() as u64 + 1) as usize;
            match rng.below(5) {
                0 => {
                    if let Some(b) = d.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    if let Some(b) = d.get_mut(at) {
                        *b = rng.next() as u8;
                    }
                }
                2 => d.truncate(at),
                3 => d.insert(at, rng.next() as u8),
                _ => {
                    if at < d.len() {
                        d.remove(at);
                    }
                }
            }
        }
        if let Ok(p) = UdptlPacket::decode(&d) {
            decoded += 1;
            // What decodes re-encodes to something that decodes the same.
            let again = p.to_bytes(DEFAULT_MAX_DATAGRAM).expect("re-encodes");
            assert_eq!(UdptlPacket::decode(&again).as_ref(), Ok(&p));
            for version in [0, 3] {
                if let Ok(i) = ifp::decode(&p.primary, version) {
                    let bytes = ifp::to_bytes(&i, version).expect("re-encodes");
                    assert_eq!(ifp::decode(&bytes, version), Ok(i));
                }
                let _ = ifp::decode_prefix(&p.primary, version);
            }
        }
        for version in [0, 3] {
            let _ = ifp::decode(&d, version);
        }
        let _ = rx.push(&d);
        while rx.pop().is_some() {}
    }
    rx.flush();
    assert!(
        decoded > 1000,
        "the mutations keep some datagrams valid: {decoded}"
    );
}
